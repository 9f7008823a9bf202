"""End to end: the built web app (``frontend/dist``) in Debian's headless chromium, against a
real local cluster (``dspot-spotify up``: three node processes and the HTTPS gateway).

The tests of this module share one cluster and run in order: sign up and in; upload several
files (one refused) and watch their progress and tags; search; play a song, ``kill -9`` the
node serving its stream and check that the music keeps playing and the dashboard marks that
node dead; then playlists. Screenshots of the main views go to ``build/screenshots`` (or
``$DSPOT_SCREENSHOTS``); ``nox -s screenshots`` refreshes the documentation's copies.

They need ``frontend/dist`` (``cd frontend && npm ci && npm run build``; the nox ``frontend``
session builds it first) and a ``chromium`` on PATH; without either they are skipped with a
message saying so (on CI, where both are installed, they fail instead).
"""

from __future__ import annotations

import math
import os
import random
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from dspot_spotify.demo import generate_demo_library, make_cover_png, tag_file
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from dspot.testing import poll_until
from tests.helpers.prerequisites import REPO, require_chromium, require_frontend_build
from tests.helpers.processes import ProcessCluster, process_cluster, retry_503

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(os.environ.get("DSPOT_SCREENSHOTS") or REPO / "build" / "screenshots")
ADMIN_PASSWORD = "e2e admin password"
DESKTOP = {"width": 1366, "height": 850}
LONG_TITLE = "Failover Tone"
LONG_SECONDS = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """Three node processes and the HTTPS gateway serving the built app; ``admin`` exists."""
    dist = require_frontend_build()
    require_chromium()
    with process_cluster(tmp_path_factory.mktemp("e2e")) as processes:
        processes.start_nodes(["node1", "node2", "node3"], quorum=True)
        processes.start_gateway(frontend=dist)
        retry_503(lambda: processes.client().register("admin", ADMIN_PASSWORD))
        yield processes


def kill_9(cluster: ProcessCluster, node: str) -> None:
    cluster.procs[node].kill()


def no_tracebacks(cluster: ProcessCluster) -> None:
    """No process that is still running logged a traceback."""
    running = [n for n, p in cluster.procs.items() if p.poll() is None]
    for name in [*running, "gateway"]:
        assert "Traceback" not in cluster.log(name), name


@pytest.fixture(scope="module")
def browser(cluster: ProcessCluster) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=require_chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                # No calls home: this machine's network is closed, and tests must not wait
                # on refused connections.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
            headless=True,
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser: Browser, cluster: ProcessCluster) -> Iterator[Page]:
    """The admin, signed in, at desktop size; shared by the tests below, in order."""
    ctx = browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    pg.goto(cluster.url)
    sign_in(pg, "admin", ADMIN_PASSWORD)
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A long tagged WAV (for playback and failover), a few small demo tracks, and a text
    file the service must refuse."""
    d = tmp_path_factory.mktemp("music")
    long = d / "failover-tone.wav"
    write_tone(long, seconds=LONG_SECONDS)
    tag_file(
        long,
        title=LONG_TITLE,
        artist="The E2E Band",
        album="Browser Sessions",
        track=1,
        year=2024,
        genre="Electronic",
        cover=make_cover_png(random.Random(7)),
    )
    demo = generate_demo_library(
        d / "demo", artists=2, formats=("mp3", "ogg"), min_seconds=3, max_seconds=5
    )
    refused = d / "notes.txt"
    refused.write_text("these are not the songs you are looking for\n" * 20)
    return [long, *(t.path for t in demo), refused]


def write_tone(path: Path, *, seconds: int, rate: int = 22050) -> None:
    """A mono 16-bit WAV: a slowly gliding sine, so it is real audio the browser decodes."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        phase = 0.0
        for i in range(seconds * rate):
            freq = 330.0 + 110.0 * math.sin(2 * math.pi * i / (rate * 8))
            phase += 2 * math.pi * freq / rate
            frames += struct.pack("<h", int(9000 * math.sin(phase)))
        w.writeframes(bytes(frames))


def sign_in(pg: Page, username: str, password: str) -> None:
    pg.get_by_label("Username").fill(username)
    pg.get_by_label("Password").fill(password)
    pg.get_by_role("button", name="Sign in", exact=True).click()
    expect(pg.get_by_role("navigation", name="Main")).to_be_visible()


def nav(pg: Page, name: str) -> None:
    """Go to a view through the sidebar (client-side: the player keeps playing)."""
    pg.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def audio_time(pg: Page) -> float:
    return float(pg.evaluate("document.querySelector('audio').currentTime"))


def shot(pg: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.wait_for_timeout(300)  # let covers and transitions settle
    pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def throttle(pg: Page, *, down: float = -1, up: float = -1) -> None:
    """Limit this page's network (bytes/s; -1: no limit) through the DevTools protocol."""
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": down, "uploadThroughput": up},
    )


# -- the tests ---------------------------------------------------------------------------------


def test_sign_up_then_sign_out_and_in_again(browser: Browser, cluster: ProcessCluster) -> None:
    ctx = browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    ctx.set_default_timeout(20_000)
    try:
        pg = ctx.new_page()
        pg.goto(cluster.url)
        expect(pg.get_by_role("heading", name="Sign in")).to_be_visible()
        shot(pg, "sign-in")
        pg.get_by_role("tab", name="Sign up").click()
        pg.get_by_label("Username").fill("listener")
        pg.get_by_label("Password").fill("a listener's password")
        pg.get_by_role("button", name="Sign up", exact=True).click()
        expect(pg.get_by_role("navigation", name="Main")).to_be_visible()
        expect(pg.get_by_text("listener", exact=True)).to_be_visible()
        pg.get_by_role("button", name="Sign out").click()
        expect(pg.get_by_role("heading", name="Sign in")).to_be_visible()
        # A wrong password is refused with the server's reason; the right one gets in.
        pg.get_by_label("Username").fill("listener")
        pg.get_by_label("Password").fill("not the password")
        pg.get_by_role("button", name="Sign in", exact=True).click()
        expect(pg.get_by_role("alert")).to_be_visible()
        sign_in(pg, "listener", "a listener's password")
        # The session survives a reload (token kept in localStorage).
        pg.reload()
        expect(pg.get_by_role("navigation", name="Main")).to_be_visible()
    finally:
        ctx.close()


def test_upload_shows_progress_tags_and_refusals(page: Page, music: list[Path]) -> None:
    nav(page, "Upload")
    # Uploads start as soon as files are chosen: record every value the long file's progress
    # bar takes, and send at a bounded rate so there is progress to see.
    page.evaluate(
        """(name) => {
          window.__progress = [];
          new MutationObserver((records) => {
            for (const r of records) {
              if (r.target.getAttribute('aria-label') === `Progress of ${name}`)
                window.__progress.push(Number(r.target.value));
            }
          }).observe(document.body, {attributes: true, attributeFilter: ['value'], subtree: true});
        }""",
        music[0].name,
    )
    throttle(page, up=1_000_000)
    page.get_by_label("Audio files to upload").set_input_files([str(p) for p in music])
    rows = page.get_by_test_id("upload-row")
    expect(rows).to_have_count(len(music))
    # Drag and drop adds files too (here: one that only pretends to be an MP3).
    dropped = page.evaluate_handle(
        """() => {
          const dt = new DataTransfer();
          const junk = 'not really audio '.repeat(64);
          dt.items.add(new File([junk], 'broken.mp3', {type: 'audio/mpeg'}));
          return dt;
        }"""
    )
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(rows).to_have_count(len(music) + 1)
    long_row = page.get_by_role("listitem", name=music[0].name)
    expect(long_row.get_by_test_id("upload-status")).to_have_text("Uploaded", timeout=60_000)
    throttle(page)
    seen = page.evaluate("window.__progress")
    assert any(0 < v < 100 for v in seen), f"no intermediate progress shown: {seen}"
    assert seen[-1] == 100
    tags = page.get_by_role("definition").filter(has_text=LONG_TITLE)
    expect(tags).to_be_visible()
    found = long_row.get_by_label(f"Tags found in {music[0].name}")
    for text in ("The E2E Band", "Browser Sessions", "2024", "Electronic", "1:00"):
        expect(found).to_contain_text(text)
    for name in ("notes.txt", "broken.mp3"):
        refused = page.get_by_role("listitem", name=name)
        expect(refused.get_by_test_id("upload-status")).to_have_text("Refused", timeout=60_000)
        # The server's reason, not a generic failure.
        expect(refused.get_by_role("alert")).to_contain_text(f"{name}: ")
        assert len(refused.get_by_role("alert").inner_text()) > len(name) + 10
    for p in music[1:-1]:
        status = page.get_by_role("listitem", name=p.name).get_by_test_id("upload-status")
        expect(status).to_have_text("Uploaded", timeout=60_000)
    shot(page, "upload")


def test_search_play_kill_the_serving_node_and_keep_playing(
    page: Page, cluster: ProcessCluster
) -> None:
    nav(page, "Songs")
    page.get_by_label("Search songs").fill("failover")
    table = page.get_by_role("table", name="Songs")
    expect(table.get_by_role("row")).to_have_count(2)  # the header and the song
    expect(table).to_contain_text(LONG_TITLE)

    served: list[str] = []

    def on_response(r: Response) -> None:
        if "/stream" in r.url and (node := r.headers.get("x-served-by")):
            served.append(node)

    page.on("response", on_response)
    # A slow link, so the stream is still being sent when its node dies.
    throttle(page, down=120_000)
    page.get_by_role("button", name=f"Play {LONG_TITLE}").click()
    expect(page.get_by_test_id("now-playing")).to_have_text(LONG_TITLE)
    poll_until(lambda: audio_time(page) > 2.0, timeout=20, what="playback to start")
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    assert page.evaluate("navigator.mediaSession.metadata.title") == LONG_TITLE
    assert page.evaluate("navigator.mediaSession.playbackState") == "playing"
    assert served, "the stream response did not say which node served it (X-Served-By)"
    victim = served[-1]
    at_kill = audio_time(page)
    kill_9(cluster, victim)

    poll_until(
        lambda: audio_time(page) > at_kill + 4.0,
        timeout=30,
        what=f"playback to go on after killing {victim}",
    )
    assert page.evaluate("document.querySelector('audio').error") is None
    assert not page.evaluate("document.querySelector('audio').paused")

    nav(page, "Cluster")
    expect(page.locator(".live")).to_have_text("Live")  # the events WebSocket, via the gateway
    dashboard = page.get_by_role("table", name="Members")
    expect(dashboard.locator(f'tr[data-node="{victim}"]')).to_have_attribute(
        "data-state", "dead", timeout=30_000
    )
    expect(page.locator(f'svg g[data-node="{victim}"]')).to_have_attribute("data-state", "dead")
    # Still playing, past everything above, while the dashboard is shown.
    later = audio_time(page)
    poll_until(
        lambda: audio_time(page) > later + 1.0,
        timeout=15,
        what="playback to go on on the dashboard",
    )
    throttle(page)
    # A seek makes a new ranged request, which the gateway sends to a live node.
    page.evaluate(f"document.querySelector('audio').currentTime = {LONG_SECONDS - 15}")
    poll_until(
        lambda: audio_time(page) > LONG_SECONDS - 13, timeout=20, what="playback after a seek"
    )
    page.get_by_label("Find a song").fill("failover")
    page.get_by_role("button", name=LONG_TITLE).click()
    copies = page.get_by_role("table", name=f"Copies of {LONG_TITLE}")
    expect(copies.locator(f'tr[data-node="{victim}"]')).to_contain_text("dead")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "dashboard")
    # Starting the song recorded a play.
    plays = page.evaluate(
        """async () => {
          const {token} = JSON.parse(localStorage.getItem('dspot.session'));
          const headers = {Authorization: `Bearer ${token}`};
          const r = await fetch('/api/songs?q=failover', {headers});
          return (await r.json()).items[0].play_count;
        }"""
    )
    assert plays >= 1
    no_tracebacks(cluster)


def test_library_views_and_player(page: Page, music: list[Path]) -> None:
    page.get_by_role("button", name="Pause", exact=True).click()
    nav(page, "Albums")
    grid = page.get_by_role("list", name="Albums")
    album = grid.get_by_role("link", name="Browser Sessions by The E2E Band")
    expect(album).to_be_visible()
    expect(grid.locator("img")).not_to_have_count(0)  # the demo albums' embedded covers
    shot(page, "library")
    album.click()
    expect(page.get_by_role("heading", name="Browser Sessions")).to_be_visible()
    # The cover the WAV carried, fetched with the token in the URL (an <img> sends no header).
    cover = page.locator('main img[alt="Cover of Browser Sessions"]')
    expect(cover).to_be_visible()
    poll_until(
        lambda: cover.evaluate("i => i.complete && i.naturalWidth") > 0,
        timeout=10,
        what="the cover",
    )
    shot(page, "album")
    main = page.get_by_role("main")
    main.get_by_role("button", name="Like", exact=True).click()  # the album, not a track
    expect(main.get_by_role("button", name="Unlike", exact=True)).to_be_visible()
    nav(page, "Artists")
    page.get_by_role("list", name="Artists").get_by_role("link", name="The E2E Band").click()
    expect(page.get_by_role("heading", name="The E2E Band")).to_be_visible()
    nav(page, "Songs")
    page.get_by_label("Search songs").fill("")
    table = page.get_by_role("table", name="Songs")
    expect(table.get_by_role("row")).to_have_count(1 + len(music) - 1)  # header; not notes.txt
    shot(page, "songs")
    # Play the table from its second row; next and previous walk it; like the song.
    second = table.get_by_role("row").nth(2)
    title = second.locator(".song-title").inner_text()
    second.get_by_role("button", name=f"Play {title}").click()
    expect(page.get_by_test_id("now-playing")).to_have_text(title)
    page.get_by_role("button", name="Next", exact=True).click()
    third = table.get_by_role("row").nth(3).locator(".song-title").inner_text()
    expect(page.get_by_test_id("now-playing")).to_have_text(third)
    # "Previous" in a song's first seconds goes to the song before (later, it restarts).
    page.evaluate("document.querySelector('audio').currentTime = 0")
    page.get_by_role("button", name="Previous", exact=True).click()
    expect(page.get_by_test_id("now-playing")).to_have_text(title)
    like = page.get_by_role("contentinfo", name="Player").get_by_role("button", name="Like")
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Queue", exact=True).click()
    expect(page.get_by_role("region", name="Queue")).to_contain_text(third)
    shot(page, "player")
    page.get_by_role("button", name="Close queue").click()
    nav(page, "Liked")
    expect(page.get_by_role("table", name="Liked songs")).to_contain_text(title)
    expect(page.get_by_role("list", name="Liked albums")).to_contain_text("Browser Sessions")


def test_playlists_create_add_reorder_rename_play(page: Page, music: list[Path]) -> None:
    nav(page, "Playlists")
    expect(page.get_by_text("No playlists yet")).to_be_visible()
    page.get_by_label("New playlist name").fill("Road Trip")
    page.get_by_role("button", name="Create playlist").click()
    expect(page.get_by_role("heading", name="Road Trip")).to_be_visible()
    nav(page, "Songs")
    table = page.get_by_role("table", name="Songs")
    expect(table.get_by_role("row")).to_have_count(len(music))  # header, every song
    titles = [t.strip() for t in table.locator(".song-title").all_inner_texts()][:3]
    assert len(titles) == 3
    for t in titles:
        table.get_by_label(f"Add {t} to playlist").select_option(label="Road Trip")
        expect(page.get_by_role("status").filter(has_text=f"Added “{t}”")).to_be_visible()
    nav(page, "Playlists")
    page.get_by_role("link", name="Road Trip").click()
    songs = page.get_by_role("table", name="Songs of Road Trip")
    expect(songs.locator(".song-title")).to_have_text(titles)
    songs.get_by_role("button", name=f"Move {titles[0]} down").click()
    expect(songs.locator(".song-title")).to_have_text([titles[1], titles[0], titles[2]])
    songs.get_by_role("button", name=f"Remove {titles[2]} from the playlist").click()
    expect(songs.locator(".song-title")).to_have_text([titles[1], titles[0]])
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Playlist name").fill("Night Drive")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Night Drive")).to_be_visible()
    page.get_by_role("button", name="Play Night Drive").click()
    expect(page.get_by_test_id("now-playing")).to_have_text(titles[1])
    shot(page, "playlists")
    # The order survives a reload: it is the catalog's, not the page's.
    page.reload()
    reloaded = page.get_by_role("table", name="Songs of Night Drive").locator(".song-title")
    expect(reloaded).to_have_text([titles[1], titles[0]])


def test_phone_width(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 812})
    try:
        nav(page, "Songs")
        expect(page.get_by_role("table", name="Songs")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at phone width ({width} px)"
        expect(page.get_by_role("button", name="Next", exact=True)).to_be_visible()
        shot(page, "phone-songs")
    finally:
        page.set_viewport_size(DESKTOP)


def test_read_only_banner_once_the_majority_is_gone(page: Page, cluster: ProcessCluster) -> None:
    """Last (it breaks the cluster): with two of three nodes dead, writes are refused and the
    app says why, while the catalog can still be read."""
    nav(page, "Cluster")
    alive = page.get_by_role("table", name="Members").locator(
        'tr[data-state="alive"]:not([data-node="gateway"])'
    )
    expect(alive).to_have_count(2)
    victim = alive.first.get_attribute("data-node")
    assert victim is not None
    kill_9(cluster, victim)
    banner = page.get_by_role("alert").filter(has_text="read-only")
    expect(banner).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stat-quorum")).to_contain_text("no")
    nav(page, "Songs")
    expect(page.get_by_role("table", name="Songs")).to_contain_text(LONG_TITLE)
    nav(page, "Playlists")
    page.get_by_label("New playlist name").fill("Not now")
    page.get_by_role("button", name="Create playlist").click()
    expect(page.get_by_text("read-only: no quorum")).to_be_visible()
