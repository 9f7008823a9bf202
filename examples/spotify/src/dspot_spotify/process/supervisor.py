"""Supervising service processes on one machine.

:class:`NodeProcess` starts one ``dspot-spotify node`` (or ``gateway``) process and watches
its status lines (:mod:`dspot_spotify.process.node`; a gateway prints ``gateway NAME ready:
https ADDR rpc ADDR`` and ``gateway NAME nodes: N healthy``); :class:`LocalCluster` starts N
nodes on 127.0.0.1 and the gateway in front of them (``dspot-spotify up``) and stops them
all.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import attrs

from dspot_spotify.process.setup import RESTARTS_ENV, write_secret

__all__ = [
    "GatewaySpec",
    "LocalCluster",
    "NodeFailed",
    "NodeProcess",
    "NodeSpec",
    "default_frontend",
    "wait_for",
]

READY_RE: Final = re.compile(r"^node (\S+) ready: rpc (\S+) http (\S+)$")
QUORUM_RE: Final = re.compile(r"^node (\S+) quorum: (yes|no)")
GATEWAY_READY_RE: Final = re.compile(r"^gateway (\S+) ready: https (\S+) rpc (\S+)$")
GATEWAY_NODES_RE: Final = re.compile(r"^gateway (\S+) nodes: (\d+) healthy")


@attrs.frozen(kw_only=True)
class NodeSpec:
    """How to start one ``dspot-spotify node`` process."""

    name: str
    data: Path
    rpc: str
    http: str
    seeds: tuple[str, ...]
    secret_file: Path
    cluster_size: int
    extra: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dspot_spotify.cli",
            "node",
            "--name",
            self.name,
            "--data",
            str(self.data),
            "--rpc",
            self.rpc,
            "--http",
            self.http,
            "--seeds",
            ",".join(self.seeds),
            "--secret-file",
            str(self.secret_file),
            "--cluster-size",
            str(self.cluster_size),
            *self.extra,
        ]


@attrs.frozen(kw_only=True)
class GatewaySpec:
    """How to start one ``dspot-spotify gateway`` process."""

    name: str
    listen: str
    rpc: str
    join: tuple[str, ...]
    secret_file: Path
    cert: Path
    key: Path
    frontend: Path | None = None
    pid_file: Path | None = None
    served_by: bool = False
    """``--served-by``: name the answering node in ``X-Served-By``."""
    extra: tuple[str, ...] = ()
    """More command-line arguments (e.g. the cluster's ``--tls-*``)."""

    @property
    def http(self) -> str:
        return self.listen

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dspot_spotify.cli",
            "gateway",
            "--name",
            self.name,
            "--listen",
            self.listen,
            "--rpc",
            self.rpc,
            "--join",
            ",".join(self.join),
            "--secret-file",
            str(self.secret_file),
            "--cert",
            str(self.cert),
            "--key",
            str(self.key),
            *(() if self.frontend is None else ("--frontend", str(self.frontend))),
            *(() if self.pid_file is None else ("--pid-file", str(self.pid_file))),
            *(("--served-by",) if self.served_by else ()),
            *self.extra,
        ]


class NodeProcess:
    """One node (or gateway) process: stdout is watched for its readiness and quorum lines
    (for a gateway: its healthy-node count), stderr goes to ``log_path``."""

    def __init__(self, spec: NodeSpec | GatewaySpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.ready = threading.Event()
        self.quorum = threading.Event()
        self.lines: list[str] = []
        self.node_id: str | None = None
        self.healthy_nodes = 0
        """For a gateway: how many nodes it last reported healthy."""
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._reader: threading.Thread | None = None
        self._terminated = False
        self.restarts = 0
        """How many processes ran this spec before this one (told to it in its environment,
        so ``status`` shows it)."""

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.spec, GatewaySpec) else "http"
        return f"{scheme}://{self.spec.http}"

    def start(self) -> None:
        # Usually the member's data directory too: owner only, as the node would make it.
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The log names addresses and users: owner only too.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._log = os.fdopen(fd, "a", encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", RESTARTS_ENV: str(self.restarts)}
        self._proc = subprocess.Popen(
            self.spec.argv(),
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops us
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if m := READY_RE.match(line) or GATEWAY_READY_RE.match(line):
                self.node_id = m.group(1)
                self.ready.set()
            elif m := GATEWAY_NODES_RE.match(line):
                self.healthy_nodes = int(m.group(2))
            elif m := QUORUM_RE.match(line):
                if m.group(2) == "yes":
                    self.quorum.set()
                else:
                    self.quorum.clear()

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signum)
            if signum == signal.SIGTERM:
                self._terminated = True

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        self.signal(signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()

    def wait(self, timeout: float) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self._proc is None:
            return None
        if not self._terminated:
            self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
            code = self._proc.returncode
        self.close()
        return code

    def close(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class NodeFailed(Exception):
    """A node process exited or did not become ready in time."""


def wait_for(procs: Sequence[NodeProcess], what: str, timeout: float) -> None:
    """Until every process has set its ``what`` event ("ready" or "quorum")."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [p for p in procs if not getattr(p, what).is_set()]
        if not pending:
            return
        for p in pending:
            code = p.poll()
            if code is not None:
                raise NodeFailed(
                    f"node {p.spec.name} exited with status {code}; its log "
                    f"({p.log_path}) ends with:\n{p.log_tail()}"
                )
        if time.monotonic() > deadline:
            names = ", ".join(p.spec.name for p in pending)
            raise NodeFailed(f"{names} not {what} after {timeout:g} s")
        time.sleep(0.05)


RESTART_FIRST: Final = 1.0
"""Seconds before the first restart of a process that exited (then doubling)."""
RESTART_MAX: Final = 30.0
"""Longest wait before a restart."""
RESTART_STABLE: Final = 60.0
"""A process up this long counts as healthy again: its next restart waits the first delay."""


class LocalCluster:
    """N node processes on 127.0.0.1 under one directory, and optionally the HTTPS gateway in
    front of them (``dspot-spotify up``).

    ``DIR/cluster-secret`` is generated on first use and reused; node *i* (from 1) keeps its
    data in ``DIR/nodeI`` and logs to ``DIR/nodeI/node.log``; RPC listens on
    ``base_port + 2(i-1)`` and HTTP on the port after it. With ``gateway_port``, the gateway
    listens on ``127.0.0.1:gateway_port`` with a certificate from the development CA in
    ``DIR/tls`` (see :mod:`dspot_spotify.devtls`), its RPC on ``base_port + 2N``, and logs
    to ``DIR/gateway/gateway.log``.
    """

    def __init__(
        self,
        root: Path,
        nodes: int = 3,
        base_port: int = 7100,
        *,
        gateway_port: int | None = None,
        frontend: Path | None = None,
        served_by: bool = False,
    ) -> None:
        self.root = root
        self.secret_file = root / "cluster-secret"
        self.base_port = base_port
        self.gateway_port = gateway_port
        self.frontend = frontend
        self.served_by = served_by
        addrs = [
            (f"127.0.0.1:{base_port + 2 * i}", f"127.0.0.1:{base_port + 2 * i + 1}")
            for i in range(nodes)
        ]
        self.seeds = tuple(rpc for rpc, _ in addrs)
        self.procs = [
            NodeProcess(
                NodeSpec(
                    name=f"node{i + 1}",
                    data=root / f"node{i + 1}",
                    rpc=rpc,
                    http=http_,
                    seeds=self.seeds,
                    secret_file=self.secret_file,
                    cluster_size=nodes,
                ),
                root / f"node{i + 1}" / "node.log",
            )
            for i, (rpc, http_) in enumerate(addrs)
        ]
        self.gateway: NodeProcess | None = None
        self.ca_file: Path | None = None
        self.restarts: dict[str, int] = {}
        """Restarts so far, by process name."""
        self._backoff: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._reported: set[str] = set()

    @property
    def all_procs(self) -> list[NodeProcess]:
        """The nodes, then the gateway once started."""
        return [*self.procs, *([] if self.gateway is None else [self.gateway])]

    @property
    def url(self) -> str:
        """The gateway's URL (``https://localhost:PORT``)."""
        if self.gateway_port is None:
            raise ValueError("this cluster has no gateway")
        return f"https://localhost:{self.gateway_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start every node and wait until all are ready and see a quorum; then the gateway,
        until it reports every node healthy."""
        # Owner only: it holds the cluster secret, the dev CA and every node's data.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.secret_file.exists():
            write_secret(self.secret_file)
        for p in self.procs:
            p.start()
        wait_for(self.procs, "ready", timeout)
        wait_for(self.procs, "quorum", timeout)
        if self.gateway_port is None:
            return
        from dspot_spotify.devtls import ensure_dev_tls

        tls = ensure_dev_tls(self.root / "tls")
        self.ca_file = tls.ca
        self.gateway = NodeProcess(
            GatewaySpec(
                name="gateway",
                listen=f"127.0.0.1:{self.gateway_port}",
                rpc=f"127.0.0.1:{self.base_port + 2 * len(self.procs)}",
                join=self.seeds,
                secret_file=self.secret_file,
                cert=tls.cert,
                key=tls.key,
                frontend=self.frontend,
                pid_file=self.root / "gateway" / "gateway.pid",
                served_by=self.served_by,
            ),
            self.root / "gateway" / "gateway.log",
        )
        self.gateway.start()
        wait_for([self.gateway], "ready", timeout)
        deadline = time.monotonic() + timeout
        while self.gateway.healthy_nodes < len(self.procs):
            if (code := self.gateway.poll()) is not None:
                raise NodeFailed(
                    f"the gateway exited with status {code}; its log "
                    f"({self.gateway.log_path}) ends with:\n{self.gateway.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise NodeFailed(
                    f"the gateway sees {self.gateway.healthy_nodes} healthy nodes of "
                    f"{len(self.procs)} after {timeout:g} s"
                )
            time.sleep(0.05)

    def supervise(self, *, restart: bool = True, now: float | None = None) -> list[str]:
        """Look after the processes once (call every fraction of a second): a process that
        exited is started again after a backoff (1 s, doubling to :data:`RESTART_MAX`,
        back to 1 s once it has stayed up :data:`RESTART_STABLE`), or, without
        ``restart``, reported once. Returns the lines to tell the user."""
        now = time.monotonic() if now is None else now
        lines: list[str] = []
        for p in self.all_procs:
            name = p.spec.name
            code = p.poll()
            if code is None:
                if now - self._started.setdefault(name, now) >= RESTART_STABLE:
                    self._backoff[name] = 0
                continue
            if not restart:
                if name not in self._reported:
                    self._reported.add(name)
                    lines.append(f"warning: {name} exited with status {code} (see {p.log_path})")
                continue
            due = self._due.get(name)
            if due is None:
                attempt = self._backoff.get(name, 0)
                delay = min(RESTART_MAX, RESTART_FIRST * 2**attempt)
                self._backoff[name] = attempt + 1
                self._due[name] = now + delay
                lines.append(
                    f"warning: {name} exited with status {code} (see {p.log_path}); "
                    f"restarting it in {delay:g} s"
                )
            elif now >= due:
                del self._due[name]
                fresh = self._restart(p)
                self._started[name] = now
                self.restarts[name] = self.restarts.get(name, 0) + 1
                lines.append(f"{name} restarted (pid {fresh.pid}, restart {self.restarts[name]})")
        return lines

    def _restart(self, old: NodeProcess) -> NodeProcess:
        old.close()
        fresh = NodeProcess(old.spec, old.log_path)
        fresh.restarts = old.restarts + 1
        fresh.start()
        if old is self.gateway:
            self.gateway = fresh
        else:
            self.procs[self.procs.index(old)] = fresh
        return fresh

    def stop(self, timeout: float = 10.0) -> list[int | None]:
        """Stop the gateway, then the nodes; the exit statuses in :attr:`all_procs` order."""
        gateway_code = None if self.gateway is None else self.gateway.stop(timeout)
        for p in self.procs:
            p.signal(signal.SIGTERM)
        codes = [p.stop(timeout) for p in self.procs]
        return codes if self.gateway is None else [*codes, gateway_code]

    @contextlib.contextmanager
    def running(self, timeout: float = 60.0) -> Iterator[LocalCluster]:
        try:
            self.start(timeout)
            yield self
        finally:
            self.stop()


def default_frontend() -> Path | None:
    """``frontend/dist`` of the source checkout this package runs from, if it was built."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        dist = parent / "frontend" / "dist"
        if (dist / "index.html").is_file() and (parent / "examples" / "spotify").is_dir():
            return dist
    return None
