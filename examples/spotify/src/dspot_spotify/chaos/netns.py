"""The chaos run's network: every host in its own Linux network namespace, on private bridges.

The compose file's two networks, made real::

    internal  198.18.0.0/24   nodes (.11, .12, ...), gateways (.2, .3), ops (.250)
    external  198.19.0.0/24   gateways (.2, .3), clients (.100)

Both bridges live in a switch namespace of the run's own, so nothing is created in the root
namespace, no host has a default route, and no packet can leave the machine. Clients reach
the gateways only; the ``ops`` host on the internal network is where the final checks read
every node directly, as an operator would.

Faults are rules in the switch namespace: an nftables ``bridge`` table drops traffic between
chosen hosts (partitions, one-way too) or a random share of one host's packets (loss); a
``netdev`` table duplicates a share of them; every switch port has an HTB queue whose slow
class, fed a random share of the packets by ``meta priority``, delays them by a random
amount and so reorders them (this stands in for ``tc netem``, which not every kernel has).

Every namespace is named ``dsc-PID-RUN-HOST``: :func:`sweep` removes those of runs whose
controller process is gone (a run killed before it could clean up), processes inside first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
from collections.abc import Sequence

import attrs

__all__ = [
    "EXTERNAL",
    "INTERNAL",
    "Host",
    "NetnsError",
    "Topology",
    "can_create_namespaces",
    "enter",
    "sweep",
]

INTERNAL = "198.18.0"
EXTERNAL = "198.19.0"
_NAME = re.compile(r"^dsc-(\d+)-([0-9a-f]+)-")
_CLONE_NEWNET = 0x40000000


class NetnsError(Exception):
    """A namespace command failed (with its output)."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a command (``ip``, ``nft``, ``tc``); its output, or :class:`NetnsError`."""
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=30
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@attrs.frozen
class Host:
    """One host: its namespace, its addresses, and its port names on the switch."""

    name: str
    ns: str
    internal: str | None
    external: str | None

    @property
    def address(self) -> str:
        """Its main address: internal if it has one."""
        addr = self.internal or self.external
        assert addr is not None
        return addr

    def port(self, network: str) -> str:
        """Its port on the switch's ``int`` or ``ext`` bridge (15 characters at most)."""
        return f"{network[0]}-{self.name}"[:15]

    def ports(self) -> list[str]:
        return [
            self.port(n)
            for n, a in (("int", self.internal), ("ext", self.external))
            if a is not None
        ]


class Topology:
    """The namespaces, bridges and links of one run. :meth:`create`, then :meth:`destroy`
    (idempotent; also removes what a half-done :meth:`create` left)."""

    def __init__(self, run_id: str, nodes: int, gateways: int) -> None:
        self.prefix = f"dsc-{os.getpid()}-{run_id}-"
        self.switch = self.prefix + "sw"
        hosts = [
            Host(f"n{i + 1}", self.prefix + f"n{i + 1}", f"{INTERNAL}.{11 + i}", None)
            for i in range(nodes)
        ]
        hosts += [
            Host(
                f"g{i + 1}", self.prefix + f"g{i + 1}", f"{INTERNAL}.{2 + i}", f"{EXTERNAL}.{2 + i}"
            )
            for i in range(gateways)
        ]
        hosts.append(Host("ops", self.prefix + "ops", f"{INTERNAL}.250", None))
        hosts.append(Host("clients", self.prefix + "clients", None, f"{EXTERNAL}.100"))
        self.hosts = {h.name: h for h in hosts}

    @property
    def nodes(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.name.startswith("n")]

    @property
    def gateways(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.name.startswith("g")]

    def create(self) -> None:
        sw = self.switch
        run(["ip", "netns", "add", sw])
        run(["ip", "-n", sw, "link", "set", "lo", "up"])
        for bridge in ("int", "ext"):
            run(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"])
            run(["ip", "-n", sw, "link", "set", bridge, "up"])
        for h in self.hosts.values():
            run(["ip", "netns", "add", h.ns])
            run(["ip", "-n", h.ns, "link", "set", "lo", "up"])
            for network, addr in (("int", h.internal), ("ext", h.external)):
                if addr is None:
                    continue
                port = h.port(network)
                veth = ["ip", "link", "add", network, "netns", h.ns, "type", "veth"]
                run([*veth, "peer", "name", port, "netns", sw])
                run(["ip", "-n", sw, "link", "set", port, "master", network, "up"])
                run(["ip", "-n", h.ns, "addr", "add", f"{addr}/24", "dev", network])
                run(["ip", "-n", h.ns, "link", "set", network, "up"])
                # The slow class that delay faults feed (priority 1:20); 1:10 is the rest.
                root = ["tc", "-n", sw, "qdisc", "add", "dev", port, "root", "handle", "1:"]
                run([*root, "htb", "default", "10", "r2q", "1000"])
                self._htb_class("add", port, "1:10", "10gbit")
                self._htb_class("add", port, "1:20", "2mbit", ceil="2mbit")
        self.apply_rules([], [])

    def set_slow_rate(self, kbit: int) -> None:
        """The rate of every port's slow class: how much a delayed packet waits."""
        for h in self.hosts.values():
            for port in h.ports():
                self._htb_class("change", port, "1:20", f"{kbit}kbit", ceil=f"{kbit}kbit")

    def _htb_class(
        self, verb: str, port: str, classid: str, rate: str, *, ceil: str | None = None
    ) -> None:
        """``tc class add`` or ``change``: the HTB class ``classid`` under ``port``'s root."""
        argv = ["tc", "-n", self.switch, "class", verb, "dev", port, "parent", "1:"]
        argv += ["classid", classid, "htb", "rate", rate]
        if ceil is not None:
            argv += ["ceil", ceil]
        run(argv)

    def apply_rules(self, bridge_rules: Sequence[str], netdev_chains: Sequence[str]) -> None:
        """Replace every fault rule at once (one nft transaction): ``bridge_rules`` go into
        the bridges' forward chain; ``netdev_chains`` are whole ``chain`` blocks."""
        script = [
            "table bridge chaos",
            "delete table bridge chaos",
            "table bridge chaos {",
            "  chain filter {",
            "    type filter hook forward priority 0; policy accept;",
            *(f"    {r}" for r in bridge_rules),
            "  }",
            "}",
            "table netdev chaosdup",
            "delete table netdev chaosdup",
            "table netdev chaosdup {",
            *netdev_chains,
            "}",
        ]
        nft = ["ip", "netns", "exec", self.switch, "nft", "-f", "-"]
        run(nft, stdin="\n".join(script) + "\n")

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[host].ns, *argv]

    def destroy(self) -> None:
        _remove([n for n in _namespaces() if n.startswith(self.prefix)])


def _pair(i: int) -> tuple[str, str]:
    """A gateway's internal and external addresses."""
    return f"{INTERNAL}.{i}", f"{EXTERNAL}.{i}"


def _namespaces() -> list[str]:
    try:
        out = run(["ip", "netns", "list"])
    except (NetnsError, OSError):
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _remove(names: Sequence[str]) -> None:
    """Kill every process in these namespaces, then delete them (veths go with them)."""
    for name in names:
        with contextlib.suppress(NetnsError, OSError, subprocess.TimeoutExpired):
            for pid in run(["ip", "netns", "pids", name]).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGCONT)  # a stopped process would linger
                    os.kill(int(pid), signal.SIGKILL)
    for name in names:
        with contextlib.suppress(NetnsError, OSError, subprocess.TimeoutExpired):
            run(["ip", "netns", "delete", name])


def sweep() -> list[str]:
    """Remove the namespaces of chaos runs whose controller is no longer running; their
    names."""
    stale = []
    for name in _namespaces():
        m = _NAME.match(name)
        if m and not _alive(int(m.group(1))):
            stale.append(name)
    _remove(stale)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def can_create_namespaces() -> str | None:
    """None if this process can build the run's network; else why not (for a skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft", "tc"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            return f"{tool} is not installed (apt-get install iproute2 nftables)"
    probe = f"dsc-{os.getpid()}-probe-x"
    try:
        run(["ip", "netns", "add", probe])
        run(["ip", "netns", "exec", probe, "nft", "add", "table", "bridge", "t"])
    except (NetnsError, OSError) as e:
        return f"cannot create a network namespace here: {e}"
    finally:
        _remove([probe])
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def enter(ns: str) -> None:
    """setns(2) the calling thread into network namespace ``ns`` for good: call it first
    thing in a thread of its own."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)
