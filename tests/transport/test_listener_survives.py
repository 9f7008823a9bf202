"""No exception from one connection reaches the task group that accepts the others."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import pytest

from tests.conftest import Net


class Boom(Exception):
    pass


def test_a_handler_that_raises_costs_only_its_connection(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    served: list[bytes] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        data = await stream.receive()
        if data == b"raise":
            raise Boom("a bug in one connection's handler")
        if data == b"group":
            async with anyio.create_task_group() as tg:
                tg.start_soon(_raise_in_task)
        served.append(data)
        await stream.send(b"served " + data)
        await stream.aclose()

    async def main() -> None:
        server = net.transport("server")
        listener = await server.listen(net.address("server"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            client = net.transport("client")
            for message in (b"raise", b"group", b"ok"):
                stream = await client.connect(listener.address)
                await stream.send(message)
                got = b""
                with anyio.fail_after(5):
                    try:
                        while True:
                            got += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        pass  # the failed connection is closed, not left hanging
                await stream.aclose()
                if message == b"ok":
                    assert got == b"served ok"
            await listener.aclose()
            tg.cancel_scope.cancel()

    with caplog.at_level(logging.ERROR, logger="dspot.transport"):
        net.run(main)
    assert served == [b"ok"]
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert len(logged) == 2, "each failure is logged once, with its traceback"


async def _raise_in_task() -> None:
    raise Boom("a bug in a task of the handler")
