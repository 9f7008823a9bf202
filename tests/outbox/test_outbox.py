"""Outbox relay and inbox: units, then two nodes on the simulated network."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
import attrs
import pytest

from dspot.disk import Disk, LocalDisk, SimDisk, Transaction
from dspot.env import NodeEnv
from dspot.outbox import (
    Backoff,
    Inbox,
    InboxConfig,
    InboxMessage,
    Outbox,
    OutboxConfig,
    OutboxMechanism,
)
from dspot.rpc import RpcNode
from dspot.testing import run_with_mock_clock, wait_until
from dspot.transport import SimNetwork


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(random.Random(1), base=0.1, cap=1.0)
    delays = [b.failed() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 1.0 for d in delays) and delays[-1] >= 0.5
    b.succeeded()
    assert b.failed() <= 0.1


class Node:
    def __init__(self, net: SimNetwork, name: str, disk: SimDisk | None = None) -> None:
        self.name = name
        self.disk = disk or SimDisk(random.Random(name))
        self.env = NodeEnv(name, net.transport(name), self.disk, random.Random(name))
        self.applied: list[tuple[str, bytes]] = []


def _record(tx: Transaction, message: InboxMessage) -> None:
    tx.execute("INSERT INTO got (id, body) VALUES (?, ?)", (message.id, message.body))


async def _got(disk: SimDisk) -> list[bytes]:
    rows = await disk.db.execute("SELECT body FROM got ORDER BY rowid", sync=False)
    return [bytes(r[0]) for r in rows]


@attrs.frozen
class Pair:
    """Sender ``a`` and receiver ``b`` on one simulated network, both serving RPC; ``b``'s
    inbox runs in ``tg`` and records every ``note`` in its table ``got``."""

    net: SimNetwork
    a: Node
    b: Node
    rpc_a: RpcNode
    tg: anyio.abc.TaskGroup


@contextlib.asynccontextmanager
async def _pair(
    seed: int,
    effect: Callable[[Transaction, InboxMessage], None] = _record,
    *,
    dedupe: bool = True,
    sender_disk: Disk | None = None,
) -> AsyncIterator[Pair]:
    """A :class:`Pair` whose inbox applies ``effect`` (with ``dedupe`` of redeliveries or
    without); ``a`` writes to ``sender_disk`` if given (a real disk: its writes run in
    worker threads)."""
    net = SimNetwork(random.Random(seed))
    a, b = Node(net, "a"), Node(net, "b")
    if sender_disk is not None:
        a.env = NodeEnv("a", net.transport("a"), sender_disk, random.Random("a"))
    if not dedupe:
        b.env.disabled = frozenset({OutboxMechanism.INBOX_DEDUPE})
    await b.disk.db.executescript("CREATE TABLE got (id TEXT, body BLOB)")
    async with (
        RpcNode(a.env, listen="a:1") as rpc_a,
        RpcNode(b.env, listen="b:1") as rpc_b,
        anyio.create_task_group() as tg,
    ):
        inbox = Inbox(b.env, rpc_b)
        inbox.handle("note", effect)
        await tg.start(inbox.run)
        yield Pair(net, a, b, rpc_a, tg)
        tg.cancel_scope.cancel()


def test_messages_commit_with_the_transaction_and_arrive_in_order_once() -> None:
    async def main() -> None:
        async with _pair(1) as pair:
            a, b, tg = pair.a, pair.b, pair.tg
            outbox = Outbox(a.env, pair.rpc_a, None, OutboxConfig(batch=3))
            await outbox.open()
            # A rolled-back transaction takes its message with it.
            with pytest.raises(RuntimeError):
                async with a.disk.db.transaction() as tx:
                    outbox.add(tx, "b:1", "note", b"never")
                    raise RuntimeError("rollback")
            for i in range(10):
                async with a.disk.db.transaction(sync=i % 2 == 0) as tx:
                    outbox.add(tx, "b:1", "note", f"m{i}".encode())
            assert (await outbox.stats()).pending == 10
            await tg.start(outbox.run)
            await anyio.sleep(2)
            assert await _got(b.disk) == [f"m{i}".encode() for i in range(10)]
            stats = await outbox.stats()
            assert stats.pending == 0 and stats.delivered == 10 and stats.oldest_age is None

    run_with_mock_clock(main)


def test_relay_retries_through_a_partition_and_resumes_after_a_crash() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(2))
        a, b = Node(net, "a"), Node(net, "b")
        await b.disk.db.executescript("CREATE TABLE got (id TEXT, body BLOB)")
        async with RpcNode(b.env, listen="b:1") as rpc_b, anyio.create_task_group() as tg:
            inbox = Inbox(b.env, rpc_b)
            inbox.handle("note", _record)
            await tg.start(inbox.run)
            net.partition([["a"], ["b"]])
            with anyio.CancelScope() as sender:
                async with (
                    RpcNode(a.env, listen="a:1") as rpc_a,
                    anyio.create_task_group() as inner,
                ):
                    outbox = Outbox(a.env, rpc_a, None, OutboxConfig(call_timeout=0.5))
                    await outbox.open()
                    for i in range(5):
                        async with a.disk.db.transaction() as tx:
                            outbox.add(tx, "b:1", "note", f"m{i}".encode())
                    await inner.start(outbox.run)
                    await anyio.sleep(3)
                    stats = await outbox.stats()
                    assert stats.pending == 5 and stats.retries >= 2
                    assert stats.oldest_age is not None and stats.oldest_age >= 3
                    sender.cancel()
            # The sender crashes; its messages are on disk and the relay picks them up.
            net.crash("a")
            a.disk.crash()
            net.heal()
            net.restart("a")
            a2 = Node(net, "a", a.disk)
            async with RpcNode(a2.env, listen="a:1") as rpc_a2:
                outbox2 = Outbox(a2.env, rpc_a2)
                await tg.start(outbox2.run)
                await anyio.sleep(5)
                assert (await outbox2.stats()).pending == 0
            assert await _got(b.disk) == [f"m{i}".encode() for i in range(5)]
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


@pytest.mark.parametrize("dedupe", [True, False])
def test_inbox_applies_a_redelivered_message_once(dedupe: bool) -> None:
    async def main() -> None:
        async with _pair(3, dedupe=dedupe) as pair:
            a, b, tg, rpc_a = pair.a, pair.b, pair.tg, pair.rpc_a
            outbox = Outbox(a.env, rpc_a)
            await outbox.open()
            async with a.disk.db.transaction() as tx:
                outbox.add(tx, "b:1", "note", b"once")
            # The acknowledgement is lost: the relay's delete never becomes durable.
            with anyio.CancelScope() as first:
                async with anyio.create_task_group() as inner:
                    await inner.start(outbox.run)
                    await anyio.sleep(1)
                    first.cancel()
            a.disk.crash()
            # ... so a new relay (after the crash) sends it again.
            outbox2 = Outbox(a.env, rpc_a)
            await tg.start(outbox2.run)
            await anyio.sleep(1)
            got = await _got(b.disk)
            assert got == ([b"once"] if dedupe else [b"once", b"once"])

    run_with_mock_clock(main)


def test_inbox_forgets_ids_after_the_window() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(4))
        b = Node(net, "b")
        async with RpcNode(b.env, listen="b:1") as rpc_b, anyio.create_task_group() as tg:
            inbox = Inbox(b.env, rpc_b, InboxConfig(window=10.0, expire_interval=1000))
            await tg.start(inbox.run)
            async with b.disk.db.transaction() as tx:
                now = b.env.clock.wall()
                tx.execute("INSERT INTO inbox VALUES ('old', 'a', ?)", (now - 20,))
                tx.execute("INSERT INTO inbox VALUES ('new', 'a', ?)", (now - 5,))
            assert await inbox.expire() == 1
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_a_failing_effect_rolls_back_its_batch_and_is_retried() -> None:
    async def main() -> None:
        failures = [2]

        def flaky(tx: Transaction, message: InboxMessage) -> None:
            _record(tx, message)
            if message.body == b"m1" and failures[0]:
                failures[0] -= 1
                raise ValueError("not yet")

        async with _pair(5, flaky) as pair:
            a, b, tg = pair.a, pair.b, pair.tg
            outbox = Outbox(a.env, pair.rpc_a, None, OutboxConfig(backoff_cap=0.5))
            await outbox.open()
            async with a.disk.db.transaction() as tx:
                for i in range(3):
                    outbox.add(tx, "b:1", "note", f"m{i}".encode())
                outbox.add(tx, "nowhere", "note", b"lost")  # not an address: retried, kept
            await tg.start(outbox.run)
            await anyio.sleep(3)
            assert await _got(b.disk) == [b"m0", b"m1", b"m2"]
            stats = await outbox.stats()
            assert stats.retries >= 3
            assert stats.by_destination == {"nowhere": 1}

    run_with_mock_clock(main)


def test_a_message_added_in_a_write_worker_thread_wakes_the_relay(tmp_path: Path) -> None:
    """``Database.write`` runs its function in a worker thread on a real disk: a message
    added there wakes the waiting relay (through the event loop) and is delivered long
    before the relay's next poll."""

    async def main() -> None:
        disk = await LocalDisk.open(tmp_path / "a")
        try:
            async with _pair(6, sender_disk=disk) as pair:
                config = OutboxConfig(poll_interval=600.0)
                outbox = Outbox(pair.a.env, pair.rpc_a, None, config)
                await pair.tg.start(outbox.run)
                await anyio.sleep(0.05)  # the relay has looked and waits to be woken
                threads: list[int] = []

                def write(tx: Transaction) -> None:
                    threads.append(threading.get_ident())
                    outbox.add(tx, "b:1", "note", b"from a worker")

                await disk.db.write(write)
                assert threads != [threading.get_ident()]  # it did run in a worker thread
                await wait_until(lambda: outbox._delivered == 1, timeout=10)
                assert await _got(pair.b.disk) == [b"from a worker"]
        finally:
            await disk.aclose()

    anyio.run(main, backend="trio")
