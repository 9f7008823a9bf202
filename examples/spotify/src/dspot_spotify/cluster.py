"""Running the service as real processes on one machine.

:func:`serve_node` is one node process (``dspot-spotify node``): a
:class:`~dspot_spotify.node.SpotifyNode` over TCP on a :class:`~dspot.disk.LocalDisk`, until
SIGINT or SIGTERM. It prints two kinds of lines on stdout, for people and for supervisors::

    node NAME ready: rpc ADDR http ADDR     (once, when every part is listening)
    node NAME quorum: yes (N live members)  (whenever writes become possible / impossible)

The gateway process (``dspot-spotify gateway``, :mod:`dspot_spotify.gateway`) prints
``gateway NAME ready: https ADDR rpc ADDR`` and ``gateway NAME nodes: N healthy``.

:class:`NodeProcess` starts one such process and watches those lines; :class:`LocalCluster`
starts N nodes on 127.0.0.1 and the gateway in front of them (``dspot-spotify up``) and stops
them all. :class:`ApiClient` is a tiny blocking client of the HTTP API (register, upload,
list) over HTTP to a node or HTTPS to the gateway.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import attrs
from dspot.errors import AddressInUse

__all__ = [
    "MIN_SECRET_BYTES",
    "ApiClient",
    "ApiError",
    "GatewaySpec",
    "LocalCluster",
    "NodeProcess",
    "NodeSpec",
    "SplitTransport",
    "load_node_id",
    "parse_address",
    "read_secret",
    "serve_node",
]

MIN_SECRET_BYTES = 16
READY_RE = re.compile(r"^node (\S+) ready: rpc (\S+) http (\S+)$")
QUORUM_RE = re.compile(r"^node (\S+) quorum: (yes|no)")
GATEWAY_READY_RE = re.compile(r"^gateway (\S+) ready: https (\S+) rpc (\S+)$")
GATEWAY_NODES_RE = re.compile(r"^gateway (\S+) nodes: (\d+) healthy")


class ConfigError(Exception):
    """A bad command-line setting, reported as one line without a traceback."""


# -- settings -----------------------------------------------------------------------------


def parse_address(text: str) -> str:
    """Check ``HOST:PORT`` (port 0-65535); returns it normalised."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return f"{host}:{int(port)}"


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """The cluster secret from a file (surrounding whitespace stripped)."""
    try:
        data = Path(path).read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the secret file {path}: {e.strerror or e}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the secret file {path} holds {len(data)} bytes; "
            f"a cluster secret needs at least {MIN_SECRET_BYTES}"
        )
    return data


def write_secret(path: Path) -> bytes:
    """Create a new random secret file readable by its owner only."""
    secret = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    return secret


def load_node_id(data_dir: Path, wanted: str | None = None) -> str:
    """This node's id, kept in ``DATA/node-id`` so a restart keeps its identity."""
    path = data_dir / "node-id"
    if path.exists():
        node_id = path.read_text(encoding="utf-8").strip()
        if wanted is not None and wanted != node_id:
            raise ConfigError(
                f"{data_dir} belongs to node {node_id!r}, not {wanted!r} (a node keeps its id)"
            )
        return node_id
    node_id = wanted or f"node-{secrets.token_hex(4)}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", node_id):
        raise ConfigError(f"bad node name {node_id!r}: use letters, digits, '.', '_' and '-'")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return node_id


# -- one node process -----------------------------------------------------------------------


class SplitTransport:
    """Listens on ``plain_addresses`` without TLS and everywhere else with ``tls``.

    :class:`~dspot_spotify.node.SpotifyNode` serves RPC and HTTP on one transport; with
    mutual TLS between nodes, the HTTP API would otherwise demand client certificates too.
    Outgoing connections (node to node) always use ``tls``.
    """

    def __init__(self, tls: Any, plain: Any, plain_addresses: Sequence[str]) -> None:
        self.tls = tls
        self.plain = plain
        self.plain_addresses = set(plain_addresses)

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        stream: anyio.abc.ByteStream = await self.tls.connect(address, timeout=timeout)
        return stream

    async def listen(self, address: str) -> Any:
        if address in self.plain_addresses:
            return await self.plain.listen(address)
        return await self.tls.listen(address)


def cluster_tls(cert: Path, key: Path | None, ca: Path | None) -> Any:
    """The mutual-TLS transport for cluster RPC (``--tls-cert/--tls-key/--tls-ca``), shared
    by nodes and the gateway; unreadable files are a :class:`ConfigError`."""
    from dspot.tls import client_context, server_context
    from dspot.transport import TcpTransport

    try:
        return TcpTransport(
            server_ssl=server_context(cert, key, client_ca=ca),
            client_ssl=client_context(ca, certfile=cert, keyfile=key),
        )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the cluster TLS files: {e}") from None


@attrs.frozen(kw_only=True)
class NodeSettings:
    data: Path
    rpc: str
    http: str
    seeds: tuple[str, ...]
    secret_file: Path
    cluster_size: int
    name: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    http_advertise: str | None = None
    sabotage: tuple[str, ...] = ()
    """Deliberate bugs (:class:`~dspot_spotify.node.Sabotage` values), for chaos tests only."""


def _say(line: str) -> None:
    print(line, flush=True)


async def _serve(settings: NodeSettings, secret: bytes, node_id: str) -> None:
    from dspot.disk import LocalDisk
    from dspot.env import production_env
    from dspot.transport import TcpTransport

    from dspot_spotify.node import NodeConfig, Sabotage, SpotifyNode

    transport: Any = TcpTransport()
    if settings.tls_cert is not None:
        tls = cluster_tls(settings.tls_cert, settings.tls_key, settings.tls_ca)
        transport = SplitTransport(tls, TcpTransport(), [settings.http])
    # Signals are taken over for the whole run, shutdown included: a second SIGTERM while
    # stopping must not kill the process with the disk half closed.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        disk = await LocalDisk.open(settings.data / "disk")
        try:
            env = production_env(node_id, transport, disk)
            node = SpotifyNode(
                env,
                rpc_address=settings.rpc,
                http_address=settings.http,
                http_advertise=settings.http_advertise,
                secret=secret,
                seeds=[s for s in settings.seeds if s != settings.rpc],
                config=NodeConfig(
                    cluster_size=settings.cluster_size,
                    sabotage=frozenset(Sabotage(s) for s in settings.sabotage),
                ),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, signals, tg.cancel_scope, node_id)
                await tg.start(node.run)
                _say(f"node {node_id} ready: rpc {node.rpc.address} http {node.http_bound_address}")
                tg.start_soon(_watch_quorum, node)
            _say(f"node {node_id} stopped")
        finally:
            with anyio.CancelScope(shield=True):
                await disk.aclose()


async def _stop_on_signal(signals: Any, scope: anyio.CancelScope, node_id: str) -> None:
    async for signum in signals:
        logging.getLogger("dspot_spotify").info(
            "%s: %s received, stopping", node_id, signal.Signals(signum).name
        )
        scope.cancel()
        return


async def _watch_quorum(node: Any) -> None:
    last: bool | None = None
    while True:
        ok = bool(node.has_quorum() and node.ring.holder)
        if ok != last:
            live = len(node.membership.live())
            _say(f"node {node.env.node_id} quorum: {'yes' if ok else 'no'} ({live} live members)")
            last = ok
        await anyio.sleep(0.2)


def serve_node(settings: NodeSettings) -> int:
    """Run one node until SIGINT/SIGTERM; returns the exit status."""
    settings.data.mkdir(parents=True, exist_ok=True)
    secret = read_secret(settings.secret_file)
    for path in (settings.tls_cert, settings.tls_key, settings.tls_ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"no such TLS file: {path}")
    if settings.tls_cert is not None and settings.tls_ca is None:
        raise ConfigError("--tls-cert needs --tls-ca (nodes verify each other: mutual TLS)")
    if settings.http_advertise is None and _is_wildcard(settings.http):
        raise ConfigError(
            f"--http {settings.http} listens on every interface: give --http-advertise "
            "HOST:PORT, the address the gateway and the other nodes reach it at"
        )
    node_id = load_node_id(settings.data, settings.name)
    pid_file = settings.data / "node.pid"
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        anyio.run(_serve, settings, secret, node_id, backend="trio")
    except BaseException as exc:
        found = _find(exc, (ConfigError, KeyboardInterrupt, AddressInUse, socket.gaierror))
        if isinstance(found, ConfigError):
            raise found from None
        if isinstance(found, AddressInUse):
            raise ConfigError(f"cannot listen: {found}") from None
        if isinstance(found, socket.gaierror):
            raise ConfigError(
                f"cannot listen on {settings.rpc} / {settings.http}: {found}"
            ) from None
        if found is None:
            raise
        # KeyboardInterrupt: Ctrl-C before the signal handlers were installed
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


def _is_wildcard(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("0.0.0.0", "::", "")


def _find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _find(inner, kinds)) is not None:
                return found
    return None


# -- supervising node processes ---------------------------------------------------------------


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

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.spec, GatewaySpec) else "http"
        return f"{scheme}://{self.spec.http}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
    ) -> None:
        self.root = root
        self.secret_file = root / "cluster-secret"
        self.base_port = base_port
        self.gateway_port = gateway_port
        self.frontend = frontend
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
        self.root.mkdir(parents=True, exist_ok=True)
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


# -- a blocking client of the HTTP API -------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class ApiClient:
    """Blocking calls to the HTTP API of a node (``http://HOST:PORT``) or of the gateway
    (``https://HOST[:PORT]``, verified against ``cafile``, else the system trust store)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"expected http://HOST:PORT or https://HOST[:PORT], got {url!r}")
        if parsed.scheme == "http" and parsed.port is None:
            raise ValueError(f"expected http://HOST:PORT, got {url!r}")
        self.secure = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or 443
        self.token = token
        self.timeout = timeout
        self.log_position: str | None = None
        """The newest ``X-Log-Position`` a write answered with; sent with every request so a
        read through the gateway, on whichever node, sees this client's writes."""
        self._ssl: ssl.SSLContext | None = None
        if self.secure:
            from dspot.http import client_ssl_context

            self._ssl = client_ssl_context(cafile)

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the server (HTTPS when the URL said so); the caller closes it."""
        if self.secure:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection()
        try:
            hdrs = dict(headers or {})
            if self.token:
                hdrs["authorization"] = f"Bearer {self.token}"
            if self.log_position and not any(k.lower() == "x-log-position" for k in hdrs):
                hdrs["x-log-position"] = self.log_position
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            got = {k.lower(): v for k, v in resp.getheaders()}
            if (pos := got.get("x-log-position")) is not None:
                self._saw_position(pos)
            return resp.status, got, data
        finally:
            conn.close()

    def _saw_position(self, pos: str) -> None:
        def key(p: str) -> tuple[int, ...]:
            return tuple(int(x) for x in p.split(".")) if re.fullmatch(r"\d+\.\d+", p) else ()

        if key(pos) and (self.log_position is None or key(pos) > key(self.log_position)):
            self.log_position = pos

    def json(self, method: str, path: str, doc: Any = None, ok: Sequence[int] = (200,)) -> Any:
        body = None if doc is None else json.dumps(doc).encode()
        headers = {} if body is None else {"content-type": "application/json"}
        status, _, data = self.request(method, path, body, headers)
        if status not in ok:
            raise ApiError(status, _detail(data))
        return json.loads(data)

    def register(self, username: str, password: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.json(
            "POST", "/api/auth/register", {"username": username, "password": password}, (201,)
        )
        return doc

    def login(self, username: str, password: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.json(
            "POST", "/api/auth/login", {"username": username, "password": password}
        )
        self.token = doc["token"]
        return doc

    def upload(self, path: Path) -> tuple[int, dict[str, Any]]:
        """POST one file; (201, song) when new, (200, song) when already there."""
        name = urllib.parse.quote(path.name)
        status, _, data = self.request(
            "POST",
            f"/api/songs?filename={name}",
            path.read_bytes(),
            {"content-type": "application/octet-stream"},
        )
        if status not in (200, 201):
            raise ApiError(status, _detail(data))
        return status, json.loads(data)

    def song_count(self) -> int:
        return int(self.json("GET", "/api/songs?limit=1")["total"])


def _detail(data: bytes) -> str:
    try:
        doc = json.loads(data)
        return str(doc.get("detail") or doc.get("title") or doc)
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace")


def default_frontend() -> Path | None:
    """``frontend/dist`` of the source checkout this package runs from, if it was built."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        dist = parent / "frontend" / "dist"
        if (dist / "index.html").is_file() and (parent / "examples" / "spotify").is_dir():
            return dist
    return None
