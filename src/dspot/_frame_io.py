"""Frames on a byte stream: reading them, and one sender task per connection writing them.

:class:`FrameSender` owns the writing side of a connection. Callers queue a frame and go
on at once (unless too many bytes are already queued); the connection's sender task writes
everything queued since its last write in as few ``send`` calls as it can. So no caller
ever sits in ``stream.send`` past its own deadline, no lock is needed, and 32 calls in
flight cost one write instead of 32. A write that fails leaves the stream's framing in an
unknown state: the sender records the error, closes the stream (so the reading side stops
too) and refuses further frames.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc

from dspot._wakeup import Waiter, waiter
from dspot.errors import STREAM_ERRORS, ConnectionLost, PeerUnavailable
from dspot.wire import Frame, FrameDecoder

READ_CHUNK = 256 * 1024
_COALESCE = 64 * 1024  # buffers smaller than this are joined into one write
_QUEUE_LIMIT = 1024 * 1024
_WRITE_SLICE = 512 * 1024


async def read_frame(stream: anyio.abc.ByteStream, decoder: FrameDecoder) -> Frame:
    """The next frame from ``stream`` (:class:`~dspot.errors.FrameError` if malformed,
    :class:`~dspot.errors.ConnectionLost` if the connection is gone)."""
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            return frame
        try:
            data = await stream.receive(max(READ_CHUNK, decoder.wanted))
        except PeerUnavailable:
            raise
        except STREAM_ERRORS as exc:
            raise ConnectionLost(f"receiving failed: {exc!r}") from exc
        decoder.feed(data)


async def send_frame(stream: anyio.abc.ByteStream, frame: Frame) -> None:
    """Write one frame directly (handshakes, before a :class:`FrameSender` runs)."""
    try:
        for buf in frame.encode():
            await stream.send(buf)
    except PeerUnavailable:
        raise
    except STREAM_ERRORS as exc:
        raise ConnectionLost(f"sending failed: {exc!r}") from exc


class FrameSender:
    """The writing side of one connection; :meth:`run` is its task."""

    def __init__(self, stream: anyio.abc.ByteStream, *, limit: int = _QUEUE_LIMIT) -> None:
        self._stream = stream
        self._queue: list[bytes] = []
        self._queued = 0
        self._limit = limit
        self._idle: Waiter | None = None
        self._space: list[Waiter] = []
        self.error: BaseException | None = None
        """Why the sender stopped; frames are refused from then on."""
        self._closing = False
        self._nowait: Callable[[bytes], bool] | None = getattr(stream, "send_nowait", None)

    def _check(self) -> None:
        if self.error is not None:
            raise ConnectionLost(f"connection lost while sending: {self.error!r}")

    async def send(self, frame: Frame, deadline: float | None = None) -> None:
        """Queue ``frame``; waits (until ``deadline``: TimeoutError) only while the queue is
        over its limit."""
        while self._queued >= self._limit:
            self._check()
            w = waiter()
            self._space.append(w)
            try:
                if not await w.wait(deadline):
                    raise TimeoutError
            finally:
                self._space.remove(w)
        self._check()
        buffers = frame.encode()
        if (
            self._idle is not None
            and self._nowait is not None
            and not self._queue
            and len(buffers) == 1
        ):
            # Nothing queued or being written: a stream that takes bytes without waiting
            # (the simulated network) gets them now, and the sender task needs no wakeup.
            try:
                if self._nowait(buffers[0]):
                    return
            except STREAM_ERRORS as exc:
                self.stop(exc)
                raise ConnectionLost(f"connection lost while sending: {exc!r}") from exc
        for buf in buffers:
            self._queue.append(buf)
            self._queued += len(buf)
        if self._idle is not None:
            self._idle.wake()

    def close(self) -> None:
        """Write what is queued, then stop (the connection has no more frames to send)."""
        self._closing = True
        if self._idle is not None:
            self._idle.wake()

    def stop(self, error: BaseException) -> None:
        """Refuse further frames (the connection is going away)."""
        if self.error is None:
            self.error = error
        self._wake_all()

    def _wake_all(self) -> None:
        if self._idle is not None:
            self._idle.wake()
        for w in self._space:
            w.wake()

    async def run(self) -> None:
        """Write queued frames until stopped or the stream fails; then close the stream."""
        stream = self._stream
        try:
            while self.error is None:
                if not self._queue:
                    if self._closing:
                        return
                    self._idle = w = waiter()
                    try:
                        await w.wait()
                    finally:
                        self._idle = None
                    continue
                batch, self._queue = self._queue, []
                self._queued = 0
                for w in self._space:
                    w.wake()
                for chunk in _coalesce(batch):
                    if len(chunk) <= _WRITE_SLICE:
                        await stream.send(chunk)
                        continue
                    view = memoryview(chunk)
                    for pos in range(0, len(chunk), _WRITE_SLICE):
                        await stream.send(view[pos : pos + _WRITE_SLICE])  # type: ignore[arg-type]
        except Exception as exc:  # the stream broke (or worse): this connection is over
            self.stop(exc)
            await anyio.aclose_forcefully(stream)
        except BaseException as exc:  # cancelled mid-write: the framing is unknown
            self.stop(exc)
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(stream)
            raise


def _coalesce(batch: list[bytes]) -> list[bytes]:
    """Join runs of small buffers; large ones (payloads) go out as they are, uncopied."""
    if len(batch) == 1:
        return batch
    out: list[bytes] = []
    run: list[bytes] = []
    for buf in batch:
        if len(buf) < _COALESCE:
            run.append(buf)
            continue
        if run:
            out.append(b"".join(run) if len(run) > 1 else run[0])
            run = []
        out.append(buf)
    if run:
        out.append(b"".join(run) if len(run) > 1 else run[0])
    return out
