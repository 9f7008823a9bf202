"""Issue 13's reproduction, against real processes: one unauthenticated RPC frame whose JSON
meta is 50,000 ``[`` then 50,000 ``]`` used to end a node or the gateway (exit status 1)."""

from __future__ import annotations

import pytest

from tests.hostile.processes import Service, raw_frame, rpc_listener_answers, send_and_wait_close

NESTED = b"[" * 50_000 + b"]" * 50_000
FRAME = raw_frame(1, b"hello", NESTED)  # exactly the issue's bytes: HELLO, msg 0, "hello"


def test_the_frame_is_the_one_from_the_issue() -> None:
    import struct

    m = NESTED
    assert struct.pack(">2sBBQHII", b"DS", 1, 1, 0, 5, len(m), 0) + b"hello" + m == FRAME


@pytest.mark.parametrize("target", ["node", "gateway"])
def test_one_nested_frame_does_not_end_the_process(serving: Service, target: str) -> None:
    address = serving.node_rpc[0] if target == "node" else serving.gateway_rpc
    proc = serving.nodes[0] if target == "node" else serving.gateway
    assert proc is not None
    send_and_wait_close(address, FRAME)  # the process closes that one connection
    assert proc.poll() is None, f"{proc.spec.name} died:\n{proc.log_tail(30)}"
    assert rpc_listener_answers(address), "the RPC listener still accepts and answers"
