"""Bad input to the REST API gets a clear 4xx and changes nothing; the node keeps serving.

Each case here was a 500 (or a 10 s hold) before request bodies were read through the typed
classes and every number from a client was bounded: wrong JSON types stored as text, a lone
surrogate reaching SQLite, a deeply nested body overflowing the parser, huge page numbers
overflowing SQLite, a 5,000-digit log position, a forged token waiting for the log.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from dspot_spotify.api.wire import MAX_JSON_DEPTH, json_depth
from dspot_spotify.writer import LOG_POSITION_HEADER

from dspot.testing import run_with_mock_clock
from tests.examples.simcluster import CONFIG, Cluster, cluster, login, url


async def call(
    c: Cluster, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    resp = await c.client.request(
        method,
        url("n1", path),
        body=body,
        headers={"content-type": "application/json", **(headers or {})},
    )
    data = await resp.read()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data


@pytest.mark.parametrize("name", [b"123", b"null", b'["a"]', b"true", b"{}"])
def test_a_playlist_name_of_the_wrong_json_type_is_refused(name: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            status, problem = await call(
                c, "POST", "/api/playlists", body=b'{"name": ' + name + b"}", headers=auth
            )
            assert status == 422, problem
            assert "name" in problem["detail"]
            status, mine = await call(c, "GET", "/api/playlists", headers=auth)
            assert status == 200 and mine["items"] == []  # nothing stored as "123"/"None"
            status, created = await call(
                c, "POST", "/api/playlists", body=b'{"name": "ok"}', headers=auth
            )
            assert status == 201, created
            path = f"/api/playlists/{created['id']}"
            status, problem = await call(
                c, "PATCH", path, body=b'{"name": ' + name + b"}", headers=auth
            )
            assert status == 422 and "name" in problem["detail"], problem

    run_with_mock_clock(main)


def test_a_lone_surrogate_in_a_string_is_a_422_not_a_500() -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            body = b'{"name": "\\ud800x"}'  # valid JSON; not text UTF-8 can store
            status, problem = await call(c, "POST", "/api/playlists", body=body, headers=auth)
            assert status == 422, problem
            assert "name" in problem["detail"] and "surrogate" in problem["detail"]
            status, _ = await call(
                c, "POST", "/api/auth/login", body=b'{"username": "\\udfff", "password": "x"}'
            )
            assert status == 422
            status, mine = await call(c, "GET", "/api/playlists", headers=auth)
            assert status == 200 and mine["items"] == []

    run_with_mock_clock(main)


def test_a_deeply_nested_body_is_a_400_and_the_node_keeps_serving() -> None:
    async def main() -> None:
        async with cluster() as c:
            await login(c, "n1")
            depth = 20_000  # 40 KB: under the body limit, far over any parser's stack
            body = b'{"username": ' + b"[" * depth + b"]" * depth + b', "password": "x"}'
            status, problem = await call(c, "POST", "/api/auth/login", body=body)
            assert status == 400, problem
            assert "deeper" in problem["detail"]
            status, problem = await call(c, "POST", "/api/auth/login", body=b"[" * 70_000)
            assert status == 413, problem  # over the JSON body limit: not even read whole
            creds = b'{"username": "alice", "password": "correct horse battery"}'
            status, session = await call(c, "POST", "/api/auth/login", body=creds)
            assert status == 200 and session["token"]

    run_with_mock_clock(main)


def test_the_depth_check_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b'{"a": [1, [2]], "b": "[[[[["}') == 3
    assert json_depth(b'"\\"[[[["') == 0
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1


@pytest.mark.parametrize(
    "query",
    [
        "/api/songs?page=99999999999999999999",
        "/api/songs?page=4611686018427387903",
        "/api/songs?limit=99999999999999999999",
        "/api/albums?page=4611686018427387903",
        "/api/artists?page=9223372036854775807",
        "/api/me/likes?page=4611686018427387903",
        "/api/me/likes/albums?limit=4611686018427387903",
        "/api/me/likes/artists?page=" + "9" * 5000,
    ],
)
def test_a_page_or_limit_beyond_its_bound_is_a_400(query: str) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            status, problem = await call(c, "GET", query, headers=auth)
            assert status == 400, problem
            assert "at most" in problem["detail"]
            status, _ = await call(c, "GET", query.split("?")[0] + "?page=1", headers=auth)
            assert status == 200

    run_with_mock_clock(main)


def test_a_5000_digit_log_position_is_a_400() -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            for position in ("9" * 5000 + ".1", "1." + "9" * 5000, "99999999999999999999.1"):
                headers = {**auth, LOG_POSITION_HEADER: position}
                status, problem = await call(c, "GET", "/api/songs", headers=headers)
                assert status == 400, (position[:30], problem)
            headers = {LOG_POSITION_HEADER: "7" * 5000 + ".0"}
            body = b'{"username": "alice", "password": "correct horse battery"}'
            status, _ = await call(c, "POST", "/api/auth/login", body=body, headers=headers)
            assert status == 400

    run_with_mock_clock(main)


def test_a_forged_token_with_a_far_position_is_refused_at_once() -> None:
    """The token is checked before waiting for the log position: a stranger cannot make a
    node hold a request (and a waiter) for ``read_wait_timeout``."""

    async def main() -> None:
        async with cluster() as c:
            await login(c, "n1")
            replica = c.nodes["n1"].replica
            headers = {"authorization": "Bearer v1.forged.token", LOG_POSITION_HEADER: "999.1"}
            started = anyio.current_time()
            status, problem = await call(c, "GET", "/api/songs", headers=headers)
            took = anyio.current_time() - started
            assert status == 401, problem
            assert took < 1.0 < CONFIG.read_wait_timeout, took
            assert replica.waiting == 0

    run_with_mock_clock(main)


def test_a_read_that_times_out_leaves_no_waiter_behind() -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            replica = c.nodes["n1"].replica
            headers = {**auth, LOG_POSITION_HEADER: "999.1"}
            statuses: list[int] = []

            async def read() -> None:
                statuses.append((await call(c, "GET", "/api/songs", headers=headers))[0])

            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(read)
                await anyio.sleep(1.0)
                assert replica.waiting == 5  # all of them wait ...
            assert replica.waiting == 0  # ... and none is kept after its timeout (503)
            assert statuses == [503] * 5
            status, problem = await call(c, "GET", "/api/songs", headers=headers)
            assert status == 503 and "not reached" in problem["detail"]
            assert replica.waiting == 0

    run_with_mock_clock(main)


def test_subsonic_numbers_are_bounded() -> None:
    async def main() -> None:
        async with cluster() as c:
            await login(c, "n1")
            creds = "u=alice&p=correct%20horse%20battery&f=json"
            for query in (
                "offset=99999999999999999999",
                "offset=" + "9" * 5000,
                "size=10&offset=4611686018427387903",
            ):
                resp = await c.client.get(
                    url("n1", f"/rest/getAlbumList2?type=newest&{query}&{creds}")
                )
                assert resp.status == 200
                doc = (await resp.json(dict))["subsonic-response"]
                assert doc["status"] == "failed" and doc["error"]["code"] == 0, doc
                assert "offset" in doc["error"]["message"]
            resp = await c.client.get(url("n1", "/rest/getRandomSongs?fromYear=9e99&" + creds))
            doc = (await resp.json(dict))["subsonic-response"]
            assert doc["status"] == "failed" and doc["error"]["code"] == 0

    run_with_mock_clock(main)
