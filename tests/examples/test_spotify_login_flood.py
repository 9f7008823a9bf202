"""A login flood against three real node processes: a node's liveness (membership probes,
the token ring) must never wait behind a password hash.

Clients send wrong-password logins for one user to every node as fast as they are answered, with the
sign-in throttles opened wide so every attempt costs a real scrypt hash (the throttles have
their own tests). Meanwhile another user signs in with the right password and a third keeps
writing. Passing means no member was suspected or declared dead, the right password kept
working quickly, and writes kept committing at a steady rate.

The same flood against nodes built with :attr:`~dspot_spotify.config.Sabotage.HASH_ON_LOOP`
(scrypt back on the event loop, inside a transaction holding the database's writer lock, as
the service used to do) must trip the check: that is what shows the check can fail.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from typing import Final

import attrs
import pytest
from dspot_spotify.client import ApiError

from tests.helpers.processes import PASSWORD, ProcessCluster, retry_503

FLOOD_SECONDS: Final = 8.0
FLOODERS: Final = 8
WIDE_OPEN: Final = ("--login-failures", "1000000", "--address-failures", "1000000")
HASHES: Final = ("--hash-limit", "2")
"""Three nodes share this machine's cores: one hash slot each for the flood, one for others."""
LIVENESS_EVENT: Final = re.compile(r"membership\.(suspect|dead) ")
WORST_LAG: Final = re.compile(r"^dspot_event_loop_lag_seconds_worst (\S+)$", re.M)
LOGIN_WITHIN: Final = 1.0
"""Seconds a correct login may take during the flood on an idle machine; on a loaded one,
:data:`LOGIN_SLOWDOWN` times what it took just before the flood (the hash itself slows
down with everything else on the machine)."""
LOGIN_SLOWDOWN: Final = 8.0
MIN_WRITES: Final = 2 * FLOOD_SECONDS
"""Writes one client, writing one after another, must commit during the flood: about 2 a
second, where it commits some 20 a second through a flood that hashes off the loop. Since
members hear of commits at once, a write behind hashes that hold the writer lock still
commits now and then (in about 2 s), so this is a rate, not a mere "some did"."""


@attrs.define
class Outcome:
    attempts: int = 0
    statuses: dict[int, int] = attrs.field(factory=dict)
    logins: list[float] = attrs.field(factory=list)
    login_errors: list[str] = attrs.field(factory=list)
    writes: list[float] = attrs.field(factory=list)
    write_errors: list[str] = attrs.field(factory=list)
    liveness_events: list[str] = attrs.field(factory=list)
    login_before: float = 0.0
    worst_lag: dict[str, float] = attrs.field(factory=dict)
    """Each node's worst event-loop lag of the last minute after the flood (its /metrics)."""
    """The median correct login just before the flood (seconds)."""

    @property
    def login_bound(self) -> float:
        return max(LOGIN_WITHIN, LOGIN_SLOWDOWN * self.login_before)

    @property
    def healthy(self) -> bool:
        return (
            not self.liveness_events
            and not self.login_errors
            and max(self.logins, default=0.0) <= self.login_bound
            and not self.write_errors
            and len(self.writes) >= MIN_WRITES
        )


def _until_stopped(stop: threading.Event, step: Callable[[int], None]) -> Callable[[], None]:
    def loop() -> None:
        i = 0
        while not stop.is_set():
            step(i)
            i += 1

    return loop


def flood(processes: ProcessCluster, extra: tuple[str, ...]) -> Outcome:
    names = ["n1", "n2", "n3"]
    processes.start_nodes(names, quorum=True, extra=WIDE_OPEN + HASHES + extra)
    retry_503(lambda: processes.client("n1").register("alice", PASSWORD))
    registrar = processes.client("n2")
    retry_503(lambda: registrar.register("bob", PASSWORD))
    retry_503(lambda: registrar.register("carol", PASSWORD))  # whom the flood is after
    writer = processes.client("n1")
    writer.login("alice", PASSWORD)
    log_sizes = {n: len(processes.log(n)) for n in names}
    out = Outcome()
    lock = threading.Lock()
    stop = threading.Event()

    def attack(worker: int) -> Callable[[int], None]:
        client = processes.client(names[worker % 3], token=None)

        def step(i: int) -> None:
            try:
                status, _, _ = client.request(
                    "POST",
                    "/api/auth/login",
                    b'{"username": "carol", "password": "not carol\'s password"}',
                    {"content-type": "application/json"},
                )
            except OSError:
                status = 0
            with lock:
                out.attempts += 1
                out.statuses[status] = out.statuses.get(status, 0) + 1

        return step

    def sign_in(i: int) -> None:
        client = processes.client(names[i % 3])
        client.log_position = registrar.log_position  # bob is known there
        start = time.monotonic()
        try:
            client.login("bob", PASSWORD)
            out.logins.append(time.monotonic() - start)
        except (ApiError, OSError) as e:
            out.login_errors.append(f"{names[i % 3]}: {e}")
        time.sleep(0.25)

    def write(i: int) -> None:
        start = time.monotonic()
        try:
            writer.json("POST", "/api/playlists", {"name": f"flood {i}"}, (201,))
            out.writes.append(time.monotonic() - start)
        except (ApiError, OSError) as e:
            out.write_errors.append(str(e))

    threads = [
        threading.Thread(target=_until_stopped(stop, attack(w)), daemon=True)
        for w in range(FLOODERS)
    ]
    threads += [
        threading.Thread(target=_until_stopped(stop, sign_in), daemon=True),
        threading.Thread(target=_until_stopped(stop, write), daemon=True),
    ]
    for i in range(6):
        sign_in(i)
    out.login_before = statistics.median(out.logins)
    out.logins.clear()
    for t in threads:
        t.start()
    try:
        time.sleep(FLOOD_SECONDS)
    finally:
        stop.set()
        for t in threads:
            t.join(30.0)
    for n in names:
        _, _, metrics = processes.client(n).request("GET", "/metrics")
        m = WORST_LAG.search(metrics.decode())
        out.worst_lag[n] = float(m.group(1)) if m else -1.0
        tail = processes.log(n)[log_sizes[n] :]
        out.liveness_events += [
            f"{n}: {line}" for line in tail.splitlines() if LIVENESS_EVENT.search(line)
        ]
    return out


def describe(out: Outcome) -> str:
    return (
        f"{out.attempts} wrong logins {out.statuses}; correct logins {len(out.logins)}, max "
        f"{max(out.logins, default=0):.3f} s (bound {out.login_bound:.3f} s, "
        f"{out.login_before:.3f} s before the flood; all {[round(x, 2) for x in out.logins]}), "
        f"errors {out.login_errors[:3]}; "
        f"{len(out.writes)} writes, max {max(out.writes, default=0):.3f} s, errors "
        f"{out.write_errors[:3]}; liveness events {len(out.liveness_events)} "
        f"{out.liveness_events[:3]}; worst loop lag {out.worst_lag}"
    )


def test_a_login_flood_never_costs_a_member_its_liveness(processes: ProcessCluster) -> None:
    out = flood(processes, ())
    summary = describe(out)
    print(summary)
    assert out.statuses.get(401, 0) >= FLOODERS * FLOOD_SECONDS, summary  # a real flood
    assert set(out.statuses) == {401}, summary  # wide open: every attempt was hashed
    assert out.liveness_events == [], summary
    assert out.login_errors == [], summary
    assert max(out.logins) <= out.login_bound, summary
    assert out.write_errors == [] and len(out.writes) >= MIN_WRITES, summary


@pytest.mark.parametrize("sabotage", ["hash-on-loop"])
def test_the_flood_check_trips_when_hashes_block_the_loop(
    processes: ProcessCluster, sabotage: str
) -> None:
    out = flood(processes, ("--sabotage", sabotage))
    print(describe(out))
    assert not out.healthy, f"hashing on the loop went unnoticed: {describe(out)}"
