import { render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup } from "@testing-library/react";
import type { Cluster, ClusterEvent, Member } from "../api/types";
import { ClusterPanel } from "../views/DashboardView";
import { serviceStatus } from "../views/ServiceStatusView";
import {
  noActivity,
  noteEvent,
  passRate,
  replication,
  tokenSummary,
  type Activity,
} from "./activity";
import { LiveEvents, backoffDelay } from "./live";
import { applyClusterEvent } from "./state";

afterEach(cleanup);

const member = (id: string, state: Member["state"], extra: Partial<Member> = {}): Member => ({
  id,
  address: `127.0.0.1:71${id.slice(-1)}0`,
  http: `127.0.0.1:71${id.slice(-1)}1`,
  state,
  role: "voter",
  incarnation: 1,
  log_position: "3.41",
  blobs: 12,
  bytes: 3 * 1024 * 1024,
  loop_lag_worst_ms: 4.2,
  loop_lag_p99_ms: 1,
  orphaned_bytes: 0,
  restarts: null,
  ...extra,
});

const doc: Cluster = {
  node: "n1",
  quorum: true,
  log_position: "3.41",
  token: { holder: "n2", epoch: 3 },
  ring: ["n2", "n1", "n3"],
  replication: 2,
  members: [
    member("n1", "alive"),
    member("n2", "alive", { restarts: 7 }),
    member("n3", "dead", { log_position: null, blobs: null, bytes: null, orphaned_bytes: null }),
    member("gateway", "alive", {
      role: "observer",
      log_position: null,
      blobs: null,
      bytes: null,
      http: null,
    }),
  ],
  songs: 30,
  under_replicated: 1,
  orphaned_bytes: 0,
  under_replicated_songs: [{ id: "s1", title: "Blue Tone", copies: 1, wanted: 2 }],
};

describe("cluster dashboard", () => {
  it("draws the ring, the token holder, each node's figures and under-replicated songs", () => {
    const { container } = render(<ClusterPanel cluster={doc} live="open" />);
    const ring = screen.getByRole("img", { name: /token ring/i });
    expect(ring.getAttribute("aria-label")).toBe("Token ring: n2 alive, n1 alive, n3 dead");
    const nodes = [...container.querySelectorAll("svg g[data-node]")].map((g) => [
      g.getAttribute("data-node"),
      g.getAttribute("data-state"),
    ]);
    expect(nodes).toEqual([
      ["n2", "alive"],
      ["n1", "alive"],
      ["n3", "dead"],
    ]);
    expect(container.querySelector('g[data-node="n2"] .token-halo')).not.toBeNull();
    expect(container.querySelector('g[data-node="n1"] .token-halo')).toBeNull();

    // No events seen yet: the document's holder, said once.
    expect(screen.getByTestId("stat-token").textContent).toBe("held by n2");
    expect(screen.getByTestId("stat-epoch").textContent).toBe("3");
    expect(screen.getByTestId("stat-quorum").textContent).toBe("yes");
    expect(screen.getByRole("status").textContent).toContain("Live");

    const members = screen.getByRole("table", { name: "Members" });
    const n1 = within(members).getByRole("row", { name: /^n1/ });
    expect(within(n1).getByText("3.41")).toBeTruthy();
    expect(within(n1).getByText("12")).toBeTruthy();
    expect(within(n1).getByText("3.0 MiB")).toBeTruthy();
    const n2 = within(members).getByRole("row", { name: /^n2/ });
    expect(within(n2).getByText("7")).toBeTruthy(); // restarted by its supervisor
    const n3 = within(members).getByRole("row", { name: /^n3/ });
    expect(within(n3).getByText("dead")).toBeTruthy();
    expect(within(members).getByRole("row", { name: /gateway/ }).textContent).toContain("observer");

    const under = screen.getByRole("table", { name: "Under-replicated songs" });
    expect(within(under).getByText("Blue Tone")).toBeTruthy();
  });

  it("lets the user inspect where an under-replicated song's copies are", () => {
    const onInspect = vi.fn();
    render(<ClusterPanel cluster={doc} live="open" onInspect={onInspect} />);
    screen.getByRole("button", { name: "Where are the copies of Blue Tone?" }).click();
    expect(onInspect).toHaveBeenCalledWith({ id: "s1", title: "Blue Tone" });
  });

  it("says when the cluster has no quorum", () => {
    render(
      <ClusterPanel
        cluster={{ ...doc, quorum: false, under_replicated: 0, under_replicated_songs: [] }}
        live="closed"
      />,
    );
    expect(screen.getByTestId("stat-quorum").textContent).toMatch(/read-only/);
    expect(screen.getByText("No song is missing a copy.")).toBeTruthy();
    expect(screen.getByRole("status").textContent).toContain("Reconnecting");
  });
});

/** The activity after `events`, the i-th seen at `start + i * step` ms. */
function watched(events: ClusterEvent[], start = 100_000, step = 250): Activity {
  return events.reduce((a, e, i) => noteEvent(a, e, start + i * step), noActivity);
}

const passes = (holders: string[], epoch = 3): ClusterEvent[] =>
  holders.map((holder) => ({ type: "token", holder, epoch }));

describe("steady token and replication summary", () => {
  it("says the token circulates and how fast, not who holds it this instant", () => {
    // 4 passes a second for 5 s, as a node samples a ring that passes quickly.
    const holders = Array.from({ length: 21 }, (_, i) => ["n1", "n2", "n3"][i % 3]);
    const a = watched([{ type: "hello", node: "n1", cluster: doc }, ...passes(holders)]);
    const now = 100_000 + 21 * 250;
    expect(passRate(a, now)).toBeCloseTo(4, 0);
    expect(tokenSummary("n3", a, now)).toEqual({
      state: "circulating",
      text: "circulating",
      detail: "4.0 passes/s",
    });
    render(<ClusterPanel cluster={doc} live="open" activity={a} now={now} />);
    expect(screen.getByTestId("stat-token").textContent).toBe("circulating");
    expect(screen.getByTestId("stat-token-detail").textContent).toBe("4.0 passes/s");
    // Passes stop (one voter left, or the ring stalled): after the window it is "held".
    expect(tokenSummary("n3", a, now + 11_000).text).toBe("held by n3");
    expect(tokenSummary(null, a, now).state).toBe("lost");
  });

  it("logs members dying, quorum and a regenerated token, newest first, not every pass", () => {
    const a = watched([
      { type: "hello", node: "n1", cluster: doc },
      ...passes(["n1", "n2", "n1", "n2"]),
      { type: "membership", event: "dead", member: member("n3", "dead") },
      { type: "membership", event: "updated", member: member("n1", "alive") },
      { type: "quorum", quorum: false },
      { type: "token", holder: null, epoch: 3 },
      { type: "token", holder: "n1", epoch: 4 },
    ]);
    expect(a.log.map((e) => [e.text, e.tone])).toEqual([
      ["Token regenerated: epoch 4, first held by n1", "warn"],
      ["Token lost: no member holds it", "bad"],
      ["Quorum lost: read-only", "bad"],
      ["n3 dead", "bad"],
    ]);
    render(<ClusterPanel cluster={doc} live="open" activity={a} now={110_000} />);
    const log = screen.getByRole("list", { name: "Recent events" });
    expect(within(log).getAllByRole("listitem")[0].textContent).toMatch(
      /^Token regenerated: epoch 4, first held by n1\d+ s ago$/,
    );
  });

  it("says why songs are below R when fewer voters than R are alive", () => {
    const twoOfThree: Cluster = {
      ...doc,
      replication: 3,
      under_replicated: 0, // counted against min(R, live voters) = 2
      under_replicated_songs: [],
    };
    expect(replication(twoOfThree)).toEqual({
      liveVoters: 2,
      wanted: 3,
      belowR: 30,
      reason: "only 2 voters alive",
    });
    render(<ClusterPanel cluster={twoOfThree} live="open" />);
    expect(screen.getByTestId("stat-below-r").textContent).toBe("30");
    expect(screen.getByTestId("stat-below-r-detail").textContent).toBe("only 2 voters alive");
    expect(screen.getByTestId("below-r-reason").textContent).toContain(
      "All 30 songs have fewer than 3 copies: only 2 voters alive",
    );
    expect(screen.queryByText("No song is missing a copy.")).toBeNull();
    expect(screen.getByText("Every song has a copy on each live voter.")).toBeTruthy();
  });

  it("counts against R itself once enough voters are alive", () => {
    expect(replication(doc)).toMatchObject({ liveVoters: 2, wanted: 2, belowR: 1, reason: null });
  });

  it("tells users who are not admins healthy, degraded or read-only, without node names", () => {
    const healthy = serviceStatus(
      {
        ...doc,
        members: doc.members.map((m) => ({ ...m, state: "alive" as const })),
        under_replicated: 0,
      },
      true,
    );
    expect(healthy.level).toBe("healthy");
    const degraded = serviceStatus(doc, true);
    expect(degraded.level).toBe("degraded");
    expect(degraded.details).toEqual([
      "2 of 3 servers up.",
      "1 song has fewer backup copies than usual; everything still plays.",
    ]);
    expect(JSON.stringify(degraded)).not.toMatch(/n[123]|127\.0\.0\.1/);
    expect(serviceStatus(doc, false).level).toBe("read-only");
    expect(serviceStatus(null, true).level).toBe("healthy");
  });
});

describe("live cluster events", () => {
  it("apply membership, token, catalog and quorum changes to the document", () => {
    let c = applyClusterEvent(null, { type: "hello", node: "n1", cluster: doc });
    c = applyClusterEvent(c, {
      type: "membership",
      event: "dead",
      member: member("n1", "dead", { log_position: null, blobs: null }),
    });
    const n1 = c!.members.find((m) => m.id === "n1")!;
    expect(n1.state).toBe("dead");
    expect(n1.blobs).toBe(12); // unknown figures keep their last value
    c = applyClusterEvent(c, {
      type: "membership",
      event: "joined",
      member: member("n4", "alive"),
    });
    expect(c!.ring).toEqual(["n2", "n1", "n3", "n4"]);
    c = applyClusterEvent(c, { type: "token", holder: "n3", epoch: 4 });
    c = applyClusterEvent(c, { type: "catalog", position: "4.1", kind: "song" });
    c = applyClusterEvent(c, { type: "quorum", quorum: false });
    expect(c).toMatchObject({
      token: { holder: "n3", epoch: 4 },
      log_position: "4.1",
      quorum: false,
    });
    expect(applyClusterEvent(null, { type: "quorum", quorum: true })).toBeNull();
  });

  it("reconnect with exponential backoff and reset after a success", () => {
    vi.useFakeTimers();
    try {
      const sockets: FakeSocket[] = [];
      class FakeSocket {
        onopen: (() => void) | null = null;
        onclose: (() => void) | null = null;
        onmessage: ((m: { data: unknown }) => void) | null = null;
        onerror: (() => void) | null = null;
        closed = false;
        constructor(readonly url: string) {
          sockets.push(this);
        }
        close() {
          this.closed = true;
        }
      }
      const events: unknown[] = [];
      const live = new LiveEvents({
        url: () => "wss://h/api/events?token=t",
        onEvent: (e) => events.push(e),
        socket: (u) => new FakeSocket(u) as unknown as WebSocket,
        minDelay: 100,
        maxDelay: 1000,
        random: () => 0.5,
      });
      live.start();
      expect(sockets).toHaveLength(1);
      sockets[0].onclose?.();
      vi.advanceTimersByTime(99);
      expect(sockets).toHaveLength(1);
      vi.advanceTimersByTime(1);
      expect(sockets).toHaveLength(2);
      sockets[1].onclose?.();
      vi.advanceTimersByTime(200);
      expect(sockets).toHaveLength(3);
      sockets[2].onopen?.();
      sockets[2].onmessage?.({ data: JSON.stringify({ type: "quorum", quorum: true }) });
      sockets[2].onmessage?.({ data: "not json" });
      expect(events).toEqual([{ type: "quorum", quorum: true }]);
      sockets[2].onclose?.();
      vi.advanceTimersByTime(100);
      expect(sockets).toHaveLength(4);
      live.stop();
      expect(sockets[3].closed).toBe(true);
      vi.advanceTimersByTime(10_000);
      expect(sockets).toHaveLength(4);
    } finally {
      vi.useRealTimers();
    }
  });

  it("caps the backoff", () => {
    expect(backoffDelay(0, 500, 15000, () => 0.5)).toBe(500);
    expect(backoffDelay(3, 500, 15000, () => 0.5)).toBe(4000);
    expect(backoffDelay(20, 500, 15000, () => 1)).toBe(18750);
    expect(backoffDelay(20, 500, 15000, () => 0)).toBe(11250);
  });
});
