// The cluster dashboard's model: the /api/cluster document kept current by the events of the
// WebSocket, and the geometry of the ring drawing.
import type { Cluster, ClusterEvent, Member } from "../api/types";

/** Apply one live event to the last known cluster document. */
export function applyClusterEvent(doc: Cluster | null, event: ClusterEvent): Cluster | null {
  if (event.type === "hello") return event.cluster;
  if (!doc) return doc;
  switch (event.type) {
    case "membership": {
      const m = event.member;
      const known = doc.members.some((x) => x.id === m.id);
      const members = known
        ? doc.members.map((x) => (x.id === m.id ? mergeMember(x, m) : x))
        : [...doc.members, m];
      const ring =
        m.role === "voter" && !doc.ring.includes(m.id) && m.state !== "left"
          ? [...doc.ring, m.id]
          : doc.ring;
      return { ...doc, members, ring };
    }
    case "token":
      return { ...doc, token: { holder: event.holder, epoch: event.epoch } };
    case "catalog":
      return { ...doc, log_position: event.position };
    case "quorum":
      return { ...doc, quorum: event.quorum };
  }
}

/** A member row from an event; figures the event does not carry (null) keep their last value. */
function mergeMember(old: Member, row: Member): Member {
  return {
    ...old,
    ...row,
    log_position: row.log_position ?? old.log_position,
    blobs: row.blobs ?? old.blobs,
    bytes: row.bytes ?? old.bytes,
    loop_lag_worst_ms: row.loop_lag_worst_ms ?? old.loop_lag_worst_ms,
    loop_lag_p99_ms: row.loop_lag_p99_ms ?? old.loop_lag_p99_ms,
  };
}

export interface RingPoint {
  id: string;
  x: number;
  y: number;
  angle: number;
}

/** Points for the ring's members, clockwise from the top, on a circle of radius r. */
export function ringLayout(ring: string[], cx: number, cy: number, r: number): RingPoint[] {
  const n = ring.length;
  return ring.map((id, i) => {
    const angle = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    return { id, angle, x: cx + r * Math.cos(angle), y: cy + r * Math.sin(angle) };
  });
}

export const STATE_COLOURS: Record<string, string> = {
  alive: "#1db954",
  suspect: "#f5a623",
  dead: "#e5484d",
  left: "#6b6b6b",
};

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
