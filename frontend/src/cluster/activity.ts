// What the live events say over time, for a dashboard that reads steadily: how fast the token
// passes (instead of a holder name that changes several times a second), a short log of the
// events worth reading (members dying and returning, quorum, the token lost or regenerated),
// and why songs are below the replication factor. Pure functions; the provider feeds them.
import type { Cluster, ClusterEvent } from "../api/types";

/** Passes are counted over this window (ms). */
export const PASS_WINDOW_MS = 10_000;
/** The log keeps this many entries. */
export const MAX_LOG = 30;

export interface LogEntry {
  at: number;
  text: string;
  tone: "ok" | "warn" | "bad";
}

export interface Activity {
  /** When the events began to be watched (ms; 0: not yet). */
  since: number;
  /** When a holder change was seen, oldest first, within PASS_WINDOW_MS of the last event. */
  passes: number[];
  holder: string | null;
  epoch: number | null;
  /** Newest first. */
  log: LogEntry[];
}

export const noActivity: Activity = { since: 0, passes: [], holder: null, epoch: null, log: [] };

function logged(log: LogEntry[], at: number, text: string, tone: LogEntry["tone"]): LogEntry[] {
  return [{ at, text, tone }, ...log].slice(0, MAX_LOG);
}

const MEMBER_TONE: Record<string, LogEntry["tone"] | undefined> = {
  joined: "ok",
  alive: "ok",
  suspect: "warn",
  dead: "bad",
  left: "warn",
};

/** Fold one live event (seen at `now`, ms) into the activity. */
export function noteEvent(a: Activity, event: ClusterEvent, now: number): Activity {
  const since = a.since || now;
  switch (event.type) {
    case "hello":
      return {
        ...a,
        since,
        holder: event.cluster.token.holder,
        epoch: event.cluster.token.epoch,
      };
    case "token": {
      const { holder, epoch } = event;
      let log = a.log;
      if (a.epoch !== null && epoch !== a.epoch) {
        log = logged(
          log,
          now,
          `Token regenerated: epoch ${epoch}${holder ? `, first held by ${holder}` : ""}`,
          "warn",
        );
      } else if (holder === null && a.holder !== null) {
        log = logged(log, now, "Token lost: no member holds it", "bad");
      }
      const moved = holder !== null && holder !== a.holder;
      const passes = [...a.passes, ...(moved ? [now] : [])].filter((t) => t > now - PASS_WINDOW_MS);
      return { since, passes, holder, epoch, log };
    }
    case "membership": {
      const tone = MEMBER_TONE[event.event];
      if (!tone) return { ...a, since }; // "updated": figures, not news
      return { ...a, since, log: logged(a.log, now, `${event.member.id} ${event.event}`, tone) };
    }
    case "quorum":
      return {
        ...a,
        since,
        log: logged(
          a.log,
          now,
          event.quorum ? "Quorum regained: writes work again" : "Quorum lost: read-only",
          event.quorum ? "ok" : "bad",
        ),
      };
    case "catalog":
      return a.since ? a : { ...a, since };
  }
}

export interface TokenSummary {
  state: "circulating" | "held" | "lost";
  /** "circulating", "held by n1", "lost". */
  text: string;
  /** "2.5 passes/s" while circulating. */
  detail: string | null;
}

/** Passes per second over the last window (or since watching began, if shorter). */
export function passRate(a: Activity, now: number): number {
  const recent = a.passes.filter((t) => t > now - PASS_WINDOW_MS);
  if (recent.length === 0 || !a.since) return 0;
  const span = Math.max(1000, Math.min(PASS_WINDOW_MS, now - a.since));
  return (recent.length * 1000) / span;
}

/** The token, said steadily: circulating at a rate, held (one voter, or passing stopped), or
 * lost. `holder` is the document's. */
export function tokenSummary(holder: string | null, a: Activity, now: number): TokenSummary {
  if (holder === null) return { state: "lost", text: "lost", detail: "regenerating" };
  const rate = passRate(a, now);
  if (rate > 0) {
    const n = rate < 10 ? rate.toFixed(1) : String(Math.round(rate));
    return { state: "circulating", text: "circulating", detail: `${n} passes/s` };
  }
  return { state: "held", text: `held by ${holder}`, detail: null };
}

export interface Replication {
  /** Voters alive or suspect (the ones that can hold copies now). */
  liveVoters: number;
  /** R, the copies each song should have. */
  wanted: number;
  /** Songs with fewer than R live copies. */
  belowR: number;
  /** Why songs are below R although none is missing a copy the live voters could hold. */
  reason: string | null;
}

/**
 * Songs below R, and why. The cluster counts a song under-replicated against what the live
 * voters can hold, min(R, live voters); with fewer live voters than R every song is below R
 * though none is "missing" a copy, and that is worth saying.
 */
export function replication(cluster: Cluster): Replication {
  const liveVoters = cluster.members.filter(
    (m) => m.role === "voter" && (m.state === "alive" || m.state === "suspect"),
  ).length;
  const wanted = cluster.replication;
  if (liveVoters < wanted) {
    return {
      liveVoters,
      wanted,
      belowR: cluster.songs,
      reason: `only ${liveVoters} ${liveVoters === 1 ? "voter" : "voters"} alive`,
    };
  }
  return { liveVoters, wanted, belowR: cluster.under_replicated, reason: null };
}
