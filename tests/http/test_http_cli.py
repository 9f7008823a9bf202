"""``python -m dspot.http`` in a real process: serves, speaks TLS, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from dspot.http import HttpClient, client_ssl_context
from tests.http.helpers import TlsFiles, run_real


def test_cli_serves_a_directory_over_tls_and_stops_on_sigterm(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    (tmp_path / "index.html").write_text("<p>app</p>")
    (tmp_path / "song.mp3").write_bytes(b"ID3" + bytes(1000))
    cmd = [sys.executable, "-m", "dspot.http", "--root", str(tmp_path), "--port", "0"]
    cmd += ["--tls-cert", tls_files.cert_chain, "--tls-key", tls_files.key, "--spa"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("serving https://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])

        async def main() -> None:
            ctx = client_ssl_context(cadata=tls_files.ca_pem)
            async with HttpClient(ssl_context=ctx) as c:
                r = await c.get(
                    f"https://localhost:{port}/song.mp3", headers={"range": "bytes=0-2"}
                )
                assert r.status == 206 and await r.read() == b"ID3"
                assert r.headers.get("content-type") == "audio/mpeg"
                r = await c.get(f"https://localhost:{port}/playlists/7")
                assert await r.read() == b"<p>app</p>"

        run_real(main)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert '"GET /song.mp3 HTTP/1.1" 206' in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
