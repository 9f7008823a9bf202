"""The cluster's processes, each started through the ``dspot-spotify`` command line inside
its host's namespace, with mutual TLS between members as in production.

A :class:`Member` knows whether the nemesis meant it to be down: the checks count every
other exit as a death the run did not ask for.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from dspot_spotify.chaos.netns import Topology
from dspot_spotify.chaos.settings import GATEWAY_SABOTAGES
from dspot_spotify.process.setup import write_secret

__all__ = ["Cluster", "Member", "cli"]

RPC_PORT, HTTP_PORT, HTTPS_PORT = 7000, 8080, 8443
_READY = re.compile(r"^(?:node|gateway) \S+ ready: ")
_QUORUM = re.compile(r"^node \S+ quorum: (yes|no)")
_HEALTHY = re.compile(r"^gateway \S+ nodes: (\d+) healthy")


def cli() -> list[str]:
    """The ``dspot-spotify`` command of this environment."""
    here = Path(sys.executable).parent / "dspot-spotify"
    found = str(here) if here.exists() else shutil.which("dspot-spotify")
    if found is None:
        raise RuntimeError("dspot-spotify is not installed in this environment")
    return [found]


class Member:
    """One node or gateway process."""

    def __init__(self, name: str, argv: list[str], log_path: Path, t0: float) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.t0 = t0
        self.proc: subprocess.Popen[str] | None = None
        self.ready = threading.Event()
        self.quorum = False
        self.healthy = 0
        self.down = False
        """The nemesis killed it and has not restarted it yet."""
        self.paused = False
        self.starts = 0
        self.deaths: list[tuple[float, int]] = []
        """(run time, exit status) of every exit the nemesis did not cause."""
        self._log: IO[str] | None = None

    @property
    def is_gateway(self) -> bool:
        return self.name.startswith("g")

    def start(self) -> None:
        self.ready.clear()
        self.quorum = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._log.write(f"--- start {self.starts + 1} at {time.monotonic() - self.t0:.2f} s\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.starts += 1
        self.down = False
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if _READY.match(line):
                self.ready.set()
            elif m := _QUORUM.match(line):
                self.quorum = m.group(1) == "yes"
            elif m := _HEALTHY.match(line):
                self.healthy = int(m.group(1))
        code = proc.wait()
        if proc is self.proc and not self.down:
            self.deaths.append((time.monotonic() - self.t0, code))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill9(self) -> None:
        """A crash: SIGKILL, and it stays down until :meth:`start`."""
        self.down = True
        if self.paused:
            self.resume()
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self._close_log()

    def pause(self) -> None:
        self.paused = True
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout``); the exit status."""
        if self.proc is None:
            return None
        self.down = True
        self.resume()
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Cluster:
    """The run's members: ``n1..nN`` on the internal network, ``g1..`` on both."""

    def __init__(
        self,
        topo: Topology,
        root: Path,
        t0: float,
        *,
        sabotage: tuple[str, ...] = (),
        gateway_args: tuple[str, ...] = (),
    ) -> None:
        self.topo = topo
        self.root = root
        shutil.rmtree(root, ignore_errors=True)  # a fresh cluster every run
        root.mkdir(mode=0o700, parents=True)
        tls = root / "tls"
        secret = root / "cluster-secret"
        write_secret(secret)  # 0600 as it is created
        seeds = ",".join(f"{h.internal}:{RPC_PORT}" for h in topo.nodes)
        self.members: dict[str, Member] = {}
        for h in [*topo.nodes, *topo.gateways]:
            hosts = [a for a in (h.internal, h.external) if a]
            subprocess.run(
                [*cli(), "dev-tls", str(tls), "--name", h.name]
                + [x for a in hosts for x in ("--host", a)],
                check=True,
                capture_output=True,
            )
            member_tls = [
                *("--tls-cert", str(tls / f"{h.name}.pem")),
                *("--tls-key", str(tls / f"{h.name}-key.pem")),
                *("--tls-ca", str(tls / "ca.pem")),
            ]
            if h.external is None:
                argv = [
                    *cli(),
                    "node",
                    *("--name", h.name, "--data", str(root / h.name)),
                    *("--rpc", f"{h.internal}:{RPC_PORT}", "--http", f"{h.internal}:{HTTP_PORT}"),
                    *("--seeds", seeds, "--secret-file", str(secret)),
                    *("--cluster-size", str(len(topo.nodes))),
                    *member_tls,
                    *(x for s in sabotage if s not in GATEWAY_SABOTAGES for x in ("--sabotage", s)),
                    # A gateway forwarding no positions is caught once a read reaches a
                    # replica behind; without the commit notice replicas lag by up to a
                    # heartbeat, so the run shows it every time, not only when a
                    # partition happens to cut the right node off.
                    *(("--no-commit-notice",) if set(sabotage) & set(GATEWAY_SABOTAGES) else ()),
                ]
            else:
                argv = [
                    *cli(),
                    "gateway",
                    *("--name", h.name, "--listen", f"{h.external}:{HTTPS_PORT}"),
                    *("--rpc", f"{h.internal}:{RPC_PORT}", "--join", seeds),
                    *("--secret-file", str(secret)),
                    *(
                        "--cert",
                        str(tls / f"{h.name}.pem"),
                        "--key",
                        str(tls / f"{h.name}-key.pem"),
                    ),
                    *member_tls,
                    *(x for s in sabotage if s in GATEWAY_SABOTAGES for x in ("--sabotage", s)),
                    *gateway_args,
                ]
            self.members[h.name] = Member(
                h.name, topo.exec_argv(h.name, argv), root / h.name / f"{h.name}.log", t0
            )
        self.ca = tls / "ca.pem"

    @property
    def nodes(self) -> list[Member]:
        return [m for m in self.members.values() if not m.is_gateway]

    @property
    def gateways(self) -> list[Member]:
        return [m for m in self.members.values() if m.is_gateway]

    def gateway_urls(self) -> list[str]:
        return [f"https://{h.external}:{HTTPS_PORT}" for h in self.topo.gateways]

    def node_urls(self) -> dict[str, str]:
        return {h.name: f"http://{h.internal}:{HTTP_PORT}" for h in self.topo.nodes}

    def start(self, timeout: float = 90.0) -> None:
        """Every node, until all see a quorum; then the gateways, until they see every node."""
        for m in self.nodes:
            m.start()
        self._until(lambda: all(m.ready.is_set() and m.quorum for m in self.nodes), timeout)
        for m in self.gateways:
            m.start()
        n = len(self.nodes)
        self._until(
            lambda: all(m.ready.is_set() and m.healthy >= n for m in self.gateways), timeout
        )

    def _until(self, cond: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():  # type: ignore[operator]
            dead = [m for m in self.members.values() if m.deaths]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited during start-up; see {dead[0].log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not start within {timeout:g} s")
            time.sleep(0.1)

    def stop(self) -> dict[str, int | None]:
        """Gateways first, then nodes; their exit statuses."""
        codes = {}
        for m in [*self.gateways, *self.nodes]:
            codes[m.name] = m.stop()
        return codes
