"""The REST API fuzzed from its own OpenAPI document (schemathesis) against real processes.

One node and the HTTPS gateway, started through the CLI; every operation of the document
gets a bounded number of generated requests (valid and invalid ones) through the gateway
(``/healthz`` straight to the node: the gateway answers its own), as a signed-in user.
Every answer must be below 500 and documented: its status code, its content type, its
body's schema and its headers (``X-Log-Position`` included) as the document states them.

Two things are held fixed so the run stays short and keeps its user: ``X-Log-Position`` is
``0.0`` (a generated position far ahead would hold each request for the read-wait timeout,
10 s; its format is tested in ``test_spotify_validation``), and the operations that end
the session or change its password are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from dspot_spotify.api.openapi import document
from hypothesis import HealthCheck, settings

from tests.helpers.prerequisites import on_ci
from tests.helpers.processes import ProcessCluster, process_cluster, retry_503

try:
    import schemathesis
except ImportError:  # a test dependency of examples/spotify: CI has it
    if on_ci():
        raise
    pytest.skip(
        "needs schemathesis (pip install -e 'examples/spotify[test]')", allow_module_level=True
    )
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

PASSWORD = "schemathesis's password"
EXAMPLES = 5
"""Generated requests per operation (about 50 operations: some 250 requests, ~30 s)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
KEEP_THE_SESSION = {
    ("POST", "/api/auth/logout"),
    ("POST", "/api/me/password"),
    ("PUT", "/api/me/password"),
}

# Uploads take any audio type as raw bytes, like application/octet-stream.
schemathesis.serializer.alias("audio/*", "application/octet-stream")
schema = schemathesis.openapi.from_dict(document()).exclude(
    func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in KEEP_THE_SESSION
)


class Served:
    """The cluster, a session that trusts its CA, and a signed-in user's headers."""

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.session = requests.Session()
        assert cluster.ca is not None
        self.session.verify = str(cluster.ca)
        self.headers: dict[str, str] = {}
        self.node_url = next(iter(cluster.procs.values())).url

    def sign_in(self) -> None:
        client = self.cluster.client()
        retry_503(lambda: client.register("fuzzer", PASSWORD))
        token = client.login("fuzzer", PASSWORD)["token"]
        self.headers = {"authorization": f"Bearer {token}", "x-log-position": "0.0"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with process_cluster(tmp_path_factory.mktemp("schemathesis")) as cluster:
        cluster.start_nodes(["s1"], cluster_size=1, quorum=True)
        cluster.start_gateway()
        out = Served(cluster)
        out.sign_in()
        yield out
        out.session.close()
        for name, proc in cluster.procs.items():
            assert proc.poll() is None, f"{name} died:\n{cluster.log(name)[-3000:]}"
            assert "Traceback" not in cluster.log(name), name


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_answer_is_documented_and_none_is_a_500(case: Any, served: Served) -> None:
    # The gateway answers /healthz itself (its own health): the node's is the documented one.
    base_url = served.node_url if case.operation.path == "/healthz" else served.cluster.url
    case.call_and_validate(
        base_url=base_url,
        session=served.session,
        headers=served.headers,
        checks=CHECKS,
        timeout=15,
        verify=served.session.verify,
    )
