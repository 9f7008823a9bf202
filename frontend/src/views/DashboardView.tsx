// The cluster dashboard (admins only): the voters on the token ring coloured by state, the
// token (circulating and how fast, or held, or lost) and its epoch, each node's log position,
// blobs and address, the songs below the replication factor and why, the recent events, and
// where the copies of a chosen song are.
import { useEffect, useState } from "react";
import { errorText } from "../api/client";
import type { Cluster, Page, Replicas, Song } from "../api/types";
import { useApp } from "../app/context";
import {
  noActivity,
  replication,
  tokenSummary,
  type Activity,
  type LogEntry,
} from "../cluster/activity";
import { useCluster } from "../cluster/ClusterProvider";
import type { LiveStatus } from "../cluster/live";
import { STATE_COLOURS, formatBytes, ringLayout } from "../cluster/state";
import { ErrorBox, FormError, Loading } from "../components/States";

/** Re-render every `ms` (rates and "seconds ago" move on without events). */
export function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function DashboardView() {
  const { cluster, activity, error, live, refresh, watch } = useCluster();
  const [inspected, setInspected] = useState<SongRef | null>(null);
  const now = useNow(1000);
  useEffect(watch, [watch]);
  if (!cluster && error) return <ErrorBox error={error} onRetry={refresh} />;
  if (!cluster) return <Loading label="Asking the cluster…" />;
  return (
    <>
      <ClusterPanel
        cluster={cluster}
        live={live}
        activity={activity}
        now={now}
        onInspect={setInspected}
      />
      <ReplicaFinder song={inspected} onSelect={setInspected} />
    </>
  );
}

interface SongRef {
  id: string;
  title: string;
}

const LIVE_TEXT: Record<LiveStatus, string> = {
  open: "Live",
  connecting: "Connecting…",
  closed: "Reconnecting…",
};

/** Everything the cluster document says, drawn. */
export function ClusterPanel({
  cluster,
  live,
  activity = noActivity,
  now = Date.now(),
  onInspect,
}: {
  cluster: Cluster;
  live: LiveStatus;
  /** What the live events said so far (token passes, the event log). */
  activity?: Activity;
  /** The time the rates are computed at (ms). */
  now?: number;
  onInspect?: (song: SongRef) => void;
}) {
  const voters = cluster.members.filter((m) => m.role === "voter");
  const observers = cluster.members.filter((m) => m.role !== "voter");
  const byId = new Map(cluster.members.map((m) => [m.id, m]));
  const ring = cluster.ring.length ? cluster.ring : voters.map((m) => m.id);
  const size = 320;
  const c = size / 2;
  const points = ringLayout(ring, c, c, 115);
  const holder = cluster.token.holder;
  const token = tokenSummary(holder, activity, now);
  const copies = replication(cluster);
  return (
    <section aria-labelledby="cluster-h">
      <div className="view-head">
        <h1 id="cluster-h">Cluster</h1>
        <span className={`live ${live}`} role="status">
          <span className="dot" aria-hidden="true" /> {LIVE_TEXT[live]}
        </span>
      </div>
      <div className="stats">
        <Stat
          label="Quorum"
          value={cluster.quorum ? "yes" : "no — read-only"}
          tone={cluster.quorum ? "ok" : "bad"}
        />
        <Stat
          label="Token"
          value={token.text}
          detail={token.detail}
          tone={token.state === "lost" ? "bad" : "ok"}
        />
        <Stat label="Epoch" value={String(cluster.token.epoch)} />
        <Stat label="Log position" value={cluster.log_position} />
        <Stat label="Songs" value={String(cluster.songs)} />
        <Stat label="Replication" value={`R = ${cluster.replication}`} />
        <Stat
          label="Below R"
          value={String(copies.belowR)}
          detail={copies.reason}
          tone={copies.belowR ? "warn" : "ok"}
        />
        <Stat label="Answered by" value={cluster.node} />
      </div>
      <div className="cluster-body">
        <figure className="ring">
          <svg
            viewBox={`0 0 ${size} ${size}`}
            role="img"
            aria-label={`Token ring: ${ring.map((id) => `${id} ${byId.get(id)?.state ?? "unknown"}`).join(", ")}`}
          >
            <circle cx={c} cy={c} r={115} className="ring-line" />
            {holder && points.some((p) => p.id === holder) && (
              <circle cx={c} cy={c} r={22} className="token-centre" />
            )}
            {points.map((p) => {
              const m = byId.get(p.id);
              const state = m?.state ?? "dead";
              const isHolder = p.id === holder;
              return (
                <g key={p.id} data-node={p.id} data-state={state}>
                  {isHolder && <circle cx={p.x} cy={p.y} r={34} className="token-halo" />}
                  <circle
                    cx={p.x}
                    cy={p.y}
                    r={26}
                    fill={STATE_COLOURS[state] ?? "#888"}
                    className="node-dot"
                  />
                  <text x={p.x} y={p.y + 4} textAnchor="middle" className="node-label">
                    {p.id}
                  </text>
                  <text x={p.x} y={p.y + 44} textAnchor="middle" className="node-state">
                    {state}
                    {isHolder ? " · token" : ""}
                  </text>
                </g>
              );
            })}
            <text x={c} y={c + 4} textAnchor="middle" className="ring-epoch">
              epoch {cluster.token.epoch}
            </text>
          </svg>
          <figcaption className="legend">
            {Object.entries(STATE_COLOURS).map(([s, colour]) => (
              <span key={s}>
                <span className="swatch" style={{ background: colour }} aria-hidden="true" /> {s}
              </span>
            ))}
          </figcaption>
        </figure>
        <div className="table-wrap">
          <table className="members" aria-label="Members">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">Role</th>
                <th scope="col">Log position</th>
                <th scope="col">Blobs</th>
                <th scope="col">Stored</th>
                <th scope="col" title="Worst event-loop stall in the last minute">
                  Stall (1 min)
                </th>
                <th scope="col" title="Times its supervisor restarted it after it exited">
                  Restarts
                </th>
                <th scope="col" className="col-address">
                  Address
                </th>
              </tr>
            </thead>
            <tbody>
              {[...voters, ...observers].map((m) => (
                <tr key={m.id} data-node={m.id} data-state={m.state}>
                  <th scope="row">{m.id}</th>
                  <td>
                    <span className={`badge state-${m.state}`}>{m.state}</span>
                  </td>
                  <td>{m.role}</td>
                  <td>{m.log_position ?? "—"}</td>
                  <td>{m.blobs ?? "—"}</td>
                  <td>{formatBytes(m.bytes)}</td>
                  <td>
                    {m.loop_lag_worst_ms == null ? "—" : `${Math.round(m.loop_lag_worst_ms)} ms`}
                  </td>
                  <td>{m.restarts ?? "—"}</td>
                  <td className="col-address muted">{m.http ?? m.address}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
      <h2>Songs below R = {cluster.replication}</h2>
      {copies.reason && (
        <p className="notice warn" data-testid="below-r-reason">
          {cluster.songs === 0
            ? `No songs yet, but a song would get only ${copies.liveVoters} of ${copies.wanted} copies: ${copies.reason}.`
            : `${cluster.songs === 1 ? "The one song has" : `All ${cluster.songs} songs have`} fewer than ${copies.wanted} copies: ${copies.reason}, so none can have ${copies.wanted} until a voter is back. Repair keeps one copy on each live voter.`}
        </p>
      )}
      {cluster.under_replicated_songs.length === 0 ? (
        <p className="state empty">
          {copies.reason
            ? "Every song has a copy on each live voter."
            : cluster.songs === 0
              ? "No songs yet."
              : "No song is missing a copy."}
        </p>
      ) : (
        <table className="members" aria-label="Under-replicated songs">
          <thead>
            <tr>
              <th scope="col">Song</th>
              <th scope="col">Copies</th>
              <th scope="col">Wanted</th>
            </tr>
          </thead>
          <tbody>
            {cluster.under_replicated_songs.map((s) => (
              <tr key={s.id}>
                <td>
                  {onInspect ? (
                    <button
                      type="button"
                      className="text-button"
                      aria-label={`Where are the copies of ${s.title}?`}
                      onClick={() => onInspect({ id: s.id, title: s.title })}
                    >
                      {s.title}
                    </button>
                  ) : (
                    s.title
                  )}
                </td>
                <td>{s.copies}</td>
                <td>{s.wanted}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <EventLog log={activity.log} now={now} />
    </section>
  );
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ago` : `${Math.floor(m / 60)} h ago`;
}

/** The events worth reading since the page opened, newest first. */
function EventLog({ log, now }: { log: LogEntry[]; now: number }) {
  return (
    <>
      <h2>Recent events</h2>
      {log.length === 0 ? (
        <p className="state empty">Nothing has happened since this page opened.</p>
      ) : (
        <ol className="event-log" aria-label="Recent events">
          {log.map((e, i) => (
            <li key={`${e.at}-${i}`} className={`event ${e.tone}`}>
              <span className="event-text">{e.text}</span>
              <span className="muted small">{ago(now - e.at)}</span>
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

export function Stat({
  label,
  value,
  detail,
  tone,
}: {
  label: string;
  value: string;
  /** A second, smaller line. */
  detail?: string | null;
  tone?: "ok" | "warn" | "bad";
}) {
  const id = label.toLowerCase().replace(/\W+/g, "-");
  return (
    <div className={`stat ${tone ?? ""}`}>
      <span className="stat-label">{label}</span>
      <span className="stat-value" data-testid={`stat-${id}`}>
        {value}
      </span>
      {detail && (
        <span className="stat-detail" data-testid={`stat-${id}-detail`}>
          {detail}
        </span>
      )}
    </div>
  );
}

/** Pick a song, see which nodes hold its audio. */
function ReplicaFinder({
  song,
  onSelect,
}: {
  song: SongRef | null;
  onSelect: (s: SongRef) => void;
}) {
  const { api } = useApp();
  const [q, setQ] = useState("");
  const [results, setResults] = useState<Song[]>([]);
  const [replicas, setReplicas] = useState<Replicas | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const t = setTimeout(() => {
      api.get<Page<Song>>("/api/songs", { q, limit: 8, sort: q ? undefined : "recent" }).then(
        (p) => setResults(p.items),
        () => setResults([]),
      );
    }, 200);
    return () => clearTimeout(t);
  }, [api, q]);
  useEffect(() => {
    if (!song) return;
    setReplicas(null);
    let live = true;
    const load = () =>
      api.get<Replicas>(`/api/songs/${song.id}/replicas`).then(
        (r) => {
          if (!live) return;
          setReplicas(r);
          setError(null);
        },
        (e: unknown) => live && setError(errorText(e)),
      );
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api, song]);
  return (
    <section aria-labelledby="copies-h" className="copies">
      <h2 id="copies-h">Where are a song's copies?</h2>
      <input
        type="search"
        className="search"
        aria-label="Find a song"
        placeholder="Find a song"
        value={q}
        onChange={(e) => setQ(e.target.value)}
      />
      <ul className="chips" aria-label="Songs to inspect">
        {results.map((s) => (
          <li key={s.id}>
            <button
              type="button"
              className={`chip ${song?.id === s.id ? "on" : ""}`}
              aria-pressed={song?.id === s.id}
              onClick={() => onSelect({ id: s.id, title: s.title })}
            >
              {s.title} <span className="muted">· {s.artist_name}</span>
            </button>
          </li>
        ))}
      </ul>
      <FormError error={error} />
      {song && replicas && replicas.song_id === song.id && (
        <table className="members" aria-label={`Copies of ${song.title}`}>
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Has a copy</th>
            </tr>
          </thead>
          <tbody>
            {replicas.replicas.map((r) => (
              <tr key={r.node} data-node={r.node}>
                <th scope="row">{r.node}</th>
                <td>
                  <span className={`badge state-${r.state}`}>{r.state}</span>
                </td>
                <td>{r.has ? "yes" : "no"}</td>
              </tr>
            ))}
          </tbody>
          <caption className="muted small">
            {replicas.replicas.filter((r) => r.has && r.state === "alive").length} of{" "}
            {replicas.wanted} wanted copies on live nodes
          </caption>
        </table>
      )}
    </section>
  );
}
