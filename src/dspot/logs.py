"""Logging for server processes that never blocks the event loop.

A :class:`logging.StreamHandler` writes each record to its stream on the thread that logs
it. For a node that is the event-loop thread, once per request (the access log) and per
membership change, so whatever slows the stream slows the node: a full pipe whose reader
stalled (a supervisor, a terminal paused with Ctrl-S, a log shipper) blocks the loop
outright, and probes, token passing and every request wait behind it — members then declare
the node dead although it is only behind on its log.

:func:`background_logging` puts a buffer between the two: the logging thread only merges
the record's message and appends it to the buffer, and a writer thread of its own formats
what gathered and writes it in one go, every :data:`FLUSH_INTERVAL` (one wake-up and one
write per batch, not per record: a thread hand-off per record cost more than the write it
saved). The buffer is bounded (a stream blocked for good must not grow memory without end):
when it is full a record is dropped and counted, and the log says how many where records
resume. On leaving, what is buffered is written before the stream is let go.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["background_logging"]

DEFAULT_CAPACITY = 10_000
"""Records that may wait for the writer before new ones are dropped (a few MiB at most)."""
FLUSH_INTERVAL = 0.05
"""Seconds between the writer's batches."""
STOP_TIMEOUT = 5.0
"""Seconds leaving :func:`background_logging` waits for the writer to finish (a stream
blocked for good must not keep the process from exiting)."""


def _notice(dropped: int) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": __name__,
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "%d log records dropped: the log's reader fell behind",
            "args": (dropped,),
        }
    )


class _Buffer(logging.Handler):
    """Keeps records for the writer thread; never waits. A full buffer drops the record and
    counts it, and the first record kept after drops is preceded by a notice of how many."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.records: collections.deque[logging.LogRecord] = collections.deque()
        self.dropped = 0  # under the handler's lock (Handler.handle holds it around emit)
        self._message = logging.Formatter("%(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) >= self.capacity:
            self.dropped += 1
            return
        if self.dropped:
            self.records.append(_notice(self.dropped))
            self.dropped = 0
        # As QueueHandler.prepare: merge the arguments (they may change after this call) and
        # render the traceback now; the writer formats the rest (time, level, name).
        text = self._message.format(record)
        record.msg, record.message, record.args = text, text, None
        record.exc_info = record.exc_text = record.stack_info = None
        self.records.append(record)

    def take_dropped(self) -> int:
        with self.lock or contextlib.nullcontext():
            n, self.dropped = self.dropped, 0
        return n


def _write(buffer: _Buffer, stream: TextIO, fmt: logging.Formatter, stop: threading.Event) -> None:
    """The writer thread: every :data:`FLUSH_INTERVAL`, what gathered, in one write."""
    records = buffer.records
    while True:
        stopping = stop.wait(FLUSH_INTERVAL)
        batch = []
        while records:
            batch.append(records.popleft())
        if batch:
            with contextlib.suppress(OSError, ValueError):  # a closed stream: nowhere to say it
                stream.write("".join(fmt.format(r) + "\n" for r in batch))
                stream.flush()
        if stopping and not records:
            return


@contextlib.contextmanager
def background_logging(
    stream: TextIO,
    *,
    level: int = logging.INFO,
    fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s",
    capacity: int = DEFAULT_CAPACITY,
) -> Iterator[None]:
    """Send the root logger's records to ``stream`` from a writer thread, for the duration.

    Replaces the root logger's handlers and sets its level (like
    :func:`logging.basicConfig`); logging from any thread never waits for ``stream``. On
    leaving, restores the root logger and lets the writer finish what is buffered (for at
    most :data:`STOP_TIMEOUT` seconds).
    """
    if capacity < 1:
        raise ValueError("capacity must be positive")
    buffer = _Buffer(capacity)
    stop = threading.Event()
    writer = threading.Thread(
        target=_write,
        args=(buffer, stream, logging.Formatter(fmt), stop),
        name="dspot-log-writer",
        daemon=True,
    )
    root = logging.getLogger()
    handlers, old_level = root.handlers[:], root.level
    root.handlers = [buffer]
    root.setLevel(level)
    writer.start()
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(old_level)
        stop.set()
        writer.join(STOP_TIMEOUT)
        dropped = buffer.take_dropped()
        if dropped and not writer.is_alive():
            with contextlib.suppress(OSError, ValueError):
                stream.write(logging.Formatter(fmt).format(_notice(dropped)) + "\n")
                stream.flush()
