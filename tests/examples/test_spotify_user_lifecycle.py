"""Session lifecycle: logging out, changing a password, an admin disabling a user or changing
their roles. In the catalog (the rules every replica applies), and on a three-node cluster in
the simulation: a change written through one node takes effect on another as soon as that
node has applied its entry, with no ``X-Log-Position`` to help it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any
from urllib.parse import urlencode

import anyio
import attrs
from dspot_spotify import catalog as c
from dspot_spotify.node import SpotifyNode

from dspot.http import connect_websocket
from dspot.testing import run_with_mock_clock, wait_until
from tests.examples.simcluster import HTTP_PORT, Cluster, cluster, url

from .catalog_log import HASH, Log, seed_users
from .conftest import Db, SqliteTx

SEALED = "s" * 40


# -- the catalog's rules ---------------------------------------------------------------------


def test_admins_change_roles_and_disable_users(db: Db, log: Log) -> None:
    seed_users(log)
    t = log.at
    log.rejected(c.UpdateUser(actor="ana", at=t(), user_id="bob", disabled=True), "only an admin")
    log.rejected(c.UpdateUser(actor="admin", at=t(), user_id="nobody", role="user"), "unknown")
    log.rejected(
        c.UpdateUser(actor="admin", at=t(), user_id="admin", disabled=True), "their own account"
    )
    log.rejected(c.UpdateUser(actor="admin", at=t(), user_id="admin", role="user"), "last admin")
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="bob", disabled=True))
    bob = c.get_user(db.q, "bob")
    assert bob is not None and bob.disabled and bob.token_generation == 1
    # A disabled user acts as no one: an entry of theirs that comes after is refused.
    log.rejected(c.CreateArtist(actor="bob", at=t(), artist_id="x", name="X"), "disabled")
    # Making a disabled user admin leaves them disabled; disabling the only other enabled
    # admin is refused; enabling does not bring old sessions back.
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="bob", role="admin"))
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="ana", role="admin"))
    log.ok(c.UpdateUser(actor="ana", at=t(), user_id="admin", disabled=True))
    log.rejected(c.UpdateUser(actor="ana", at=t(), user_id="ana", role="user"), "last admin")
    log.ok(c.UpdateUser(actor="ana", at=t(), user_id="bob", disabled=False, role="user"))
    bob = c.get_user(db.q, "bob")
    assert bob is not None and not bob.disabled and bob.role == "user"
    assert bob.token_generation == 1
    # The old form of a role change keeps its rules.
    log.rejected(c.SetUserRole(actor="bob", at=t(), user_id="bob", role="admin"), "only an admin")
    log.ok(c.SetUserRole(actor="ana", at=t(), user_id="bob", role="admin"))


def test_tokens_follow_the_generation_and_the_disabled_flag(db: Db, log: Log) -> None:
    seed_users(log)
    t = log.at

    def revoked(generation: int, issued_at: int = 0) -> bool:
        return c.is_token_revoked(
            db.q, token_id="t", user_id="bob", issued_at=issued_at, generation=generation
        )

    assert not revoked(0)
    assert not revoked(1)  # from a replica further along the log: not refused here
    log.ok(c.ChangePassword(actor="bob", at=t(), user_id="bob", password_hash=HASH))
    assert revoked(0) and not revoked(1)
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="bob", disabled=True))
    assert revoked(1) and revoked(2)  # disabled: every token
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="bob", disabled=False))
    assert revoked(1) and not revoked(2)
    # An admin's reset counts as a change too.
    log.ok(c.ChangePassword(actor="admin", at=t(), user_id="bob", password_hash=HASH))
    assert revoked(2) and not revoked(3)


def test_app_credentials_end_with_the_generation(db: Db, log: Log) -> None:
    seed_users(log)
    t = log.at
    creds = c.SetSubsonicCredentials(
        actor="bob", at=t(), user_id="bob", password="p" * 24, api_key="k" * 43
    )
    log.ok(creds)
    assert c.subsonic_credentials(db.q, "bob").current  # type: ignore[union-attr]
    log.ok(c.ChangePassword(actor="bob", at=t(), user_id="bob", password_hash=HASH))
    assert not c.subsonic_credentials(db.q, "bob").current  # type: ignore[union-attr]
    log.ok(attrs_evolve(creds, at=t(), password="q" * 24, api_key="j" * 43))
    assert c.subsonic_credentials(db.q, "bob").current  # type: ignore[union-attr]
    log.ok(c.UpdateUser(actor="admin", at=t(), user_id="bob", disabled=True))
    assert not c.subsonic_credentials_by_api_key(db.q, "j" * 43).current  # type: ignore[union-attr]


def attrs_evolve(entry: c.Entry, **changes: Any) -> c.Entry:
    return attrs.evolve(entry, **changes)


def test_sealed_account_passwords_and_the_switch(db: Db, log: Log) -> None:
    t = log.at
    log.ok(
        c.RegisterUser(
            user_id="admin",
            username="admin",
            password_hash=HASH,
            role="admin",
            at=t(),
            sealed_password=SEALED,
        )
    )
    log.ok(c.RegisterUser(user_id="bob", username="bob", password_hash=HASH, at=t()))

    def sealed(user: str) -> str | None:
        record = c.get_user(db.q, user)
        assert record is not None
        return record.sealed_password

    assert sealed("admin") == SEALED and sealed("bob") is None
    assert c.subsonic_account_password(db.q)
    # Sealed after a sign-in: only by the user, only for the generation the password was
    # checked in, only while allowed.
    seal = c.SealPassword(actor="bob", at=t(), user_id="bob", generation=0, sealed_password=SEALED)
    log.rejected(attrs_evolve(seal, actor="admin"), "only the user")
    log.rejected(attrs_evolve(seal, generation=1), "changed since")
    log.rejected(attrs_evolve(seal, sealed_password="not base64 !"), "base64url")
    log.ok(seal)
    assert sealed("bob") == SEALED
    log.rejected(c.SetSubsonicAccountPassword(actor="bob", at=t(), allowed=False), "only an admin")
    log.ok(c.SetSubsonicAccountPassword(actor="admin", at=t(), allowed=False))
    assert not c.subsonic_account_password(db.q)
    assert sealed("admin") is None and sealed("bob") is None  # forgotten at once
    # While off, no entry brings a sealed copy back.
    log.ok(
        c.ChangePassword(
            actor="bob", at=t(), user_id="bob", password_hash=HASH, sealed_password=SEALED
        )
    )
    log.ok(
        c.RegisterUser(
            user_id="cyd", username="cyd", password_hash=HASH, at=t(), sealed_password=SEALED
        )
    )
    log.rejected(attrs_evolve(seal, at=t(), generation=1), "app passwords")
    assert sealed("bob") is None and sealed("cyd") is None
    log.ok(c.SetSubsonicAccountPassword(actor="admin", at=t(), allowed=True))
    log.ok(attrs_evolve(seal, at=t(), generation=1))
    assert sealed("bob") == SEALED


def test_a_replica_made_before_gets_the_new_columns() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tx = SqliteTx(conn)
    tx.execute(
        "CREATE TABLE users (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
        "username TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL, "
        "role TEXT NOT NULL, created_at INTEGER NOT NULL, "
        "tokens_valid_after INTEGER NOT NULL DEFAULT 0)"
    )
    tx.execute(
        "CREATE TABLE subsonic_credentials (user_id TEXT PRIMARY KEY, password TEXT NOT NULL, "
        "api_key TEXT NOT NULL UNIQUE, updated_at INTEGER NOT NULL)"
    )
    tx.execute(
        "INSERT INTO users (id, username, password_hash, role, created_at, tokens_valid_after) "
        "VALUES ('u', 'old', ?, 'admin', 1, 5)",
        (HASH,),
    )
    c.create_schema(tx)
    c.create_schema(tx)  # idempotent
    user = c.get_user(tx, "u")
    assert user is not None
    assert (user.disabled, user.token_generation, user.sealed_password) == (False, 0, None)
    # A token issued before a password change made by the old code is still refused.
    assert c.is_token_revoked(tx, token_id="t", user_id="u", issued_at=4)
    assert not c.is_token_revoked(tx, token_id="t", user_id="u", issued_at=5)
    assert {str(r[1]) for r in tx.execute("PRAGMA table_info(subsonic_credentials)")} >= {
        "generation"
    }


# -- on a cluster: written through one node, effective on another -----------------------------


class Client:
    """One user's session against the simulated cluster."""

    def __init__(self, c: Cluster, token: str | None = None) -> None:
        self.c = c
        self.token = token

    async def call(
        self, method: str, node: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any, str | None]:
        """``(status, JSON body or None, X-Log-Position)``."""
        auth = token or self.token
        headers = {"authorization": f"Bearer {auth}"} if auth else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        resp = await self.c.client.request(method, url(node, path), **kwargs)
        data = await resp.read()
        return resp.status, json.loads(data) if data else None, resp.headers.get("x-log-position")


async def sign_in(c: Cluster, node: str, username: str, password: str) -> str:
    status, body, _ = await Client(c).call(
        "POST", node, "/api/auth/login", {"username": username, "password": password}
    )
    assert status == 200, body
    token: str = body["token"]
    return token


async def applied_everywhere(c: Cluster, position: str | None) -> None:
    """Wait until every node has applied ``position`` (``<epoch>.<seq>``)."""
    assert position is not None
    epoch, seq = (int(x) for x in position.split("."))
    wanted = (epoch, seq)

    def done() -> bool:
        return all(_pos(n) >= wanted for n in c.nodes.values())

    await wait_until(done, timeout=10.0, step=0.1)


def _pos(node: SpotifyNode) -> tuple[int, int]:
    p = node.replica.position
    return (0, 0) if p is None else (p.epoch, p.seq)


async def setup_users(c: Cluster) -> tuple[Client, Client, str]:
    """``admin`` (first user) and ``bob``, signed in on n1; returns bob's user id too."""
    anon = Client(c)
    for name in ("admin", "bob"):
        status, body, pos = await anon.call(
            "POST", "n1", "/api/auth/register", {"username": name, "password": f"{name} password"}
        )
        assert status == 201, body
    await applied_everywhere(c, pos)
    admin = Client(c, await sign_in(c, "n1", "admin", "admin password"))
    bob = Client(c, await sign_in(c, "n1", "bob", "bob password"))
    _, me, _ = await bob.call("GET", "n1", "/api/me")
    return admin, bob, me["user_id"]


def test_logout_and_password_change_on_one_node_end_sessions_on_another() -> None:
    async def main() -> None:
        async with cluster() as c:
            _, bob, _ = await setup_users(c)
            second = await sign_in(c, "n2", "bob", "bob password")
            # Logging out on n1 revokes that token on n3 as soon as n3 has the entry.
            status, _, pos = await bob.call("POST", "n1", "/api/auth/logout")
            assert status == 204
            await applied_everywhere(c, pos)
            assert (await bob.call("GET", "n3", "/api/me"))[0] == 401
            assert (await bob.call("GET", "n3", "/api/me", token=second))[0] == 200  # another
            # A password change on n2 ends every token of the user, on n3 too.
            other = Client(c, second)
            change = {"old": "not it", "new": "bob's new password"}
            assert (await other.call("POST", "n2", "/api/me/password", change))[0] == 403
            change["old"] = "bob password"
            status, _, pos = await other.call("POST", "n2", "/api/me/password", change)
            assert status == 204
            await applied_everywhere(c, pos)
            assert (await other.call("GET", "n3", "/api/me"))[0] == 401
            login = {"username": "bob", "password": "bob password"}
            assert (await Client(c).call("POST", "n3", "/api/auth/login", login))[0] == 401
            fresh = Client(c, await sign_in(c, "n3", "bob", "bob's new password"))
            assert (await fresh.call("GET", "n1", "/api/me"))[0] == 200

    run_with_mock_clock(main)


def test_an_admin_disables_a_user_and_changes_roles_everywhere() -> None:
    async def main() -> None:
        async with cluster() as c:
            admin, bob, bob_id = await setup_users(c)
            # Not an admin: no user list, no changes.
            assert (await bob.call("GET", "n2", "/api/users"))[0] == 403
            patch = {"disabled": True}
            assert (await bob.call("PATCH", "n2", f"/api/users/{bob_id}", patch))[0] == 403
            status, users, _ = await admin.call("GET", "n2", "/api/users")
            assert status == 200
            assert [(u["username"], u["roles"], u["disabled"]) for u in users["users"]] == [
                ("admin", ["user", "admin"], False),
                ("bob", ["user"], False),
            ]
            # bob's app credentials, to see them end too.
            status, creds, pos = await bob.call("GET", "n1", "/api/me/subsonic")
            assert status == 200
            await applied_everywhere(c, pos)
            # Role change through n1: bob's existing token is an admin's on n3.
            promote = {"roles": ["user", "admin"]}
            status, row, pos = await admin.call("PATCH", "n1", f"/api/users/{bob_id}", promote)
            assert status == 200 and row["roles"] == ["user", "admin"], row
            await applied_everywhere(c, pos)
            assert (await bob.call("GET", "n3", "/api/users"))[0] == 200
            demote = {"roles": ["user"]}
            status, _, pos = await admin.call("PATCH", "n2", f"/api/users/{bob_id}", demote)
            await applied_everywhere(c, pos)
            assert (await bob.call("GET", "n3", "/api/users"))[0] == 403
            # Disabling through n2: bob is out on n3, in every form.
            status, row, pos = await admin.call("PATCH", "n2", f"/api/users/{bob_id}", patch)
            assert status == 200 and row["disabled"] is True
            await applied_everywhere(c, pos)
            assert (await bob.call("GET", "n3", "/api/me"))[0] == 401
            login = {"username": "bob", "password": "bob password"}
            status, body, _ = await Client(c).call("POST", "n3", "/api/auth/login", login)
            assert status == 403 and "disabled" in body["detail"]
            for params, code in (
                ({"u": "bob", "p": "bob password"}, 50),
                (token_auth("bob", "bob password"), 50),
                (token_auth("bob", creds["password"]), 40),
                ({"apiKey": creds["api_key"]}, 44),
            ):
                query = urlencode({"f": "json", **params})
                status, doc, _ = await Client(c).call("GET", "n3", f"/rest/ping?{query}")
                assert doc["subsonic-response"]["error"]["code"] == code, params
            # Enabled again: bob signs in; his old token stays revoked.
            enable = {"disabled": False}
            status, _, pos = await admin.call("PATCH", "n1", f"/api/users/{bob_id}", enable)
            await applied_everywhere(c, pos)
            assert (await bob.call("GET", "n2", "/api/me"))[0] == 401
            again = Client(c, await sign_in(c, "n2", "bob", "bob password"))
            assert (await again.call("GET", "n3", "/api/me"))[0] == 200
            # An admin's reset of bob's password ends that session as well.
            reset = {"password": "set by the admin"}
            status, _, pos = await admin.call("POST", "n3", f"/api/users/{bob_id}/password", reset)
            assert status == 204
            await applied_everywhere(c, pos)
            assert (await again.call("GET", "n1", "/api/me"))[0] == 401
            await sign_in(c, "n1", "bob", "set by the admin")
            # What cannot be: no roles nor state given, an unknown role, an unknown user,
            # the last admin demoted.
            assert (await admin.call("PATCH", "n1", f"/api/users/{bob_id}", {}))[0] == 422
            bad = {"roles": ["owner"]}
            assert (await admin.call("PATCH", "n1", f"/api/users/{bob_id}", bad))[0] == 422
            assert (await admin.call("PATCH", "n1", "/api/users/nobody", demote))[0] == 404
            _, me, _ = await admin.call("GET", "n1", "/api/me")
            last = await admin.call("PATCH", "n1", f"/api/users/{me['user_id']}", demote)
            assert last[0] == 409

    run_with_mock_clock(main)


def token_auth(username: str, password: str) -> dict[str, str]:
    salt = "c0ffee"
    return {"u": username, "t": hashlib.md5((password + salt).encode()).hexdigest(), "s": salt}


def test_internal_addresses_are_for_admins() -> None:
    async def main() -> None:
        async with cluster() as c:
            admin, bob, _ = await setup_users(c)
            status, doc, _ = await bob.call("GET", "n2", "/api/cluster")
            assert status == 200 and len(doc["members"]) == 3
            assert all(m["address"] is None and m["http"] is None for m in doc["members"])
            assert {m["state"] for m in doc["members"]} == {"alive"}
            _, doc, _ = await admin.call("GET", "n2", "/api/cluster")
            assert all(m["address"] and m["http"] for m in doc["members"])
            # The event WebSocket: the same for the hello and for membership events.
            connect = c.net.transport("client").connect
            ws_url = f"ws://n2:{HTTP_PORT}/api/events"
            for who, redacted in ((bob, True), (admin, False)):
                async with connect_websocket(f"{ws_url}?token={who.token}", connect=connect) as ws:
                    hello = json.loads(await ws.receive())
                    members = hello["cluster"]["members"]
                    assert all((m["address"] is None) == redacted for m in members)
                    c.net.crash("n1" if redacted else "n3")
                    while True:
                        event = json.loads(await ws.receive())
                        if event["type"] == "membership" and event["event"] in ("suspect", "dead"):
                            break
                    assert (event["member"]["address"] is None) == redacted
                    if redacted:
                        assert event["member"]["http"] is None

    run_with_mock_clock(main)


def test_two_nodes_asked_at_once_make_one_app_password() -> None:
    """The web app asks for the app credentials from two places as it starts (the settings
    page and the play queue); through the gateway those may reach two nodes at once. Both
    answer with the pair that was stored first, so the one shown is the one that works."""

    async def main() -> None:
        async with cluster() as c:
            _, bob, _ = await setup_users(c)
            answers: dict[str, Any] = {}

            async def ask(node: str) -> None:
                status, body, _ = await bob.call("GET", node, "/api/me/subsonic")
                assert status == 200, body
                answers[node] = body

            async with anyio.create_task_group() as tg:
                for node in ("n1", "n2", "n3"):
                    tg.start_soon(ask, node)
            assert len({a["password"] for a in answers.values()}) == 1
            assert len({a["api_key"] for a in answers.values()}) == 1
            _, doc, _ = await Client(c).call(
                "GET",
                "n1",
                f"/rest/ping?{urlencode({'f': 'json', 'apiKey': answers['n1']['api_key']})}",
            )
            assert doc["subsonic-response"]["status"] == "ok"

    run_with_mock_clock(main)
