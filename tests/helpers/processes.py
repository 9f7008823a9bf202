"""Real-process clusters for tests: node and gateway processes on loopback, and the waits
that go with them. The one way the process, gateway, growth, hostile-input and end-to-end tests
start processes (the generic parts, ports and waits, come from :mod:`dspot.testing`).

    with process_cluster(tmp_path) as c:
        n1, n2, n3 = c.start_nodes(["n1", "n2", "n3"], quorum=True)
        gateway = c.start_gateway()          # HTTPS on a dev CA; waits for 3 healthy nodes
        alice = c.client()                   # an ApiClient of the gateway
        c.procs["n2"].kill()                 # kill -9

Every process started through a :class:`ProcessCluster` is killed when the ``with`` block
ends, failing or not; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, TypeVar

from dspot_spotify.client import ApiClient, ApiError
from dspot_spotify.devtls import ensure_dev_tls
from dspot_spotify.process.supervisor import GatewaySpec, NodeProcess, NodeSpec, wait_for

from dspot.testing import free_port_range, free_ports, poll_until

__all__ = [
    "PASSWORD",
    "SECRET",
    "ProcessCluster",
    "process_cluster",
    "retry_503",
    "up",
]

T = TypeVar("T")

SECRET: Final = b"a test cluster secret for processes"
PASSWORD: Final = "correct horse battery"


def retry_503(call: Callable[[], T], timeout: float = 20.0) -> T:
    """``call()``, again while it fails with 503 (a write during a view change)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiError as e:
            if e.status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class ProcessCluster:
    """The node and gateway processes of one test, under ``root``."""

    def __init__(self, root: Path, secret: bytes = SECRET) -> None:
        self.root = root
        self.secret = secret
        self.procs: dict[str, NodeProcess] = {}
        self.seeds: list[str] = []
        self.gateway: NodeProcess | None = None
        self.ca: Path | None = None
        self._secrets = 0

    def secret_file(self, secret: bytes | None = None) -> Path:
        """A file holding ``secret`` (default: the cluster's)."""
        path = self.root / f"secret-{self._secrets}"
        self._secrets += 1
        path.write_bytes(self.secret if secret is None else secret)
        return path

    def start_nodes(
        self,
        names: Sequence[str],
        *,
        secret: bytes | None = None,
        seeds: Sequence[str] | None = None,
        extra: tuple[str, ...] = (),
        cluster_size: int = 3,
        quorum: bool = False,
        timeout: float = 30.0,
    ) -> list[NodeProcess]:
        """Start node processes (seeded with every node started so far, unless ``seeds``)
        and wait until they are ready (with ``quorum``: until they see a quorum)."""
        secret_file = self.secret_file(secret)
        ports = free_ports(2 * len(names))
        rpcs = [f"127.0.0.1:{p}" for p in ports[::2]]
        if seeds is None:
            self.seeds += rpcs
        started = []
        for i, name in enumerate(names):
            spec = NodeSpec(
                name=name,
                data=self.root / name,
                rpc=rpcs[i],
                http=f"127.0.0.1:{ports[2 * i + 1]}",
                seeds=tuple(self.seeds if seeds is None else seeds),
                secret_file=secret_file,
                cluster_size=cluster_size,
                extra=extra,
            )
            proc = NodeProcess(spec, self.root / name / "node.log")
            self.procs[name] = proc
            proc.start()
            started.append(proc)
        wait_for(started, "ready", timeout)
        if quorum:
            wait_for(started, "quorum", timeout)
        return started

    def start_gateway(
        self,
        *,
        name: str = "gateway",
        extra: tuple[str, ...] = (),
        cert: Path | None = None,
        key: Path | None = None,
        ca: Path | None = None,
        frontend: Path | None = None,
        join: Sequence[str] | None = None,
        healthy: int | None = None,
        timeout: float = 30.0,
        served_by: bool = True,
    ) -> NodeProcess:
        """Start the HTTPS gateway in front of the nodes started so far (a certificate from a
        development CA in ``root/tls`` unless ``cert``/``key`` and the ``ca`` that signed
        them), and wait until it is ready and sees ``healthy`` healthy nodes (default: all
        of them). ``served_by`` (on here, off in production) names the answering node in
        ``X-Served-By``, which the tests read."""
        if cert is None:
            tls = ensure_dev_tls(self.root / "tls")
            cert, key, ca = tls.cert, tls.key, tls.ca
        self.ca = ca
        https, rpc = free_ports(2)
        gateway = NodeProcess(
            GatewaySpec(
                name=name,
                listen=f"127.0.0.1:{https}",
                rpc=f"127.0.0.1:{rpc}",
                join=tuple(self.seeds if join is None else join),
                secret_file=self.secret_file(),
                cert=cert,
                key=key or cert,
                frontend=frontend,
                served_by=served_by,
                extra=extra,
            ),
            self.root / name / "gateway.log",
        )
        self.gateway = gateway
        gateway.start()
        wait_for([gateway], "ready", timeout)
        want = len(self.procs) if healthy is None else healthy
        poll_until(
            lambda: gateway.healthy_nodes >= want, timeout=timeout, what=f"{want} healthy nodes"
        )
        return gateway

    @property
    def url(self) -> str:
        """The gateway's URL (``https://localhost:PORT``)."""
        assert self.gateway is not None, "no gateway started"
        return f"https://localhost:{self.gateway.spec.http.rsplit(':', 1)[1]}"

    def client(self, node: str | None = None, *, token: str | None = None) -> ApiClient:
        """An API client of the gateway, or of the node ``node``."""
        if node is not None:
            return ApiClient(self.procs[node].url, token=token)
        return ApiClient(self.url, cafile=self.ca, token=token)

    def log(self, name: str) -> str:
        """What the process ``name`` (or the gateway) wrote to its log so far."""
        proc = self.gateway if self.gateway and name == self.gateway.spec.name else None
        proc = proc or self.procs[name]
        return proc.log_path.read_text(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL every process started, and wait for them."""
        everyone = [*self.procs.values(), *([self.gateway] if self.gateway else [])]
        for p in everyone:
            p.signal(signal.SIGKILL)
        for p in everyone:
            p.wait(10.0)
            p.close()


@contextlib.contextmanager
def process_cluster(root: Path, secret: bytes = SECRET) -> Iterator[ProcessCluster]:
    """A :class:`ProcessCluster` under ``root`` whose processes are all killed at the end."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = ProcessCluster(root, secret)
    try:
        yield cluster
    finally:
        cluster.kill_all()


@contextlib.contextmanager
def up(
    root: Path, *extra: str, base: int | None = None, port: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """``dspot-spotify up`` of three nodes on ``root`` (with ``extra`` arguments) until it
    says it serves; yields (process, output file, base port). Ctrl-C at the end, waiting
    for it to stop (its exit status: ``returncode``); whatever happens, every process of
    it is killed. ``base`` (7 ports from it) and ``port`` (the gateway's): free ones by
    default."""
    base = free_port_range(7) if base is None else base
    [port] = free_ports(1) if port is None else [port]
    out_path = root.with_name(root.name + f"-up-{time.monotonic_ns()}.out")
    cmd = [
        *(sys.executable, "-m", "dspot_spotify.cli", "up", "--nodes", "3"),
        *("--data", str(root), "--base-port", str(base), "--port", str(port)),
        *("--admin-password", PASSWORD, *extra),
    ]
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            umask=0o022,  # the usual one: files are private only if made so
        )
        try:
            poll_until(
                lambda: "Press Ctrl-C" in out_path.read_text() or proc.poll() is not None,
                timeout=90.0,
                what="up to finish starting",
            )
            assert proc.poll() is None, out_path.read_text()
            yield proc, out_path, base
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid_file in [*root.glob("node*/node.pid"), *root.glob("gateway/gateway.pid")]:
                with contextlib.suppress(ValueError, OSError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
