"""The hostile stranger: a host without the cluster secret that attacks every listener.

Theory of operation. Every ``gap`` seconds (seeded) the stranger picks a live node (or a host
of ``StrangerConfig.also``, such as a gateway the workload runs) and one of the addresses it
listens on, found in the simulated network itself (:meth:`SimNetwork.listening`), so a
scenario needs to do nothing to be attacked. The first contact with an
address sends a well-formed RPC HELLO: an RPC listener answers with a frame, an HTTP one
with an HTTP error; that tells which garbage suits it. Then one attack, chosen by the seed:

``noise``       random bytes
``truncated``   a valid frame (or request) cut short, then a hang-up
``oversize``    a header announcing gigabytes, or a frame over the pre-authentication cap
``nested``      JSON nested thousands deep (balanced or not), within and over the size caps
``huge``        long strings and numbers, unknown kinds and versions, names that are not UTF-8
``wrong_auth``  a correct HELLO, then an AUTH whose proof is wrong, not ASCII or not a string
``drip``        a valid frame or request head one byte at a time (slowloris)
``http``        requests an HTTP server must refuse: TRACE and unknown methods, HTTP/2.0,
                Content-Length with Transfer-Encoding, invalid or surrogate JSON, JSON of
                the wrong types, text/plain bodies
``forge``       (not in the default set) a HELLO, an AUTH with a wrong proof, then a
                membership gossip from the stranger as a member whose metadata is
                ``StrangerConfig.forged_meta`` (a registration no one made): what a node
                that admits the unproved reaches
``forge_entry`` (not in the default set) the same unproved handshake, then token-ring
                appends from a holder of a far newer epoch: one to learn the end of the
                member's log, then an entry no one submitted after it, committed
``hoard``       (not in the default set) ``StrangerConfig.hoard`` connections opened at
                once, each with the first bytes of a request, held for ``hoard_seconds``:
                a client taking every connection a server will accept. The served check
                after it connects from another host (``PASSER_BY``): the stranger itself
                may be refused, everyone else must not be

On an HTTP listener each attack takes its HTTP form (a cut request, a 40 KB header or a
terabyte Content-Length, a deeply nested or huge JSON body, a 5,000-digit header, a
slowloris head), aimed at the configured ``http_paths``; ``wrong_auth`` and an occasional
HTTP request to an RPC port cross the protocols.

The checks, as violations of the run: no node dies (the cluster already records an
exception escaping a node); no exception escapes a connection handler, even if a guard
further out contains it (``conn.crash`` in the trace); no HTTP answer to the stranger is a
500; and after every attack a fresh connection to the same listener is accepted and served
(a HELLO_ACK from RPC, an HTTP response from HTTP; a 503 "too many connections" is a
refusal, not service) while its node is still the same incarnation. A drip runs in the
background while that check is made, so it also proves a slow client holds nobody else up.
The scenario's own checkers then show that the members kept serving each other.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot import wire
from dspot._frame_io import read_frame
from dspot.errors import FrameError, PeerUnavailable, connection_errors
from dspot.membership import Gossip, Member
from dspot.sim._checks import STRANGER_500, STRANGER_CRASH, STRANGER_SERVED
from dspot.sim._cluster import Simulation
from dspot.tokenring import Append, AppendReply, Entry
from dspot.wire import DEFAULT_MAX_FRAME, PREAUTH_MAX_FRAME, Frame, FrameDecoder, Kind

ATTACKS = ("noise", "truncated", "oversize", "nested", "huge", "wrong_auth", "drip", "http")

HOST = "stranger"
"""The stranger's host name on the simulated network (in no partition: it reaches all)."""
PASSER_BY = "passer-by"
"""The host that checks a listener still serves others after a ``hoard`` (no partition)."""

_HEADER = struct.Struct(">2sBBQHII")
_HELLO, _AUTH = 1, 3


@attrs.frozen
class StrangerConfig:
    """What the stranger does and how often (virtual seconds)."""

    attacks: tuple[str, ...] = ATTACKS
    warmup: float = 1.0
    min_gap: float = 0.2
    max_gap: float = 1.5
    answer_window: float = 2.0
    """How long an attack waits for the server's answer (or hang-up) before leaving."""
    probe_timeout: float = 30.0
    """How long a fresh connection may take to be served after an attack (covers loss and
    latency spikes; a crash of the node meanwhile cancels the check)."""
    drip_interval: float = 0.4
    drip_bytes: int = 40
    http_paths: tuple[str, ...] = ("/",)
    """Paths HTTP attacks aim at (a service passes its API's, e.g. ``/api/auth/login``)."""
    forged_meta: tuple[tuple[str, str], ...] = ()
    """The metadata the ``forge`` attack claims for the stranger as a member."""
    hoard: int = 80
    """Connections the ``hoard`` attack opens and holds."""
    hoard_seconds: float = 15.0
    """How long the ``hoard`` attack holds them (unless the server closes them first)."""
    aim: tuple[str, ...] = ()
    """When set, only the listeners at these addresses are attacked (a sabotage run aimed at
    one)."""
    also: tuple[str, ...] = ()
    """Hosts on the simulated network that are no node of the cluster but are attacked
    too, e.g. a gateway the workload runs. Their listeners are found the same way while
    they listen; one that stops listening is taken to have stopped, not to have failed."""


def _frame(
    kind: int,
    name: bytes,
    meta: bytes,
    *,
    version: int = 1,
    meta_len: int | None = None,
    payload_len: int = 0,
) -> bytes:
    """A frame as a stranger builds it: lengths and kinds may lie."""
    size = len(meta) if meta_len is None else meta_len
    return _HEADER.pack(b"DS", version, kind, 0, len(name), size, payload_len) + name + meta


def _hello(rng: random.Random) -> bytes:
    meta = {"node": "stranger", "boot": rng.randbytes(4).hex(), "nonce": rng.randbytes(16).hex()}
    return _frame(_HELLO, b"hello", json.dumps(meta).encode())


def _nested(rng: random.Random) -> bytes:
    # 1000 to 2000 levels fit under the pre-authentication cap and are deeper than Python's
    # recursion limit: only the depth check stops them.
    depth = rng.choice([70, 1000, 1500, 2000, 50_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b"[", b"")])
    return opener * depth + closer * depth


def _rpc_payload(attack: str, rng: random.Random) -> bytes:
    if attack == "noise":
        return rng.randbytes(rng.randint(1, 3000))
    if attack == "truncated":
        whole = _hello(rng)
        return whole[: rng.randint(1, len(whole) - 1)]
    if attack == "oversize":
        size = rng.choice([2**32 - 1, 2**31, DEFAULT_MAX_FRAME + 1, PREAUTH_MAX_FRAME + 1])
        if rng.random() < 0.5:
            return _frame(_HELLO, b"hello", b"{}", meta_len=size)
        return _frame(_HELLO, b"hello", b"{}", payload_len=size)
    if attack == "nested":
        return _frame(_HELLO, b"hello", _nested(rng))
    # huge: long values, wrong kinds and versions, a name that is not UTF-8
    choice = rng.randrange(5)
    if choice == 0:
        return _frame(_HELLO, b"hello", b'{"nonce":"' + b"x" * rng.randint(3000, 200_000) + b'"}')
    if choice == 1:
        return _frame(_HELLO, b"hello", b'{"nonce":' + b"9" * rng.randint(1000, 4000) + b"}")
    if choice == 2:
        return _frame(rng.randint(7, 255), b"hello", b"{}")
    if choice == 3:
        return _frame(_HELLO, b"hello", b"{}", version=rng.randint(2, 255))
    return _frame(_HELLO, b"\xff\xfe\x00", b'{"node":"\\ud800"}')


def _post(path: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: node\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _http_payload(attack: str, path: str, rng: random.Random) -> bytes:
    """The HTTP flavour of ``attack``, aimed at ``path``."""
    p = path.encode()
    head = b"Host: node\r\n"
    if attack == "noise":
        return rng.randbytes(rng.randint(1, 3000))
    if attack == "truncated":
        whole = _post(p, b'{"name":"' + b"x" * 200 + b'"}')
        return whole[: rng.randint(1, len(whole) - 1)]
    if attack == "oversize":
        return rng.choice(
            [
                b"GET " + p + b" HTTP/1.1\r\n" + head + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n",
                b"POST " + p + b" HTTP/1.1\r\n" + head + b"Content-Length: 1000000000000\r\n"
                b"Content-Type: application/json\r\n\r\n[[[",
                b"POST " + p + b" HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n"
                b"Content-Type: application/json\r\n\r\nfffffffffff\r\n[[[",
            ]
        )
    if attack == "nested":
        return _post(p, _nested(rng))
    if attack == "huge":
        return rng.choice(
            [
                _post(p, b'{"name":"' + b"x" * rng.randint(3000, 200_000) + b'"}'),
                _post(p, b'{"name":' + b"9" * 5000 + b"}"),
                _post(p, b"[" + b"1," * 50_000 + b"1]"),
                b"GET " + p + b"?page=99999999999999999999&limit=-1 HTTP/1.1\r\n" + head + b"\r\n",
                b"GET "
                + p
                + b" HTTP/1.1\r\n"
                + head
                + b"X-Log-Position: "
                + b"9" * 5000
                + b"\r\n\r\n",
            ]
        )
    return rng.choice(
        [
            b"TRACE " + p + b" HTTP/1.1\r\n" + head + b"\r\n",
            b"BREW " + p + b" HTTP/1.1\r\n" + head + b"\r\n",
            b"GET " + p + b" HTTP/2.0\r\n" + head + b"\r\n",
            b"POST " + p + b" HTTP/1.1\r\n" + head + b"Content-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n" + head + b"\r\n",
            _post(p, b'{"name":"ok"}', b"text/plain"),
            _post(p, b'{"name":"\\ud800x"}'),
            _post(p, b'{"name":"\xff\xfe"}'),
            _post(p, b'{"name":123,"password":null}'),
            _post(p, b'{"name":["a"]}'),
        ]
    )


def _incarnation(sim: Simulation, host: str) -> int:
    node = sim.nodes.get(host)
    return 0 if node is None else node.incarnation


class Stranger:
    """Runs a :class:`StrangerConfig` against a :class:`~dspot.sim.Simulation`."""

    def __init__(self, config: StrangerConfig | None = None) -> None:
        self.config = config or StrangerConfig()
        self._protocol: dict[str, str] = {}
        self._known: dict[str, tuple[int, list[str]]] = {}  # node -> (incarnation, addresses)
        self._crashes = 0

    async def run(self, sim: Simulation) -> None:
        cfg = self.config
        rng = random.Random(f"stranger:{sim.seed}")
        transport = sim.net.transport(HOST)
        await anyio.sleep(cfg.warmup)
        async with anyio.create_task_group() as background:
            while True:
                await anyio.sleep(rng.uniform(cfg.min_gap, cfg.max_gap))
                hosts = [*sim.live(), *cfg.also]
                targets = [
                    (n, a)
                    for n in hosts
                    for a in self._addresses(sim, n)
                    if not cfg.aim or a in cfg.aim
                ]
                if not targets:
                    continue
                node, address = rng.choice(targets)
                incarnation = _incarnation(sim, node)
                protocol = self._protocol.get(address)
                if protocol is None:
                    protocol = await self._probe(transport, address, None, rng)
                    if protocol is None:
                        continue  # gone meanwhile (crashed): try another target later
                    self._protocol[address] = protocol
                attack = rng.choice(cfg.attacks)
                sim.trace.record("stranger.attack", node=node, address=address, attack=attack)
                prober = transport
                if attack == "drip":
                    background.start_soon(self._drip, transport, address, protocol, rng)
                elif attack == "hoard":
                    held = await self._hoard(transport, address, protocol)
                    background.start_soon(self._release, held)
                    prober = sim.net.transport(PASSER_BY)
                elif attack == "wrong_auth":
                    await self._wrong_auth(transport, address, rng)
                elif attack == "forge" and protocol == "rpc":
                    await self._forge(transport, address, rng)
                elif attack == "forge_entry" and protocol == "rpc":
                    await self._forge_entry(transport, address, rng)
                else:
                    if protocol == "http" or attack == "http":
                        data = _http_payload(attack, rng.choice(cfg.http_paths), rng)
                    else:
                        data = _rpc_payload(attack, rng)
                    answer = await self._send(transport, address, data)
                    if answer.startswith(b"HTTP/1.1 500") or answer.startswith(b"HTTP/1.0 500"):
                        sim.violation(
                            f"{node} answered the stranger's {attack} with a 500",
                            check=STRANGER_500,
                        )
                await self._check_served(sim, prober, node, incarnation, address, rng, attack)

    def _addresses(self, sim: Simulation, node: str) -> list[str]:
        """What ``node`` listens on, and what it listened on before in this incarnation (a
        listener that vanished while its process lives on must be noticed, not forgotten)."""
        if node not in sim.nodes:
            return list(sim.net.listening(node))  # not a node: only what it listens on now
        incarnation = sim.nodes[node].incarnation
        known = self._known.get(node)
        addresses = [] if known is None or known[0] != incarnation else known[1]
        addresses += [a for a in sim.net.listening(node) if a not in addresses]
        self._known[node] = (incarnation, addresses)
        return addresses

    # -- attacks -----------------------------------------------------------------------------

    async def _send(self, transport: Any, address: str, data: bytes) -> bytes:
        """Send ``data``, read what comes back until the peer closes (or a while passes)."""
        got = b""
        try:
            stream = await transport.connect(address, timeout=5.0)
        except PeerUnavailable:
            return got
        try:
            with anyio.move_on_after(self.config.answer_window), connection_errors("stranger"):
                await stream.send(data)
                while len(got) < 65536:
                    got += await stream.receive()
                    if got.startswith(b"HTTP/") and b"\r\n\r\n" in got:
                        break  # the status is all the check needs
        except PeerUnavailable:
            pass
        finally:
            await anyio.aclose_forcefully(stream)
        return got

    async def _hoard(self, transport: Any, address: str, protocol: str) -> list[Any]:
        """Open ``hoard`` connections to ``address``, each with the first bytes of a
        request; return the ones the server accepted."""
        start = (
            b"GET / HTTP/1.1\r\n" if protocol == "http" else _HEADER.pack(b"DS", 1, 1, 0, 5, 0, 0)
        )
        held = []
        for _ in range(self.config.hoard):
            try:
                stream = await transport.connect(address, timeout=5.0)
            except PeerUnavailable:
                continue
            try:
                with connection_errors("stranger"):
                    await stream.send(start)
            except PeerUnavailable:
                await anyio.aclose_forcefully(stream)
                continue
            held.append(stream)
        return held

    async def _release(self, held: list[Any]) -> None:
        """Hold the hoarded connections for ``hoard_seconds``, then close them."""
        try:
            await anyio.sleep(self.config.hoard_seconds)
        finally:
            for stream in held:
                await anyio.aclose_forcefully(stream)

    async def _wrong_auth(self, transport: Any, address: str, rng: random.Random) -> None:
        proof = rng.choice(
            [rng.randbytes(32).hex().encode(), b"\\u00e9", b"\\ud800", b"12", b"null", b"[[[]]]"]
        )
        quoted = proof if proof[:1] in (b"1", b"n", b"[") else b'"' + proof + b'"'
        await self._unproved(transport, address, rng, b'{"proof":' + quoted + b"}")

    async def _forge(self, transport: Any, address: str, rng: random.Random) -> None:
        origin = Member(HOST, f"{HOST}:1", incarnation=1, meta=dict(self.config.forged_meta))
        name, body, payload = wire.encode_body(Gossip(origin))
        meta = wire.dumps({"call": rng.randbytes(8).hex(), "body": body})
        request = b"".join(Frame(Kind.REQUEST, 1, name, meta, payload).encode())
        await self._unproved(transport, address, rng, b'{"proof":"00"}', then=request)

    async def _forge_entry(self, transport: Any, address: str, rng: random.Random) -> None:
        try:
            stream = await transport.connect(address, timeout=5.0)
        except PeerUnavailable:
            return
        decoder = FrameDecoder(DEFAULT_MAX_FRAME)

        async def call(msg_id: int, request: Any) -> Any:
            name, body, payload = wire.encode_body(request)
            meta = wire.dumps({"call": rng.randbytes(8).hex(), "body": body})
            await stream.send(b"".join(Frame(Kind.REQUEST, msg_id, name, meta, payload).encode()))
            frame = await read_frame(stream, decoder)
            if frame.kind is not Kind.RESPONSE:
                return None  # refused (the proof was checked) or an error
            return wire.decode_body(frame.name, wire.loads(frame.meta)["body"], frame.payload)

        epoch = 1 << 40
        try:
            with anyio.move_on_after(self.config.answer_window), connection_errors("stranger"):
                await stream.send(_hello(rng))
                await read_frame(stream, decoder)  # the HELLO_ACK
                await stream.send(_frame(_AUTH, b"auth", b'{"proof":"00"}'))
                probe = Append.build(
                    epoch=epoch, hop=0, holder=HOST, prev_index=1 << 40, prev_epoch=0,
                    commit=0, token=False, entries=(),
                )  # fmt: skip
                reply = await call(1, probe)
                if not isinstance(reply, AppendReply) or reply.ok:
                    return
                last = reply.conflict_index - 1
                forged = Entry(epoch, "forged", b"no one submitted this")
                for prev_epoch in range(64):  # the epoch of the member's last entry
                    append = Append.build(
                        epoch=epoch, hop=0, holder=HOST, prev_index=last,
                        prev_epoch=prev_epoch, commit=last + 1, token=False, entries=[forged],
                    )  # fmt: skip
                    reply = await call(2 + prev_epoch, append)
                    if not isinstance(reply, AppendReply) or reply.ok:
                        return
        except (PeerUnavailable, FrameError):
            pass
        finally:
            await anyio.aclose_forcefully(stream)

    async def _unproved(
        self, transport: Any, address: str, rng: random.Random, auth: bytes, then: bytes = b""
    ) -> None:
        """A HELLO, an AUTH frame with meta ``auth`` that proves nothing, then ``then``;
        read whatever comes back until the server hangs up (or a while passes)."""
        try:
            stream = await transport.connect(address, timeout=5.0)
        except PeerUnavailable:
            return
        try:
            with anyio.move_on_after(self.config.answer_window), connection_errors("stranger"):
                await stream.send(_hello(rng))
                await stream.receive()  # the HELLO_ACK (or an HTTP error)
                await stream.send(_frame(_AUTH, b"auth", auth) + then)
                while True:
                    await stream.receive()
        except PeerUnavailable:
            pass
        finally:
            await anyio.aclose_forcefully(stream)

    async def _drip(self, transport: Any, address: str, protocol: str, rng: random.Random) -> None:
        if protocol == "http":
            data = f"GET {rng.choice(self.config.http_paths)} HTTP/1.1\r\nHost: node\r\n".encode()
        else:
            data = _hello(rng)
        try:
            stream = await transport.connect(address, timeout=5.0)
        except PeerUnavailable:
            return
        try:
            with connection_errors("stranger"):
                for byte in data[: self.config.drip_bytes]:
                    await stream.send(bytes([byte]))
                    await anyio.sleep(self.config.drip_interval)
        except PeerUnavailable:
            pass  # the server hung up on the slow client, as it should
        finally:
            await anyio.aclose_forcefully(stream)

    # -- checks ------------------------------------------------------------------------------

    async def _probe(
        self, transport: Any, address: str, protocol: str | None, rng: random.Random
    ) -> str | None:
        """Which protocol answers a fresh connection at ``address`` (None: nobody answered)."""
        if protocol == "http":
            path = rng.choice(self.config.http_paths)
            request = f"GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".encode()
        elif protocol is None:
            # Unknown yet: a hello an RPC listener answers, ended by a blank line so an HTTP
            # listener sees a whole (bad) request head and answers at once rather than
            # waiting out its header timeout for the rest.
            request = _hello(rng) + b"\r\n\r\n"
        else:
            request = _hello(rng)
        try:
            stream = await transport.connect(address, timeout=self.config.probe_timeout)
        except PeerUnavailable:
            return None
        got = b""
        try:
            with anyio.move_on_after(self.config.probe_timeout), connection_errors("probe"):
                await stream.send(request)
                while len(got) < 12:
                    got += await stream.receive()
                while got[9:12] == b"503" and b"too many" not in got and len(got) < 4096:
                    got += await stream.receive()  # a refusal for a full server says so
        except PeerUnavailable:
            pass
        finally:
            await anyio.aclose_forcefully(stream)
        if got.startswith(b"DS"):
            return "rpc"
        if got.startswith(b"HTTP/") and got[9:12] == b"503":
            return "http:full" if b"too many connections" in got else "http"
        if got.startswith(b"HTTP/"):
            return "http:500" if got[9:12] == b"500" else "http"
        return "other" if got else None

    async def _check_served(
        self,
        sim: Simulation,
        transport: Any,
        node: str,
        incarnation: int,
        address: str,
        rng: random.Random,
        attack: str,
    ) -> None:
        crashes = sim.trace.counts.get("conn.crash", 0)
        if crashes > self._crashes:
            self._crashes = crashes
            sim.violation(
                f"an exception escaped a connection handler while the stranger attacked "
                f"{node} ({attack}); see conn.crash in the trace and the log (-v)",
                check=STRANGER_CRASH,
            )
        protocol = self._protocol[address]
        answered = await self._probe(transport, address, protocol, rng)

        def same_node() -> bool:
            # Still the process that was attacked: then its listener must still serve (a
            # crash or restart in between excuses a failed probe, nothing else does).
            if node not in sim.nodes:  # a host of ``also``: unless it closed the listener
                return address in sim.net.listening(node)
            current = sim.nodes[node]
            return current.up and current.incarnation == incarnation

        if answered == "http:500":
            sim.violation(
                f"{node} answered a plain request with a 500 after a {attack} attack",
                check=STRANGER_500,
            )
        elif answered != protocol and same_node():
            sim.violation(
                f"{node}'s listener {address} did not serve a fresh connection after the "
                f"stranger's {attack} attack (got {answered or 'nothing'})",
                check=STRANGER_SERVED,
            )
