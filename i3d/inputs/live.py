"""Live sources decoded as they arrive: a camera, a network stream, stdin, or a file played as if live.

A SOURCE is a camera index (``0``: ``/dev/video0``) or device (``/dev/video*``,
read through Video4Linux), a URL FFmpeg opens (:data:`SCHEMES`), ``-`` for a
stream on stdin (``ffmpeg ... -f mpegts - | i3d live -``), or a file. Decoding
is PyAV's (FFmpeg's), which opens all of these alike; frames come out as BGR (as
OpenCV gives a file's) with
their presentation time in seconds since the stream's first frame, so
:func:`i3d.inputs.clock.pick_frames` resamples them to 25 fps by timestamp as it
does a file's.

A network stream or camera that stops (the connection drops, a read fails, or it
ends: a live stream has no end) is opened again up to ``reconnect`` times, waiting
0.5, 1, 2... seconds (at most 8) between tries; its clock goes on where it
stopped. A file or stdin ends at its end. A source that cannot be opened within
``open_timeout`` seconds is an InputError naming it.

:class:`FrameFeed` decodes a source in its own thread, so that the source is read
as fast as it arrives whatever its reader does with the frames; when the reader
falls behind by more than the feed holds, the feed drops frames and tells the
reader once it has read those kept (a gap), so the reader starts again on fresh
frames instead of falling ever further behind.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from i3d.errors import InputError, OptionError

SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt", "rtp")
"""URL schemes read as network streams."""
MAX_BACKOFF = 8.0
STEP = 1 / 25.0
"""A frame without a timestamp comes this many seconds after the one before."""


@dataclass(frozen=True)
class LiveOptions:
    """How a live source is opened and read."""

    open_timeout: float = 10.0  # seconds to open (and to wait for data) before giving up
    reconnect: int = 3  # times a dropped network stream or camera is opened again
    realtime: bool = False  # a file: play it at its own rate, as if it were live
    duration: float | None = None  # stop after this many seconds of stream (None: at its end)

    def check(self) -> None:
        if not 0.1 <= self.open_timeout <= 3600:
            raise OptionError("open_timeout", f"must be between 0.1 and 3600 seconds, not {self.open_timeout}")
        if not 0 <= self.reconnect <= 1000:
            raise OptionError("reconnect", f"must be between 0 and 1000, not {self.reconnect}")
        if self.duration is not None and not 0 < self.duration <= 1e7:
            raise OptionError("duration", f"must be between 0 and 1e7 seconds, not {self.duration}")


@dataclass(frozen=True)
class LiveSource:
    """What a SOURCE names and how FFmpeg opens it."""

    text: str  # as given
    target: object  # a path, URL or binary file object
    format: str | None
    kind: str  # camera, network, stdin, file

    @property
    def reconnects(self) -> bool:
        return self.kind in ("camera", "network")


def parse_source(text: str) -> LiveSource:
    """The LiveSource ``text`` names (InputError for a file that is not there)."""
    if text == "-":
        return LiveSource(text, sys.stdin.buffer, None, "stdin")
    if re.fullmatch(r"\d{1,3}", text):
        return LiveSource(text, f"/dev/video{int(text)}", "v4l2", "camera")
    if text.startswith("/dev/video"):
        return LiveSource(text, text, "v4l2", "camera")
    scheme = text.split("://", 1)[0].lower() if "://" in text else None
    if scheme is not None:
        if scheme not in SCHEMES:
            raise InputError(f"{text}: {scheme}:// is not a stream FFmpeg reads here; use one of "
                             f"{', '.join(s + '://' for s in SCHEMES)}")
        return LiveSource(text, text, None, "network")
    from i3d.inputs.arrays import regular_file

    regular_file(text, "a video file, a camera index, a stream URL or - for stdin")
    return LiveSource(text, os.fspath(text), None, "file")


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:160]


def open_container(source: LiveSource, options: LiveOptions):
    """The source opened by PyAV with its first video stream (InputError within ``open_timeout``)."""
    import av

    opened: dict = {}

    def attempt() -> None:
        try:
            container = av.open(source.target, format=source.format, timeout=(options.open_timeout, options.open_timeout))
            if not container.streams.video:
                container.close()
                raise InputError(f"{source.text}: has no video stream")
            opened["container"] = container
        except BaseException as err:  # noqa: BLE001 - carried to the caller's thread
            opened["error"] = err

    worker = threading.Thread(target=attempt, daemon=True, name="i3d-open")
    worker.start()
    worker.join(options.open_timeout + 1.0)
    if worker.is_alive():
        raise InputError(f"{source.text}: could not be opened within {options.open_timeout:g} s; check the "
                         "address and that the stream is running (or raise --open-timeout)")
    error = opened.get("error")
    if isinstance(error, InputError):
        raise error
    if error is not None:
        raise InputError(f"{source.text}: cannot open ({_reason(error)}); check the address, the device or "
                         "the file") from None
    return opened["container"]


def _decoded(container, source: LiveSource) -> Iterator[tuple[np.ndarray, float | None]]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for frame in container.decode(stream):
        yield frame.to_ndarray(format="bgr24"), frame.time  # OpenCV's order, as pick_frames takes a file's


def _backoff(failures: int) -> None:
    time.sleep(min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)))


def iter_live_frames(source: LiveSource, options: LiveOptions = LiveOptions(),
                     stop: threading.Event | None = None) -> Iterator[tuple[np.ndarray, float]]:
    """(BGR frame, seconds since the first frame) as the source delivers them, across reconnections."""
    import av

    options.check()
    last: float | None = None  # the clock of the last frame given
    failures = 0
    wall_zero = None
    while True:
        try:
            container = open_container(source, options)
        except InputError:
            if last is None or not source.reconnects:
                raise
            if failures >= options.reconnect:
                raise InputError(f"{source.text}: the stream dropped and did not come back after "
                                 f"{failures} reconnection(s)") from None
            failures += 1
            _backoff(failures)
            continue
        base = None
        previous = None  # this connection's last raw time
        dropped = None
        try:
            for image, t in _decoded(container, source):
                if stop is not None and stop.is_set():
                    return
                if t is None:  # no timestamp: one frame after the one before
                    t = previous + STEP if previous is not None else 0.0
                previous = t
                if base is None:  # a (re)opened stream's clock goes on where the last one stopped
                    base = (last + STEP if last is not None else 0.0) - t
                now = t + base
                if last is not None and now <= last:
                    now = last + STEP
                if options.realtime:
                    wall_zero = time.monotonic() - now if wall_zero is None else wall_zero
                    wait = wall_zero + now - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                last = now
                failures = 0
                yield image, now
        except (av.error.FFmpegError, OSError) as err:
            dropped = err
        finally:
            container.close()
        if not source.reconnects:
            if dropped is not None and last is None:
                raise InputError(f"{source.text}: cannot be decoded ({_reason(dropped)})") from None
            return
        if failures >= options.reconnect:
            raise InputError(f"{source.text}: the stream dropped and did not come back after {failures} "
                             "reconnection(s)")
        failures += 1
        _backoff(failures)


@dataclass(frozen=True)
class FeedFrame:
    """A decoded frame: BGR pixels, seconds since the stream's first frame, and time.monotonic() on arrival."""

    image: np.ndarray
    seconds: float
    arrived: float


GAP = "gap"
"""What :meth:`FrameFeed.items` gives where frames were dropped: the frames after it do not follow the ones before."""


class FrameFeed:
    """A source decoded in its own thread into a queue its reader takes frames from (see the module's notes).

    With ``drop`` the decoder never waits: when the queued frames span more than ``span``
    seconds of stream, it drops every frame until the reader has emptied the queue, and the
    reader then gets :data:`GAP` before the next frame. Every frame from the stream's start,
    or from a gap, to the next gap is kept and given in order, so the reader gets at least
    ``span`` seconds of consecutive frames each time. Without ``drop`` (a file read as fast
    as it decodes) the decoder waits for the reader and nothing is dropped.
    """

    def __init__(self, source: LiveSource, options: LiveOptions, span: float, drop: bool) -> None:
        self.source, self.options, self.span, self.drop = source, options, span, drop
        self.stop = threading.Event()
        self.dropped = 0  # frames dropped so far
        self.last_seconds = 0.0  # the stream time of the newest frame decoded, dropped or not
        self._queue: collections.deque[FeedFrame] = collections.deque()
        self._overflowed = False
        self._ended = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._decode, daemon=True, name="i3d-decode")

    def start(self) -> FrameFeed:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop decoding (the thread ends at its next frame, or when its source gives up)."""
        self.stop.set()
        with self._ready:
            self._ready.notify_all()
        self._thread.join(timeout)

    def _full(self, seconds: float) -> bool:
        return bool(self._queue) and seconds - self._queue[0].seconds > self.span

    def _put(self, frame: FeedFrame) -> None:
        with self._ready:
            self.last_seconds = frame.seconds
            if self.drop:
                if self._overflowed or self._full(frame.seconds):
                    self._overflowed = True
                    self.dropped += 1
                    return
            else:
                while self._full(frame.seconds) and not self.stop.is_set():
                    self._ready.wait(0.1)
            self._queue.append(frame)
            self._ready.notify_all()

    def _decode(self) -> None:
        try:
            for image, seconds in iter_live_frames(self.source, self.options, self.stop):
                self._put(FeedFrame(image, seconds, time.monotonic()))
        except BaseException as err:  # noqa: BLE001 - raised again in the reader's thread
            self._error = err
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify_all()

    def items(self) -> Iterator[FeedFrame | str]:
        """The frames in order, :data:`GAP` where frames were dropped; raises what ended the source."""
        while True:
            with self._ready:
                while not self._queue and not self._overflowed and not self._ended and not self.stop.is_set():
                    self._ready.wait(0.5)
                if self._queue:
                    item: FeedFrame | str = self._queue.popleft()
                    self._ready.notify_all()
                elif self._overflowed:
                    self._overflowed = False
                    item = GAP
                else:
                    break
            yield item
        if self._error is not None:
            raise self._error
