"""Real service processes for the hostile-input tests, started only through the CLI.

:class:`Service` starts ``dspot-spotify node`` processes and a ``dspot-spotify gateway`` on
loopback, waits for their "ready" lines, and kills them (process group and all) when the
block ends, also on failure. Probes are plain blocking sockets: what an attacker has.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trustme

from dspot.wire import Frame, FrameDecoder, Kind

SECRET = b"cluster secret of the hostile-input tests"
USER = {"username": "prober", "password": "a long enough password"}

_NODE_READY = re.compile(r"^node (\S+) ready: rpc (\S+) http (\S+)$")
_GATEWAY_READY = re.compile(r"^gateway (\S+) ready: https (\S+) rpc (\S+)$")


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@attrs.define
class Process:
    """One process started from the CLI; ``ready`` holds its ready line's groups."""

    name: str
    popen: subprocess.Popen[str]
    log: Path
    pattern: re.Pattern[str]
    ready: threading.Event = attrs.field(factory=threading.Event)
    groups: tuple[str, ...] = ()

    def watch(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            m = self.pattern.match(line.strip())
            if m and not self.ready.is_set():
                self.groups = m.groups()
                self.ready.set()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@attrs.define
class Service:
    """N nodes and the HTTPS gateway, as real processes on 127.0.0.1."""

    root: Path
    nodes: list[Process] = attrs.field(factory=list)
    gateway: Process | None = None
    ca: trustme.CA = attrs.field(factory=trustme.CA)
    node_rpc: list[str] = attrs.field(factory=list)
    node_http: list[str] = attrs.field(factory=list)
    gateway_https: str = ""
    gateway_rpc: str = ""
    token: str = ""

    @property
    def processes(self) -> list[Process]:
        return [*self.nodes, *([self.gateway] if self.gateway else [])]

    def _spawn(self, name: str, argv: list[str], pattern: re.Pattern[str]) -> Process:
        log = self.root / f"{name}.log"
        with log.open("w") as stderr:  # the child keeps its own copy
            popen = subprocess.Popen(
                [sys.executable, "-m", "dspot_spotify.cli", *argv],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # its own process group: killed whole at the end
                umask=0o022,  # the usual one: what is private must be made so
            )
        proc = Process(name, popen, log, pattern)
        threading.Thread(target=proc.watch, daemon=True).start()
        return proc

    def start(self, n: int = 2, timeout: float = 60.0) -> None:
        secret = self.root / "secret"
        secret.write_bytes(SECRET)
        ports = free_ports(2 * n + 2)
        self.node_rpc = [f"127.0.0.1:{p}" for p in ports[0 : 2 * n : 2]]
        self.node_http = [f"127.0.0.1:{p}" for p in ports[1 : 2 * n : 2]]
        for i in range(n):
            argv = ["node", "--name", f"n{i + 1}", "--data", str(self.root / f"n{i + 1}")]
            argv += ["--rpc", self.node_rpc[i], "--http", self.node_http[i]]
            argv += ["--seeds", ",".join(self.node_rpc), "--cluster-size", str(n)]
            argv += ["--secret-file", str(secret), "-q"]
            self.nodes.append(self._spawn(f"n{i + 1}", argv, _NODE_READY))
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = self.root / "gw.pem", self.root / "gw.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        self.gateway_https = f"127.0.0.1:{ports[-2]}"
        self.gateway_rpc = f"127.0.0.1:{ports[-1]}"
        argv = ["gateway", "--listen", self.gateway_https, "--rpc", self.gateway_rpc]
        argv += ["--join", ",".join(self.node_rpc), "--secret-file", str(secret)]
        argv += ["--cert", str(cert_file), "--key", str(key_file), "-q"]
        self.gateway = self._spawn("gateway", argv, _GATEWAY_READY)
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            while not proc.ready.wait(0.1):
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not start:\n{proc.tail()}")
        self.wait_serving(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        for proc in self.processes:
            proc.kill()

    # -- probes ---------------------------------------------------------------------------

    def https_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def request(
        self, address: str, method: str, path: str, body: Any = None, *, tls: bool = False
    ) -> tuple[int, Any]:
        host, port = split(address)
        conn: http.client.HTTPConnection
        if tls:
            conn = http.client.HTTPSConnection(host, port, timeout=10, context=self.https_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=10)
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Until every node and the gateway answer ``/healthz`` and the cluster lists every
        node alive (the gateway is an observer member)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.serving()
                if last is True:
                    return
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"the service is not serving: {last!r}")

    def serving(self) -> Any:
        """True, or what is wrong."""
        for proc in self.processes:
            if not proc.alive():
                return f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
        for address in self.node_http:
            status, doc = self.request(address, "GET", "/healthz")
            if status != 200 or not doc.get("quorum"):
                return f"{address} /healthz: {status} {doc}"
        status, doc = self.request(self.gateway_https, "GET", "/healthz", tls=True)
        if status != 200 or doc.get("nodes") != len(self.nodes):
            return f"gateway /healthz: {status} {doc}"
        if not self.token:
            status, doc = self.request(self.node_http[0], "POST", "/api/auth/register", USER)
            if status == 409:
                status, doc = self.request(self.node_http[0], "POST", "/api/auth/login", USER)
            if status not in (200, 201):
                return f"cannot log in: {status} {doc}"
            self.token = doc["token"]
        for address in self.node_http:
            status, doc = self.request(address, "GET", "/api/cluster")
            states = {m["id"]: m["state"] for m in doc["members"]} if status == 200 else doc
            expected = {f"n{i + 1}" for i in range(len(self.nodes))} | {"gateway"}
            if not isinstance(states, dict) or set(states) != expected:
                return f"{address} /api/cluster members: {states}"
            if any(state != "alive" for state in states.values()):
                return f"{address} sees members not alive: {states}"
        return True


@contextlib.contextmanager
def running_service(root: Path, nodes: int = 2) -> Iterator[Service]:
    service = Service(root)
    try:
        service.start(nodes)
        yield service
    finally:
        service.stop()


# -- raw RPC --------------------------------------------------------------------------------


def raw_frame(kind: int, name: bytes, meta: bytes, payload: bytes = b"", msg_id: int = 0) -> bytes:
    """A frame as a stranger builds it: whatever lengths and kinds it likes."""
    head = struct.pack(">2sBBQHII", b"DS", 1, kind, msg_id, len(name), len(meta), len(payload))
    return head + name + meta + payload


def read_frame(sock: socket.socket, decoder: FrameDecoder) -> Frame:
    while (frame := decoder.next_frame()) is None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        decoder.feed(data)
    return frame


def authenticated_rpc(address: str, secret: bytes = SECRET, timeout: float = 5.0) -> socket.socket:
    """A socket to ``address`` past the RPC handshake, proved with the library's own code."""
    from dspot.rpc import ClientHandshake

    sock = socket.create_connection(split(address), timeout=timeout)
    try:
        client = ClientHandshake(secret, "prober", "prober-boot", os.urandom(16).hex())
        sock.sendall(b"".join(client.hello().encode()))
        auth, _ = client.answer(read_frame(sock, FrameDecoder()), address)
        sock.sendall(b"".join(auth.encode()))
    except BaseException:
        sock.close()
        raise
    return sock


def rpc_listener_answers(address: str, timeout: float = 10.0) -> bool:
    """Whether a fresh connection to an RPC listener gets its HELLO answered."""
    try:
        with socket.create_connection(split(address), timeout=timeout) as sock:
            hello = b'{"boot":"probe","node":"probe","nonce":"00"}'
            sock.sendall(raw_frame(Kind.HELLO, b"hello", hello))
            frame = read_frame(sock, FrameDecoder())
            return frame.kind is Kind.HELLO_ACK
    except (OSError, ConnectionError):
        return False


def send_and_wait_close(address: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` and read until the peer closes (or ``timeout``); what came back."""
    got = b""
    with socket.create_connection(split(address), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
    return got
