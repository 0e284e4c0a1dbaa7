"""``i3d.explain(recognizer, video)``: for each window, where the network found the evidence for a class.

Each window is classified by the recognizer (its engine, its precision: the answer classify gives);
the classes to explain are the window's most likely (``top``) or the ones named. Then, per stream on
its own input, the map: Grad-CAM on the float32 Keras network, or occlusion on the recognizer's
runner. Each map is upsampled to the clip's frames and the 224 x 224 crop; per frame its peak, the
smallest box holding half its heat (in the crop's and, for a video, the original frame's pixels) and
its share of the window's heat (the temporal importance curve) are read off it.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field

import numpy as np

from i3d.preprocess.windows import VideoOptions, Window
from i3d.results import WindowSpan, softmax
from i3d.tasks.explain.gradcam import GradCAM, SharedNetworks
from i3d.tasks.explain.occlusion import occlusion_maps, runner_probabilities
from i3d.tasks.explain.options import ExplainOptions, check_budget, class_indices
from i3d.tasks.explain.regions import (CropGeometry, crop_geometry, half_heat_box, heat, peak, temporal_curve,
                                       upsample)
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.sources import Source, is_video, open_source
from i3d.weights.loading import LoadOptions

CENTRE_VIEW = 4
"""With ``crop="ten"`` the centre view (the same pixels as ``crop="center"``) is explained."""


@dataclass(frozen=True)
class ClassMap:
    """One window's evidence for one class on one stream."""

    stream: str
    index: int
    label: str
    probability: float  # the window's answer (the streams fused), as classify gives it
    layer_map: np.ndarray  # float32 (T', H', W'): Grad-CAM at the layer, or occlusion's drops on its grid
    crop_map: np.ndarray  # float16 (T, 224, 224): the positive part upsampled, its window maximum 1
    peaks: tuple[tuple[float, float] | None, ...]  # per frame, crop pixels
    boxes: tuple[tuple[int, int, int, int] | None, ...]  # per frame, crop pixels
    curve: tuple[float, ...]  # per frame, its share of the window's heat


@dataclass(frozen=True)
class WindowExplanation:
    """One window: its place in the video, the pictures the network saw (per stream) and the maps."""

    span: WindowSpan
    frames: dict[str, np.ndarray]  # stream -> uint8 (T, 224, 224, 3)
    maps: tuple[ClassMap, ...]


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` found: per window the maps, with how they were made."""

    method: str
    layer: str | None
    settings: dict
    weights: dict[str, str]
    categories: tuple[str, ...]
    windows: tuple[WindowExplanation, ...]
    geometry: CropGeometry | None = None  # None for clip arrays: no original video
    head_sha256: str | None = None
    precision: dict = field(default_factory=dict)
    weight_sets: dict[str, str] = field(default_factory=dict)  # the library's set name per stream

    def as_json(self) -> dict:
        """explain.json's content: per window, per map the class, probability, per frame peak and half-heat
        box (crop and video pixels) and the temporal curve; and how it was made."""
        return {"method": self.method, "layer": self.layer, "settings": self.settings, "weights": self.weights,
                "weight_sets": self.weight_sets, "head_sha256": self.head_sha256, "precision": self.precision,
                "video_size": None if self.geometry is None else [self.geometry.width, self.geometry.height],
                "windows": [_window_json(w, self.geometry) for w in self.windows]}


def _window_json(window: WindowExplanation, geometry: CropGeometry | None) -> dict:
    span = window.span
    return {"index": span.index, "first_frame": span.first_frame, "frames": span.frames, "start": span.start,
            "end": span.end, "maps": [_map_json(m, span.first_frame, geometry) for m in window.maps]}


def _map_json(item: ClassMap, first_frame: int, geometry: CropGeometry | None) -> dict:
    frames = []
    for n, (point, box) in enumerate(zip(item.peaks, item.boxes)):
        entry = {"frame": first_frame + n, "peak": None, "box": None}
        if point is not None:
            entry["peak"] = {"crop": list(point),
                             "video": None if geometry is None else _rounded(geometry.to_video(*point))}
        if box is not None:
            entry["box"] = {"crop": list(box),
                            "video": None if geometry is None else _rounded(geometry.box_to_video(box))}
        frames.append(entry)
    return {"stream": item.stream, "class": item.label, "index": item.index, "probability": item.probability,
            "layer_shape": list(item.layer_map.shape), "curve": [round(v, 6) for v in item.curve],
            "per_frame": frames}


def _rounded(values) -> list[float]:
    return [round(float(v), 2) for v in values]


def picture(clip: np.ndarray) -> np.ndarray:
    """A stream's (T, 224, 224, C) input as uint8 RGB pictures: RGB unscaled from [-1, 1]; flow as the
    length of its (x, y) displacement in grey (longest possible: white)."""
    if clip.shape[-1] == 3:
        return np.clip(np.rint((clip + 1.0) * 127.5), 0, 255).astype(np.uint8)
    length = np.sqrt((clip.astype(np.float32) ** 2).sum(axis=-1)) / np.sqrt(2.0)
    grey = np.clip(np.rint(length * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def one_view(window: Window) -> Window:
    """The window with one view per stream: the centre one of ten crops."""
    clips = {name: clip[CENTRE_VIEW:CENTRE_VIEW + 1] if clip.shape[0] == 10 else clip[:1]
             for name, clip in window.clips.items()}
    return Window(window.index, window.first_frame, window.frames, window.start, window.end, clips)


def source_geometry(source: Source, crop: str) -> CropGeometry | None:
    """How the crop sits in a video's (or frames folder's) frames; None for clip arrays."""
    if not is_video(source):
        return None
    from pathlib import Path

    from i3d.inputs.frame_folders import first_folder_frames
    from i3d.inputs.video import first_video_frames

    first = first_folder_frames(source, 1) if Path(source).is_dir() else first_video_frames(source, 1)
    return crop_geometry(first.shape[2], first.shape[1], crop)


def map_regions(layer_map: np.ndarray, frames: int) -> tuple[np.ndarray, tuple, tuple, tuple]:
    """(the map upsampled to ``frames`` x 224 x 224 as heat in [0, 1], float16; per frame peak, half-heat box,
    share of the heat), all read off the float16 map that maps.npz holds, so that the two agree."""
    crop_map = heat(upsample(np.maximum(layer_map, 0.0), frames)).astype(np.float16)
    peaks = tuple(peak(frame) for frame in crop_map)
    boxes = tuple(half_heat_box(frame) for frame in crop_map)
    curve = tuple(float(v) for v in temporal_curve(crop_map))
    return crop_map, peaks, boxes, curve


def explain(recognizer: Recognizer, source: Source, options: ExplainOptions = ExplainOptions(), *,
            video: VideoOptions = VideoOptions(), fusion: str = "mean",
            load: LoadOptions = LoadOptions(download=False), networks: SharedNetworks | None = None,
            pictures: bool = True) -> Explanation:
    """Maps of the evidence for a class in each window of ``source`` (a video, a frames folder, clip arrays).

    Options and class names are checked first, then the first window is read (a bad input fails before
    any network is built). ``load`` is how the Grad-CAM network finds the recognizer's weights again;
    ``networks`` keeps the Grad-CAM networks for later calls (a server builds them once, not per request).
    ``pictures=False`` leaves the windows' frames out (``frames`` empty): what is written as pictures
    (:func:`write_explanation`) needs them, the JSON answers do not.
    """
    options.check()
    chosen = class_indices(options.classes, recognizer.categories) if options.classes else None
    recognizer.check(video)
    windows = iter(open_source(source, recognizer.streams, video))
    first = next(windows)
    geometry = source_geometry(source, video.crop)
    explained = []
    maker = _Maker(recognizer, options, load, networks, pictures)
    for window in itertools.chain([first], windows):
        explained.append(maker.window(one_view(window), chosen, fusion))
    head = recognizer.head
    return Explanation(options.method, options.layer if options.method == "gradcam" else None,
                       {**options.settings(), **video.numbers(), "fusion": fusion}, recognizer.weights,
                       recognizer.categories, tuple(explained), geometry,
                       None if head is None else head.fingerprint(), recognizer.precision_record(),
                       {name: ws.name for name, ws in recognizer.weight_sets.items()})


class _Maker:
    """The per-window work, with the Grad-CAM networks built on first use."""

    def __init__(self, recognizer: Recognizer, options: ExplainOptions, load: LoadOptions,
                 shared: SharedNetworks | None, pictures: bool) -> None:
        self.recognizer, self.options, self.load, self.pictures = recognizer, options, load, pictures
        self.shared = SharedNetworks() if shared is None else shared
        self.lock = self.shared.lock if shared is not None else contextlib.nullcontext()
        self.head = None if recognizer.head is None else recognizer.head.fingerprint()

    def network(self, stream: str) -> GradCAM:
        """The stream's Grad-CAM network (call with ``self.lock`` held)."""
        r = self.recognizer
        key = (stream, r.weight_sets[stream].name, self.options.layer, self.options.score, self.head)
        return self.shared.get(key, lambda: GradCAM.for_stream(r.weight_sets[stream], r.store, self.options.layer,
                                                                r.head, stream, self.load, self.options.score))

    def window(self, window: Window, chosen: tuple[int, ...] | None, fusion: str) -> WindowExplanation:
        r, options = self.recognizer, self.options
        if options.method == "occlusion":
            for clip in window.clips.values():
                check_budget(options.budget, clip.shape[1], options.patch)
        logits = r.classify_windows([window], top_k=1, fusion=fusion).windows[0].logits
        ranked = np.argsort(-np.asarray(logits), kind="stable")[:options.top]
        indices = chosen if chosen is not None else tuple(int(i) for i in ranked)
        probabilities = softmax(logits)
        maps = []
        for stream in r.streams:
            clip = window.clips[stream.name]
            if options.method == "gradcam":
                with self.lock:
                    layer_maps = [self.network(stream.name).map(clip, index) for index in indices]
            else:
                score = runner_probabilities(r.runners[stream.name], r.head, stream.name)
                layer_maps = list(occlusion_maps(score, clip, indices, options.patch, options.batch,
                                                 options.budget)[1])
            for index, layer_map in zip(indices, layer_maps):
                crop_map, peaks, boxes, curve = map_regions(layer_map, clip.shape[1])
                maps.append(ClassMap(stream.name, index, r.categories[index], float(probabilities[index]),
                                     layer_map, crop_map, peaks, boxes, curve))
        span = WindowSpan(window.index, window.first_frame, window.frames, window.start, window.end)
        frames = {name: picture(clip[0]) for name, clip in window.clips.items()} if self.pictures else {}
        return WindowExplanation(span, frames, tuple(maps))

