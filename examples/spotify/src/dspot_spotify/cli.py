"""The ``dspot-spotify`` command line.

``dspot-spotify demo-music DIR``  generate the synthesized demo library into DIR.
``dspot-spotify tags FILE...``    print what the tag reader finds in each file.
``dspot-spotify node ...``        run one node of a cluster (real TCP, data on local disk).
``dspot-spotify gateway ...``     run the HTTPS gateway in front of the nodes.
``dspot-spotify up``              run N nodes + the HTTPS gateway on 127.0.0.1, with demo music.
``dspot-spotify import DIR ...``  upload a folder of audio files, resumably (tools).
``dspot-spotify status ...``      print the cluster's members, token and replication (tools).
``dspot-spotify openapi``         print the REST API's OpenAPI document (JSON).
``dspot-spotify dev-tls DIR ...``  issue a member certificate for mutual TLS from a dev CA.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from dspot.http import ServerConfig
from dspot.logs import background_logging
from dspot.tokenring import TokenRingConfig

from dspot_spotify import __version__
from dspot_spotify.client import ApiClient, ApiError
from dspot_spotify.config import GATEWAY_SABOTAGES as IN_GATEWAY
from dspot_spotify.config import Sabotage
from dspot_spotify.formats import DEFAULT_FORMATS, FORMATS
from dspot_spotify.gateway.pool import GatewayConfig
from dspot_spotify.process.node import NodeSettings, serve_node, throttle_config
from dspot_spotify.process.setup import ConfigError, NodeStopped, parse_address
from dspot_spotify.process.supervisor import LocalCluster, NodeFailed, default_frontend
from dspot_spotify.tags import MediaError, TrackTags, read_tags
from dspot_spotify.throttle import ThrottleConfig
from dspot_spotify.tools import add_commands, run_command

SABOTAGES = tuple(s.value for s in Sabotage if s not in IN_GATEWAY)
GATEWAY_SABOTAGES = tuple(s.value for s in Sabotage if s in IN_GATEWAY)
RING = TokenRingConfig()
"""The token ring's defaults, which the node's compaction options start from."""


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dspot-spotify", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo-music", help="generate a tagged, synthesized demo library")
    demo.add_argument("dir", help="directory to write Artist/Album/NN - Title.ext into")
    demo.add_argument("--seed", type=int, default=0, help="seed (same seed, same files)")
    demo.add_argument("--artists", type=int, default=3, help="number of artists (default 3)")
    demo.add_argument(
        "--formats",
        type=_formats,
        default=DEFAULT_FORMATS,
        help="comma-separated formats, one per album in turn "
        f"(default {','.join(DEFAULT_FORMATS)}; also: m4a, needs PyAV)",
    )

    tags = sub.add_parser("tags", help="print the tags the service would read from files")
    tags.add_argument("files", nargs="+", help="audio files")
    tags.add_argument("--json", action="store_true", help="one JSON object per line")

    node = sub.add_parser("node", help="run one node (stops on SIGINT/SIGTERM)")
    node.add_argument("--data", required=True, type=Path, help="this node's data directory")
    node.add_argument("--rpc", required=True, type=_address, help="HOST:PORT for the cluster")
    node.add_argument("--http", required=True, type=_address, help="HOST:PORT for the HTTP API")
    node.add_argument(
        "--http-advertise",
        type=_address,
        help="HOST:PORT the gateway reaches the HTTP API at (needed with --http 0.0.0.0:PORT)",
    )
    node.add_argument(
        "--seeds", type=_addresses, default=(), help="comma-separated RPC addresses of other nodes"
    )
    node.add_argument(
        "--secret-file", required=True, type=Path, help="file holding the cluster secret (16+ B)"
    )
    node.add_argument(
        "--cluster-size", type=int, default=1, help="initial number of nodes (majority base)"
    )
    node.add_argument("--name", help="node id on first start (default: generated; then kept)")
    node.add_argument(
        "--learner",
        action="store_true",
        help="join as a learner: this data directory is new (or lost) and the cluster already "
        "has a log; it votes once it has caught up (ignored when the directory holds a log)",
    )
    node.add_argument(
        "--compact-every",
        type=int,
        default=RING.compact_every,
        metavar="N",
        help=f"snapshot the catalog every N log entries applied (default {RING.compact_every})",
    )
    node.add_argument(
        "--keep-entries",
        type=int,
        default=RING.keep_entries,
        metavar="N",
        help="log entries kept before the latest snapshot, for members a little behind "
        f"(default {RING.keep_entries})",
    )
    _cluster_tls_arguments(node)
    limits = ThrottleConfig()
    for flag, default, what in (
        (
            "--login-failures",
            limits.username.free,
            "failed sign-ins per username before it must wait, doubling each time",
        ),
        (
            "--address-failures",
            limits.address.free,
            "failed sign-ins per client address before it must wait",
        ),
        ("--hash-limit", limits.hash_limit, "password hashes run at once"),
        ("--uploads-per-user", limits.uploads_per_user, "uploads one user may run at once"),
    ):
        node.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    node.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    # Deliberate bugs that chaos tests switch on to prove their checks bite; not for use.
    node.add_argument(
        "--sabotage", action="append", default=[], choices=SABOTAGES, help=argparse.SUPPRESS
    )
    # Replicas that apply up to a heartbeat late, for tests of what clients see meanwhile.
    node.add_argument("--no-commit-notice", action="store_true", help=argparse.SUPPRESS)

    tls = sub.add_parser(
        "dev-tls", help="issue a member certificate from a development CA (for mutual TLS)"
    )
    tls.add_argument("dir", type=Path, help="directory of the CA (made there if missing)")
    tls.add_argument("--name", required=True, help="member name (files NAME.pem, NAME-key.pem)")
    tls.add_argument(
        "--host", action="append", default=[], help="address or host name it serves (repeat)"
    )

    up = sub.add_parser("up", help="run a local cluster on 127.0.0.1 with the demo library")
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument(
        "--data", type=Path, default=Path("spotify-data"), help="directory (default spotify-data)"
    )
    up.add_argument(
        "--base-port", type=int, default=7100, help="node i: RPC base+2(i-1), HTTP the next port"
    )
    up.add_argument("--port", type=int, default=8443, help="HTTPS port of the gateway (8443)")
    up.add_argument(
        "--frontend",
        type=Path,
        help="built web frontend to serve (default: frontend/dist of the checkout, if built)",
    )
    up.add_argument("--admin-password", help="password of the admin user (default: generated)")
    up.add_argument("--no-demo", action="store_true", help="do not import the demo library")
    up.add_argument(
        "--no-restart",
        action="store_true",
        help="do not restart a node or the gateway that exits (only say so)",
    )
    up.add_argument(
        "--served-by",
        action="store_true",
        help="the gateway names the node that answered in X-Served-By (for watching failover)",
    )
    up.add_argument("--demo-artists", type=int, default=3, help="demo artists (default 3)")
    up.add_argument(
        "--demo-seconds", type=float, default=12.0, help="longest demo track (default 12)"
    )
    add_commands(sub)  # import, status

    doc = sub.add_parser("openapi", help="print the REST API's OpenAPI document (JSON)")
    doc.add_argument("--out", type=Path, help="write it to this file instead")

    gw = sub.add_parser("gateway", help="run the HTTPS gateway in front of the nodes")
    gw.add_argument("--listen", required=True, type=_address, help="HOST:PORT for HTTPS")
    gw.add_argument(
        "--join", required=True, type=_addresses, help="comma-separated RPC addresses of nodes"
    )
    gw.add_argument(
        "--secret-file", required=True, type=Path, help="file holding the cluster secret (16+ B)"
    )
    gw.add_argument("--cert", required=True, type=Path, help="TLS certificate chain (PEM)")
    gw.add_argument("--key", required=True, type=Path, help="its private key (PEM)")
    gw.add_argument("--frontend", type=Path, help="directory of the built web frontend")
    gw.add_argument(
        "--rpc",
        type=_address,
        default="127.0.0.1:0",
        help="HOST:PORT for cluster traffic; nodes must reach it (default 127.0.0.1:0)",
    )
    _cluster_tls_arguments(gw)
    gw.add_argument(
        "--max-connections",
        type=int,
        default=ServerConfig().max_connections,
        help="open HTTPS connections at most; new ones are closed at once beyond "
        f"(default {ServerConfig().max_connections})",
    )
    gw.add_argument(
        "--max-connections-per-client",
        type=int,
        default=GatewayConfig().max_connections_per_client,
        help="open HTTPS connections one client address may hold; new ones are closed at "
        f"once beyond (default {GatewayConfig().max_connections_per_client})",
    )
    gw.add_argument("--name", default="gateway", help="member id in the cluster (gateway)")
    gw.add_argument(
        "--positions",
        choices=("gateway", "session"),
        default="gateway",
        help="whose log positions a relayed request must see: everything this gateway saw "
        "(default) or only its own session's",
    )
    gw.add_argument(
        "--sabotage", action="append", default=[], choices=GATEWAY_SABOTAGES, help=argparse.SUPPRESS
    )
    gw.add_argument("--pid-file", type=Path, help="write the process id here while running")
    gw.add_argument(
        "--served-by",
        action="store_true",
        help="name the node that answered in an X-Served-By header (off: it names nodes)",
    )
    gw.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return p


def _address(text: str) -> str:
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(_address(a) for a in text.split(",") if a.strip())


def _describe(t: TrackTags) -> dict[str, Any]:
    cover = None if t.cover is None else {"mime": t.cover.mime, "bytes": len(t.cover.data)}
    return {
        "title": t.title,
        "artist": t.artist,
        "album_artist": t.album_artist,
        "album": t.album,
        "track": t.track,
        "disc": t.disc,
        "year": t.year,
        "genres": list(t.genres),
        "duration": round(t.duration, 3),
        "format": t.format,
        "mime": t.mime,
        "sample_rate": t.sample_rate,
        "channels": t.channels,
        "bitrate": t.bitrate,
        "cover": cover,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command in ("import", "status"):
        return run_command(args)
    if args.command == "openapi":
        return _openapi(args.out)
    try:
        if args.command == "node":
            return _node(args)
        if args.command == "up":
            return _up(args)
        if args.command == "gateway":
            return _gateway(args)
    except (ConfigError, NodeStopped) as e:
        print(f"dspot-spotify {args.command}: {e}", file=sys.stderr)
        return e.status
    if args.command == "dev-tls":
        from dspot_spotify.devtls import issue_member_cert

        files = issue_member_cert(args.dir, args.name, args.host)
        print(f"ca {files.ca}\ncert {files.cert}\nkey {files.key}")
        return 0
    if args.command == "demo-music":
        if args.artists < 1:
            print("dspot-spotify: --artists must be at least 1", file=sys.stderr)
            return 2
        from dspot_spotify.demo import generate_demo_library  # numpy: not in node processes

        tracks = generate_demo_library(
            args.dir, seed=args.seed, artists=args.artists, formats=args.formats
        )
        for t in tracks:
            print(f"{t.path}  [{t.format}, {t.duration:.1f} s]")
        albums = len({(t.artist, t.album) for t in tracks})
        print(f"{len(tracks)} tracks, {albums} albums, {len({t.artist for t in tracks})} artists")
        return 0
    status = 0
    for name in args.files:
        try:
            info = _describe(read_tags(name))
        except MediaError as exc:
            print(f"{name}: error {exc.status}: {exc.message}", file=sys.stderr)
            status = 1
            continue
        except OSError as exc:
            print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"file": name, **info}, ensure_ascii=False))
        else:
            print(name)
            for key, value in info.items():
                print(f"  {key:12} {value}")
    return status


def _openapi(out: Path | None) -> int:
    from dspot_spotify.api.openapi import document_text

    text = document_text()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    return 0


# -- node ---------------------------------------------------------------------------------


def _cluster_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert/--tls-key/--tls-ca``: mutual TLS for cluster RPC (nodes and gateway)."""
    parser.add_argument("--tls-cert", type=Path, help="certificate for mutual TLS in the cluster")
    parser.add_argument("--tls-key", type=Path, help="its private key")
    parser.add_argument("--tls-ca", type=Path, help="CA that signed every member's certificate")


@contextlib.contextmanager
def _process_setup(args: argparse.Namespace, sabotaged: str) -> Iterator[None]:
    """Checks and logging of the ``node`` and ``gateway`` processes, for their life (the log
    goes to stderr from a thread: :func:`dspot.logs.background_logging`); ``sabotaged``
    (``%s``: the sabotage) is logged loudly for every ``--sabotage`` switched on."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    with background_logging(sys.stderr, level=logging.WARNING if args.quiet else logging.INFO):
        for bug in args.sabotage:
            logging.getLogger("dspot_spotify").critical(sabotaged, bug)
        yield


def _node(args: argparse.Namespace) -> int:
    if args.cluster_size < 1:
        raise ConfigError("--cluster-size must be at least 1")
    if args.compact_every < 1:
        raise ConfigError("--compact-every must be at least 1")
    if args.keep_entries < 0:
        raise ConfigError("--keep-entries must not be negative")
    with _process_setup(
        args,
        "SABOTAGED NODE: %s is switched on; this node misbehaves on purpose "
        "(a test's check must catch it). Never run it in production.",
    ):
        return serve_node(
            NodeSettings(
                data=args.data,
                rpc=args.rpc,
                http=args.http,
                seeds=tuple(args.seeds),
                secret_file=args.secret_file,
                cluster_size=args.cluster_size,
                name=args.name,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_ca=args.tls_ca,
                http_advertise=args.http_advertise,
                sabotage=tuple(args.sabotage),
                throttle=throttle_config(
                    login_failures=args.login_failures,
                    address_failures=args.address_failures,
                    hash_limit=args.hash_limit,
                    uploads_per_user=args.uploads_per_user,
                ),
                commit_notice=not args.no_commit_notice,
                learner=args.learner,
                compact_every=args.compact_every,
                keep_entries=args.keep_entries,
            )
        )


# -- up -----------------------------------------------------------------------------------

ADMIN = "admin"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _gateway(args: argparse.Namespace) -> int:
    from dspot_spotify.process.gateway import GatewaySettings, serve_gateway

    if not args.join:
        raise ConfigError("--join needs at least one node's RPC address")
    with _process_setup(
        args,
        "SABOTAGED GATEWAY: %s is switched on; clients without X-Log-Position lose their "
        "session guarantees on purpose (a chaos test's check must catch it). Never run it "
        "in production.",
    ):
        return serve_gateway(
            GatewaySettings(
                listen=args.listen,
                join=tuple(args.join),
                secret_file=args.secret_file,
                cert=args.cert,
                key=args.key,
                rpc=args.rpc,
                frontend=args.frontend,
                name=args.name,
                pid_file=args.pid_file,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_ca=args.tls_ca,
                max_connections=args.max_connections,
                max_connections_per_client=args.max_connections_per_client,
                positions=args.positions,
                sabotage=tuple(args.sabotage),
                served_by=args.served_by,
            )
        )


def _up(args: argparse.Namespace) -> int:
    if not 1 <= args.nodes <= 20:
        raise ConfigError("--nodes must be between 1 and 20")
    if not 1 <= args.base_port <= 65535 - 2 * args.nodes - 1:
        raise ConfigError("--base-port leaves no room for the nodes' ports")
    if not 1 <= args.port <= 65535:
        raise ConfigError("--port must be between 1 and 65535")
    frontend = args.frontend.resolve() if args.frontend is not None else default_frontend()
    if frontend is not None and not (frontend / "index.html").is_file():
        raise ConfigError(f"--frontend {frontend} has no index.html (build it first)")
    root: Path = args.data.resolve()
    cluster = LocalCluster(
        root,
        nodes=args.nodes,
        base_port=args.base_port,
        gateway_port=args.port,
        frontend=frontend,
        served_by=args.served_by,
    )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        print(f"starting {args.nodes} nodes under {root} ...", flush=True)
        cluster.start(timeout=60.0)
        for p in cluster.procs:
            print(f"  {p.spec.name} ready: http {p.url}  rpc {p.spec.rpc}")
        client = ApiClient(cluster.url, cafile=cluster.ca_file)
        password = _admin(client, root, args.admin_password)
        if password is not None:
            _retry(lambda: client.login(ADMIN, password))
            if not args.no_demo:
                _import_demo(client, root, args)
            print(f"{client.song_count()} songs in the catalog")
        else:
            print("admin password unknown (pass --admin-password): demo import skipped")
        print()
        if frontend is None:
            print("The web frontend is not built (cd frontend && npm ci && npm run build).")
        print(f"gateway ready: {cluster.url}/ (CA: {cluster.ca_file})")
        print(f"  e.g. curl --cacert {cluster.ca_file} {cluster.url}/healthz")
        print(f"Logs: {root}/node*/node.log, {root}/gateway/gateway.log. Press Ctrl-C to stop.")
        sys.stdout.flush()
        _watch(cluster, restart=not args.no_restart)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except (NodeFailed, ApiError, OSError) as e:
        print(f"dspot-spotify up: {e}", file=sys.stderr)
        _stop(cluster)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _stop(cluster)


def _stop(cluster: LocalCluster) -> int:
    # A second Ctrl-C (or SIGTERM) while stopping would leave processes behind: ignore it.
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        codes = cluster.stop()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    bad = [
        (p.spec.name, c)
        for p, c in zip(cluster.all_procs, codes, strict=True)
        if c not in (0, None)
    ]
    for name, code in bad:
        print(f"  {name} exited with status {code}", file=sys.stderr)
    print("stopped", flush=True)
    return 1 if bad else 0


def _watch(cluster: LocalCluster, *, restart: bool) -> None:
    """Until interrupted: restart a node or the gateway that exits (or only say so)."""
    while True:
        for line in cluster.supervise(restart=restart):
            print(line, file=sys.stderr, flush=True)
        time.sleep(0.2)


def _admin(client: ApiClient, root: Path, given: str | None) -> str | None:
    """Register the admin user (or find it exists); returns its password if known."""
    saved = root / "admin-password"
    generated = False
    password = given
    if password is None and saved.exists():
        password = saved.read_text(encoding="utf-8").strip()
    if password is None:
        password = secrets.token_urlsafe(12)
        generated = True
    try:
        _retry(lambda: client.register(ADMIN, password))
    except ApiError as e:
        if e.status != 409:
            raise
        print(f"admin user {ADMIN!r} already exists")
        return None if generated else password
    print(f"registered the admin user {ADMIN!r}")
    if generated:
        fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        print(f"  generated password: {password}  (also saved in {saved})")
    return password


def _retry(call: Any, attempts: int = 10) -> Any:
    """Retry ``call`` while the cluster answers 503 (e.g. a write during a view change)."""
    for i in range(attempts):
        try:
            return call()
        except ApiError as e:
            if e.status != 503 or i == attempts - 1:
                raise
            time.sleep(0.5)


def _import_demo(client: ApiClient, root: Path, args: argparse.Namespace) -> None:
    marker = root / "demo-imported"
    if marker.exists():
        print(f"demo library already imported ({marker.read_text().strip()}); not importing again")
        return
    music = root / "demo-music"
    print(f"generating the demo library in {music} ...", flush=True)
    from dspot_spotify.demo import generate_demo_library

    tracks = generate_demo_library(
        music,
        artists=args.demo_artists,
        min_seconds=min(5.0, args.demo_seconds),
        max_seconds=args.demo_seconds,
    )
    for i, t in enumerate(tracks, start=1):
        status, song = _retry(lambda t=t: client.upload(t.path))
        what = "uploaded" if status == 201 else "already there"
        print(
            f"  [{i}/{len(tracks)}] {what}: {song['artist_name']} - {song['title']} "
            f"({t.format}, {song['size']} bytes)",
            flush=True,
        )
    marker.write_text(f"{len(tracks)} tracks\n", encoding="utf-8")
    print(f"imported {len(tracks)} tracks", flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
