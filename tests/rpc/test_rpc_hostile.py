"""A stranger's frames: whatever arrives, it closes (at most) that one connection.

The first test is the one-frame crash of issue 13: 50,000 ``[`` then 50,000 ``]`` as the
meta of an unauthenticated HELLO made ``json.loads`` raise ``RecursionError``, which
escaped the handshake and the listener's task group and ended the process.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import pytest

from dspot import wire
from dspot._json import JsonRejected, JsonTooDeep, loads_limited, nesting_exceeds
from dspot.errors import FrameError
from dspot.rpc import ClientHandshake, RpcMechanism, RpcNode
from dspot.wire import FrameDecoder, Kind
from tests.conftest import Net
from tests.helpers.rpc import Echo, make_env, serve_test_handlers

NESTED = b"[" * 50_000 + b"]" * 50_000


def raw_frame(kind: Kind, name: bytes, meta: bytes, payload: bytes = b"") -> bytes:
    """A frame built by hand, as a stranger would (no checks on what goes in)."""
    head = wire.HEADER.pack(b"DS", 1, kind, 0, len(name), len(meta), len(payload))
    return head + name + meta + payload


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    got = b""
    with anyio.fail_after(10):
        try:
            while True:
                got += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass
    await anyio.aclose_forcefully(stream)
    return got


async def handshake(stream: anyio.abc.ByteStream, secret: bytes) -> FrameDecoder:
    """Complete the client side of the handshake on a raw stream (the library's proofs)."""
    client = ClientHandshake(secret, "raw", "boot", "00" * 16)
    await stream.send(b"".join(client.hello().encode()))
    decoder = FrameDecoder()
    while (frame := decoder.next_frame()) is None:
        decoder.feed(await stream.receive())
    auth, _ = client.answer(frame, "server")
    await stream.send(b"".join(auth.encode()))
    return decoder


HOSTILE_HANDSHAKES = {
    "nested_hello": raw_frame(Kind.HELLO, b"hello", NESTED),
    "nested_unbalanced": raw_frame(Kind.HELLO, b"hello", b"[" * 3000),
    "oversize_hello": raw_frame(Kind.HELLO, b"hello", b'{"node":"' + b"x" * 5000 + b'"}'),
    "hello_not_object": raw_frame(Kind.HELLO, b"hello", b"[1,2]"),
    "hello_bad_utf8": raw_frame(Kind.HELLO, b"hello", b'{"node":"\xff\xfe"}'),
    "hello_wrong_types": raw_frame(Kind.HELLO, b"hello", b'{"node":1,"boot":[],"nonce":{}}'),
    "hello_huge_int": raw_frame(Kind.HELLO, b"hello", b'{"nonce":' + b"9" * 3000 + b"}"),
    "hello_lone_surrogate": raw_frame(Kind.HELLO, b"hello", b'{"nonce":"\\ud800x"}'),
    "request_first": raw_frame(Kind.REQUEST, b"test.echo", b'{"body":{"text":"x"}}'),
}


@pytest.mark.parametrize("frame", list(HOSTILE_HANDSHAKES.values()), ids=list(HOSTILE_HANDSHAKES))
def test_hostile_frame_before_the_handshake_closes_only_that_connection(
    net: Net, frame: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        env = make_env(net, "a")
        async with (
            # A HELLO that parses gets its HELLO_ACK, then waits for an AUTH that never comes.
            RpcNode(env, listen=net.address("a"), secret=b"s", handshake_timeout=0.5) as server,
            RpcNode(make_env(net, "b"), secret=b"s") as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            assert (await client.call(server.address, Echo("before"))).text == "before"
            stream = await net.transport("raw").connect(server.address)
            await stream.send(frame)
            await read_until_closed(stream)
            assert (await client.call(server.address, Echo("after"))).text == "after"

    with caplog.at_level(logging.WARNING):
        net.run(main)
    assert not [r for r in caplog.records if r.exc_info], "a hostile frame is not a bug"


@pytest.mark.parametrize(
    "proof",
    [b'"\\u00e9"', b'"\\ud800"', b"123", b"null", b'["a"]', b'"' + b"a" * 64 + b'"'],
    ids=["non_ascii", "surrogate", "number", "null", "list", "wrong"],
)
def test_hostile_auth_is_refused_and_the_server_keeps_serving(
    net: Net, proof: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(net, "a"), listen=net.address("a"), secret=b"s") as server,
            RpcNode(make_env(net, "b"), secret=b"s") as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            stream = await net.transport("raw").connect(server.address)
            await stream.send(b"".join(ClientHandshake(None, "x", "y", "z").hello().encode()))
            await stream.send(raw_frame(Kind.AUTH, b"auth", b'{"proof":' + proof + b"}"))
            answer = await read_until_closed(stream)
            assert b"wrong cluster secret" in answer
            assert (await client.call(server.address, Echo("after"))).text == "after"

    with caplog.at_level(logging.WARNING):
        net.run(main)
    assert not [r for r in caplog.records if r.exc_info], "a wrong proof is not a bug"


@pytest.mark.parametrize(
    "meta",
    [NESTED, b'{"body":' + b"[" * 100 + b"]" * 100 + b"}", b'{"body":{"text":5}}', b"\xff"],
    ids=["nested", "deep_body", "wrong_type", "not_utf8"],
)
def test_hostile_request_after_the_handshake_gets_an_error(net: Net, meta: bytes) -> None:
    async def main() -> None:
        async with RpcNode(make_env(net, "a"), listen=net.address("a"), secret=b"s") as server:
            serve_test_handlers(server)
            assert server.address is not None
            stream = await net.transport("raw").connect(server.address)
            decoder = await handshake(stream, b"s")
            await stream.send(raw_frame(Kind.REQUEST, b"test.echo", meta))
            while (frame := decoder.next_frame()) is None:
                decoder.feed(await stream.receive())
            assert frame.kind is Kind.ERROR
            assert wire.loads(frame.meta)["code"] == "bad_request"
            # the same connection still serves a good request
            await stream.send(raw_frame(Kind.REQUEST, b"test.echo", b'{"body":{"text":"ok"}}'))
            while (frame := decoder.next_frame()) is None:
                decoder.feed(await stream.receive())
            assert frame.kind is Kind.RESPONSE
            await stream.aclose()

    net.run(main)


def test_the_pre_authentication_cap_is_lifted_after_the_handshake(simnet: Net) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(simnet, "a"), listen="a:1", secret=b"s") as server,
            RpcNode(make_env(simnet, "b"), secret=b"s") as client,
        ):
            serve_test_handlers(server)
            big = "x" * (4 * wire.PREAUTH_MAX_FRAME)
            assert (await client.call("a:1", Echo(big))).text == big

    simnet.run(main)


def test_frame_meta_decoding_raises_only_frame_error() -> None:
    for meta in [NESTED, b"[" * 70, b"\xff", b"9" * 5000, b'{"a":', b"\x00"]:
        with pytest.raises(FrameError):
            wire.loads(meta)
    assert wire.loads(b"[" * 64 + b"]" * 64) is not None
    for body in [{"text": 1}, {"text": ["a"]}, {}, {"text": None}]:
        with pytest.raises(FrameError):
            wire.decode_body("test.echo", body, b"")


@pytest.mark.parametrize(
    ("doc", "depth", "deeper"),
    [
        (b"[]", 1, False),
        (b"[[]]", 1, True),
        (b'["[[[[["]', 1, False),  # brackets inside strings do not count
        (b'["\\"[[[["]', 1, False),  # nor after an escaped quote
        (b'["\\\\", [[]]]', 2, True),  # an escaped backslash does not escape the quote
        (b'{"a":{"b":[{}]}}', 4, False),
        (b'{"a":{"b":[{}]}}', 3, True),
        (b"[" * 10, 5, True),
        (b"[" * 10, 20, False),  # unbalanced but shallow: the parser refuses it cheaply
        (b"[[]" * 10, 2, True),  # unbalanced: cannot be peeled
        (b"[]" * 1000, 1, False),  # wide, not deep
        ('["\u00e9[[[", {"\u20ac":[]}]'.encode(), 3, False),
        ('["\u00e9[[[", {"\u20ac":[]}]'.encode(), 2, True),
    ],
)
def test_nesting_scan(doc: bytes, depth: int, deeper: bool) -> None:
    assert nesting_exceeds(doc, depth) is deeper


def test_limited_json_turns_every_failure_into_one_error() -> None:
    with pytest.raises(JsonTooDeep):
        loads_limited(NESTED, max_depth=64)
    for bad in [b"\xff", b"[1,", b"9" * 5000, b"NaN x"]:
        with pytest.raises(JsonRejected):
            loads_limited(bad, max_depth=64)
    with pytest.raises(JsonRejected):
        loads_limited(b'"\\ud800x"', max_depth=4, reject_lone_surrogates=True)
    assert loads_limited(b'"\\ud83c\\udfb5"', max_depth=4, reject_lone_surrogates=True) == "🎵"
    assert loads_limited(b'"\\\\ud800"', max_depth=4, reject_lone_surrogates=True) == "\\ud800"


def test_an_unexpected_error_in_a_connection_costs_only_that_connection(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    # With the decode guard switched off, a deep HELLO raises RecursionError inside the
    # handshake: the connection's own guard must log it, trace it and close that connection.
    traced: list[tuple[str, dict[str, object]]] = []

    async def main() -> None:
        env = make_env(net, "a")
        env.disabled = frozenset({RpcMechanism.DECODE_GUARD})
        env.trace = lambda kind, **fields: traced.append((kind, fields))
        async with (
            RpcNode(env, listen=net.address("a"), secret=b"s") as server,
            RpcNode(make_env(net, "b"), secret=b"s") as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            stream = await net.transport("raw").connect(server.address)
            await stream.send(raw_frame(Kind.HELLO, b"hello", b"[" * 3000))
            await read_until_closed(stream)
            assert (await client.call(server.address, Echo("after"))).text == "after"

    with caplog.at_level(logging.ERROR, logger="test.a"):
        net.run(main)
    assert [kind for kind, _ in traced if kind == "conn.crash"] == ["conn.crash"]
    assert any(r.exc_info and r.exc_info[0] is RecursionError for r in caplog.records)


def test_a_stranger_gets_small_frames_only(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    hello = b'{"node":"' + b"x" * wire.PREAUTH_MAX_FRAME + b'","boot":"b","nonce":"n"}'

    async def main() -> None:
        async with RpcNode(make_env(net, "a"), listen=net.address("a"), secret=b"s") as server:
            assert server.address is not None
            stream = await net.transport("raw").connect(server.address)
            await stream.send(raw_frame(Kind.HELLO, b"hello", hello))
            assert await read_until_closed(stream) == b"", "no HELLO_ACK for an oversize HELLO"

    with caplog.at_level(logging.WARNING):
        net.run(main)
    assert any("4096-byte limit" in r.getMessage() for r in caplog.records)
