"""Passwords and session tokens.

Passwords
    ``hashlib.scrypt`` (memory-hard, standard library). Default parameters: N = 2**14,
    r = 8, p = 1, 16-byte salt, 32-byte key: 16 MiB of memory and ~50 ms per hash on one
    core (OWASP's scrypt minimum is N = 2**17 with r = 8 (128 MiB); we stay lower because
    a node of this service may share a small machine, and every parameter is stored in the
    hash so it can be raised later and :func:`needs_rehash` tells when to upgrade).
    Encoded as ``scrypt$N$r$p$salt$key`` (base64url, no padding). Verification recomputes
    with the stored parameters and compares with :func:`hmac.compare_digest`.

Tokens: HMAC-signed, with expiry, revocable
    ``v1.<payload>.<signature>``: the payload (base64url JSON) carries the user id, a random
    token id, issue and expiry times (milliseconds) and the user's *token generation* when
    it was issued; the signature is HMAC-SHA256 under a key derived from the cluster
    secret. **Why signed rather than random-and-stored:** a random token must be written
    to the replicated catalog before it can be used anywhere, and writes need the token
    ring and a majority, so a user could not log in on the minority side of a partition
    (which still serves reads and streams). A signed token is issued by
    any gateway that can read the user's password hash and is verified by any node with no
    write at all. Revocation stays possible: logging out writes the token id to the
    catalog's revocation list (kept only until the token would expire anyway); changing a
    password or disabling the user raises the user's token generation in the catalog, and a
    token of an older generation is refused by every node that has applied that entry (a
    counter, not a time: nodes' clocks may disagree; see :mod:`dspot_spotify.catalog`).
    Randomness (salts, token ids) comes from an injected ``token_bytes`` callable — the
    library never reads global randomness — and time from the caller's clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import attrs

__all__ = [
    "DEFAULT_SCRYPT",
    "CredentialError",
    "InvalidToken",
    "IssuedToken",
    "ScryptParams",
    "TokenBytes",
    "TokenClaims",
    "TokenSigner",
    "derive_token_key",
    "hash_password",
    "is_password_hash",
    "needs_rehash",
    "validate_password",
    "validate_username",
    "verify_password",
]

TokenBytes = Callable[[int], bytes]
_T = TypeVar("_T")


class CredentialError(ValueError):
    """A username or password that does not meet the rules; the message says which rule."""


class InvalidToken(ValueError):
    """A token that is malformed, forged, or expired (HTTP 401)."""


# --------------------------------------------------------------------------- validation

USERNAME_MIN: Final = 3
USERNAME_MAX: Final = 32
PASSWORD_MIN: Final = 8
PASSWORD_MAX: Final = 1024
_USERNAME_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")


def validate_username(name: str) -> str:
    """The canonical username (NFKC, lower-cased, stripped), or :class:`CredentialError`.

    3-32 characters; ASCII letters, digits, ``.``, ``_`` and ``-``; starts and ends with a
    letter or digit.
    """
    canon = unicodedata.normalize("NFKC", name).strip().lower()
    if len(canon) < USERNAME_MIN:
        raise CredentialError(f"username must have at least {USERNAME_MIN} characters")
    if len(canon) > USERNAME_MAX:
        raise CredentialError(f"username must have at most {USERNAME_MAX} characters")
    if not _USERNAME_RE.match(canon):
        raise CredentialError(
            "username may contain only letters a-z, digits, '.', '_' and '-', "
            "and must start and end with a letter or digit"
        )
    return canon


def validate_password(password: str, *, username: str | None = None) -> None:
    """Raise :class:`CredentialError` unless the password is acceptable.

    At least 8 characters (no composition rules, per NIST SP 800-63B), at most 1024, not
    blank, and not the username itself.
    """
    if len(password) < PASSWORD_MIN:
        raise CredentialError(f"password must have at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise CredentialError(f"password must have at most {PASSWORD_MAX} characters")
    if not password.strip():
        raise CredentialError("password must not be blank")
    if username is not None and password.strip().lower() == username.strip().lower():
        raise CredentialError("password must not be the username")


# --------------------------------------------------------------------------- passwords


@attrs.frozen
class ScryptParams:
    """scrypt cost parameters: CPU/memory cost ``n`` (power of 2), block size ``r``, ``p``."""

    n: int = 2**14
    r: int = 8
    p: int = 1
    salt_len: int = 16
    key_len: int = 32

    def __attrs_post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two")
        if self.r < 1 or self.p < 1 or self.salt_len < 8 or self.key_len < 16:
            raise ValueError("scrypt parameters too small")

    @property
    def maxmem(self) -> int:
        """Memory scrypt needs (128·r·N bytes), with headroom, for ``hashlib.scrypt``."""
        return 128 * self.r * self.n * 2 + 1024 * 1024


DEFAULT_SCRYPT: Final = ScryptParams()
_MAX_N: Final = 2**20  # refuse stored hashes that would cost more than 1 GiB to check


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, key_len: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=key_len,
        maxmem=128 * r * n * 2 + 1024 * 1024,
    )


def hash_password(
    password: str, *, token_bytes: TokenBytes, params: ScryptParams = DEFAULT_SCRYPT
) -> str:
    """Hash ``password`` with a fresh salt from ``token_bytes``: ``scrypt$N$r$p$salt$key``."""
    salt = token_bytes(params.salt_len)
    if len(salt) != params.salt_len:
        raise ValueError("token_bytes returned the wrong number of bytes")
    key = _scrypt(password, salt, params.n, params.r, params.p, params.key_len)
    return f"scrypt${params.n}${params.r}${params.p}${_b64e(salt)}${_b64e(key)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _b64d(parts[4]), _b64d(parts[5])
    except (ValueError, binascii.Error):
        return None
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 64 or not 1 <= p <= 16:
        return None
    if len(salt) < 8 or len(key) < 16:
        return None
    return n, r, p, salt, key


def is_password_hash(encoded: str) -> bool:
    """Whether ``encoded`` is a well-formed hash from :func:`hash_password`."""
    return _parse_hash(encoded) is not None


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; constant-time compare; False if malformed."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    candidate = _scrypt(password, salt, n, r, p, len(key))
    return hmac.compare_digest(candidate, key)


def needs_rehash(encoded: str, params: ScryptParams = DEFAULT_SCRYPT) -> bool:
    """Whether ``encoded`` was made with weaker parameters than ``params`` (rehash on login)."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return True
    n, r, p, _salt, key = parsed
    return n < params.n or r < params.r or p < params.p or len(key) < params.key_len


# --------------------------------------------------------------------------- tokens

_TOKEN_PREFIX: Final = "v1"
_KEY_LABEL: Final = b"dspot-spotify/auth-token/v1"


def derive_token_key(cluster_secret: bytes) -> bytes:
    """The token-signing key for a cluster secret (HMAC-SHA256 with a fixed label).

    Keeps the token key separate from other uses of the same secret.
    """
    if len(cluster_secret) < 16:
        raise ValueError("cluster secret must be at least 16 bytes")
    return hmac.new(cluster_secret, _KEY_LABEL, hashlib.sha256).digest()


@attrs.frozen
class TokenClaims:
    """What a verified token says. Times are milliseconds since the Unix epoch."""

    user_id: str
    token_id: str
    issued_at: int
    expires_at: int
    generation: int = 0
    """The user's token generation at issue (tokens from before generations existed: 0)."""


@attrs.frozen
class IssuedToken:
    """A freshly issued token: the string for the client plus its claims."""

    token: str = attrs.field(repr=False)
    claims: TokenClaims


class TokenSigner:
    """Issues and verifies HMAC-SHA256 signed tokens.

    ``keys[0]`` signs; every key in ``keys`` verifies (rotate by prepending a new key, drop
    the old one after ``ttl_ms``). Revocation is checked by the caller against the catalog
    (:func:`dspot_spotify.catalog.is_token_revoked`); this class checks signature and expiry.
    """

    def __init__(
        self,
        keys: Sequence[bytes],
        *,
        token_bytes: TokenBytes,
        ttl_ms: int = 7 * 24 * 3600 * 1000,
    ) -> None:
        if not keys or any(len(k) < 16 for k in keys):
            raise ValueError("need at least one signing key of 16 bytes or more")
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        self._keys = tuple(bytes(k) for k in keys)
        self._token_bytes = token_bytes
        self.ttl_ms = ttl_ms

    def _sign(self, key: bytes, payload: str) -> bytes:
        return hmac.new(key, f"{_TOKEN_PREFIX}.{payload}".encode("ascii"), hashlib.sha256).digest()

    def issue(self, user_id: str, *, now_ms: int, generation: int = 0) -> IssuedToken:
        """A new token for ``user_id``, valid from ``now_ms`` for ``ttl_ms``, of the user's
        token ``generation``."""
        claims = TokenClaims(
            user_id=user_id,
            token_id=_b64e(self._token_bytes(16)),
            issued_at=now_ms,
            expires_at=now_ms + self.ttl_ms,
            generation=generation,
        )
        body = {
            "uid": claims.user_id,
            "jti": claims.token_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "gen": claims.generation,
        }
        payload = _b64e(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        token = f"{_TOKEN_PREFIX}.{payload}.{_b64e(self._sign(self._keys[0], payload))}"
        return IssuedToken(token=token, claims=claims)

    def verify(self, token: str, *, now_ms: int) -> TokenClaims:
        """The claims of a genuine, unexpired token, else :class:`InvalidToken`."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX or len(token) > 4096:
            raise InvalidToken("malformed token")
        _, payload, sig_text = parts
        try:
            sig = _b64d(sig_text)
        except (ValueError, binascii.Error):
            raise InvalidToken("malformed token") from None
        if not any(hmac.compare_digest(self._sign(k, payload), sig) for k in self._keys):
            raise InvalidToken("bad token signature")
        try:
            body = json.loads(_b64d(payload))
            claims = TokenClaims(
                user_id=_expect(body, "uid", str),
                token_id=_expect(body, "jti", str),
                issued_at=_expect(body, "iat", int),
                expires_at=_expect(body, "exp", int),
                generation=_expect(body, "gen", int) if "gen" in body else 0,
            )
        except (ValueError, binascii.Error, TypeError):
            raise InvalidToken("malformed token payload") from None
        if now_ms >= claims.expires_at:
            raise InvalidToken("token expired")
        return claims


def _expect(body: object, key: str, kind: type[_T]) -> _T:
    if not isinstance(body, dict):
        raise TypeError("payload is not an object")
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"bad {key}")
    return value


# -- sealed service credentials -----------------------------------------------------------------

_BOX_LABEL: Final = b"dspot-spotify credential box v1"
_NONCE_BYTES: Final = 12


class SealedValueError(ValueError):
    """A sealed value that this cluster's key does not open (tampered, or another cluster's)."""


class CredentialBox:
    """Seals per-user service credentials that a protocol needs in clear (Subsonic's
    ``t = md5(password + salt)``), so the catalog log and its replicas hold only ciphertext.

    The key comes from the cluster secret (:func:`derive_box_key`): a copy of a node's disk
    without the secret file reveals nothing. Sealing is AES-GCM bound to the owner's id (a
    sealed value moved to another user does not open); :meth:`tag` is a keyed hash for
    looking a secret up without storing it.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a credential box key is 32 bytes")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._tag_key = hmac.new(key, b"tag", hashlib.sha256).digest()

    def seal(self, plaintext: str, *, owner: str, nonce: bytes) -> str:
        """``plaintext`` sealed for ``owner`` (``nonce``: 12 unpredictable bytes, never reused)."""
        if len(nonce) != _NONCE_BYTES:
            raise ValueError("the nonce is 12 bytes")
        sealed = self._aead.encrypt(nonce, plaintext.encode(), owner.encode())
        return _b64e(nonce + sealed)

    def open(self, sealed: str, *, owner: str) -> str:
        """The plaintext of :meth:`seal`; :class:`SealedValueError` if it does not open."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = _b64d(sealed)
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, owner.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise SealedValueError("a sealed credential does not open with this key") from None

    def tag(self, value: str) -> str:
        """A keyed hash of ``value`` (equal values, equal tags; not reversible)."""
        return _b64e(hmac.new(self._tag_key, value.encode(), hashlib.sha256).digest())


def derive_box_key(cluster_secret: bytes) -> bytes:
    """The :class:`CredentialBox` key for a cluster secret (separate from the token key)."""
    if len(cluster_secret) < 16:
        raise ValueError("cluster secret must be at least 16 bytes")
    return hmac.new(cluster_secret, _BOX_LABEL, hashlib.sha256).digest()
