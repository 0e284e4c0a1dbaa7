"""The 25 fps clock: source frames resampled onto a global grid of times, whatever decodes them.

DeepMind's Kinetics pipeline (Carreira & Zisserman 2017) starts by resampling
every video to 25 fps; the resizes and crops that follow live in
:mod:`i3d.transforms` and reach the resampler as a ``prepare``
callable, applied once to each source frame that is picked.

Resampling is by timestamp: output frame k sits at time k/fps on a global grid
and shows the latest source frame whose timestamp is <= k/fps (+1 ms). A 50 fps
source therefore keeps every second frame, 30 fps drops one frame in six and
24 fps repeats one in 25. A missing or non-increasing timestamp is replaced by the
previous timestamp + 1/source_fps, so a stream without usable timestamps falls back to
index/source_fps. Files (:mod:`i3d.inputs.video`), folders of images and live sources
(:mod:`i3d.inputs.live`) share this clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.inputs.frames import to_rgb, video_frame_name
from i3d.limits import MIN_FRAMES
from i3d.transforms import resize_short_side

_EPS = 1e-3  # seconds: a source frame this close after a grid time still counts as "at" it
_GRID_TOL = 1e-6  # tolerance when turning start/end seconds into grid indices


@dataclass
class DecodedVideo:
    """Frames resampled to ``fps`` (and prepared: resized to short side 256 by default).

    frames: uint8 (T, H, W, 3) RGB; timestamps: seconds of each output frame
    (grid times k/fps from the first source frame); source_indices: which
    decoded source frame each output frame shows; source_fps as reported by
    the container (or the folder's assumed rate).
    """

    frames: np.ndarray
    fps: float
    timestamps: np.ndarray
    source_fps: float
    path: str
    source_indices: np.ndarray


MAX_FPS = 1000.0
"""The highest frame rate asked for (no camera films faster for action recognition)."""
MAX_SECONDS = 1e9
"""The latest start or end (31 years): beyond it, times times the frame rate stop being exact numbers."""
MAX_FRAMES = 1 << 40


def check_range(fps: float, start: float | None, end: float | None, max_frames: int | None) -> None:
    """Refuse a frame rate, time range or frame cap no video could satisfy, or one so large that frame
    numbers computed from it would overflow."""
    if not (0 < fps <= MAX_FPS):
        raise OptionError("fps", f"must be positive and at most {MAX_FPS:g}, not {fps}")
    if start is not None and not (0 <= start <= MAX_SECONDS):
        raise OptionError("start", f"must be between 0 and {MAX_SECONDS:g} seconds, not {start}")
    if end is not None and not math.isfinite(end):
        raise OptionError("end", f"must be a finite number of seconds, not {end}")
    if end is not None and not end <= MAX_SECONDS:
        raise OptionError("end", f"must be at most {MAX_SECONDS:g} seconds, not {end}")
    if end is not None and not end > (start or 0.0):
        raise OptionError("end", f"({end} s) must be after start ({start or 0.0} s)")
    if max_frames is not None and not 1 <= max_frames <= MAX_FRAMES:
        raise OptionError("max_frames", f"must be between 1 and {MAX_FRAMES}, not {max_frames}")


def check_read_args(fps: float, start: float | None, end: float | None, max_frames: int | None,
                min_frames: int) -> None:
    check_range(fps, start, end, max_frames)
    if min_frames < 1:
        raise OptionError("min_frames", f"must be >= 1, not {min_frames}")


Prepare = Callable[[np.ndarray], np.ndarray]


def pick_frames(source: Iterable[tuple[np.ndarray, float]], *, name: str, fps: float,
                 frame_duration: float, start: float | None, end: float | None,
                 max_frames: int | None, prepare: Prepare = resize_short_side,
                 label: Callable[[int], str] | None = None) -> Iterator[tuple[np.ndarray, float, int]]:
    """Yield (prepared RGB frame, grid time, source index) per grid time k/fps in [start, end).

    Each grid time takes the latest source frame at or before it. ``source``
    yields (raw frame, seconds since the first frame) with increasing times. A
    frame is converted and prepared only if it is picked, and once even if picked
    repeatedly. Stops reading as soon as the range or max_frames is full, and
    holds one raw frame at a time, so memory does not grow with the video.
    ``label`` names source frame i in messages (default: the video's frame i + 1).
    """
    label = label or (lambda i: video_frame_name(name, i))
    k = math.ceil(start * fps - _GRID_TOL) if start else 0
    k_end = math.ceil(end * fps - _GRID_TOL) if end is not None else math.inf
    limit = max_frames if max_frames is not None else math.inf
    first_shape: tuple[int, ...] | None = None
    emitted = 0

    def emit(frame: np.ndarray, index: int, until: float) -> Iterator[tuple[np.ndarray, float, int]]:
        """Give ``frame`` every grid time before ``until``."""
        nonlocal k, first_shape, emitted
        small = None
        while k < k_end and emitted < limit and k / fps + _EPS < until:
            if small is None:
                small = prepare(to_rgb(frame))
                first_shape = first_shape or small.shape
                if small.shape != first_shape:
                    raise InputError(f"{label(index)} is {frame.shape[1]}x{frame.shape[0]} px, a different"
                                     f" shape from the first frame; every frame must have the same size")
            yield small, k / fps, index
            emitted += 1
            k += 1

    def full() -> bool:
        return k >= k_end or emitted >= limit

    prev: np.ndarray | None = None
    prev_t = 0.0
    index = -1
    for index, (frame, t) in enumerate(source):
        if prev is not None:
            yield from emit(prev, index - 1, t)
            if full():
                return
        prev, prev_t = frame, t
    if prev is not None:
        yield from emit(prev, index, prev_t + frame_duration)


def collect_frames(picked: Iterable[tuple[np.ndarray, float, int]], name: str, fps: float, source_fps: float,
             cropped: bool, min_frames: int) -> DecodedVideo:
    """Gather streamed frames into a DecodedVideo, refusing too few."""
    picked = list(picked)
    check_frame_count(len(picked), name, fps, cropped, min_frames)
    frames, times, indices = zip(*picked)
    return DecodedVideo(np.stack(frames), float(fps), np.asarray(times, np.float64), source_fps, name,
                        np.asarray(indices, np.int64))


def check_frame_count(count: int, name: str, fps: float, cropped: bool, min_frames: int = MIN_FRAMES) -> None:
    """Refuse a video with fewer than ``min_frames`` frames after resampling."""
    if count < min_frames:
        where = " in the requested range" if cropped else ""
        raise InputError(f"{name}: video has {count} frames at {fps:g} fps{where}; "
                         f"I3D needs at least {min_frames}")


class TimestampClock:
    """Turns per-frame CAP_PROP_POS_MSEC readings into seconds since the first frame.

    A missing (NaN, negative) or non-increasing reading becomes the previous
    time + 1/source_fps, so a stream without usable timestamps gets index/source_fps.
    Subtracting the first reading also absorbs a constant offset (some AVI
    demuxers report the next frame's position).
    """

    def __init__(self, source_fps: float) -> None:
        self.step = 1.0 / source_fps
        self.t0: float | None = None
        self.prev = -math.inf

    def __call__(self, ms: float) -> float:
        ok = math.isfinite(ms) and ms >= 0
        if self.t0 is None:
            self.t0 = ms / 1000 if ok else 0.0
        t = ms / 1000 - self.t0 if ok else math.nan
        if not t > self.prev:
            t = self.prev + self.step if self.prev > -math.inf else 0.0
        self.prev = t
        return t
