"""End to end, continued: accounts and the things people expect of a music server, in the
built web app in headless chromium against a real local cluster (three node processes and
the HTTPS gateway, as in :mod:`tests.e2e.test_frontend`, on a cluster of this module's own).

Sign up, open the settings, copy the Subsonic credentials (and sign a Subsonic client in
with them), sign out (the token is revoked on the server); every destination reachable at
375 px; an unknown album's not-found view; an album whose cover came with its second track;
a reload (and another browser) keeps the queue and the position.
"""

from __future__ import annotations

import hashlib
import json
import random
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dspot_spotify.demo import make_cover_png, tag_file
from playwright.sync_api import Browser, BrowserContext, Page, expect

from dspot.testing import poll_until
from tests.e2e import test_frontend
from tests.e2e.test_frontend import DESKTOP, audio_time, nav, shot, sign_in, write_tone
from tests.helpers.processes import ProcessCluster

pytestmark = pytest.mark.slow

ADMIN = ("admin", test_frontend.ADMIN_PASSWORD)
PHONE = {"width": 375, "height": 812}

# The other end-to-end module's fixtures, for a cluster and a browser of this module's own.
cluster = test_frontend.cluster
browser = test_frontend.browser
COVER = make_cover_png(random.Random(21), 96)


@contextmanager
def page_of(
    browser: Browser,
    cluster: ProcessCluster,
    *,
    viewport: dict[str, int] = DESKTOP,
    permissions: list[str] | None = None,
) -> Iterator[Page]:
    """A page in a browser context of its own (its own storage), at ``viewport``."""
    ctx: BrowserContext = browser.new_context(
        ignore_https_errors=True, viewport=viewport, permissions=permissions or []
    )
    ctx.set_default_timeout(20_000)
    try:
        pg = ctx.new_page()
        pg.goto(cluster.url)
        yield pg
    finally:
        ctx.close()


def subsonic(cluster: ProcessCluster, endpoint: str, **params: Any) -> dict[str, Any]:
    """One Subsonic call through the gateway (JSON); the ``subsonic-response``."""
    query = urllib.parse.urlencode({"f": "json", "v": "1.16.1", "c": "e2e", **params}, doseq=True)
    context = ssl.create_default_context(cafile=str(cluster.ca))
    with urllib.request.urlopen(f"{cluster.url}/rest/{endpoint}?{query}", context=context) as r:
        doc: dict[str, Any] = json.loads(r.read())["subsonic-response"]
    return doc


def token_auth(username: str, password: str) -> dict[str, str]:
    salt = "e2e5a17"
    return {"u": username, "t": hashlib.md5((password + salt).encode()).hexdigest(), "s": salt}


def session_token(pg: Page) -> str:
    token: str = pg.evaluate("JSON.parse(localStorage.getItem('dspot.session')).token")
    return token


# -- the tests ---------------------------------------------------------------------------------


def test_sign_up_copy_the_subsonic_credentials_and_sign_out(
    browser: Browser, cluster: ProcessCluster
) -> None:
    with page_of(browser, cluster, permissions=["clipboard-read", "clipboard-write"]) as pg:
        pg.get_by_role("tab", name="Sign up").click()
        pg.get_by_label("Username").fill("settler")
        pg.get_by_label("Password").fill("settler's password")
        pg.get_by_role("button", name="Sign up", exact=True).click()
        nav(pg, "Settings")
        expect(pg.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
        expect(pg.get_by_role("textbox", name="Server URL")).to_have_value(cluster.url)
        expect(pg.get_by_role("textbox", name="Username")).to_have_value("settler")
        # The account password works in apps: the page says so.
        expect(pg.get_by_text("the password you sign in here with")).to_be_visible()
        copied: dict[str, str] = {}
        for label, button in (("App password", "Copy app password"), ("API key", "Copy API key")):
            field = pg.get_by_role("textbox", name=label, exact=True)
            expect(field).to_have_attribute("type", "password")  # hidden until shown
            pg.get_by_role("button", name=button).click()
            status = field.locator("xpath=ancestor::div[@class='copy-field']").get_by_role("status")
            expect(status).to_have_text("Copied")
            copied[label] = pg.evaluate("navigator.clipboard.readText()")
            assert copied[label] == field.input_value() and len(copied[label]) >= 24
        shot(pg, "settings")
        # What was copied signs a Subsonic client in, through the gateway; so does the
        # account password, with token auth. (A player sends no log position: the node the
        # gateway picks may apply the credentials' entry a moment after the one that wrote it.)
        for password in (copied["App password"], "settler's password"):
            params = token_auth("settler", password)
            poll_until(
                lambda p=params: subsonic(cluster, "ping", **p)["status"] == "ok",
                timeout=10,
                what="a ping",
            )
        by_key = subsonic(cluster, "tokenInfo", apiKey=copied["API key"])
        assert by_key["tokenInfo"]["username"] == "settler"
        # Signing out revokes the token on the server, not only in this browser: every node
        # refuses it once it has applied the revocation.
        token = session_token(pg)
        pg.get_by_role("button", name="Sign out").click()
        expect(pg.get_by_role("heading", name="Sign in")).to_be_visible()
        poll_until(
            lambda: all(me_status(pg, token) == 401 for _ in range(6)),
            timeout=15,
            what="every node to refuse the token",
        )


def me_status(pg: Page, token: str) -> int:
    """The status of ``GET /api/me`` with ``token``, asked from the page."""
    status: int = pg.evaluate(
        "async (t) => (await fetch('/api/me', {headers: {Authorization: 'Bearer ' + t}})).status",
        token,
    )
    return status


def test_every_destination_is_reachable_at_375_px(
    browser: Browser, cluster: ProcessCluster
) -> None:
    with page_of(browser, cluster, viewport=PHONE) as pg:
        sign_in(pg, *ADMIN)
        main_nav = pg.get_by_role("navigation", name="Main")
        more = main_nav.get_by_role("button", name="More")
        destinations = {
            "Albums": "Albums",
            "Artists": "Artists",
            "Songs": "Songs",
            "Liked": "Liked",
            "Playlists": "Playlists",
            "Upload": "Upload",
            "Cluster": "Cluster",
            "Settings": "Settings",
            "Users": "Users",
        }
        for label, heading in destinations.items():
            link = main_nav.get_by_role("link", name=label, exact=True)
            if not link.is_visible():  # in the "More" menu
                more.click()
                expect(more).to_have_attribute("aria-expanded", "true")
            expect(link).to_be_in_viewport()
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, label
            link.click()
            expect(pg.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
            width = pg.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{label} scrolls sideways at phone width ({width} px)"
        more.click()
        sign_out = main_nav.get_by_role("button", name="Sign out")
        expect(sign_out).to_be_in_viewport()
        shot(pg, "phone-menu")
        sign_out.click()
        expect(pg.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_unknown_album_shows_a_not_found_view(browser: Browser, cluster: ProcessCluster) -> None:
    with page_of(browser, cluster) as pg:
        sign_in(pg, *ADMIN)
        pg.goto(f"{cluster.url}/albums/no-such-album")
        expect(pg.get_by_role("heading", name="Album not found")).to_be_visible()
        expect(pg.get_by_text("Something went wrong")).to_have_count(0)
        expect(pg.get_by_role("button", name="Try again")).to_have_count(0)
        pg.get_by_role("main").get_by_role("link").first.click()  # the way back
        expect(pg.get_by_role("heading", name="Albums", exact=True)).to_be_visible()


def test_an_album_shows_the_cover_its_second_track_brought(
    browser: Browser, cluster: ProcessCluster, tmp_path: Path
) -> None:
    admin = cluster.client()
    admin.login(*ADMIN)
    for track, cover in ((1, None), (2, COVER)):
        path = tmp_path / f"track{track}.wav"
        write_tone(path, seconds=2)
        tag_file(
            path,
            title=f"Second Light {track}",
            artist="Late Art",
            album="Second Light",
            track=track,
            year=2025,
            cover=cover,
        )
        status, song = admin.upload(path)
        assert status == 201, song
    album_id = song["album_id"]
    with page_of(browser, cluster) as pg:
        sign_in(pg, *ADMIN)
        grid = pg.get_by_role("list", name="Albums")
        card = grid.get_by_role("link", name="Second Light by Late Art")
        expect(card).to_be_visible()
        image = card.locator("img")
        expect(image).to_be_visible()
        poll_until(
            lambda: image.evaluate("i => i.complete && i.naturalWidth") == 96,
            timeout=15,
            what="the card",
        )
        card.click()
        cover = pg.locator('main img[alt="Cover of Second Light"]')
        expect(cover).to_be_visible()
        poll_until(
            lambda: cover.evaluate("i => i.complete && i.naturalWidth") == 96,
            timeout=15,
            what="the cover",
        )
        # The bytes shown are the second track's art.
        shown = pg.evaluate(
            "async (src) => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer()))",
            cover.get_attribute("src"),
        )
        assert bytes(shown) == COVER
    # Subsonic players see the same cover for the album.
    doc = subsonic(cluster, "getAlbum", id=album_id, **token_auth(*ADMIN))
    assert doc["album"]["coverArt"] == album_id


def test_a_reload_keeps_the_queue_and_the_position(
    browser: Browser, cluster: ProcessCluster, tmp_path: Path
) -> None:
    admin = cluster.client()
    admin.login(*ADMIN)
    path = tmp_path / "resume.wav"
    write_tone(path, seconds=60)
    tag_file(path, title="Resume Point", artist="Late Art", album="Resumes", track=1)
    status, song = admin.upload(path)
    assert status == 201, song
    with page_of(browser, cluster) as pg:
        sign_in(pg, *ADMIN)
        nav(pg, "Songs")
        pg.get_by_label("Search songs").fill("resume point")
        pg.get_by_role("button", name="Play Resume Point").click()
        expect(pg.get_by_test_id("now-playing")).to_have_text("Resume Point")
        poll_until(lambda: audio_time(pg) > 1.0, timeout=20, what="playback to start")
        pg.evaluate("document.querySelector('audio').currentTime = 20")
        poll_until(lambda: audio_time(pg) >= 20.5, timeout=20, what="playback after the seek")
        pg.get_by_role("button", name="Pause", exact=True).click()
        paused_at = audio_time(pg)
        pg.reload()
        expect(pg.get_by_test_id("now-playing")).to_have_text("Resume Point")
        poll_until(
            lambda: abs(audio_time(pg) - paused_at) < 1.0,
            timeout=15,
            what="the position after a reload",
        )
        expect(pg.get_by_role("button", name="Play", exact=True)).to_be_visible()  # paused

        # The server has it too (the app saved it with savePlayQueue on the pause, or, when
        # the reload cut that save short, the reloaded page gave the server its newer copy)...
        def saved() -> dict[str, Any]:
            queue: dict[str, Any] = subsonic(cluster, "getPlayQueue", **token_auth(*ADMIN))[
                "playQueue"
            ]
            return queue

        poll_until(
            lambda: abs(saved().get("position", 0) - paused_at * 1000) < 1500,
            timeout=15,
            what="the server's copy of the position",
        )
        queue = saved()
        queued = [e["id"] for e in queue["entry"]]
        assert queue["current"] == song["id"] and song["id"] in queued
        assert queue["changedBy"] == "dspot-web"
    # ...so another browser, signed in as the same user, starts where this one stopped.
    with page_of(browser, cluster) as other:
        sign_in(other, *ADMIN)
        expect(other.get_by_test_id("now-playing")).to_have_text("Resume Point")
        poll_until(
            lambda: abs(audio_time(other) - paused_at) < 1.5,
            timeout=15,
            what="the position elsewhere",
        )
