"""From a video (or a folder of frames) to model-ready clips, window by window.

Frames are streamed at 25 fps (see :mod:`i3d.inputs.video`) and resized to
short side 256. When a stream needs optical flow, each frame is paired with the
field from it to the next frame as the frames go by (see
:func:`i3d.preprocess.flow.iter_flow_pairs`), so every pair is solved once however
the windows overlap. Each frame (and field) is cropped at once to what the
network sees, and a buffer of ``window`` cropped frames becomes one window every
``stride`` frames: its RGB clip is its frames and its flow clip the T-1 fields
between them. A tail the regular windows miss gets one more window aligned to
the end. Memory depends on the window, not on the video's length. A video
shorter than ``window`` is one window of all its frames, which is exactly what
``python -m i3d preprocess`` writes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.inputs.arrays import validate_clip
from i3d.preprocess.dense import STEP, DenseSpans, DenseTiling, check_dense, chunk_and_hop, with_last
from i3d.streams import Stream
from i3d import transforms

DEFAULT_WINDOW = 250
"""Frames per window: 10 s at 25 fps, the length of a Kinetics clip."""
SHORT_WINDOW, SHORT_STRIDE = 64, 16
"""Frames per window and between window starts where answers are placed in time (live, segments): 2.56 s,
short enough to place a boundary within about a second, and a new answer every 0.64 s."""

MAX_WINDOW = 25 * 60 * 60
"""The longest window a caller may ask for: one hour at 25 fps."""

T = TypeVar("T")
DECIDING_FIELDS = ("fps", "start", "end", "max_frames", "crop", "flow_algorithm", "window", "stride")
"""The :class:`VideoOptions` fields that decide the numbers: a dataset folder's settings record these."""


@dataclass(frozen=True)
class VideoOptions:
    """Which frames are read and how they become clips (see :meth:`numbers`), and how that is computed."""

    fps: float = 25.0
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None
    crop: str = "center"
    flow_algorithm: str = "tvl1"
    flow_workers: int = 1
    window: int | None = DEFAULT_WINDOW  # None: the whole video as one window
    stride: int | None = None  # None: the window length (no overlap)
    flow_cache: Path | None = None  # a folder; None: no flow cache (a server passes its own down per request)
    progress: bool = False  # one video's bars (decoding, flow): a batch run shows its own bar over videos instead
    strict: bool = False  # refuse a video whose last frames do not decode, instead of warning and using the rest
    dense: bool = False  # windows read off long chunks' steps (see i3d.preprocess.dense); stride default 8

    def check(self, streams: tuple[Stream, ...]) -> None:
        """Refuse settings no window could satisfy (OptionError)."""
        from i3d.inputs.clock import check_range
        from i3d.preprocess.flow import check_flow_settings

        check_range(self.fps, self.start, self.end, self.max_frames)
        transforms.check_crop(self.crop)
        check_flow_settings(self.flow_algorithm, self.flow_workers)
        least = max(stream.min_video_frames for stream in streams)
        if self.window is not None and self.window < least:
            names = "+".join(stream.name for stream in streams)
            raise OptionError("window", f"is {self.window} frames; {names} needs at least {least}")
        if self.window is not None and self.window > MAX_WINDOW:
            raise OptionError("window", f"is {self.window} frames; at most {MAX_WINDOW} (one hour at 25 fps)")
        if self.stride is not None and not 1 <= self.stride <= MAX_WINDOW:
            raise OptionError("stride", f"must be between 1 and {MAX_WINDOW} frames, not {self.stride}")
        if self.dense:
            check_dense(self.window, self.stride)

    def numbers(self) -> dict:
        """The fields that decide the numbers (which frames, and how they become clips), by name, in order.

        How they are computed (``flow_workers``, ``flow_cache``, ``progress``) is not among them:
        a run resumed with other workers or another cache gives the same clips. ``dense`` is among
        them only when set, so folders made before it existed still match.
        """
        return {name: getattr(self, name) for name in DECIDING_FIELDS} | ({"dense": True} if self.dense else {})

    def window_and_step(self) -> tuple[int, int]:
        """Frames per window and between window starts (the whole video: no limit)."""
        window = sys.maxsize if self.window is None else self.window
        return window, self.stride or (STEP if self.dense else window)

    def reading(self) -> tuple[int, int]:
        """Frames per clip the network takes and between their starts: the windows', or the dense chunks'."""
        window, stride = self.window_and_step()
        return chunk_and_hop(window, stride) if self.dense else (window, stride)


@dataclass
class Window:
    """One window: its place in the video and its model-ready clips by stream name."""

    index: int
    first_frame: int
    frames: int
    start: float
    end: float
    clips: dict[str, np.ndarray]
    dense: DenseSpans | None = None  # a dense chunk: the windows read off its steps


@dataclass
class _Frame:
    """One 25 fps frame on its way to a window: its time and its crops by stream name."""

    seconds: float
    image: np.ndarray | None  # the 256-short-side frame, kept only until flow has used it
    crops: dict[str, np.ndarray]


def iter_source_frames(source: str | os.PathLike, options: VideoOptions) -> Iterator[tuple[np.ndarray, float, int]]:
    """(RGB frame at short side 256, seconds, source index) from a video file or a frames folder."""
    from i3d.inputs.frame_folders import iter_frames_dir
    from i3d.inputs.video import iter_video

    common = dict(fps=options.fps, start=options.start, end=options.end, max_frames=options.max_frames,
                  progress=options.progress, prepare=_prepare(options))
    if Path(source).is_dir():
        return iter_frames_dir(source, **common)
    return iter_video(source, strict=options.strict, **common)


def timed_frames(frames: Iterable[tuple[np.ndarray, float]], name: str, options: VideoOptions, *,
                 start: float, end: float | None) -> Iterator[tuple[np.ndarray, float, int]]:
    """(RGB frame at short side 256, seconds, source index) at ``options.fps`` from (raw frame, stream seconds)
    as they arrive (a live feed), picked and prepared as a file's frames are, from ``start`` to ``end``."""
    from i3d.inputs.clock import pick_frames  # loads OpenCV (its frames are converted to RGB)

    return pick_frames(frames, name=name, fps=options.fps, frame_duration=1 / options.fps, start=start, end=end,
                       max_frames=None, prepare=_prepare(options))


def _prepare(options: VideoOptions) -> Callable[[np.ndarray], np.ndarray]:
    """Each picked frame's preparation, :func:`i3d.transforms.prepare_frame` for ``options.crop``."""
    return functools.partial(transforms.prepare_frame, crop=options.crop)


def _cropped_frames(source: str | os.PathLike, streams: tuple[Stream, ...],
                    options: VideoOptions) -> Iterator[_Frame]:
    """Each frame of ``source`` with its crops for every stream (see :func:`crop_frames`)."""
    return crop_frames(iter_source_frames(source, options), streams, options)


def crop_frames(frames: Iterable[tuple[np.ndarray, float, int]], streams: tuple[Stream, ...],
                options: VideoOptions) -> Iterator[_Frame]:
    """Each (RGB frame at short side 256, seconds, index) with its crops for every stream; flow streams get the
    field to the next frame.

    The full frame is dropped as soon as its crops (and, for flow, its pairs) are made.
    """
    items: Iterable[_Frame] = (
        _Frame(seconds, image, {s.name: s.crop(image, options.crop) for s in streams if not s.needs_flow})
        for image, seconds, _ in frames)
    flow_streams = [s for s in streams if s.needs_flow]
    if flow_streams:
        items = _with_flow_crops(items, flow_streams, options)
    for item in items:
        item.image = None
        yield item


def _with_flow_crops(items: Iterable[_Frame], flow_streams: list[Stream], options: VideoOptions) -> Iterator[_Frame]:
    from i3d.preprocess.flow import iter_flow_pairs

    paired = iter_flow_pairs(items, lambda item: item.image, algorithm=options.flow_algorithm,
                         workers=options.flow_workers, progress=options.progress, cache_dir=options.flow_cache)
    for item, field in paired:
        if field is not None:
            for stream in flow_streams:
                item.crops[stream.name] = stream.crop(field, options.crop)
        yield item


def sliding_windows(items: Iterable[T], window: int, stride: int,
                    tail: Callable[[], bool] | None = None) -> Iterator[tuple[int, list[T]]]:
    """(first index, items) for windows of ``window`` items every ``stride`` items, streamed.

    Covers every item: when the regular windows miss the tail, one more window
    is aligned to the end; fewer than ``window`` items give one window of all.
    ``tail``, when given, is asked once the items end whether to give that last
    window (a live capture cut short by dropped frames does not want it).
    Holds at most ``window`` items at a time.
    """
    if window < 1:
        raise OptionError("window", f"must be at least 1 frame, not {window}")
    if stride < 1:
        raise OptionError("stride", f"must be at least 1 frame, not {stride}")
    buffer: deque[T] = deque(maxlen=window)
    seen = covered = 0
    for item in items:
        buffer.append(item)
        seen += 1
        if seen >= window and (seen - window) % stride == 0:
            covered = seen
            yield seen - window, list(buffer)
    if covered < seen and (tail is None or tail()):
        yield seen - len(buffer), list(buffer)


def _too_short(count: int, name: str, options: VideoOptions, least: int) -> InputError:
    where = " in the requested range" if (options.start or options.end is not None or options.max_frames) else ""
    return InputError(f"{name}: video has {count} frames at {options.fps:g} fps{where}; I3D needs at least {least}")


def check_length(frames: int, name: str, streams: tuple[Stream, ...], options: VideoOptions) -> None:
    """Refuse ``frames`` video frames when they make no clip for one of ``streams`` (InputError)."""
    least = max(stream.min_video_frames for stream in streams)
    if frames >= least:
        return
    clip_frames = min(stream.min_clip_frames for stream in streams)
    if frames < clip_frames:
        raise _too_short(frames, name, options, clip_frames)
    raise InputError(f"{name}: {frames} frames give {frames - 1} flow fields; "
                     f"the flow stream needs at least {clip_frames}")


@dataclass
class CroppedWindow:
    """A window before its clips are finished: each stream's stacked crops, uint8 for RGB.

    A quarter of the finished RGB clip's bytes, so this is what worker processes
    send; :meth:`finish` makes the model-ready :class:`Window`.
    """

    index: int
    first_frame: int
    frames: int
    start: float
    end: float
    crops: dict[str, np.ndarray]  # stream name -> (T, 224, 224, C), or (T, V, 224, 224, C) for V views
    where: str  # the video and the window's start, for error messages
    views: int
    dense: DenseSpans | None = None

    def finish(self, streams: tuple[Stream, ...], buffers: ClipBuffers | None = None) -> Window:
        """The model-ready window; InputError when a clip is not what the network takes.

        With ``buffers`` the clips are written into memory the previous window's
        clips used: finish the next window only once this one's are no longer needed.
        """
        clips = {}
        for stream in streams:
            crops = self.crops[stream.name]
            pixels = not stream.needs_flow and crops.dtype == np.uint8  # through the scaling table: in [-1, 1]
            reuse = buffers is not None and pixels and crops.ndim == 4  # flow is float32 already: nothing to write
            out = buffers.clip(stream.name, (1, *crops.shape)) if reuse else None
            clips[stream.name] = validate_clip(stream.finish_stack(crops, out), stream, self.where, self.views,
                                               values_known=pixels)
        return Window(index=self.index, first_frame=self.first_frame, frames=self.frames, start=self.start,
                      end=self.end, clips=clips, dense=self.dense)


class ClipBuffers:
    """float32 memory reused from one finished window to the next, one block per stream.

    A fresh 250-frame RGB clip is 150 MB whose pages the kernel must fault in
    and zero each time; finishing window after window into the same block saves
    that (about a sixth of a second per window).
    """

    def __init__(self) -> None:
        self._blocks: dict[str, np.ndarray] = {}

    def clip(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` in stream ``name``'s block (grown when too small)."""
        size = int(np.prod(shape))
        block = self._blocks.get(name)
        if block is None or block.size < size:
            block = self._blocks[name] = np.empty(size, np.float32)
        return block[:size].reshape(shape)


def iter_cropped_windows(source: str | os.PathLike, streams: tuple[Stream, ...],
                         options: VideoOptions) -> Iterator[CroppedWindow]:
    """Stream the video's windows in order, unfinished; raises InputError when it is too short for one."""
    options.check(streams)
    yield from windows_of_frames(_cropped_frames(source, streams, options), streams, options, os.fspath(source))


def windows_of_frames(frames: Iterable[_Frame], streams: tuple[Stream, ...], options: VideoOptions,
                      name: str, tail: Callable[[], bool] | None = None) -> Iterator[CroppedWindow]:
    """The unfinished windows (or, with ``options.dense``, dense chunks) of cropped frames, in order (``name``
    says whose in messages).

    ``tail`` is :func:`sliding_windows`'; when it leaves the last window out, frames too few for any window
    give none instead of an InputError.
    """
    clips = sliding_windows(frames, *options.reading(), tail=tail)
    made = _dense_chunks(clips, streams, options, name) if options.dense else _windows(clips, streams, options, name)
    found = False
    for window in made:
        found = True
        yield window
    if not found and tail is None:  # nothing in range: a start past the end, say
        check_length(0, name, streams, options)


def _windows(clips: Iterable[tuple[int, list[_Frame]]], streams: tuple[Stream, ...], options: VideoOptions,
             name: str) -> Iterator[CroppedWindow]:
    """Plain windows: each clip of frames is one window."""
    for index, (first, picked) in enumerate(clips):
        yield _cropped(index, first, picked, streams, options, name)


def _dense_chunks(clips: Iterable[tuple[int, list[_Frame]]], streams: tuple[Stream, ...], options: VideoOptions,
                  name: str) -> Iterator[CroppedWindow]:
    """Dense chunks: each clip of frames is a chunk, with the windows it answers for (see
    :mod:`i3d.preprocess.dense`); the video's last chunk must know it is the last."""
    tiling = DenseTiling(*options.window_and_step())
    for index, ((first, picked), last) in enumerate(with_last(clips)):
        yield _cropped(index, first, picked, streams, options, name, tiling.spans(first, len(picked), last))


def _cropped(index: int, first: int, picked: list[_Frame], streams: tuple[Stream, ...], options: VideoOptions,
             name: str, dense: DenseSpans | None = None) -> CroppedWindow:
    """One window (or dense chunk) of ``picked`` frames, the first of them frame ``first`` of the video."""
    check_length(len(picked), name, streams, options)
    start, end = picked[0].seconds, picked[-1].seconds + 1.0 / options.fps
    crops = {stream.name: np.stack([f.crops[stream.name] for f in picked[:len(picked) - stream.frames_lost]])
             for stream in streams}
    return CroppedWindow(index=index, first_frame=first, frames=len(picked), start=start, end=end, crops=crops,
                         where=f"{name} [{start:.2f} s]", views=transforms.VIEWS[options.crop], dense=dense)


def iter_windows(source: str | os.PathLike, streams: tuple[Stream, ...], options: VideoOptions) -> Iterator[Window]:
    """Stream the video's windows in order; raises InputError when it is too short for one."""
    for window in iter_cropped_windows(source, streams, options):
        yield window.finish(streams)


def iter_clip_frames(source: str | os.PathLike, streams: tuple[Stream, ...],
                     options: VideoOptions) -> Iterator[dict[str, np.ndarray]]:
    """Each frame's model-ready (224, 224, C) float32 input by stream name, the whole video streamed.

    What :func:`read_clips` stacks, one frame at a time, so a video of any length
    needs the memory of one flow chunk; the last frame has no flow entry. The
    caller checks the length (:func:`check_length`).
    """
    options.check(streams)
    finish = {stream.name: stream.finish for stream in streams}
    for item in _cropped_frames(source, streams, options):
        yield {name: finish[name](crop[np.newaxis])[0] for name, crop in item.crops.items()}


def read_clips(source: str | os.PathLike, streams: tuple[Stream, ...], options: VideoOptions) -> dict[str, np.ndarray]:
    """The whole video (within start/end/max_frames) as one set of clips: what ``preprocess`` writes."""
    whole = dataclasses.replace(options, window=None, stride=None)
    return next(iter_windows(source, streams, whole)).clips
