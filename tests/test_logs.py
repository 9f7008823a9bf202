"""Logging that never waits for its stream (:func:`dspot.logs.background_logging`)."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest

from dspot.logs import background_logging


class _StalledStream(io.StringIO):
    """A stream whose writes block until :attr:`go` is set (a pipe whose reader stalled)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.blocked = threading.Event()

    def write(self, s: str) -> int:
        self.blocked.set()
        self.go.wait()
        return super().write(s)


def test_logging_never_waits_for_a_stalled_stream() -> None:
    stream = _StalledStream()
    log = logging.getLogger("dspot.test.logs")
    with background_logging(stream, capacity=5, fmt="%(message)s"):
        log.info("first %d", 1)
        assert stream.blocked.wait(10)  # the writer thread is stuck in the stream

        def burst() -> None:
            for i in range(100):  # 5 fit in the queue, the rest are dropped
                log.info("line %d", i)

        logger = threading.Thread(target=burst)
        logger.start()
        logger.join(10)
        assert not logger.is_alive(), "logging waited for the stalled stream"
        stream.go.set()
        deadline = time.monotonic() + 10
        while "line 4" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        log.warning("after")  # where records resume, the log says what it lost
        log.warning("and more")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "first 1",
        *(f"line {i}" for i in range(5)),
        "95 log records dropped: the log's reader fell behind",
        "after",
        "and more",
    ]


def test_drops_not_yet_announced_are_announced_at_the_end() -> None:
    stream = _StalledStream()
    log = logging.getLogger("dspot.test.logs")
    with background_logging(stream, capacity=1, fmt="%(message)s"):
        log.info("a")
        assert stream.blocked.wait(10)
        for text in "bcd":
            log.info(text)
        stream.go.set()
    assert stream.getvalue().splitlines() == [
        "a",
        "b",
        "2 log records dropped: the log's reader fell behind",
    ]


def test_records_keep_their_level_time_and_exception_and_the_root_is_restored() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = root.handlers[:], root.level
    with background_logging(stream, level=logging.WARNING, fmt="%(levelname)s %(message)s"):
        log = logging.getLogger("dspot.test.logs")
        log.info("not shown")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed %s", "here")
    assert (root.handlers, root.level) == before
    text = stream.getvalue()
    assert text.startswith("ERROR failed here\nTraceback")
    assert "ValueError: boom" in text and "not shown" not in text
    with pytest.raises(ValueError, match="capacity"), background_logging(stream, capacity=0):
        pass
