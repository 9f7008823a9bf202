"""The service as real processes on loopback: ``dspot-spotify node`` and ``dspot-spotify up``.

Every test bounds its waits and kills the processes it started, even when it fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dspot_spotify.client import ApiClient, ApiError
from dspot_spotify.demo import encode_audio, synthesize, tag_file

from dspot.testing import free_port_range, free_ports, poll_until
from tests.helpers.processes import PASSWORD, ProcessCluster, retry_503, up

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tagged WAV of about 1 MB (big enough that a download is still running when its
    server is killed)."""
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    path.write_bytes(encode_audio(synthesize(random.Random(3), 12.0), 44100, "wav"))
    tag_file(path, title="Kill Nine", artist="The Survivors", album="Crash", track=1)
    return path.read_bytes()


def test_kill_9_mid_stream_and_the_survivors_serve_the_song(
    processes: ProcessCluster, song: bytes
) -> None:
    n1, n2, n3 = processes.start_nodes(["n1", "n2", "n3"], quorum=True)
    c1 = ApiClient(n1.url)
    c1.register("alice", PASSWORD)
    c1.login("alice", PASSWORD)
    status, headers, body = c1.request("POST", "/api/songs?filename=song.wav", song)
    assert status == 201, body
    song_id = json.loads(body)["id"]
    pos = headers["x-log-position"]
    auth = {"authorization": f"Bearer {c1.token}", "x-log-position": pos}

    # A ranged download from n2; n2 is killed once the first bytes have arrived.
    start = 1000
    conn = http.client.HTTPConnection("127.0.0.1", int(n2.spec.http.split(":")[1]), timeout=10)
    try:
        conn.request(
            "GET", f"/api/songs/{song_id}/stream", headers={**auth, "range": f"bytes={start}-"}
        )
        resp = conn.getresponse()
        assert resp.status == 206
        got = resp.read(16 * 1024)
        n2.kill()
        try:
            while chunk := resp.read(64 * 1024):
                got += chunk
        except (OSError, http.client.HTTPException):
            pass  # the connection died with its server: expected
    finally:
        conn.close()
    assert 0 < len(got) <= len(song) - start
    assert got == song[start : start + len(got)]  # what arrived is right, however much

    # The survivors still list the song and resume the download byte-identically.
    c3 = ApiClient(n3.url, token=c1.token)
    status, _, body = c3.request("GET", "/api/songs?q=nine", headers=auth)
    assert status == 200
    assert [s["id"] for s in json.loads(body)["items"]] == [song_id]
    resume = start + len(got)
    status, headers, body = c3.request(
        "GET", f"/api/songs/{song_id}/stream", headers={**auth, "range": f"bytes={resume}-"}
    )
    if resume < len(song):
        assert status == 206
        assert got + body == song[start:]
    status, _, body = c1.request("GET", f"/api/songs/{song_id}/stream", headers=auth)
    assert status == 200 and body == song
    # Two of three nodes are a majority: writes still commit (once n2 is found dead).
    retry_503(lambda: c3.register("bob", "bob's password"))


def test_a_node_with_the_wrong_secret_never_joins(processes: ProcessCluster) -> None:
    good = processes.start_nodes(["g1", "g2", "g3"], quorum=True)
    [bad] = processes.start_nodes(
        ["intruder"], secret=b"not the cluster secret at all!", seeds=[p.spec.rpc for p in good]
    )
    poll_until(
        lambda: "does not know the cluster secret" in processes.log("intruder"),
        timeout=15.0,
        what="refusal",
    )
    # The good nodes refused it: it could not prove the secret, so it is never a member.
    poll_until(
        lambda: any(
            "node 'intruder' hung up before proving the cluster secret"
            in processes.log(p.spec.name)
            for p in good
        ),
        timeout=15.0,
        what="a good node to log the refusal",
    )
    time.sleep(1.0)
    assert not bad.quorum.is_set()
    assert not any("quorum: yes" in line for line in bad.lines)
    # It cannot write ...
    intruder = ApiClient(bad.url)
    with pytest.raises(ApiError) as err:
        intruder.register("mallory", "mallory's password")
    assert err.value.status == 503
    # ... and sees none of the cluster's data, while the cluster keeps working.
    ApiClient(good[0].url).register("alice", PASSWORD)
    with pytest.raises(ApiError) as err:
        intruder.login("alice", PASSWORD)
    assert err.value.status == 401
    assert all(p.quorum.is_set() for p in good)


def _run_up(root: Path, base: int, port: int) -> str:
    """One ``dspot-spotify up`` until it says it is serving, then Ctrl-C; returns its output."""
    demo = ("--demo-artists", "1", "--demo-seconds", "1.5")
    with up(root, *demo, base=base, port=port) as (proc, out_path, _):
        pass
    text = out_path.read_text()
    assert proc.returncode == 0, text
    # Every node process and the gateway are gone (each removes its pid file on a clean exit).
    assert not list(root.glob("node*/node.pid")), text
    assert not (root / "gateway" / "gateway.pid").exists(), text
    return text


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def assert_owner_only(root: Path) -> None:
    """What ``dspot-spotify up`` keeps under ``root`` that is secret or private is the
    owner's alone: created 0700 (directories) and 0600 (files) under a umask (022) that
    would have let everyone read them."""
    private_files = [
        root / "cluster-secret",
        *(root / "tls").glob("*-key.pem"),
    ]
    private_dirs = [root, root / "tls"]
    nodes = sorted(root.glob("node*/"))
    assert len(nodes) == 3, nodes
    for node in nodes:
        private_dirs.append(node)
        for path in (node / "disk").rglob("*"):
            (private_dirs if path.is_dir() else private_files).append(path)
    assert len(private_files) > 6, private_files  # the keys, and the node's databases
    wrong = {str(p.relative_to(root)): oct(mode(p)) for p in private_files if mode(p) != 0o600}
    wrong |= {str(p.relative_to(root)): oct(mode(p)) for p in private_dirs if mode(p) != 0o700}
    assert wrong == {}, "not owner-only"


def test_up_imports_the_demo_once_and_stops_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    base = free_port_range(7)  # 3 nodes (RPC, HTTP) and the gateway's RPC
    [port] = free_ports(1)
    first = _run_up(root, base, port)
    assert "registered the admin user 'admin'" in first
    m = re.search(r"imported (\d+) tracks", first)
    assert m, first
    count = int(m.group(1))
    assert len(re.findall(r"\] uploaded: ", first)) == count
    assert f"{count} songs in the catalog" in first
    assert "stopped" in first
    for i in (1, 3, 5):
        assert f"http://127.0.0.1:{base + i}" in first
    # Everything went through the HTTPS gateway, with a certificate from the dev CA.
    ca = root / "tls" / "ca.pem"
    assert f"gateway ready: https://localhost:{port}/ (CA: {ca})" in first
    ca_pem = ca.read_bytes()
    assert_owner_only(root)

    second = _run_up(root, base, port)  # the same data: nothing imported again
    assert "admin user 'admin' already exists" in second
    assert "already imported" in second
    assert "uploaded:" not in second
    assert f"{count} songs in the catalog" in second
    assert (root / "cluster-secret").stat().st_mode & 0o077 == 0
    assert ca.read_bytes() == ca_pem  # the CA a browser was told to trust is kept


def test_mutual_tls_between_nodes(processes: ProcessCluster, tmp_path: Path) -> None:
    """With --tls-*, nodes talk over mutual TLS; the HTTP API stays plain HTTP."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, pem = tmp_path / "ca.pem", tmp_path / "node.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    tls = ("--tls-cert", str(pem), "--tls-key", str(pem), "--tls-ca", str(ca_file))
    procs = processes.start_nodes(["t1", "t2", "t3"], extra=tls, quorum=True)
    ApiClient(procs[1].url).register("alice", PASSWORD)

    def logged_in() -> bool:  # once the registration has replicated through the TLS ring
        try:
            ApiClient(procs[2].url).login("alice", PASSWORD)
        except ApiError:
            return False
        return True

    poll_until(logged_in, timeout=10.0, what="the registration to reach t3")
    # The RPC port speaks TLS only: plain bytes get the connection closed.
    with socket.create_connection(("127.0.0.1", int(procs[0].spec.rpc.split(":")[1]))) as s:
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""

    # The gateway joins the TLS cluster with the same --tls-* files (its RPC is mutual TLS
    # too) and still reaches the nodes' plain HTTP APIs: it serves the cluster over HTTPS.
    processes.start_gateway(name="tls-gateway", cert=pem, key=pem, ca=ca_file, extra=tls)
    client = processes.client()
    client.login("alice", PASSWORD)
    cluster_doc = client.json("GET", "/api/cluster")
    roles = {m["id"]: m["role"] for m in cluster_doc["members"]}
    assert roles["tls-gateway"] == "observer" and len(cluster_doc["ring"]) == 3


def test_a_node_on_every_interface_must_say_where_it_is_reached(
    processes: ProcessCluster, tmp_path: Path
) -> None:
    """The gateway finds nodes by the HTTP address they publish: 0.0.0.0 is no address."""
    secret_file = processes.secret_file()
    rpc, http_port = free_ports(2)
    argv = [
        *("--data", str(tmp_path / "n1"), "--rpc", f"127.0.0.1:{rpc}"),
        *("--http", f"0.0.0.0:{http_port}", "--secret-file", str(secret_file)),
    ]
    cmd = [sys.executable, "-m", "dspot_spotify.cli", "node", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--http-advertise" in done.stderr


def test_node_and_gateway_processes_do_not_load_numpy() -> None:
    """numpy is for making demo audio; a node or gateway that imported it (through the
    CLI's demo command) carried about 10 MiB more RSS and 80 ms more start-up."""
    code = (
        "import sys, dspot_spotify.cli, dspot_spotify.process.node, "
        "dspot_spotify.process.gateway; print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
