"""HTTPS contexts: :mod:`dspot.tls` policy (TLS 1.2 at least) plus ALPN ``http/1.1``.

The HTTP server, client, WebSocket client and CLI take their contexts from here, and these
take theirs from :mod:`dspot.tls`, so the TLS policy lives in one place for all of dspot.
"""

from __future__ import annotations

import ssl

from dspot import tls

MINIMUM_TLS = ssl.TLSVersion.TLSv1_2
ALPN = ["http/1.1"]


def server_ssl_context(
    cert: tls.StrPath,
    key: tls.StrPath | None = None,
    *,
    client_ca: tls.StrPath | None = None,
) -> ssl.SSLContext:
    """A server context for the certificate chain ``cert`` and private key ``key``.

    With ``client_ca``, clients must present a certificate signed by it (mutual TLS).
    """
    ctx = tls.server_context(cert, key, client_ca=client_ca, alpn=ALPN)
    assert ctx.minimum_version >= MINIMUM_TLS
    return ctx


def client_ssl_context(
    cafile: tls.StrPath | None = None,
    *,
    cadata: str | bytes | None = None,
    cert: tls.StrPath | None = None,
    key: tls.StrPath | None = None,
) -> ssl.SSLContext:
    """A verifying client context trusting ``cafile`` and/or ``cadata`` (PEM text), else the
    system store; ``cert``/``key`` present a client certificate for mutual TLS.
    """
    ctx = tls.client_context(cafile, certfile=cert, keyfile=key, alpn=ALPN)
    if cadata is not None:
        ctx.load_verify_locations(cadata=cadata)
    assert ctx.minimum_version >= MINIMUM_TLS
    return ctx
