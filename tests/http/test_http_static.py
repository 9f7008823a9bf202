"""Static files over TCP and TLS: content, validators, ranges, SPA fallback, and attempts to
read outside the root (which must never return the secret)."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSStream

from dspot.http import (
    HttpClient,
    ServerConfig,
    StaticFiles,
    client_ssl_context,
    server_ssl_context,
)
from tests.http.helpers import Net, Raw, TlsFiles

SECRET = b"TOP-SECRET-CONTENT"
BIG = random.Random(7).randbytes(1_300_000)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "style.css").write_text("body{}")
    (root / "app.js").write_text("console.log(1)")
    (root / "big.bin").write_bytes(BIG)
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / "with space.txt").write_text("spaced")
    (root / ".env").write_bytes(SECRET)
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_text("contact")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escdir").symlink_to(outside)
    (root / "alias.css").symlink_to(root / "style.css")
    return root


@pytest.fixture(params=["http", "https"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Site:
    def __init__(self, scheme: str, tls: TlsFiles, kind: str = "tcp") -> None:
        self.scheme = scheme
        self.tls = tls
        self.net = Net(kind)
        self.client_ctx = client_ssl_context(cadata=tls.ca_pem)

    @asynccontextmanager
    async def serving(self, root: Path, **kw: Any) -> AsyncIterator[tuple[HttpClient, str]]:
        ctx = (
            server_ssl_context(self.tls.cert_chain, self.tls.key)
            if self.scheme == "https"
            else None
        )
        config = ServerConfig(ssl_context=ctx)
        async with self.net.serving(StaticFiles(root, **kw), config) as (_, addr):
            self.addr = addr
            async with HttpClient(ssl_context=self.client_ctx) as client:
                yield client, f"{self.scheme}://{addr.replace('127.0.0.1', 'localhost')}"

    async def raw(self) -> Raw:
        stream: anyio.abc.ByteStream = await self.net.connect(self.addr)
        if self.scheme == "https":
            stream = await TLSStream.wrap(
                stream, hostname="localhost", ssl_context=self.client_ctx, standard_compatible=False
            )
        return Raw(stream)


@pytest.fixture(params=["tcp", "transport-tcp-asyncio"])
def web(scheme: str, tls_files: TlsFiles, request: pytest.FixtureRequest) -> Iterator[Site]:
    """Plain TCP sends files with sendfile(2) (trio: on the raw socket; asyncio: through the
    transport of a ProtocolStream); TLS reads and sends them in chunks."""
    yield Site(scheme, tls_files, request.param)


def test_files_types_and_cache_headers(web: Site, site: Path) -> None:
    async def main() -> None:
        async with web.serving(site) as (c, base):
            r = await c.get(f"{base}/style.css")
            assert r.status == 200 and await r.read() == b"body{}"
            assert r.headers.get("content-type") == "text/css; charset=utf-8"
            assert r.headers.get("cache-control") == "public, max-age=0, must-revalidate"
            assert r.headers.get("x-content-type-options") == "nosniff"
            assert (r.headers.get("etag") or "").startswith('"')
            assert (r.headers.get("last-modified") or "").endswith("GMT")
            r = await c.get(f"{base}/app.js")
            assert "javascript" in (r.headers.get("content-type") or "")
            await r.read()
            r = await c.get(f"{base}/")
            assert await r.read() == b"<h1>home</h1>"
            assert r.headers.get("content-type") == "text/html; charset=utf-8"
            r = await c.get(f"{base}/sub/")
            assert await r.read() == b"<h1>sub</h1>"
            r = await c.get(f"{base}/with%20space.txt")
            assert await r.read() == b"spaced"
            r = await c.get(f"{base}/.well-known/security.txt")
            assert await r.read() == b"contact"
            r = await c.get(f"{base}/alias.css")  # a symlink inside the root is fine
            assert await r.read() == b"body{}"
            r = await c.get(f"{base}/big.bin")
            chunks = [chunk async for chunk in r.iter_bytes()]
            assert b"".join(chunks) == BIG and len(chunks) > 1
            r = await c.post(f"{base}/style.css", body=b"x")
            assert r.status == 405 and r.headers.get("allow") == "GET, HEAD"
            await r.read()
            r = await c.get(f"{base}/nope.txt")
            assert r.status == 404
            await r.read()

    web.net.run(main)


def test_ranges_conditionals_and_head(web: Site, site: Path) -> None:
    async def main() -> None:
        async with web.serving(site) as (c, base):
            url = f"{base}/big.bin"
            r = await c.head(url)
            assert r.status == 200 and r.headers.get("content-length") == str(len(BIG))
            assert r.headers.get("accept-ranges") == "bytes"
            etag = r.headers.get("etag") or ""
            lm = r.headers.get("last-modified") or ""
            r = await c.get(url, headers={"range": "bytes=1000-1999"})
            assert r.status == 206 and await r.read() == BIG[1000:2000]
            assert r.headers.get("content-range") == f"bytes 1000-1999/{len(BIG)}"
            r = await c.get(url, headers={"range": "bytes=-100"})
            assert await r.read() == BIG[-100:]
            r = await c.get(url, headers={"range": "bytes=1200000-"})
            assert await r.read() == BIG[1200000:]
            r = await c.get(url, headers={"range": "bytes=0-0,-1"})
            body = await r.read()
            assert r.status == 206 and BIG[:1] in body and BIG[-1:] in body
            assert b"content-range: bytes 1299999-1299999/1300000" in body
            r = await c.get(url, headers={"range": "bytes=2000000-"})
            assert r.status == 416
            assert r.headers.get("content-range") == f"bytes */{len(BIG)}"
            await r.read()
            r = await c.get(url, headers={"if-none-match": etag})
            assert r.status == 304 and r.headers.get("etag") == etag
            r = await c.get(url, headers={"if-modified-since": lm})
            assert r.status == 304
            os.utime(site / "big.bin", (1, 2_000_000_000))  # modified: validators change
            r = await c.get(url, headers={"if-none-match": etag, "range": "bytes=0-9"})
            assert r.status == 206 and r.headers.get("etag") != etag
            await r.read()
            r = await c.get(url, headers={"if-range": etag, "range": "bytes=0-9"})
            assert r.status == 200  # stale If-Range: whole file
            await r.aclose()

    web.net.run(main)


TRAVERSALS = [
    "/../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/%2E%2E/outside/secret.txt",
    "/..%2foutside%2fsecret.txt",
    "/sub/..%2f..%2foutside/secret.txt",
    "/..%5coutside%5csecret.txt",
    "/sub\\..\\..\\outside\\secret.txt",
    "/index.html%00.css",
    "/escape.txt",
    "/escdir/secret.txt",
    "/./escape.txt",
    "/%252e%252e/outside/secret.txt",
    "//outside/secret.txt",
    "/sub/../../outside/secret.txt",
    "/.env",
    "/sub/%2e%2e/.env",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_escape_from_root(web: Site, site: Path, path: str) -> None:
    async def main() -> None:
        async with web.serving(site):
            raw = await web.raw()
            await raw.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = await raw.response()
            assert status in (400, 404)
            assert SECRET not in body
            await raw.send(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.response())[2] == b"body{}"
            await raw.aclose()

    web.net.run(main)


def test_spa_fallback(web: Site, site: Path) -> None:
    async def main() -> None:
        async with web.serving(site, spa=True) as (c, base):
            r = await c.get(f"{base}/albums/42")
            assert r.status == 200 and await r.read() == b"<h1>home</h1>"
            assert r.headers.get("cache-control") == "no-cache"
            r = await c.get(f"{base}/missing.js")  # assets are not faked
            assert r.status == 404
            await r.read()
            r = await c.get(f"{base}/%2e%2e/x")
            assert r.status == 400
            await r.read()
        async with web.serving(site) as (c, base):
            r = await c.get(f"{base}/albums/42")
            assert r.status == 404
            await r.read()

    web.net.run(main)
