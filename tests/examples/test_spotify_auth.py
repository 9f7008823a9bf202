"""Password hashing, credential rules and signed, expiring tokens."""

from __future__ import annotations

import random

import pytest
from dspot_spotify.auth import (
    DEFAULT_SCRYPT,
    CredentialError,
    InvalidToken,
    ScryptParams,
    TokenSigner,
    derive_token_key,
    hash_password,
    is_password_hash,
    needs_rehash,
    validate_password,
    validate_username,
    verify_password,
)

FAST = ScryptParams(n=2**8, r=4, p=1)


def rng_bytes(seed: int = 0) -> random.Random:
    return random.Random(seed)


def test_hash_and_verify() -> None:
    h = hash_password("correct horse battery", token_bytes=rng_bytes().randbytes, params=FAST)
    assert h.startswith("scrypt$256$4$1$") and is_password_hash(h)
    assert verify_password("correct horse battery", h)
    assert not verify_password("correct horse batterY", h)
    assert not verify_password("", h)
    # a fresh salt gives a different hash of the same password
    h2 = hash_password("correct horse battery", token_bytes=rng_bytes(1).randbytes, params=FAST)
    assert h2 != h and verify_password("correct horse battery", h2)
    # the same injected randomness gives the same hash (no hidden global randomness)
    assert (
        hash_password("correct horse battery", token_bytes=rng_bytes().randbytes, params=FAST) == h
    )


def test_default_parameters_are_memory_hard() -> None:
    assert DEFAULT_SCRYPT.n == 2**14 and DEFAULT_SCRYPT.r == 8
    assert 128 * DEFAULT_SCRYPT.r * DEFAULT_SCRYPT.n == 16 * 1024 * 1024
    h = hash_password("pässwörd-ünïcode", token_bytes=rng_bytes().randbytes)
    assert verify_password("pässwörd-ünïcode", h)
    assert not needs_rehash(h)
    assert needs_rehash(hash_password("x" * 8, token_bytes=rng_bytes().randbytes, params=FAST))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "scrypt$3$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",  # n not a power of 2
        "scrypt$2097152$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",  # n too big to check
        "scrypt$16$8$1$!!!$AAAA",
        "bcrypt$16$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_hashes_never_verify(bad: str) -> None:
    assert not is_password_hash(bad)
    assert not verify_password("anything", bad)
    assert needs_rehash(bad)


def test_scrypt_params_validated() -> None:
    with pytest.raises(ValueError):
        ScryptParams(n=1000)
    with pytest.raises(ValueError):
        hash_password("longenough", token_bytes=lambda n: b"short", params=FAST)


@pytest.mark.parametrize(
    ("name", "canon"),
    [
        ("Alice", "alice"),
        ("  bob.smith ", "bob.smith"),
        ("a_b-c9", "a_b-c9"),
        ("\uff21\uff22\uff23", "abc"),
    ],  # fullwidth letters normalise (NFKC)
)
def test_valid_usernames(name: str, canon: str) -> None:
    assert validate_username(name) == canon


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ab", "at least 3"),
        ("x" * 33, "at most 32"),
        ("bad name", "letters"),
        ("-dash", "start and end"),
        ("émile", "letters"),
        ("a/b/c", "letters"),
    ],
)
def test_invalid_usernames(name: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        validate_username(name)


def test_password_rules() -> None:
    validate_password("eight ch")
    for bad, message in [
        ("short", "at least 8"),
        (" " * 9, "blank"),
        ("x" * 1025, "at most 1024"),
        ("Alice123", "username"),
    ]:
        with pytest.raises(CredentialError, match=message):
            validate_password(bad, username="alice123")


def make_signer(seed: int = 0, keys: list[bytes] | None = None) -> TokenSigner:
    key = derive_token_key(b"cluster secret of the demo cluster")
    return TokenSigner(keys or [key], token_bytes=random.Random(seed).randbytes, ttl_ms=60_000)


def test_tokens_issue_verify_expire() -> None:
    signer = make_signer()
    issued = signer.issue("user-1", now_ms=1_000)
    claims = signer.verify(issued.token, now_ms=2_000)
    assert claims == issued.claims
    assert (claims.user_id, claims.issued_at, claims.expires_at) == ("user-1", 1_000, 61_000)
    assert signer.verify(issued.token, now_ms=60_999) == claims
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(issued.token, now_ms=61_000)
    other = signer.issue("user-1", now_ms=1_000)
    assert other.claims.token_id != claims.token_id  # fresh id from the injected source


def test_forged_and_malformed_tokens() -> None:
    signer = make_signer()
    token = signer.issue("user-1", now_ms=0).token
    prefix, payload, sig = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in [
        "",
        "v1.x",
        "v2." + payload + "." + sig,
        f"{prefix}.{forged_payload}.{sig}",
        f"{prefix}.{payload}.{sig[:-2]}",
        f"{prefix}.{payload}.!!",
        token + "x" * 5000,
    ]:
        with pytest.raises(InvalidToken):
            signer.verify(bad, now_ms=1)
    # another cluster's key cannot mint tokens for this one
    stranger = TokenSigner(
        [derive_token_key(b"some other cluster's secret")], token_bytes=random.Random(0).randbytes
    )
    with pytest.raises(InvalidToken, match="signature"):
        signer.verify(stranger.issue("user-1", now_ms=0).token, now_ms=1)


def test_key_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    before = make_signer(keys=[old]).issue("u", now_ms=0).token
    rotated = make_signer(keys=[new, old])
    assert rotated.verify(before, now_ms=1).user_id == "u"
    after = rotated.issue("u", now_ms=0).token
    with pytest.raises(InvalidToken):
        make_signer(keys=[old]).verify(after, now_ms=1)
    with pytest.raises(ValueError):
        TokenSigner([b"short"], token_bytes=random.Random(0).randbytes)
    with pytest.raises(ValueError):
        derive_token_key(b"short")
