"""Subsonic credentials in the catalog: who may set them, what is accepted, replay."""

from __future__ import annotations

from dspot_spotify import catalog as c

from .catalog_log import Log, seed_users
from .conftest import Db

PASSWORD = "p" * 24
KEY = "k" * 43


def creds(actor: str, user: str, password: str = PASSWORD, key: str = KEY) -> c.Entry:
    return c.SetSubsonicCredentials(actor=actor, user_id=user, password=password, api_key=key)


def test_set_read_and_replace(db: Db, log: Log) -> None:
    seed_users(log)
    assert c.subsonic_credentials(db.q, "ana") is None
    log.ok(creds("ana", "ana"))
    got = c.subsonic_credentials(db.q, "ana")
    assert got is not None
    assert (got.username, got.password, got.api_key) == ("ana", PASSWORD, KEY)
    by_key = c.subsonic_credentials_by_api_key(db.q, KEY)
    assert by_key is not None and by_key.user_id == "ana"
    log.ok(creds("ana", "ana", "q" * 24, "j" * 43))  # a rotation replaces both
    assert c.subsonic_credentials_by_api_key(db.q, KEY) is None
    again = c.subsonic_credentials(db.q, "ana")
    assert again is not None and again.password == "q" * 24
    assert "q" * 24 not in repr(again) and "j" * 43 not in repr(again)  # kept out of logs


def test_permissions_and_validation(db: Db, log: Log) -> None:
    seed_users(log)
    log.rejected(creds("bob", "ana"), "only the user or an admin", "forbidden")
    log.ok(creds("admin", "ana"))
    log.rejected(creds("admin", "nobody"), "unknown user", "not_found")
    log.rejected(creds("bob", "bob", key=KEY), "API key already in use", "conflict")
    log.rejected(creds("bob", "bob", password="short"), "Subsonic password must be")
    log.rejected(creds("bob", "bob", key="has spaces in it, 16+"), "API key must be")
    entry = c.SetSubsonicCredentials(user_id="bob", password=PASSWORD, api_key="b" * 43)
    log.rejected(entry, "sign in required", "unauthenticated")
    assert c.subsonic_credentials(db.q, "bob") is None


def test_replay_reaches_the_same_state(db: Db, log: Log) -> None:
    seed_users(log)
    log.ok(creds("ana", "ana"))
    log.ok(creds("bob", "bob", key="b" * 43))
    other = Db()
    with other.tx() as tx:
        for pos, data in log.entries:
            c.apply_encoded(tx, pos, data)
    assert other.dump() == db.dump()
