"""The ``import`` and ``status`` subcommands of ``dspot-spotify``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dspot_spotify.client import ApiClient, ClientError
from dspot_spotify.tools.importer import import_folder
from dspot_spotify.tools.login import credentials_from
from dspot_spotify.tools.state import DEFAULT_STATE_NAME
from dspot_spotify.tools.status import status

__all__ = ["add_commands", "run_command"]


def add_commands(sub: Any) -> None:
    """Add ``import`` and ``status`` to the ``dspot-spotify`` subcommands (``sub`` is the
    ``argparse`` subparsers object)."""

    def connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="the gateway (https://HOST:PORT) or a node")
        p.add_argument("--cafile", help="CA certificate to trust for an https:// URL")
        p.add_argument("--user", help="user name to log in with (or DSPOT_USER)")
        p.add_argument("--password", help="its password (or DSPOT_PASSWORD; asked if missing)")
        p.add_argument("--token", help="a bearer token instead of --user (or DSPOT_TOKEN)")

    imp = sub.add_parser(
        "import",
        help="upload a folder of audio files (resumable)",
        description="Upload every audio file under DIR. Files already imported (per the "
        f"state file, default DIR/{DEFAULT_STATE_NAME}) are skipped, so an interrupted "
        "import continues where it stopped.",
    )
    imp.add_argument("dir", type=Path, help="folder to import (searched recursively)")
    connection(imp)
    imp.add_argument("--jobs", type=int, default=1, help="files uploaded at once (default 1)")
    imp.add_argument("--state", type=Path, help=f"state file (default DIR/{DEFAULT_STATE_NAME})")

    st = sub.add_parser("status", help="print the cluster: members, token, replication")
    connection(st)
    st.add_argument("--json", action="store_true", help="print the /api/cluster document")


def run_command(args: argparse.Namespace) -> int:
    """Run ``import`` or ``status``; returns the exit status (2 for a one-line error)."""
    try:
        server = ApiClient(args.url, cafile=args.cafile)
        creds = credentials_from(args.user, args.password, args.token, command=args.command)
        if args.command == "status":
            return status(server, creds, as_json=args.json, out=sys.stdout)
        report = import_folder(
            args.dir, server, creds, state_path=args.state, jobs=args.jobs, out=sys.stdout
        )
        return report.exit_status
    except ClientError as e:
        print(f"dspot-spotify {args.command}: {e}", file=sys.stderr)
        return 2
