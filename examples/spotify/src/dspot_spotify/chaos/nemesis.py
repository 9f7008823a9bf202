"""The nemesis: seeded, overlapping faults on the real network and processes, each logged
with its start and end time, all healed before the run ends.

Kinds (``--nemesis`` takes a comma-separated subset; ``all`` is every one):

``partition``  halves; a minority isolated; a bridge host that sees both sides; one-way
               (one side's packets to the other dropped, the replies still flowing)
``flaky``      one host's link: loss 1-20 %, duplication, delay with jitter and reordering
``kill``       ``kill -9`` of a node or a gateway, restarted a few seconds later
``pause``      SIGSTOP, SIGCONT a few seconds later (the classic false-death case)

At most a minority of the nodes is down or paused at once, and one partition is in force at
a time, so the cluster can make progress somewhere; a flaky link and a crash may come on top.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from dspot_spotify.chaos.netns import Topology
from dspot_spotify.chaos.procs import Cluster

__all__ = ["KINDS", "Fault", "Nemesis"]

KINDS = ("partition", "flaky", "kill", "pause")


@attrs.define
class Fault:
    """One fault as it happened (run-relative seconds)."""

    kind: str
    what: str
    targets: list[str]
    start: float
    end: float | None = None


class Nemesis:
    """Runs in a thread of its own until :meth:`stop`, then heals everything."""

    def __init__(
        self,
        topo: Topology,
        cluster: Cluster,
        kinds: Sequence[str],
        seed: int,
        t0: float,
        log: Callable[[str], None],
        interval: tuple[float, float] = (3.0, 8.0),
    ) -> None:
        self.topo = topo
        self.cluster = cluster
        self.kinds = list(kinds)
        self.rng = random.Random(seed)
        self.t0 = t0
        self.say = log
        self.interval = interval
        self.faults: list[Fault] = []
        self._partition: tuple[Fault, list[str]] | None = None  # the fault and its rules
        self._flaky: dict[str, tuple[Fault, list[str], list[str]]] = {}
        self._procs: dict[str, tuple[Fault, float]] = {}  # member -> fault, heal time
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self.errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop injecting and heal every fault."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._heal_partition()
            for host in list(self._flaky):
                self._heal_flaky(host)
            for name in list(self._procs):
                self._heal_process(name)
            self._rules()

    # -- the schedule --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.interval)):
            with self._lock:
                try:
                    self._heal_due()
                    kind = self.rng.choice(self.kinds)
                    getattr(self, f"_do_{kind}")()
                    self._rules()
                except Exception as e:  # a broken fault is a failed run, not a hang
                    self.errors.append(f"{self.now():.1f} s: {e!r}")
                    self.say(f"nemesis error: {e!r}")

    def _begin(self, kind: str, what: str, targets: list[str]) -> Fault:
        fault = Fault(kind, what, targets, self.now())
        self.faults.append(fault)
        self.say(f"{fault.start:7.2f} s  + {kind}: {what}")
        return fault

    def _end(self, fault: Fault) -> None:
        fault.end = self.now()
        self.say(f"{fault.end:7.2f} s  - {fault.kind}: {fault.what}")

    def _heal_due(self) -> None:
        now = self.now()
        if self._partition and self.rng.random() < 0.5:
            self._heal_partition()
        for host, (fault, _, _) in list(self._flaky.items()):
            if now - fault.start > 10 and self.rng.random() < 0.5:
                self._heal_flaky(host)
        for name, (_, heal_at) in list(self._procs.items()):
            if now >= heal_at:
                self._heal_process(name)

    # -- partitions -----------------------------------------------------------------------------

    def _members(self) -> list[str]:
        return [h.name for h in [*self.topo.nodes, *self.topo.gateways]]

    def _do_partition(self) -> None:
        if self._partition is not None:
            self._heal_partition()
            return
        names = self._members()
        self.rng.shuffle(names)
        nodes = [n for n in names if n.startswith("n")]
        shape = self.rng.choice(["halves", "minority", "bridge", "one-way"])
        if shape == "minority":
            isolated = nodes[: self.rng.randint(1, (len(nodes) - 1) // 2 or 1)]
            a, b = isolated, [n for n in names if n not in isolated]
        else:
            cut = len(names) // 2
            a, b = names[:cut], names[cut:]
        bridge: list[str] = []
        if shape == "bridge" and len(b) > 1:
            bridge = [b.pop()]
        rules = []
        for x in a:
            for y in b:
                hx, hy = self.topo.hosts[x], self.topo.hosts[y]
                rules.append(f"ip saddr {hx.internal} ip daddr {hy.internal} drop")
                if shape != "one-way":
                    rules.append(f"ip saddr {hy.internal} ip daddr {hx.internal} drop")
        what = f"{shape} {sorted(a)} | {sorted(b)}" + (f" (bridge {bridge[0]})" if bridge else "")
        if shape == "one-way":
            what = f"one-way {sorted(a)} -> {sorted(b)} dropped"
        fault = self._begin("partition", what, sorted(a + b + bridge))
        self._partition = (fault, rules)

    def _heal_partition(self) -> None:
        if self._partition is not None:
            self._end(self._partition[0])
            self._partition = None

    # -- flaky links ----------------------------------------------------------------------------

    def _do_flaky(self) -> None:
        free = [n for n in self._members() if n not in self._flaky]
        if not free:
            return
        name = self.rng.choice(free)
        host = self.topo.hosts[name]
        loss = self.rng.randint(1, 20)
        dup = self.rng.randint(0, 5)
        slow = self.rng.randint(0, 30)
        rules = [
            f"ip saddr {host.internal} numgen random mod 100 < {loss} drop",
            f"ip daddr {host.internal} numgen random mod 100 < {loss} drop",
        ]
        if slow:
            # A share of the packets waits in the slow HTB class: delay, jitter, reordering.
            rules += [
                f"ip saddr {host.internal} numgen random mod 100 < {slow} meta priority set 1:20",
                f"ip daddr {host.internal} numgen random mod 100 < {slow} meta priority set 1:20",
            ]
        chains = []
        if dup:
            port = host.port("int")
            dups = [
                f'ip daddr {o.internal} numgen random mod 100 < {dup} dup to "{o.port("int")}"'
                for o in self.topo.hosts.values()
                if o.internal and o.name != name
            ]
            chains.append(
                f'chain dup_{name} {{ type filter hook ingress device "{port}" priority 0; '
                + "; ".join(dups)
                + "; }"
            )
        what = f"{name}: loss {loss} %, duplicated {dup} %, delayed {slow} %"
        fault = self._begin("flaky", what, [name])
        self._flaky[name] = (fault, rules, chains)

    def _heal_flaky(self, host: str) -> None:
        fault, _, _ = self._flaky.pop(host)
        self._end(fault)

    # -- processes ------------------------------------------------------------------------------

    def _process_targets(self) -> list[str]:
        nodes = self.cluster.nodes
        busy_nodes = sum(1 for n in self._procs if not n.startswith("g"))
        targets = [m.name for m in self.cluster.gateways if m.name not in self._procs]
        if busy_nodes < (len(nodes) - 1) // 2:
            targets += [m.name for m in nodes if m.name not in self._procs]
        return targets

    def _do_kill(self) -> None:
        targets = self._process_targets()
        if not targets:
            return
        name = self.rng.choice(targets)
        member = self.cluster.members[name]
        fault = self._begin("kill", f"kill -9 {name}", [name])
        member.kill9()
        self._procs[name] = (fault, self.now() + self.rng.uniform(2.0, 10.0))

    def _do_pause(self) -> None:
        targets = self._process_targets()
        if not targets:
            return
        name = self.rng.choice(targets)
        fault = self._begin("pause", f"SIGSTOP {name}", [name])
        self.cluster.members[name].pause()
        self._procs[name] = (fault, self.now() + self.rng.uniform(2.0, 12.0))

    def _heal_process(self, name: str) -> None:
        fault, _ = self._procs.pop(name)
        member = self.cluster.members[name]
        if fault.kind == "kill":
            member.start()
        else:
            member.resume()
        self._end(fault)

    # -- rules ------------------------------------------------------------------------------------

    def _rules(self) -> None:
        rules = list(self._partition[1]) if self._partition else []
        chains = []
        for _, flaky_rules, flaky_chains in self._flaky.values():
            rules += flaky_rules
            chains += flaky_chains
        if self._flaky:
            self.topo.set_slow_rate(self.rng.choice([256, 512, 1024, 2048]))
        self.topo.apply_rules(rules, chains)
