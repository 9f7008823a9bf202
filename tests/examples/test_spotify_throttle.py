"""Throttling what is expensive or guessable: failed sign-ins per username and per client
address (429 with Retry-After, recovery), the bound on concurrent password hashes, and the
bound on one user's concurrent uploads. Virtual time throughout: nothing sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import anyio
import attrs
import pytest
import trio
import trio.testing
from dspot_spotify.throttle import (
    HashersBusy,
    LoginThrottle,
    PasswordHasher,
    ThrottleConfig,
    Throttled,
    ThrottlePolicy,
    UploadSlots,
)

from dspot.http import HttpClient
from dspot.testing import run_with_mock_clock

from .simcluster import CONFIG, cluster, login, url

PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def throttle(**kw: Any) -> tuple[LoginThrottle, FakeClock]:
    clock = FakeClock()
    config = ThrottleConfig(
        username=ThrottlePolicy(free=3, base=1.0, cap=8.0),
        address=ThrottlePolicy(free=5, base=1.0, cap=8.0),
        **kw,
    )
    return LoginThrottle(config, clock), clock


def wait_of(t: LoginThrottle, user: str, addr: str) -> float:
    try:
        t.check(user, addr)
    except Throttled as e:
        return e.retry_after
    return 0.0


def test_backoff_doubles_after_the_free_failures_up_to_the_cap() -> None:
    t, clock = throttle()
    waits = []
    for _ in range(8):
        assert wait_of(t, "bob", "1.2.3.4") == 0.0  # each attempt waits its turn
        t.failed("bob", "1.2.3.4")
        waits.append(wait_of(t, "bob", "1.2.3.4"))
        clock.t += waits[-1]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]
    assert t.refused == 5


def test_username_and_address_are_separate_keys() -> None:
    t, _ = throttle()
    for _ in range(4):
        t.failed("Bob", "1.2.3.4")
    assert wait_of(t, "bob", "5.6.7.8") > 0  # usernames compare case-insensitively
    assert wait_of(t, "carol", "5.6.7.8") == 0  # someone else elsewhere: unaffected
    assert wait_of(t, "carol", "1.2.3.4") == 0  # the address has 20-ish free failures
    for i in range(2):
        t.failed(f"user{i}", "1.2.3.4")  # 6 failures from one address, over several users
    assert wait_of(t, "carol", "1.2.3.4") > 0
    assert wait_of(t, "carol", "5.6.7.8") == 0


def test_success_clears_the_username_but_not_the_address() -> None:
    t, clock = throttle()
    for _ in range(6):
        t.failed("bob", "1.2.3.4")
    clock.t += 100
    t.succeeded("bob")
    t.failed("bob", "9.9.9.9")
    assert wait_of(t, "bob", "9.9.9.9") == 0  # count restarted from one
    t.failed("x", "1.2.3.4")
    assert wait_of(t, "y", "1.2.3.4") > 0  # the address kept its count


def test_quiet_keys_are_forgotten_and_memory_is_bounded() -> None:
    t, clock = throttle(forget_after=60.0, max_keys=10)
    for _ in range(5):
        t.failed("bob", "1.2.3.4")
    clock.t += 61
    t.failed("bob", "1.2.3.4")
    assert wait_of(t, "bob", "1.2.3.4") == 0  # a first failure again
    for i in range(50):
        t.failed(f"u{i}", f"10.0.0.{i}")
    assert len(t) == 10


def test_password_hashes_are_bounded_and_refused_past_the_queue() -> None:
    started: list[str] = []
    release = anyio.Event()

    async def offload(fn: Callable[..., Any], /, *args: Any, kind: str = "", size: int = 0) -> Any:
        started.append(kind)
        await release.wait()
        return fn(*args)

    async def main() -> None:
        hasher = PasswordHasher(offload, limit=2, queue=1)
        results: list[bool] = []

        async def check() -> None:
            results.append(await hasher.verify("pw", "not a hash"))

        async with trio.open_nursery() as n:
            for _ in range(3):
                n.start_soon(check)
            await trio.testing.wait_all_tasks_blocked()
            assert started == ["scrypt", "scrypt"]  # two run, one waits for a slot
            with pytest.raises(HashersBusy), trio.fail_after(1):  # at once, not queued
                await hasher.verify("pw", "not a hash")
            assert hasher.busy_refusals == 1
            release.set()
        assert results == [False, False, False]

    trio.run(main)


def test_a_flood_never_takes_the_last_hash_slot() -> None:
    started: list[str] = []
    release = anyio.Event()

    async def offload(fn: Callable[..., Any], /, *args: Any, kind: str = "", size: int = 0) -> Any:
        started.append(args[0])
        await release.wait()
        return fn(*args)

    async def main() -> None:
        hasher = PasswordHasher(offload, limit=3, queue=10)
        async with trio.open_nursery() as n:
            for i in range(5):
                n.start_soon(partial(hasher.verify, f"flood{i}", "x", suspicious=True))
            await trio.testing.wait_all_tasks_blocked()
            assert len(started) == 2  # two of three slots; three wait
            assert all(name.startswith("flood") for name in started)
            n.start_soon(hasher.verify, "mine", "x")
            await trio.testing.wait_all_tasks_blocked()
            assert started[-1] == "mine"  # at once, ahead of the waiting flood
            release.set()
        assert len(started) == 6

    trio.run(main)


def test_suspicious_attempts() -> None:
    t, _ = throttle()
    assert not t.suspicious("bob", "1.2.3.4")
    t.failed("bob", "1.2.3.4")
    assert t.suspicious("bob", "5.6.7.8")  # the username failed lately
    assert not t.suspicious("carol", "1.2.3.4")  # one failure from an address: not yet
    for i in range(4):
        t.failed(f"u{i}", "1.2.3.4")
    assert t.suspicious("carol", "1.2.3.4")  # the address is past its free failures
    t.succeeded("bob")
    assert not t.suspicious("bob", "5.6.7.8")


def test_upload_slots_per_user() -> None:
    slots = UploadSlots(per_user=1)
    with slots.slot("u1"):
        with pytest.raises(Throttled), slots.slot("u1"):
            pass
        with slots.slot("u2"):
            assert slots.running("u2") == 1
    assert slots.running("u1") == 0
    with slots.slot("u1"):
        pass


async def _login(client: HttpClient, username: str, password: str) -> tuple[int, Any, str | None]:
    resp = await client.post(
        url("n1", "/api/auth/login"), json={"username": username, "password": password}
    )
    return resp.status, await resp.json(dict), resp.headers.get("retry-after")


def test_login_flood_gets_429_others_sign_in_and_the_username_recovers() -> None:
    async def main() -> None:
        async with cluster() as c:
            await login(c, "n1")  # alice
            assert (await c.register("n1", "bob", PASSWORD)).status == 201
            async with (
                HttpClient(connect=c.net.transport("attacker").connect) as attacker,
                HttpClient(connect=c.net.transport("other").connect) as other,
            ):
                free = CONFIG.throttle.username.free
                for _ in range(free):
                    status, _, _ = await _login(attacker, "bob", "wrong password!")
                    assert status == 401
                status, body, retry = await _login(attacker, "bob", "wrong password!")
                assert status == 401  # the first failure past the free ones: counted...
                status, body, retry = await _login(attacker, "bob", "wrong password!")
                assert status == 429, body  # ...and now bob must wait
                assert body["status"] == 429 and "too many failed sign-ins" in body["detail"]
                assert retry is not None and int(retry) >= 1
                # bob's right password is refused too while his username waits
                assert (await _login(other, "bob", PASSWORD))[0] == 429
                # someone else, elsewhere, signs in as ever
                assert (await _login(other, "alice", PASSWORD))[0] == 200
                await anyio.sleep(int(retry))  # virtual time
                status, body, _ = await _login(other, "bob", PASSWORD)
                assert status == 200, body
                # and the success cleared bob's count: a typo now costs no wait
                assert (await _login(other, "bob", "a typo, again"))[0] == 401
                assert (await _login(other, "bob", PASSWORD))[0] == 200
            assert c.nodes["n1"].signin.throttle.refused == 2

    run_with_mock_clock(main)


def test_subsonic_failures_are_throttled_with_retry_after() -> None:
    async def main() -> None:
        async with cluster() as c:
            await login(c, "n1")
            async with HttpClient(connect=c.net.transport("attacker").connect) as attacker:

                async def ping(password: str) -> tuple[int, str | None]:
                    resp = await attacker.get(
                        url("n1", f"/rest/ping?u=alice&p={password}&v=1.16.1&c=t&f=json")
                    )
                    body = await resp.json(dict)
                    error = body["subsonic-response"].get("error", {"code": -1})
                    return error["code"], resp.headers.get("retry-after")

                for _ in range(CONFIG.throttle.username.free + 1):
                    assert await ping("wrongwrong") == (40, None)
                code, retry = await ping("wrongwrong")
                assert code == 0 and retry is not None  # the generic error, Retry-After
                await anyio.sleep(int(retry))
                assert (await ping(PASSWORD.replace(" ", "%20")))[0] == -1  # ok

    run_with_mock_clock(main)


def test_one_user_runs_a_bounded_number_of_uploads(song_file: bytes) -> None:
    config = attrs.evolve(CONFIG, throttle=ThrottleConfig(uploads_per_user=1))

    async def main() -> None:
        async with cluster(config=config) as c:
            auth = await login(c, "n1")
            go_on = anyio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield song_file[:1000]
                await go_on.wait()
                yield song_file[1000:]

            answers: list[int] = []

            async def first() -> None:
                resp = await c.client.post(
                    url("n1", "/api/songs?filename=a.flac"), body=slow_body(), headers=auth
                )
                answers.append(resp.status)
                await resp.read()

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await anyio.sleep(1)
                async with HttpClient(connect=c.net.transport("c2").connect) as c2:
                    resp = await c2.post(
                        url("n1", "/api/songs?filename=b.flac"), body=song_file, headers=auth
                    )
                    body = await resp.json(dict)
                    assert resp.status == 429, body
                    assert "uploads at once" in body["detail"]
                    assert resp.headers.get("retry-after") == "1"
                    go_on.set()
            assert answers == [201]
            resp = await c.client.post(
                url("n1", "/api/songs?filename=b.flac"), body=song_file, headers=auth
            )
            assert resp.status in (200, 201)  # the slot is free again (same bytes: 200)
            await resp.read()

    run_with_mock_clock(main)
