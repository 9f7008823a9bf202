"""``dspot-spotify import`` and ``status`` (tools.py) against a real node over TCP.

The node runs in this process, on its own trio thread, with a one-copy blob store so one node
takes uploads; the tools run on the test's thread through the real command line.
"""

from __future__ import annotations

import http.server
import io
import json
import random
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from dspot_spotify import tools
from dspot_spotify.auth import ScryptParams
from dspot_spotify.cli import main
from dspot_spotify.client import ApiClient
from dspot_spotify.demo import encode_audio, synthesize, tag_file
from dspot_spotify.node import NodeConfig, SpotifyNode

from dspot.blobstore import BlobStoreConfig
from dspot.disk import LocalDisk
from tests.examples.simcluster import solo_node

USER, PASSWORD = "importer", "importer password"
MAX_UPLOAD = 1024 * 1024


class SoloNode:
    """One SpotifyNode over TCP on 127.0.0.1, run by trio on a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""
        self.node: SpotifyNode | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported by stop()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        disk = await LocalDisk.open(self.root / "disk")
        try:
            node = solo_node(
                disk,
                NodeConfig(
                    cluster_size=1,
                    scrypt=ScryptParams(n=2**4),
                    blobstore=BlobStoreConfig(replicas=1, write_quorum=1),
                    max_upload=MAX_UPLOAD,
                ),
            )
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                await nursery.start(node.run)
                with trio.fail_after(20):
                    # No event announces "quorum and a token holder": poll.
                    while not (node.has_quorum() and node.ring.holder):  # noqa: ASYNC110
                        await trio.sleep(0.02)
                self.node = node
                self.url = f"http://{node.http_bound_address}"
                self._ready.set()
        finally:
            await disk.aclose()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(30), "the node did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._scope is not None and self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(20)
        assert not self._thread.is_alive()
        if self._error is not None:
            raise self._error


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoloNode]:
    node = SoloNode(tmp_path_factory.mktemp("solo"))
    node.start()
    try:
        server = ApiClient(node.url)
        server.json("POST", "/api/auth/register", {"username": USER, "password": PASSWORD})
        yield node
    finally:
        node.stop()


def song_count(url: str) -> int:
    server = ApiClient(url)
    tools.sign_in(server, tools.Credentials(user=USER, password=PASSWORD))
    return int(server.json("GET", "/api/songs?limit=1")["total"])


def make_song(path: Path, seed: int, seconds: float = 0.4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".")
    path.write_bytes(encode_audio(synthesize(random.Random(seed), seconds), 22050, fmt))
    tag_file(path, title=f"Song {seed}", artist=f"Artist {seed % 2}", album="Imports", track=seed)


def library(root: Path, first_seed: int) -> list[str]:
    """Five good songs (returned, in import order), one file the server refuses, and files
    the importer must ignore."""
    good = [
        "A/Album/01 - one.flac",
        "A/Album/02 - two.ogg",
        "B/three.wav",
        "B/four.flac",
        "C/five.wav",
    ]
    for i, rel in enumerate(good):
        make_song(root / rel, first_seed + i)
    (root / "Z").mkdir()
    (root / "Z/broken.mp3").write_bytes(random.Random(first_seed).randbytes(5000))
    (root / "notes.txt").write_text("not audio")
    make_song(root / ".hidden/secret.flac", first_seed + 50)
    make_song(root / "A/.dotfile.wav", first_seed + 51)
    return sorted(good)


def run_cli(*args: str) -> int:
    return main(list(args))


class StopAfter(tools.PlainProgress):
    """Plain progress that presses Ctrl-C once ``n`` files are done."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def file_done(self, f: tools.AudioFile, outcome: str, detail: str) -> None:
        super().file_done(f, outcome, detail)
        if self.index == self.n:
            raise KeyboardInterrupt


def test_scan_finds_audio_by_extension_and_skips_hidden(tmp_path: Path) -> None:
    good = library(tmp_path, 1)
    assert [f.path for f in tools.scan(tmp_path)] == sorted([*good, "Z/broken.mp3"])


def test_import_is_resumable_and_reports_refused_files(
    solo: SoloNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    music = tmp_path / "music"
    good = library(music, 100)
    before = song_count(solo.url)
    creds = tools.Credentials(user=USER, password=PASSWORD)

    # Ctrl-C after two files: those two are on the server and in the state file.
    report = tools.import_folder(music, ApiClient(solo.url), creds, progress=StopAfter(2))
    assert report.aborted == "interrupted" and report.exit_status == 130
    assert report.uploaded == good[:2]
    assert song_count(solo.url) == before + 2
    state = music / tools.DEFAULT_STATE_NAME
    rows = [json.loads(line) for line in state.read_text().splitlines()]
    assert [r["path"] for r in rows] == good[:2]
    assert all(len(r["sha256"]) == 64 and r["song_id"] for r in rows)
    assert "rerun to continue" in capsys.readouterr().out

    # The rerun sends only the rest; the file the server refuses makes the status 1.
    code = run_cli("import", str(music), "--url", solo.url, "--user", USER, "--password", PASSWORD)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "3 uploaded, 0 already on the server, 2 skipped (imported before), 1 failed" in out
    assert "failed: Z/broken.mp3: HTTP 415" in out
    for rel in good[2:]:
        assert f"uploaded: {rel}" in out
    assert song_count(solo.url) == before + 5

    # A third run has nothing to send but the refused file.
    assert run_cli("import", str(music), "--url", solo.url, "--token", _token(solo)) == 1
    out = capsys.readouterr().out
    assert "0 uploaded, 0 already on the server, 5 skipped" in out

    # Without the state file, the server recognises every song: counted done, not doubled.
    state.unlink()
    code = run_cli("import", str(music), "--url", solo.url, "--user", USER, "--password", PASSWORD)
    out = capsys.readouterr().out
    assert code == 1
    assert "0 uploaded, 5 already on the server, 0 skipped" in out
    assert song_count(solo.url) == before + 5
    assert len(state.read_text().splitlines()) == 5


def _token(solo: SoloNode) -> str:
    server = ApiClient(solo.url)
    tools.sign_in(server, tools.Credentials(user=USER, password=PASSWORD))
    assert server.token is not None
    return server.token


def test_parallel_import_and_a_file_over_the_size_limit(
    solo: SoloNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    music = tmp_path / "music"
    names = [f"track{i}.wav" for i in range(6)]
    for i, name in enumerate(names):
        make_song(music / name, 300 + i)
    make_song(music / "zz-huge.wav", 399, seconds=30.0)  # ~1.3 MB > MAX_UPLOAD
    assert (music / "zz-huge.wav").stat().st_size > MAX_UPLOAD
    before = song_count(solo.url)
    state = tmp_path / "elsewhere" / "state.jsonl"
    state.parent.mkdir()
    code = run_cli(
        "import",
        str(music),
        "--url",
        solo.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--jobs",
        "3",
        "--state",
        str(state),
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "6 uploaded, 0 already on the server, 0 skipped (imported before), 1 failed" in out
    assert "failed: zz-huge.wav: HTTP 413" in out
    assert song_count(solo.url) == before + 6
    assert sorted(json.loads(line)["path"] for line in state.read_text().splitlines()) == names
    assert not (music / tools.DEFAULT_STATE_NAME).exists()


def test_bad_credentials_and_unreachable_server_are_one_line_errors(
    solo: SoloNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_song(tmp_path / "a.wav", 1)
    code = run_cli("import", str(tmp_path), "--url", solo.url, "--user", USER, "--password", "no")
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.startswith("dspot-spotify import: login as 'importer' refused") and err.count("\n") == 1
    )
    closed = _closed_port()
    code = run_cli("status", "--url", f"http://127.0.0.1:{closed}", "--token", "x")
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"dspot-spotify status: cannot reach http://127.0.0.1:{closed}: connection refused\n"
    )
    code = run_cli("status", "--url", solo.url, "--token", "forged")
    assert code == 2
    assert "refused the credentials" in capsys.readouterr().err


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- retries and TLS, against a scripted server -------------------------------------------------


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers POST /api/songs with the statuses in ``server.script``, then 201."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path.startswith("/api/auth/login"):
            self._json(200, {"token": "t0k"})
            return
        assert self.headers["authorization"] == "Bearer t0k"
        self.server.seen.append((self.path, self.headers.get("x-filename"), len(body)))
        time.sleep(self.server.delay)
        status = self.server.script.pop(0) if self.server.script else 201
        if status == 201:
            import hashlib

            sha = hashlib.sha256(body).hexdigest()
            self._json(201, {"id": f"s{len(self.server.seen)}", "title": "t", "blob_sha256": sha})
        else:
            self._json(status, {"title": "x", "status": status, "detail": "try later"})

    def _json(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Any, str, str]]:
    """A TLS server with a trustme certificate: (server, https URL, CA file)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    httpd.script = []  # type: ignore[attr-defined]
    httpd.seen = []  # type: ignore[attr-defined]
    httpd.delay = 0.0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"https://127.0.0.1:{httpd.server_address[1]}", str(ca_file)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_transient_errors_are_retried_over_tls(
    scripted: tuple[Any, str, str], tmp_path: Path
) -> None:
    httpd, url, ca = scripted
    make_song(tmp_path / "Café.wav", 1)
    make_song(tmp_path / "b.wav", 2)
    httpd.script = [503, 502]
    server = ApiClient(url, cafile=ca)
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        report = tools.import_folder(
            tmp_path, server, tools.Credentials(user="u", password="p"), out=f, backoff=0.01
        )
    assert report.exit_status == 0, out.read_text()
    assert report.uploaded == ["Café.wav", "b.wav"]
    # Three tries of the first file (the whole body each time), one of the second.
    first = (tmp_path / "Café.wav").stat().st_size
    assert [(p, n) for p, _, n in httpd.seen] == [
        ("/api/songs?filename=Caf%C3%A9.wav", first),
    ] * 3 + [("/api/songs?filename=b.wav", (tmp_path / "b.wav").stat().st_size)]
    assert httpd.seen[0][1] is None and httpd.seen[3][1] == "b.wav"  # X-Filename when ASCII
    assert "retrying Café.wav: HTTP 503: try later" in out.read_text()


def test_a_server_that_stays_unavailable_stops_the_import(
    scripted: tuple[Any, str, str], tmp_path: Path
) -> None:
    httpd, url, ca = scripted
    for i in range(3):
        make_song(tmp_path / f"{i}.wav", i)
    httpd.script = [201, 503, 503, 503, 503, 503]
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        report = tools.import_folder(
            tmp_path,
            ApiClient(url, cafile=ca),
            tools.Credentials(token="t0k"),
            out=f,
            backoff=0.01,
        )
    assert report.uploaded == ["0.wav"]
    assert report.exit_status == 1
    assert report.aborted is not None and "1.wav still failing after 5 tries" in report.aborted
    assert len(httpd.seen) == 6  # 2.wav was never tried
    assert "rerun to continue" in out.read_text()

    # Once the server is back, a rerun continues with what was not done.
    with open(out, "w") as f:
        again = tools.import_folder(
            tmp_path, ApiClient(url, cafile=ca), tools.Credentials(token="t0k"), out=f
        )
    assert again.exit_status == 0 and again.skipped == 1
    assert again.uploaded == ["1.wav", "2.wav"]
    assert len(httpd.seen) == 8


def test_an_untrusted_certificate_is_a_clear_error(
    scripted: tuple[Any, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url, _ = scripted
    assert run_cli("status", "--url", url, "--user", "u", "--password", "p") == 2
    err = capsys.readouterr().err
    assert "TLS certificate of" in err and "pass the CA with --cafile" in err


# -- status ------------------------------------------------------------------------------------

CLUSTER_DOC = {
    "node": "n1",
    "quorum": True,
    "log_position": "2.17",
    "token": {"holder": "n2", "epoch": 2},
    "ring": ["n2", "n1", "n3"],
    "replication": 3,
    "members": [
        {
            "id": "n2",
            "address": "10.0.0.2:7000",
            "http": "10.0.0.2:8080",
            "state": "alive",
            "role": "voter",
            "incarnation": 0,
            "log_position": "2.17",
            "blobs": 12,
            "bytes": 3_400_000,
            "loop_lag_worst_ms": 120.4,
            "loop_lag_p99_ms": 2.5,
            "restarts": 2,
        },
        {
            "id": "gw",
            "address": "10.0.0.9:7000",
            "http": None,
            "state": "alive",
            "role": "observer",
            "incarnation": 0,
            "log_position": None,
            "blobs": None,
            "bytes": None,
        },
        {
            "id": "n3",
            "address": "10.0.0.3:7000",
            "http": "10.0.0.3:8080",
            "state": "dead",
            "role": "voter",
            "incarnation": 1,
            "log_position": None,
            "blobs": None,
            "bytes": None,
        },
    ],
    "songs": 12,
    "under_replicated": 1,
    "under_replicated_songs": [{"id": "s1", "title": "Lonely", "copies": 1, "wanted": 3}],
}


def test_render_status_shows_members_token_and_songs_at_risk() -> None:
    text = tools.render_status(CLUSTER_DOC)
    lines = text.splitlines()
    assert lines[0] == ("answered by n1: quorum yes, log position 2.17, token holder n2 (epoch 2)")
    assert lines[1] == "songs 12, replication R=3, under-replicated 1"
    header = next(i for i, line in enumerate(lines) if line.startswith("ID"))
    assert lines[header].split() == [
        *("ID", "ROLE", "STATE", "HTTP", "RPC", "LOG", "BLOBS", "BYTES"),
        *("STALL", "1m", "LAG", "p99", "RESTARTS"),
    ]
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert rows == [
        ["gw", "observer", "alive", "-", "10.0.0.9:7000", "-", "-", "-", "-", "-", "-"],
        [
            *("n2", "*", "voter", "alive", "10.0.0.2:8080", "10.0.0.2:7000", "2.17", "12"),
            *("3.4", "MB", "120", "ms", "2.5", "ms", "2"),
        ],
        ["n3", "voter", "dead", "10.0.0.3:8080", "10.0.0.3:7000", "-", "-", "-", "-", "-", "-"],
    ]
    assert "  Lonely (s1): 1 of 3 copies" in lines


def test_status_of_a_running_node(solo: SoloNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert solo.node is not None
    code = run_cli("status", "--url", solo.url, "--user", USER, "--password", PASSWORD, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["node"] == "solo" and doc["quorum"] is True
    assert [m["id"] for m in doc["members"]] == ["solo"]
    assert doc["members"][0]["blobs"] == solo.node.blobs.stats().blobs
    assert doc["members"][0]["loop_lag_worst_ms"] >= 0  # measured by the node itself
    code = run_cli("status", "--url", solo.url, "--user", USER, "--password", PASSWORD)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("answered by solo: quorum yes")


# -- the container setup (docker is not needed: the file's structure is checked) --------------

COMPOSE = Path(__file__).parents[2] / "examples" / "spotify" / "compose.yaml"


def _networks(service: dict[str, Any]) -> dict[str, Any]:
    nets = service.get("networks", {})
    if isinstance(nets, list):
        return {name: {} for name in nets}
    return {k: v or {} for k, v in nets.items()}


def _opt(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_file_has_two_networks_and_only_the_gateway_is_public() -> None:
    import yaml
    from dspot_spotify.cli import _parser

    doc = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, Any] = doc["services"]
    assert doc["networks"]["internal"]["internal"] is True
    assert not (doc["networks"]["external"] or {}).get("internal")
    nodes = {n: s for n, s in services.items() if s.get("command", [None])[0] == "node"}
    assert len(nodes) >= 3
    gateways = [n for n, s in services.items() if s.get("command", [None])[0] == "gateway"]
    assert gateways == ["gateway"]
    gateway = services["gateway"]

    # Who is where: nodes inside only, the gateway on both, ports published by the gateway only.
    for name, s in nodes.items():
        assert set(_networks(s)) == {"internal"}, name
    assert set(_networks(gateway)) == {"internal", "external"}
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"gateway"}
    assert [str(p).rsplit(":", 1)[-1] for p in gateway["ports"]] == ["8443"]
    assert services["init"]["network_mode"] == "none"

    # Names that reach the cluster: a service (or an alias) on the internal network.
    internal_names = {n for n, s in services.items() if "internal" in _networks(s)}
    internal_names |= {
        a for s in services.values() for a in _networks(s).get("internal", {}).get("aliases", [])
    }
    rpc_of: dict[str, str] = {}
    parser = _parser()
    for name, s in nodes.items():
        cmd = [str(a) for a in s["command"]]
        args = parser.parse_args(cmd)  # the real command line accepts it
        assert args.rpc.split(":")[0] == name and args.name == name
        assert args.http_advertise.split(":")[0] == name
        assert args.cluster_size == len(nodes)
        rpc_of[name] = args.rpc
        volumes = [str(v) for v in s["volumes"]]
        assert any(v.split(":")[1] == str(args.data) for v in volumes), name
        assert str(args.secret_file).startswith("/secrets/")
        assert "secrets:/secrets:ro" in volumes
    data_volumes = [str(v).split(":")[0] for s in nodes.values() for v in s["volumes"]]
    data_volumes = [v for v in data_volumes if v != "secrets"]
    assert len(set(data_volumes)) == len(nodes)  # one data volume per node
    assert set(data_volumes) <= set(doc["volumes"])
    for name, s in nodes.items():
        seeds = _opt([str(a) for a in s["command"]], "--seeds").split(",")
        assert set(seeds) == set(rpc_of.values()), name
        assert all(seed.split(":")[0] in internal_names for seed in seeds)

    gcmd = [str(a) for a in gateway["command"]]
    joins = _opt(gcmd, "--join").split(",")
    assert set(joins) == set(rpc_of.values())
    assert _opt(gcmd, "--rpc").split(":")[0] in internal_names
    assert _opt(gcmd, "--listen").endswith(":8443")
    for flag in ("--cert", "--key", "--secret-file"):
        mount = _opt(gcmd, flag).rsplit("/", 1)[0]
        assert any(str(v).split(":")[1] == mount for v in gateway["volumes"]), flag
    with pytest.raises(SystemExit):  # a test of the test: a wrong option is refused
        parser.parse_args(["node", "--no-such-option"])
    gw = parser.parse_args(gcmd)  # the real command line accepts it
    assert gw.frontend is not None


def test_rich_progress_on_a_terminal(solo: SoloNode, tmp_path: Path) -> None:
    from rich.console import Console

    make_song(tmp_path / "[live] one.wav", 501)  # not rich markup
    (tmp_path / "bad.flac").write_bytes(b"not flac at all")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    report = tools.import_folder(
        tmp_path,
        ApiClient(solo.url),
        tools.Credentials(user=USER, password=PASSWORD),
        progress=tools.RichProgress(console),
        out=io.StringIO(),
    )
    assert report.uploaded == ["[live] one.wav"] and [p for p, _ in report.failed] == ["bad.flac"]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # no terminal codes
    assert "2 files to upload" in text
    assert "total 2/2" in text
    assert "bad.flac" in text and "refused" in text


def test_ctrl_c_stops_the_command_and_a_rerun_continues(
    scripted: tuple[Any, str, str], tmp_path: Path
) -> None:
    httpd, url, ca = scripted
    httpd.delay = 0.3  # slow answers: the signal lands mid-import
    music = tmp_path / "music"
    for i in range(6):
        make_song(music / f"{i}.wav", 600 + i)
    cmd = [sys.executable, "-m", "dspot_spotify.cli", "import", str(music), "--url", url]
    cmd += ["--cafile", ca, "--token", "t0k"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[2/6] uploaded"):
                proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    out = "".join(lines)
    assert "interrupted; progress is saved in" in out
    done = [
        json.loads(r)["path"] for r in (music / tools.DEFAULT_STATE_NAME).read_text().splitlines()
    ]
    assert 2 <= len(done) < 6
    assert done == [f"{i}.wav" for i in range(len(done))]

    httpd.delay = 0.0
    sent = len(httpd.seen)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{6 - len(done)} uploaded, 0 already on the server, {len(done)} skipped" in rerun.stdout
    assert [p for p, _, _ in httpd.seen[sent:]] == [
        f"/api/songs?filename={i}.wav" for i in range(len(done), 6)
    ]


def test_a_torn_state_line_is_ignored_and_not_joined(tmp_path: Path) -> None:
    state_path = tmp_path / "state.jsonl"
    f = tools.AudioFile("a.wav", tmp_path / "a.wav", 10, 1)
    g = tools.AudioFile("b.wav", tmp_path / "b.wav", 20, 2)
    state = tools.ImportState(state_path, "http://x:1")
    state.record(f, "0" * 64, "song-a")
    state.close()
    with open(state_path, "a") as out:
        out.write('{"server": "http://x:1", "path": "b.w')  # a crash mid-line
    state = tools.ImportState(state_path, "http://x:1")
    assert state.is_done(f) and not state.is_done(g)
    state.record(g, "1" * 64, "song-b")
    state.close()
    again = tools.ImportState(state_path, "http://x:1")
    assert again.is_done(f) and again.is_done(g)
    assert not again.is_done(attrs.evolve(g, mtime_ns=3))  # changed since: not done
    again.close()
    other = tools.ImportState(state_path, "http://other:1")
    assert not other.is_done(f)  # per server
    other.close()
