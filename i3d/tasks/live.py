"""Recognise actions on a live source as it plays: a result per window, with its latency.

Frames are decoded in a thread of their own as they arrive (see
:class:`i3d.inputs.live.FrameFeed`); a capture thread resamples them to 25 fps by
timestamp, crops them as a file's are (flow fields computed once per frame pair as
the frames go by, whatever the windows' overlap), and cuts them into windows of
``window`` frames every ``stride``. A finished window goes into a queue of
:data:`QUEUE_WINDOWS`; the network takes windows from it in this thread. Nothing
waits for the network: when the queue is full, the oldest waiting window is
dropped for the new one and counted as skipped. Nor does the source wait for the
capture: when preparing frames is slower than the stream (two-stream TV-L1 on a
few cores), the feed drops frames and the capture starts again on fresh ones, the
windows lost counted as skipped. So the answers stay close to the stream (latency
bounded) and memory flat. A file read without ``realtime`` is not live: it waits
for the capture and the network, and every window is answered. A window's latency
is the seconds from its last frame's arrival (decoded) to its answer.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d.inputs.live import GAP, FeedFrame, FrameFeed, LiveOptions, LiveSource, parse_source
from i3d.preprocess.windows import (SHORT_STRIDE, SHORT_WINDOW, ClipBuffers, CroppedWindow, VideoOptions, crop_frames,
                                    timed_frames, windows_of_frames)
from i3d.report.video_writer import check_video_path, open_video
from i3d.results import Prediction, top_k as ranked
from i3d.tasks.recognizer import Recognizer

QUEUE_WINDOWS = 1
"""Windows waiting for the network at most: one, so an answer is never more than a window behind."""


@dataclass(frozen=True)
class LiveResult:
    """One window's answer on a live source."""

    index: int
    start: float  # stream seconds
    end: float
    wall: float  # time.time() when the answer was ready
    latency: float  # seconds from the window's last frame arriving to this answer
    logits: np.ndarray
    top: tuple[Prediction, ...]
    skipped: int  # windows skipped so far

    def as_json(self) -> dict:
        return {"window": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
                "wall": round(self.wall, 3), "latency": round(self.latency, 4), "skipped": self.skipped,
                "top": [{"label": p.label, "index": p.index, "probability": round(p.probability, 6)}
                        for p in self.top]}


@dataclass
class LiveSummary:
    """What a live run did: windows answered and skipped, latency percentiles."""

    windows: int = 0
    skipped: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, result: LiveResult) -> None:
        self.windows += 1
        self.skipped = result.skipped
        self.latencies.append(result.latency)

    def as_json(self) -> dict:
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        return {"windows": self.windows, "skipped": self.skipped,
                "latency_p50": round(float(np.percentile(lat, 50)), 4),
                "latency_p95": round(float(np.percentile(lat, 95)), 4), "latency_max": round(float(lat.max()), 4)}

    def line(self) -> str:
        data = self.as_json()
        return (f"{data['windows']} windows, {data['skipped']} skipped; latency p50 {data['latency_p50']:.2f} s, "
                f"p95 {data['latency_p95']:.2f} s, max {data['latency_max']:.2f} s")


class _Run:
    """The frames of a feed from ``first`` to the next gap (or the source's end), with when each arrived."""

    def __init__(self, items: Iterator[FeedFrame | str], first: FeedFrame) -> None:
        self.items, self.first = items, first
        self.gapped = False  # the run ended at a gap, not at the source's end
        self._last = first.seconds
        self._arrivals: deque[tuple[float, float]] = deque()  # (stream seconds, arrival) of frames not yet used

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        item = self.first
        while True:
            self._arrivals.append((item.seconds, item.arrived))
            self._last = item.seconds
            yield item.image, item.seconds
            item = next(self.items, None)
            if item is None:
                return
            if item is GAP:
                self.gapped = True
                return

    def ends_whole(self, frames: int, fps: float) -> bool:
        """Whether the run ended at the source's end and spans ``frames`` or more at ``fps``: what earns a
        window aligned to its end."""
        return not self.gapped and (self._last - self.first.seconds) * fps + 1 >= frames - 1e-6

    def arrival(self, seconds: float) -> float:
        """When the frame shown at stream time ``seconds`` (the latest at or before it) arrived."""
        while len(self._arrivals) > 1 and self._arrivals[1][0] <= seconds + 1e-6:
            self._arrivals.popleft()
        return self._arrivals[0][1]


class _Capture(threading.Thread):
    """Decodes and windows the source, handing finished windows over without ever waiting for them."""

    def __init__(self, source: LiveSource, recognizer: Recognizer, video: VideoOptions, live: LiveOptions,
                 annotate: Path | None = None) -> None:
        super().__init__(daemon=True, name="i3d-capture")
        self.source, self.recognizer, self.video, self.live = source, recognizer, video, live
        self.annotate = annotate
        self.latest: LiveResult | None = None  # the newest answer, drawn on the frames recorded after it
        self._panel = None
        self.windows: queue.Queue = queue.Queue(maxsize=QUEUE_WINDOWS)
        self.stop = threading.Event()
        self.skipped = 0
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def _windows(self, feed: FrameFeed, writer=None) -> Iterator[tuple[CroppedWindow, float]]:
        """Each window, numbered from the stream's start, with the time its last frame arrived.

        Every run of frames between gaps (see :class:`i3d.inputs.live.FrameFeed`) is windowed as a
        video of its own, on the stream's grid of 25 fps times; a run cut short by a gap gives no window
        aligned to its end (nor does a run after a gap too short for a whole window at the source's end), and
        the windows the gap took are counted as skipped.
        """
        fps, streams = self.video.fps, self.recognizer.streams
        items = feed.items()
        window, stride = self.video.window_and_step()
        made, last_start, runs = 0, None, 0
        while True:
            first = next((item for item in items if item is not GAP), None)
            if first is None:
                break
            run = _Run(items, first)
            picked = timed_frames(run.frames(), self.source.text, self.video, start=first.seconds,
                                  end=self.live.duration)
            if writer is not None:
                picked = self._recorded(picked, writer)
            cropped = crop_frames(picked, streams, self.video)
            tail = None if runs == 0 else functools.partial(run.ends_whole, window, fps)
            runs += 1
            for n, found in enumerate(windows_of_frames(cropped, streams, self.video, self.source.text, tail=tail)):
                if n == 0 and last_start is not None:  # the regular windows the gap took
                    self._skip(round((found.start - last_start) * fps / stride) - 1)
                last_start = found.start
                found = dataclasses.replace(found, index=made, first_frame=round(found.start * fps))
                made += 1
                yield found, run.arrival(found.end - 1 / fps)
            if not run.gapped:  # the source ended, or the duration is reached
                break
        if feed.dropped and last_start is not None:  # the regular windows dropped frames took at the end
            end = feed.last_seconds + 1 / fps
            if self.live.duration is not None:
                end = min(end, self.live.duration)
            self._skip(int((end - window / fps - last_start) * fps / stride + 1e-6))

    def _skip(self, windows: int) -> None:
        if windows > 0:
            with self.lock:
                self.skipped += windows

    def _recorded(self, picked, writer):
        """Each frame on its way, also written with the newest answer's panel on it."""
        from i3d.report.annotate import draw_panel, rows_panel  # drawing (Pillow): only when the stream is recorded

        for frame, seconds, index in picked:
            latest = self.latest
            if latest is None:
                writer.write(frame)
            else:
                key = (latest.index, frame.shape[1], frame.shape[0])
                if self._panel is None or self._panel[0] != key:
                    rows = [(p.label, p.probability) for p in latest.top[:3]]
                    self._panel = (key, rows_panel(f"{latest.start:.1f}–{latest.end:.1f} s", rows, frame.shape[1],
                                                   frame.shape[0]))
                writer.write(draw_panel(frame, self._panel[1]))
            yield frame, seconds, index

    @property
    def _waits(self) -> bool:
        """A file read as fast as it decodes is not live: nothing to keep up with, every window is answered."""
        return self.source.kind == "file" and not self.live.realtime

    def _hand_over(self, item) -> None:
        if self._waits:
            while not self.stop.is_set():
                try:
                    self.windows.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        self._put_dropping_oldest(item)

    def _put_dropping_oldest(self, item) -> None:
        """Queue ``item`` now; when the queue is full, the oldest waiting window makes room and is counted."""
        while True:
            try:
                self.windows.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.windows.get_nowait()
                    self._skip(1)
                except queue.Empty:
                    pass

    def run(self) -> None:
        try:
            if self.annotate is None:
                self._capture(None)
            else:
                with open_video(self.annotate, self.video.fps) as writer:  # kept on Ctrl-C: capture just stops
                    self._capture(writer)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            self.error = err
        finally:
            self._end()

    def _capture(self, writer) -> None:
        window, stride = self.video.window_and_step()
        feed = FrameFeed(self.source, self.live, span=(window + stride) / self.video.fps, drop=not self._waits)
        feed.start()
        try:
            for item in self._windows(feed, writer):
                if self.stop.is_set():
                    return
                self._hand_over(item)
        finally:
            feed.close()

    def _end(self) -> None:
        if self._waits:
            self.windows.put(None)  # the reader takes every window of a file, so this gets through
            return
        self._put_dropping_oldest(None)  # the end mark must get through even when the queue is full


def live(recognizer: Recognizer, source: str, *, video: VideoOptions = VideoOptions(window=SHORT_WINDOW,
                                                                                   stride=SHORT_STRIDE),
         options: LiveOptions = LiveOptions(), top_k: int = 5, fusion: str = "mean",
         summary: LiveSummary | None = None, annotate: str | os.PathLike | None = None) -> Iterator[LiveResult]:
    """Each window's result on ``source`` (see :mod:`i3d.inputs.live`) as soon as it is ready.

    ``summary``, when given, is kept up to date: every answer, and every window skipped, also
    those skipped after the last answer. ``annotate`` (.mp4, .webm or .gif) records the stream at 25 fps
    (frames at short side 256) with the newest answer drawn on each frame. Raises InputError when the source cannot be opened or
    drops for good; closing the iterator (or Ctrl-C) stops the capture.
    """
    options.check()
    recognizer.check(video)
    recognizer.check_ranking(top_k, fusion)
    if annotate is not None:
        annotate = check_video_path(annotate, "annotate")
    capture = _Capture(parse_source(source), recognizer, video, options, annotate)
    capture.start()
    buffers = ClipBuffers()  # one window is finished and answered at a time: its memory is the next one's
    try:
        while True:
            item = capture.windows.get()
            if item is None:
                break
            window, arrived = item
            logits = recognizer.window_logits(window.finish(recognizer.streams, buffers), fusion)
            with capture.lock:
                skipped = capture.skipped
            answer = LiveResult(window.index, window.start, window.end, time.time(), time.monotonic() - arrived,
                                logits, ranked(logits, recognizer.categories, top_k), skipped)
            if summary is not None:
                summary.add(answer)
            capture.latest = answer
            yield answer
        if capture.error is not None:
            raise capture.error
    finally:
        capture.stop.set()
        capture.join(timeout=30 if annotate is not None else 5)  # a recording is finished before the end
        if summary is not None:
            with capture.lock:
                summary.skipped = capture.skipped
