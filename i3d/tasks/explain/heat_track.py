"""Heat under the labels: Grad-CAM maps for the class an annotated video shows at each moment.

``i3d classify --annotate OUT --heat`` shows each window's top class, ``i3d segments --annotate OUT --heat``
the segment under way. For each window of the video (its centre view, as ``i3d explain`` takes it) and
each class it may show, every stream's Grad-CAM map at ``layer`` is taken (float32 Keras network, one
backward pass), upsampled to the window's frames and the 224 x 224 crop, scaled so its window maximum is
1, and averaged over the streams. A frame at t seconds gets the map of the window covering t whose centre
is nearest (the window the labels choose), at the network frame t falls on, resampled onto the crop's place
in the full-size frame: pixels the crop does not cover get no heat.

:func:`explanation_json` is the same evidence for a page to draw: explain.json's fields plus each map
at the layer's resolution and the crop's place in the video.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from i3d.preprocess.windows import VideoOptions
from i3d.report.heat import ALPHA, colour_table
from i3d.results import Result, Segment, WindowSpan
from i3d.streams import streams_named
from i3d.tasks.explain.gradcam import gradcam_networks
from i3d.tasks.explain.options import DEFAULT_LAYER, ExplainOptions
from i3d.tasks.explain.regions import CropGeometry, heat, upsample
from i3d.tasks.explain.run import Explanation, one_view, source_geometry
from i3d.tasks.sources import open_source
from i3d.transforms import CROP_SIZE
from i3d.weights.loading import LoadOptions
from i3d.weights.store import WeightStore

CACHED_MAPS = 4
"""Upsampled window maps kept at once (each T x 224 x 224 float32): the frames are written in order."""


def _placement(size: int, offset: float, factor: float, shift: float) -> np.ndarray:
    """(size, 224) weights that sample the crop along one axis of the full frame: pixel centre p of the frame
    is crop coordinate (p - offset) / factor - shift, read by linear interpolation; outside the crop, zeros."""
    position = (np.arange(size) + 0.5 - offset) / factor - shift - 0.5
    inside = (position >= -0.5) & (position <= CROP_SIZE - 0.5)
    position = np.clip(position, 0, CROP_SIZE - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, CROP_SIZE - 1)
    weight = position - low
    matrix = np.zeros((size, CROP_SIZE), np.float32)
    rows = np.arange(size)
    matrix[rows, low] += np.where(inside, 1 - weight, 0)
    matrix[rows, high] += np.where(inside, weight, 0)
    return matrix


@dataclass
class HeatTrack:
    """Per window and class, every stream's Grad-CAM map at the layer; :meth:`__call__` gives a frame's heat."""

    spans: dict[int, WindowSpan]  # by window index
    maps: dict[tuple[int, int], tuple[np.ndarray, ...]]  # (window index, class index) -> per stream (T', H', W')
    frames: dict[int, int]  # by window index: the frames its clip held
    geometry: CropGeometry
    fps: float = 25.0

    def __post_init__(self) -> None:
        self.crop_heat = functools.lru_cache(maxsize=CACHED_MAPS)(self._crop_heat)
        self._axes = functools.lru_cache(maxsize=4)(self._frame_axes)

    def _crop_heat(self, window: int, index: int) -> np.ndarray:
        """The window's heat for class ``index``: (frames, 224, 224) float32 in [0, 1], the streams averaged."""
        frames = self.frames[window]
        return np.mean([heat(upsample(np.maximum(m, 0.0), frames)) for m in self.maps[(window, index)]], axis=0)

    def _frame_axes(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.geometry
        sx, sy = width / g.width, height / g.height  # frames drawn at another size than the one measured
        return (_placement(height, g.offset[1] * sy, g.factor[1] * sy, g.shift[1]),
                _placement(width, g.offset[0] * sx, g.factor[0] * sx, g.shift[0]))

    def window_for(self, seconds: float, index: int) -> int | None:
        """The window shown at ``seconds`` among those with a map of class ``index``: the covering one whose
        centre is nearest (the earlier on a tie), as the labels choose it; None when none covers it."""
        best, distance = None, np.inf
        for number, span in self.spans.items():
            if (number, index) in self.maps and span.start - 1e-6 <= seconds < span.end - 1e-6:
                d = abs(seconds - (span.start + span.end) / 2)
                if d < distance:
                    best, distance = number, d
        return best

    def __call__(self, seconds: float, index: int, width: int, height: int) -> np.ndarray | None:
        """The heat of class ``index`` on a ``width`` x ``height`` frame at ``seconds``: float32 (height, width)
        in [0, 1], or None when no window with that class's map covers the moment."""
        window = self.window_for(seconds, index)
        if window is None:
            return None
        crop = self.crop_heat(window, index)
        n = int(np.clip(np.floor((seconds - self.spans[window].start) * self.fps + 1e-6), 0, len(crop) - 1))
        rows, columns = self._axes(width, height)
        return rows @ crop[n] @ columns.T


def heat_track(source: str | os.PathLike, wanted: Callable[[WindowSpan], Iterable[int]],
               weight_sets: Mapping, store: WeightStore, *, video: VideoOptions = VideoOptions(), head=None,
               layer: str = DEFAULT_LAYER, load: LoadOptions = LoadOptions(download=False)) -> HeatTrack:
    """Grad-CAM maps at ``layer`` over the windows of a video (or frames folder) ``source``, for the classes
    ``wanted(span)`` names per window, from each stream's weight set (and ``head``'s classes, if given)."""
    ExplainOptions(layer=layer).check()
    video = replace(video, dense=False, progress=False)
    streams = streams_named(list(weight_sets))
    networks = None
    spans, maps, frames = {}, {}, {}
    for window in open_source(source, streams, video):
        window = one_view(window)
        span = WindowSpan(window.index, window.first_frame, window.frames, window.start, window.end)
        classes = sorted(set(int(i) for i in wanted(span)))
        if not classes:
            continue
        if networks is None:  # built on the first window that needs one: a bad input fails first
            networks = gradcam_networks(weight_sets, store, layer, head, load)
        spans[span.index] = span
        frames[span.index] = max(clip.shape[1] for clip in window.clips.values())
        for index in classes:
            maps[(span.index, index)] = tuple(networks[s.name].map(window.clips[s.name], index) for s in streams)
    return HeatTrack(spans, maps, frames, source_geometry(source, video.crop), video.fps)


def result_heat(source: str | os.PathLike, result: Result, weight_sets: Mapping, store: WeightStore, *,
                video: VideoOptions = VideoOptions(), head=None, layer: str = DEFAULT_LAYER,
                load: LoadOptions = LoadOptions(download=False)) -> HeatTrack:
    """The heat of each window's top class in ``result`` (classified from ``source`` with ``video``)."""
    top = {w.span.index: w.top[0].index for w in result.windows if w.top}
    return heat_track(source, lambda span: [top[span.index]] if span.index in top else [], weight_sets, store,
                      video=video, head=head, layer=layer, load=load)


def segments_heat(source: str | os.PathLike, segments: Sequence[Segment], weight_sets: Mapping,
                  store: WeightStore, *, video: VideoOptions = VideoOptions(), head=None,
                  layer: str = DEFAULT_LAYER, load: LoadOptions = LoadOptions(download=False)) -> HeatTrack:
    """The heat of every segment's class in each window of ``source`` that the segment overlaps."""
    def wanted(span: WindowSpan) -> list[int]:
        return [s.index for s in segments if s.start < span.end and s.end > span.start]

    return heat_track(source, wanted, weight_sets, store, video=video, head=head, layer=layer, load=load)


def explanation_json(explanation: Explanation, decimals: int = 3) -> dict:
    """explain.json's fields, each map with ``heat``: its positive part at the layer's resolution (T' x H' x W'
    nested lists, its largest value 1), and ``crop_box``: the crop's (left, top, right, bottom) in the video's
    pixels (null for clip arrays); ``palette``: the 256 colours from heat 0 to 1 and ``alpha``, the opacity at
    heat 1 — what a page needs to lay the heat over the playing video as the videos here draw it."""
    data = explanation.as_json()
    data["palette"] = ["#%02x%02x%02x" % tuple(int(v) for v in rgb) for rgb in colour_table()]
    data["alpha"] = ALPHA
    g = explanation.geometry
    data["crop_box"] = None if g is None else [round(float(v), 2)
                                               for v in g.box_to_video((0, 0, CROP_SIZE, CROP_SIZE))]
    for window, entry in zip(explanation.windows, data["windows"]):
        for item, map_entry in zip(window.maps, entry["maps"]):
            map_entry["heat"] = np.round(heat(item.layer_map), decimals).tolist()
    return data
