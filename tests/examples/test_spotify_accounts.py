"""Sign-up, login and token checks against a catalog replica."""

from __future__ import annotations

import random

import pytest
from dspot_spotify import accounts
from dspot_spotify import catalog as c
from dspot_spotify.auth import (
    CredentialError,
    InvalidToken,
    ScryptParams,
    TokenSigner,
    derive_token_key,
    is_password_hash,
)

from .catalog_log import Log
from .conftest import Db

FAST = ScryptParams(n=2**4, r=1, p=1)


def test_dummy_hash_is_well_formed_so_misses_cost_a_full_hash() -> None:
    assert is_password_hash(accounts._DUMMY_HASH)


def test_register_login_and_tokens(db: Db) -> None:
    log = Log(db)
    rng = random.Random(7)
    entry = accounts.registration(
        " Maria ",
        "a long passphrase",
        user_id="m",
        at=log.at(),
        token_bytes=rng.randbytes,
        role="admin",
        params=FAST,
    )
    assert entry.username == "maria" and entry.role == "admin"
    log.ok(entry)
    with pytest.raises(CredentialError, match="at least 8"):
        accounts.registration("other", "short", user_id="o", at=1, token_bytes=rng.randbytes)
    with pytest.raises(CredentialError, match="username"):
        accounts.registration("x", "long enough pw", user_id="o", at=1, token_bytes=rng.randbytes)

    assert accounts.check_login(db.q, "MARIA", "a long passphrase").id == "m"
    for user, pw in [
        ("maria", "wrong passphrase"),
        ("nobody", "a long passphrase"),
        ("!!", "a long passphrase"),
    ]:
        with pytest.raises(accounts.InvalidCredentials, match="wrong username or password"):
            accounts.check_login(db.q, user, pw)

    signer = TokenSigner([derive_token_key(b"0123456789abcdef0123")], token_bytes=rng.randbytes)
    issued = signer.issue("m", now_ms=log.clock)
    assert accounts.authenticate_token(db.q, signer, issued.token, now_ms=log.clock).user_id == "m"
    log.ok(
        c.RevokeToken(
            actor="m",
            at=log.at(),
            token_id=issued.claims.token_id,
            user_id="m",
            expires_at=issued.claims.expires_at,
        )
    )
    with pytest.raises(InvalidToken, match="revoked"):
        accounts.authenticate_token(db.q, signer, issued.token, now_ms=log.clock)
    fresh = signer.issue("m", now_ms=log.at())
    assert accounts.authenticate_token(db.q, signer, fresh.token, now_ms=log.clock)
    log.ok(c.ChangePassword(actor="m", at=log.at(), user_id="m", password_hash=entry.password_hash))
    with pytest.raises(InvalidToken, match="revoked"):  # issued before the password change
        accounts.authenticate_token(db.q, signer, fresh.token, now_ms=log.clock)
