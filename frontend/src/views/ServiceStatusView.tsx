// The service's state for users who are not admins: healthy, degraded or read-only, in plain
// words, without node names or internal addresses (those are on the admins' cluster page).
import { useEffect, useState } from "react";
import type { Cluster } from "../api/types";
import { useApp } from "../app/context";
import { replication } from "../cluster/activity";
import { useCluster } from "../cluster/ClusterProvider";
import { plural } from "../components/format";
import { Loading } from "../components/States";

export type ServiceLevel = "healthy" | "degraded" | "read-only";

export interface ServiceStatus {
  level: ServiceLevel;
  headline: string;
  details: string[];
}

/** The service's state from the cluster document, or (without it) from whether writes were
 * refused for lack of quorum. */
export function serviceStatus(cluster: Cluster | null, quorum: boolean): ServiceStatus {
  if (!quorum) {
    return {
      level: "read-only",
      headline: "Read-only",
      details: [
        "Too many servers are down for changes to be saved. You can still browse and play; " +
          "uploads, likes and playlist changes work again once enough servers are back.",
      ],
    };
  }
  if (!cluster) {
    return {
      level: "healthy",
      headline: "Healthy",
      details: ["The service answers and saves changes."],
    };
  }
  const voters = cluster.members.filter((m) => m.role === "voter");
  const copies = replication(cluster);
  const details: string[] = [];
  if (copies.liveVoters < voters.length) {
    details.push(`${copies.liveVoters} of ${plural(voters.length, "server")} up.`);
  }
  if (copies.belowR > 0) {
    details.push(
      `${plural(copies.belowR, "song")} ${copies.belowR === 1 ? "has" : "have"} fewer backup ` +
        "copies than usual; everything still plays.",
    );
  }
  if (details.length) return { level: "degraded", headline: "Degraded", details };
  return { level: "healthy", headline: "Healthy", details: ["Everything works."] };
}

const TONE: Record<ServiceLevel, "ok" | "warn" | "bad"> = {
  healthy: "ok",
  degraded: "warn",
  "read-only": "bad",
};

export function ServiceStatusView() {
  const { api, readOnly } = useApp();
  const { cluster, error, watch } = useCluster();
  const [reachable, setReachable] = useState<boolean | null>(null);
  useEffect(watch, [watch]);
  // Without the cluster document (a server that keeps it for admins), the gateway's health
  // check says whether the service answers, and refused writes whether it is read-only.
  const fallback = !cluster && !!error;
  useEffect(() => {
    if (!fallback) return;
    let live = true;
    const ask = () =>
      api.get<{ status: string; nodes?: number }>("/healthz").then(
        (h) => live && setReachable(h.status === "ok" && h.nodes !== 0),
        () => live && setReachable(false),
      );
    void ask();
    const t = setInterval(() => void ask(), 10_000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [api, fallback]);
  if (!cluster && reachable === null) return <Loading label="Asking the service…" />;
  if (!cluster && !reachable) {
    return (
      <section aria-labelledby="status-h">
        <h1 id="status-h">Service status</h1>
        <p className="state error" role="alert">
          The service cannot be reached right now.
        </p>
      </section>
    );
  }
  const s = serviceStatus(cluster, cluster ? cluster.quorum : !readOnly);
  return (
    <section aria-labelledby="status-h">
      <h1 id="status-h">Service status</h1>
      <div className={`service-status stat ${TONE[s.level]}`} data-level={s.level}>
        <span className="stat-value" data-testid="service-level">
          {s.headline}
        </span>
        {s.details.map((d) => (
          <p key={d}>{d}</p>
        ))}
      </div>
    </section>
  );
}
