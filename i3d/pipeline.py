"""From a video (or a folder of frames) to model-ready clips, window by window.

Frames are streamed at 25 fps (see :mod:`i3d.video`) into a buffer of
``window`` frames; every ``stride`` frames the buffer becomes one window, whose
RGB clip is its frames and whose flow clip is the T-1 TV-L1 fields between them
(see :mod:`i3d.flow`). A tail the regular windows miss gets one more window
aligned to the end. Only one window is in memory at a time, so memory does not
grow with the video's length. A video shorter than ``window`` is one window of
all its frames, which is exactly what ``python -m i3d.preprocess`` writes.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .clips import validate_clip
from .errors import InputError, UsageError
from .limits import MIN_FRAMES

DEFAULT_WINDOW = 250
"""Frames per window: 10 s at 25 fps, the length of a Kinetics clip."""

CACHE_DIR_ENV = "I3D_CACHE_DIR"
T = TypeVar("T")


def default_cache_dir() -> Path:
    """Flow cache folder: ``$I3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/i3d``, else ``~/.cache/i3d``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "i3d"


@dataclass(frozen=True)
class VideoOptions:
    """Everything that decides which frames are read and how they become clips."""

    fps: float = 25.0
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None
    crop: str = "center"
    flow_algorithm: str = "tvl1"
    flow_workers: int = 1
    window: int = DEFAULT_WINDOW
    stride: int | None = None  # None: the window length (no overlap)
    flow_cache: Path | None = None
    progress: bool = False

    def check(self, streams: tuple[str, ...]) -> None:
        """Refuse settings no window could satisfy (usage errors, exit code 2)."""
        least = MIN_FRAMES + ("flow" in streams)  # flow has one field fewer than frames
        if self.window < least:
            raise UsageError(f"--window is {self.window} frames; {'+'.join(streams)} needs at least {least}")
        if self.stride is not None and not 1 <= self.stride:
            raise UsageError(f"--stride must be at least 1 frame, not {self.stride}")


@dataclass
class Window:
    """One window: its place in the video and its model-ready clips by stream."""

    index: int
    first_frame: int
    frames: int
    start: float
    end: float
    clips: dict[str, np.ndarray]


def stream_frames(source: str | os.PathLike, options: VideoOptions) -> Iterator[tuple[np.ndarray, float, int]]:
    """(RGB frame at short side 256, seconds, source index) from a video file or a frames folder."""
    from .video import iter_frames_dir, iter_video

    reader = iter_frames_dir if Path(source).is_dir() else iter_video
    return reader(source, fps=options.fps, start=options.start, end=options.end,
                  max_frames=options.max_frames, progress=options.progress)


def make_clips(frames: np.ndarray, streams: tuple[str, ...], options: VideoOptions, name: str) -> dict[str, np.ndarray]:
    """uint8 frames (T, H, W, 3) -> validated (1, T, 224, 224, 3) RGB and (1, T-1, 224, 224, 2) flow."""
    from .flow import compute_flow, flow_clip
    from .video import rgb_clip

    clips = {}
    if "rgb" in streams:
        clips["rgb"] = validate_clip(rgb_clip(frames, options.crop)[np.newaxis], "rgb", name)
    if "flow" in streams:
        if len(frames) < MIN_FRAMES + 1:
            raise InputError(f"{name}: {len(frames)} frames give {len(frames) - 1} flow fields; "
                             f"the flow stream needs at least {MIN_FRAMES}")
        flow = compute_flow(frames, algorithm=options.flow_algorithm, workers=options.flow_workers,
                            progress=options.progress, cache_dir=options.flow_cache)
        clips["flow"] = validate_clip(flow_clip(flow, options.crop)[np.newaxis], "flow", name)
    return clips


def sliding_windows(items: Iterable[T], window: int, stride: int) -> Iterator[tuple[int, list[T]]]:
    """(first index, items) for windows of ``window`` items every ``stride`` items, streamed.

    Covers every item: when the regular windows miss the tail, one more window
    is aligned to the end; fewer than ``window`` items give one window of all.
    Holds at most ``window`` items at a time.
    """
    if window < 1 or stride < 1:
        raise UsageError(f"windows need positive sizes, not window={window}, stride={stride}")
    buffer: deque[T] = deque(maxlen=window)
    seen = covered = 0
    for item in items:
        buffer.append(item)
        seen += 1
        if seen >= window and (seen - window) % stride == 0:
            covered = seen
            yield seen - window, list(buffer)
    if covered < seen:
        yield seen - len(buffer), list(buffer)


def iter_windows(source: str | os.PathLike, streams: tuple[str, ...], options: VideoOptions) -> Iterator[Window]:
    """Stream the video's windows in order; raises InputError when it is too short for one."""
    options.check(streams)
    name = os.fspath(source)
    least = MIN_FRAMES + ("flow" in streams)  # make_clips explains the flow stream's extra frame
    frames = stream_frames(source, options)
    for index, (first, picked) in enumerate(sliding_windows(frames, options.window, options.stride or options.window)):
        if len(picked) < least:
            from .video import check_frame_count

            cropped = bool(options.start or options.end is not None or options.max_frames)
            check_frame_count(len(picked), name, options.fps, cropped, MIN_FRAMES)
        start, end = picked[0][1], picked[-1][1] + 1.0 / options.fps
        clips = make_clips(np.stack([frame for frame, _, _ in picked]), streams, options, f"{name} [{start:.2f} s]")
        yield Window(index=index, first_frame=first, frames=len(picked), start=start, end=end, clips=clips)


def read_clips(source: str | os.PathLike, streams: tuple[str, ...], options: VideoOptions) -> dict[str, np.ndarray]:
    """The whole video (within start/end/max_frames) as one set of clips: what ``preprocess`` writes."""
    whole = dataclasses.replace(options, window=10**9, stride=None)
    windows = list(iter_windows(source, streams, whole))
    return windows[0].clips
