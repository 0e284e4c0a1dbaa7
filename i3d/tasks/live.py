"""Recognise actions on a live source as it plays: a result per window, with its latency.

Capture runs in its own thread: frames are decoded as they arrive, resampled to
25 fps by timestamp, cropped as a file's are (flow fields computed once per frame
pair as the frames go by, whatever the windows' overlap), and cut into windows
of ``window`` frames every ``stride``. A finished window goes into a queue of
:data:`QUEUE_WINDOWS`; the network takes windows from it in this thread. Capture
never waits for the network: when the queue is full, the oldest waiting window
is dropped for the new one and counted as skipped, so the answers stay close to
the stream (latency bounded) and memory flat. A file read without ``realtime``
is not live: its capture waits for the network and every window is answered. A window's latency is the seconds
from its last frame's arrival to its answer.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d.inputs.live import LiveOptions, LiveSource, iter_live_frames, parse_source
from i3d.inputs.video import pick_frames
from i3d.preprocess.windows import ClipBuffers, CroppedWindow, VideoOptions, crop_frames, windows_of_frames
from i3d.results import Prediction
from i3d.tasks.recognizer import Recognizer
from i3d import transforms

QUEUE_WINDOWS = 1
"""Windows waiting for the network at most: one, so an answer is never more than a window behind."""
DEFAULT_WINDOW, DEFAULT_STRIDE = 64, 16


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

    def _windows(self, writer=None) -> Iterator[CroppedWindow]:
        frames = iter_live_frames(self.source, self.live, self.stop)
        picked = pick_frames(frames, name=self.source.text, fps=self.video.fps, frame_duration=1 / self.video.fps,
                             start=None, end=self.live.duration, max_frames=None,
                             prepare=functools.partial(transforms.prepare_frame, crop=self.video.crop))
        if writer is not None:
            picked = self._recorded(picked, writer)
        streams = self.recognizer.streams
        return windows_of_frames(crop_frames(picked, streams, self.video), streams, self.video, self.source.text)

    def _recorded(self, picked, writer):
        """Each frame on its way, also written with the newest answer's panel on it."""
        from i3d.report.annotate import draw_panel, rows_panel

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

    def _hand_over(self, item) -> None:
        if self.source.kind == "file" and not self.live.realtime:  # not live: nothing to keep up with
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
                    with self.lock:
                        self.skipped += 1
                except queue.Empty:
                    pass

    def run(self) -> None:
        try:
            if self.annotate is None:
                self._capture(None)
            else:
                from i3d.report.video_writer import open_video

                with open_video(self.annotate, self.video.fps) as writer:  # kept on Ctrl-C: capture just stops
                    self._capture(writer)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            self.error = err
        finally:
            self._end()

    def _capture(self, writer) -> None:
        for window in self._windows(writer):
            if self.stop.is_set():
                return
            self._hand_over((window, time.monotonic()))

    def _end(self) -> None:
        if self.source.kind == "file" and not self.live.realtime:
            self.windows.put(None)  # the reader takes every window of a file, so this gets through
            return
        self._put_dropping_oldest(None)  # the end mark must get through even when the queue is full


def live(recognizer: Recognizer, source: str, *, video: VideoOptions = VideoOptions(window=DEFAULT_WINDOW,
                                                                                   stride=DEFAULT_STRIDE),
         options: LiveOptions = LiveOptions(), top_k: int = 5, fusion: str = "mean",
         summary: LiveSummary | None = None, annotate: str | os.PathLike | None = None) -> Iterator[LiveResult]:
    """Each window's result on ``source`` (see :mod:`i3d.inputs.live`) as soon as it is ready.

    ``summary``, when given, is kept up to date: every answer, and every window skipped, also
    those skipped after the last answer. ``annotate`` (.mp4, .webm or .gif) records the stream at 25 fps
    (frames at short side 256) with the newest answer drawn on each frame. Raises InputError when the source cannot be opened or
    drops for good; closing the iterator (or Ctrl-C) stops the capture.
    """
    options.check()
    video.check(recognizer.streams)
    if recognizer.head is not None:
        recognizer.head.check_settings(video.numbers())
    if annotate is not None:
        from i3d.report.video_writer import check_video_path

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
            finished = window.finish(recognizer.streams, buffers)
            result = recognizer.classify_windows([finished], top_k=top_k, fusion=fusion)
            with capture.lock:
                skipped = capture.skipped
            answer = LiveResult(window.index, window.start, window.end, time.time(), time.monotonic() - arrived,
                                result.logits, result.top, skipped)
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
