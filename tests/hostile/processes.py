"""Real service processes for the hostile-input tests, started only through the CLI.

:class:`Service` starts ``dspot-spotify node`` processes and a ``dspot-spotify gateway`` on
loopback through the tests' one :class:`~tests.helpers.processes.ProcessCluster`, waits
until they serve, and kills them when the block ends, also on failure. Probes are plain
blocking sockets: what an attacker has.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trustme
from dspot_spotify.process.supervisor import NodeProcess

from dspot.wire import Frame, FrameDecoder, Kind
from tests.helpers.processes import ProcessCluster

SECRET = b"cluster secret of the hostile-input tests"
USER = {"username": "prober", "password": "a long enough password"}


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@attrs.define
class Service:
    """N nodes and the HTTPS gateway, as real processes on 127.0.0.1 (a
    :class:`~tests.helpers.processes.ProcessCluster` with a gateway certificate of our own CA)."""

    root: Path
    cluster: ProcessCluster = attrs.field(init=False)
    ca: trustme.CA = attrs.field(factory=trustme.CA)
    token: str = ""

    def __attrs_post_init__(self) -> None:
        self.cluster = ProcessCluster(self.root, SECRET)

    @property
    def nodes(self) -> list[NodeProcess]:
        return list(self.cluster.procs.values())

    @property
    def gateway(self) -> NodeProcess | None:
        return self.cluster.gateway

    @property
    def processes(self) -> list[NodeProcess]:
        return [*self.nodes, *([self.gateway] if self.gateway else [])]

    @property
    def node_rpc(self) -> list[str]:
        return [p.spec.rpc for p in self.nodes]

    @property
    def node_http(self) -> list[str]:
        return [p.spec.http for p in self.nodes]

    @property
    def gateway_https(self) -> str:
        assert self.gateway is not None
        return self.gateway.spec.http

    @property
    def gateway_rpc(self) -> str:
        assert self.gateway is not None
        return self.gateway.spec.rpc

    def start(self, n: int = 2, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        names = [f"n{i + 1}" for i in range(n)]
        self.cluster.start_nodes(names, cluster_size=n, extra=("-q",), timeout=timeout)
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = self.root / "gw.pem", self.root / "gw.key"
        ca_file = self.root / "ca.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        self.ca.cert_pem.write_to_path(str(ca_file))
        self.cluster.start_gateway(
            extra=("-q",), cert=cert_file, key=key_file, ca=ca_file, timeout=timeout
        )
        self.wait_serving(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.cluster.kill_all()

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
            if proc.poll() is not None:
                return f"{proc.spec.name} exited with {proc.poll()}:\n{proc.log_tail(30)}"
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
