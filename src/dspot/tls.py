"""TLS configuration in one place: minimum TLS 1.2, optional mutual TLS.

Every TLS context dspot builds comes from these two functions, so the protocol floor and
verification rules cannot drift between the RPC transport, the HTTP server and clients.
"""

from __future__ import annotations

import os
import ssl

StrPath = str | os.PathLike[str]


def server_context(
    certfile: StrPath,
    keyfile: StrPath | None = None,
    *,
    client_ca: StrPath | None = None,
    alpn: list[str] | None = None,
) -> ssl.SSLContext:
    """A server context; with ``client_ca``, peers must show a certificate it signed (mTLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def client_context(
    ca: StrPath | None = None,
    *,
    certfile: StrPath | None = None,
    keyfile: StrPath | None = None,
    alpn: list[str] | None = None,
) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (system roots when ``None``).

    ``certfile``/``keyfile`` present a client certificate for mutual TLS.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
