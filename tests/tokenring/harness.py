"""Token-ring cores wired back to back, with no event loop: the test delivers every message.

Each core has a dict standing in for its disk (what its :class:`Persist` outputs wrote), so
reads of entries that left memory (:class:`Fetch`) and snapshot transfers
(:class:`SnapshotOffer`) can be answered as the driver would.
"""

from __future__ import annotations

import random

from dspot.membership import ring_order
from dspot.tokenring import (
    Append,
    AppendReply,
    Entry,
    Fetch,
    InstallSnapshot,
    Output,
    Persist,
    Role,
    SnapshotMeta,
    SnapshotOffer,
    TokenRingConfig,
    TokenRingCore,
    Vote,
)

CFG = TokenRingConfig()
NAMES = ["a", "b", "c", "d", "e"]


def write(disk: dict[int, Entry], p: Persist) -> None:
    """What ``LogStore.write`` does, on a dict."""
    if p.truncate_from is not None:
        for i in [i for i in disk if i >= p.truncate_from]:
            del disk[i]
    disk.update(p.entries)
    if p.trim_to is not None:
        for i in [i for i in disk if i <= p.trim_to]:
            del disk[i]


class Harness:
    """Cores wired back to back; messages go through :meth:`run`, which may drop some."""

    def __init__(self, names: list[str] = NAMES, cfg: TokenRingConfig = CFG) -> None:
        self.names = names
        self.now = 0.0
        self.cores = {
            n: TokenRingCore(n, cfg, rng=random.Random(i), now=0.0) for i, n in enumerate(names)
        }
        self.disks: dict[str, dict[int, Entry]] = {n: {} for n in names}
        self.up = set(names)
        self.cut: set[tuple[str, str]] = set()
        self.queue: list[tuple[str, Output]] = []
        self.resolved: dict[str, object] = {}
        self.rejected: list[str] = []
        self.offers: list[tuple[str, str, SnapshotMeta]] = []
        """Snapshots sent: (from, to, what)."""
        self.fetches = 0
        self.most_in_memory = 0
        self.view()

    def view(self) -> None:
        for n, core in self.cores.items():
            live = [m for m in ring_order(self.names) if m in self.up and (n, m) not in self.cut]
            core.set_view(live, self.names)

    def feed(self, node: str, out: Output) -> None:
        core = self.cores[node]
        if out.persist is not None:
            write(self.disks[node], out.persist)
            out.merge(core.persisted(out.persist.upto))
        self.most_in_memory = max(self.most_in_memory, len(core.log))
        for eid, pos in out.resolved:
            self.resolved[eid] = pos
        self.rejected += out.rejected
        self.queue.append((node, out))

    def compact(self, node: str, keep_name: str = "snap") -> SnapshotMeta:
        """Take a snapshot at the node's commit index, as the driver does after applying."""
        core = self.cores[node]
        index = core.commit_index
        meta = SnapshotMeta(index, core.epoch_at(index), f"{keep_name}-{node}", 10, "00", 0)
        self.feed(node, core.compacted(meta))
        return meta

    def _deliver(self, src: str, dst: str, msg: Append | Vote | SnapshotOffer) -> None:
        core, target = self.cores[src], self.cores[dst]
        if isinstance(msg, Append):
            reply, out2 = target.on_append(msg, self.now)
            self.feed(dst, out2)
            assert isinstance(reply, AppendReply)
            self.feed(src, core.on_append_reply(dst, msg, reply, self.now))
        elif isinstance(msg, SnapshotOffer):
            self.offers.append((src, dst, msg.meta))
            m = msg.meta
            chunk = InstallSnapshot(
                msg.epoch, msg.hop, msg.holder, m.index, m.epoch, m.size, m.sha256, 0, 0, b""
            )
            sreply, out2 = target.on_snapshot_chunk(chunk, self.now)
            self.feed(dst, out2)
            if sreply is None:  # take it: the whole file arrived and checked out
                ids = core.ids_upto(m.index)
                mine = SnapshotMeta(m.index, m.epoch, f"got-{dst}", m.size, m.sha256, 0)
                sreply, out2 = target.install_snapshot(mine, ids, self.names)
                self.feed(dst, out2)
            self.feed(src, core.on_snapshot_reply(dst, msg, sreply, self.now))
        else:
            vreply, out2 = target.on_vote(msg, self.now)
            self.feed(dst, out2)
            self.feed(src, core.on_vote_reply(dst, msg, vreply, self.now))

    def _fetch(self, node: str, fetch: Fetch) -> None:
        self.fetches += 1
        disk = self.disks[node]
        got = []
        for i in range(fetch.start, fetch.end + 1):
            if i not in disk:
                break
            got.append(disk[i])
        self.feed(node, self.cores[node].on_fetched(fetch, got, self.now))

    def run(self, steps: int = 10_000) -> None:
        """Deliver every send (and its reply) and every read until quiet."""
        while self.queue and steps:
            steps -= 1
            src, out = self.queue.pop(0)
            for fetch in out.fetches:
                self._fetch(src, fetch)
            for send in out.sends:
                dst = send.peer
                ok = dst in self.up and (src, dst) not in self.cut and (dst, src) not in self.cut
                if not ok:
                    self.feed(src, self.cores[src].on_send_failed(dst, send.message, self.now))
                else:
                    self._deliver(src, dst, send.message)

    def advance(self, seconds: float, step: float = 0.01) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for n in self.names:
                if n in self.up:
                    self.feed(n, self.cores[n].tick(self.now))
            self.run()

    def holders(self) -> list[str]:
        return [n for n, c in self.cores.items() if c.role is Role.HOLDER and n in self.up]

    def isolate(self, node: str) -> None:
        for other in self.names:
            if other != node:
                self.cut |= {(node, other), (other, node)}
        self.view()

    def heal(self) -> None:
        self.cut.clear()
        self.view()

    def submit(self, node: str, entry_id: str) -> None:
        self.feed(node, self.cores[node].enqueue(entry_id, entry_id.encode(), self.now))

    def log(self, node: str) -> list[tuple[int, str]]:
        """``(epoch, id)`` of the node's log on its disk, in order."""
        disk = self.disks[node]
        return [(disk[i].epoch, disk[i].entry_id) for i in sorted(disk)]
