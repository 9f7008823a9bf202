"""The names of the service scenario's checks (``Scenario.checks`` in ``scenario.py``)."""

from __future__ import annotations

DURABILITY = "durability"
CONVERGENCE = "convergence"
READ_YOUR_WRITES = "read-your-writes"
SEARCH = "search"
STREAM_BYTES = "stream-bytes"
HTTP_ANSWER = "http-answer"
GATEWAY_STREAM = "gateway-stream"
GATEWAY_OBSERVER = "gateway-observer"
FINAL_OPS = "final-ops"
LIVENESS = "liveness"
SESSIONS = "sessions"
PARTIAL_WRITE = "partial-write"
OWNERSHIP = "blob-ownership"
STATE = "state-is-history"
