"""The library's front door: load I3D streams once, then classify or extract features from any source.

::

    import i3d
    result = i3d.classify("my.mp4")                  # one call: checks input, loads weights, classifies
    print(result.label, result.top[0].probability)

    recognizer = i3d.Recognizer.load(("rgb", "flow"))  # or load once and reuse for many videos
    features = recognizer.features("my.mp4")         # per-window 1024-d features

The one-call forms check their input (a video's first window is prepared)
before any weights are touched, and find every stream's weights before any is
imported, so a bad input or a missing set writes nothing.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from i3d.errors import OptionError
from i3d.heads import Head
from i3d.preprocess.dense import window_means
from i3d.preprocess.windows import VideoOptions, Window
from i3d.runtime.base import EngineOptions, Runner
from i3d.runtime.factory import open_runner
from i3d.runtime.fine_tuned import open_fine_tuned_runner
from i3d.streams import Stream, streams_named
from i3d.weights.loading import LoadOptions, ensure_available
from i3d.weights.sets import WeightSet, get_weight_set
from i3d.weights.store import WeightStore
from i3d.results import Features, Result, WindowResult, WindowSpan, check_fusion, fuse_logits
from i3d.results import top_k as ranked
from i3d.tasks.sources import Source, is_video, open_source

TIMELINE_TOP = 3
"""Classes kept per window in a result's timeline."""
Outputs = dict[str, tuple[np.ndarray, np.ndarray]]
"""A window's network outputs by stream: its (views, classes) logits and (views, 1024) features."""


@dataclass
class _Clock:
    """Seconds spent on inputs, loading and inference, and the frames each stream's network took."""

    seconds: dict[str, float] = field(default_factory=lambda: {"inputs": 0.0, "load": 0.0, "inference": 0.0})
    frames: dict[str, int] = field(default_factory=dict)

    def timed(self, items: Iterator, key: str) -> Iterator:
        """Iterate ``items``, adding the time spent producing them to ``seconds[key]``."""
        while True:
            mark = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self.seconds[key] += time.perf_counter() - mark
            yield item


def choose_weight_sets(streams: str | Stream | Iterable[str | Stream] = ("rgb",), pretrain: str = "kinetics",
                       weight_sets: Mapping[str, WeightSet] | None = None) -> dict[str, WeightSet]:
    """One weight set per stream: ``weight_sets`` where given (by stream name), else the ``pretrain`` set."""
    chosen = {}
    for stream in streams_named(streams):
        ws = (weight_sets or {}).get(stream.name) or get_weight_set(stream, pretrain)
        if ws.stream != stream:
            raise OptionError("weight_sets", f"give {ws.name} for the {stream.name} stream; it is a "
                                             f"{ws.stream.name} set")
        chosen[stream.name] = ws
    categories = {ws.categories for ws in chosen.values()}
    if len(categories) != 1:
        raise OptionError("weight_sets", "have different classes; streams can only be fused over the same classes")
    return chosen


class Recognizer:
    """I3D streams with their weights, ready to classify clips and videos."""

    def __init__(self, runners: Mapping[str, Runner], weight_sets: Mapping[str, WeightSet], backend: str,
                 engine: EngineOptions | None = None, head: Head | None = None,
                 store: WeightStore | None = None) -> None:
        self.runners = dict(runners)
        self.store = store or WeightStore.from_environment()  # where the weights came from, for more networks
        self.weight_sets = dict(weight_sets)
        self.backend = backend
        self.engine = engine or EngineOptions(backend)
        self.head = head
        if head is not None:
            check_head(head, self.weight_sets)
            head.check_precision(self.engine.precision)
            for stream in head.tops:
                if self.runners[stream].head_fingerprint != head.fingerprint():
                    raise OptionError("head", f"{head.path or 'the head'} is fine-tuned: its {stream} network "
                                              "is the head's own; load it with Recognizer.load(..., head=head)")

    @classmethod
    def load(cls, streams: str | Stream | Iterable[str | Stream] = ("rgb",), pretrain: str = "kinetics", *,
             weight_sets: Mapping[str, WeightSet] | None = None, load: LoadOptions = LoadOptions(),
             engine: EngineOptions = EngineOptions(), store: WeightStore | None = None,
             head: Head | None = None) -> Recognizer:
        """Find every stream's weights (all or none), then load each onto the engine.

        ``store`` is where weights live (default: ``$I3D_WEIGHTS_DIR`` or the
        project's ``weights/``). With ``head`` (see :mod:`i3d.heads`), the answers are over
        the head's classes, computed from the features; a head made for other streams or
        weights is refused before anything loads.
        """
        chosen = choose_weight_sets(streams, pretrain, weight_sets)
        if head is not None:
            check_head(head, chosen)
        if load.checkpoint is not None and len(chosen) != 1:
            raise OptionError("checkpoint", "names one stream's weights; load one stream with it")
        store = store or WeightStore.from_environment()
        engine.check()
        engine = engine.resolved()
        for ws in chosen.values():  # all weights, or none: nothing is imported for one stream if another is missing
            ensure_available(ws, store, load)
        runners = {name: _open(ws, store, load, engine, head, name) for name, ws in chosen.items()}
        return cls(runners, chosen, engine.backend, engine, head, store)

    @property
    def streams(self) -> tuple[Stream, ...]:
        return streams_named(self.weight_sets)

    @property
    def categories(self) -> tuple[str, ...]:
        """The classes answers are over: the head's, or the weight sets' (Kinetics)."""
        if self.head is not None:
            return self.head.classes
        return next(iter(self.weight_sets.values())).categories

    @property
    def weights(self) -> dict[str, str]:
        """DeepMind's checkpoint name per stream."""
        return {name: ws.deepmind_name for name, ws in self.weight_sets.items()}

    @property
    def precision(self) -> dict[str, str]:
        """Per stream, the precision its network actually runs in, as the engine reports it (fp32, bf16,
        int8, fp16-mixed): what was asked for is ``engine.precision``."""
        return {name: runner.precision for name, runner in self.runners.items()}

    def precision_record(self) -> dict:
        """What was asked for and what ran, for JSON output and a batch folder's settings (int8: with the
        calibration's checksum, which changes the numbers too)."""
        record = {"asked": self.engine.precision, "used": self.precision}
        calibration = {name: runner.calibration_sha256 for name, runner in self.runners.items()
                       if runner.calibration_sha256}
        if calibration:
            record["calibration_sha256"] = calibration
        return record

    def check(self, video: VideoOptions) -> None:
        """Refuse video options these streams cannot use, or that differ from the head's (OptionError): what
        every use checks once before its first video, rather than failing on each."""
        video.check(self.streams)
        if self.head is not None:
            self.head.check_settings(video.numbers())

    def check_ranking(self, top_k: int, fusion: str) -> None:
        """Refuse a ``top_k`` outside 1..classes or an unknown ``fusion`` (OptionError)."""
        _check_ranking(self.categories, top_k, fusion)

    def classify(self, source: Source, *, video: VideoOptions = VideoOptions(), top_k: int = 5,
                 fusion: str = "mean") -> Result:
        """Classify a video file, a frames folder, one stream's clip array or clips by stream name."""
        clock = _Clock()
        self.check_ranking(top_k, fusion)
        if is_video(source):
            self.check(video)
        elif self.head is not None:  # clip arrays: no decoding options to check, only the head's settings
            self.head.check_settings(video.numbers())
        windows = clock.timed(open_source(source, self.streams, video), "inputs")
        return self.classify_windows(windows, top_k=top_k, fusion=fusion, clock=clock,
                                     progress=video.progress and is_video(source))

    def classify_windows(self, windows: Iterable[Window], *, top_k: int = 5, fusion: str = "mean",
                         clock: _Clock | None = None, progress: bool = False) -> Result:
        """Fuse each window's stream logits, average over the windows, rank."""
        clock = clock or _Clock()
        self.check_ranking(top_k, fusion)
        fused_windows = []
        with tqdm(desc="windows", unit="window", file=sys.stderr, disable=not progress, leave=False) as bar:
            for span, outputs in self._outputs(windows, clock):
                fused_windows.append((span, self._fused(outputs, fusion)))
                bar.update(1)
        return self._result(fused_windows, clock.frames, top_k, fusion, clock.seconds)

    def window_logits(self, window: Window, fusion: str = "mean") -> np.ndarray:
        """One window's logits fused over the streams (crop views: their mean; a dense chunk: its windows'
        mean, as :meth:`classify_windows` gives it), for a caller that answers window by window (live): no
        progress bar, no timeline, no :class:`Result`. Check ``fusion`` first (:meth:`check_ranking`)."""
        fused = [self._fused(outputs, fusion) for _, outputs in self._outputs([window], _Clock())]
        return sum(fused) / len(fused)

    def _fused(self, outputs: Outputs, fusion: str) -> np.ndarray:
        """A window's answer: every stream's (views, classes) logits, the views' mean, fused over the streams."""
        return fuse_logits([self._answer(s.name, *outputs[s.name]).mean(axis=0) for s in self.streams], fusion)

    def _outputs(self, windows: Iterable[Window], clock: _Clock) -> Iterator[tuple[WindowSpan, Outputs]]:
        """Each window's span and every stream's (views, classes) logits and (views, 1024) features (the
        frames each network took are counted in ``clock``). A dense chunk (see :mod:`i3d.preprocess.dense`)
        gives each of its windows, read off one pass's steps and numbered on from the chunk before."""
        index = 0  # a dense window's: a video's windows are all dense or none
        for window in windows:
            for name, clip in window.clips.items():
                clock.frames[name] = clock.frames.get(name, 0) + int(clip.shape[1])
            if window.dense is None:
                yield self._plain_outputs(window, clock)
                continue
            for span, outputs in self._dense_outputs(window, clock, index):
                yield span, outputs
                index += 1

    def _plain_outputs(self, window: Window, clock: _Clock) -> tuple[WindowSpan, Outputs]:
        """A plain window's span and every stream's outputs, from one pass over its clip."""
        mark = time.perf_counter()
        outputs = {s.name: self.runners[s.name].outputs(window.clips[s.name]) for s in self.streams}
        clock.seconds["inference"] += time.perf_counter() - mark
        return _span(window), outputs

    def _dense_outputs(self, chunk: Window, clock: _Clock, index: int) -> Iterator[tuple[WindowSpan, Outputs]]:
        """A dense chunk's windows, numbered from ``index``: each one's span and outputs, read off one pass's
        steps (see :mod:`i3d.preprocess.dense`)."""
        mark = time.perf_counter()
        steps = {s.name: [window_means(values, chunk.dense, chunk.frames)
                          for values in self.runners[s.name].step_outputs(chunk.clips[s.name])]
                 for s in self.streams}
        clock.seconds["inference"] += time.perf_counter() - mark
        seconds = (chunk.end - chunk.start) / chunk.frames
        for n, start in enumerate(chunk.dense.starts):
            frames = chunk.dense.frames(n, chunk.frames)
            span = WindowSpan(index + n, chunk.first_frame + start, frames, chunk.start + start * seconds,
                              chunk.start + (start + frames) * seconds)
            yield span, {name: (logits[n], features[n]) for name, (logits, features) in steps.items()}

    def _answer(self, stream: str, logits: np.ndarray, features: np.ndarray) -> np.ndarray:
        """A window's (views, classes) logits: the network's, or the head's on its features."""
        return logits if self.head is None else self.head.logits(stream, features)

    def features(self, source: Source, *, video: VideoOptions = VideoOptions(), logits: bool = False) -> Features:
        """Each window's 1024-d features per stream (and its logits, with ``logits=True``)."""
        clock = _Clock()
        windows = clock.timed(open_source(source, self.streams, video), "inputs")
        return self.features_of_windows(windows, logits=logits, clock=clock)

    def features_of_windows(self, windows: Iterable[Window], *, logits: bool = False,
                            clock: _Clock | None = None) -> Features:
        clock = clock or _Clock()
        spans, feats, outs = [], {s.name: [] for s in self.streams}, {s.name: [] for s in self.streams}
        for span, outputs in self._outputs(windows, clock):
            for stream in self.streams:
                window_logits, window_features = outputs[stream.name]
                one_view = len(window_features) == 1  # else (views, ...): ten crops keep every view
                feats[stream.name].append(window_features[0] if one_view else window_features)
                outs[stream.name].append(window_logits[0] if one_view else window_logits)
            spans.append(span)
        stacked = {name: np.stack(rows).astype(np.float32) for name, rows in feats.items()}
        stacked_logits = {name: np.stack(rows).astype(np.float32) for name, rows in outs.items()} if logits else None
        head_logits = None if self.head is None else {name: self.head.logits(name, array)
                                                      for name, array in stacked.items()}
        return Features(features=stacked, logits=stacked_logits, windows=tuple(spans), weights=self.weights,
                        backend=self.backend, seconds=clock.seconds, precision=self.precision,
                        head_logits=head_logits)

    def classify_with_features(self, windows: Iterable[Window], *, top_k: int = 5,
                               fusion: str = "mean") -> tuple[Result, Features]:
        """:meth:`classify_windows` and :meth:`features_of_windows` from one pass of the network."""
        _check_ranking(self.categories, top_k, fusion)
        clock = _Clock()
        features = self.features_of_windows(windows, logits=True, clock=clock)
        fused_windows = [(span, fuse_logits([np.atleast_2d(self._window_logits(features, s.name, index)).mean(axis=0)
                                             for s in self.streams], fusion))
                         for index, span in enumerate(features.windows)]
        return self._result(fused_windows, clock.frames, top_k, fusion, features.seconds), features

    def _window_logits(self, features: Features, stream: str, index: int) -> np.ndarray:
        if self.head is None:
            return features.logits[stream][index]
        return self.head.logits(stream, features.features[stream][index])

    def _result(self, fused_windows: list[tuple[WindowSpan, np.ndarray]], frames: dict[str, int], top_k: int,
                fusion: str, seconds: dict[str, float]) -> Result:
        """Each window's fused logits ranked (the timeline), their mean over the windows ranked (the answer)."""
        timeline = tuple(WindowResult(span, fused, ranked(fused, self.categories, min(TIMELINE_TOP, top_k)))
                         for span, fused in fused_windows)
        logits = sum(w.logits for w in timeline) / len(timeline)
        return Result(logits=logits, top=ranked(logits, self.categories, top_k), windows=timeline,
                      categories=self.categories, frames=frames, weights=self.weights, backend=self.backend,
                      fusion=fusion, seconds=seconds, precision=self.precision)


def _open(ws: WeightSet, store: WeightStore, load: LoadOptions, engine: EngineOptions, head: Head | None,
          stream: str) -> Runner:
    """The stream's network: Kinetics', or with a fine-tuned head's top in place of its Mixed_5c and logits."""
    if head is None or stream not in head.tops:
        return open_runner(ws, store, load, engine)
    return open_fine_tuned_runner(ws, store, load, engine, head.tops[stream], len(head.classes), head.fingerprint(),
                                  str(head.path or "the head"))


def check_head(head: Head, weight_sets: Mapping[str, WeightSet]) -> None:
    """Refuse a head trained on other streams or other weights (OptionError naming the difference)."""
    head.check_streams({name: (ws.name, ws.index_sha256) for name, ws in weight_sets.items()})


def _check_ranking(categories: tuple[str, ...], k: int, fusion: str) -> None:
    check_fusion(fusion)
    if not 1 <= k <= len(categories):
        raise OptionError("top_k", f"must be between 1 and {len(categories)}, not {k}")


def _span(window: Window) -> WindowSpan:
    return WindowSpan(window.index, window.first_frame, window.frames, window.start, window.end)


def _load_after_input(source: Source, chosen: dict[str, WeightSet], video: VideoOptions, load: LoadOptions,
                      engine: EngineOptions, store: WeightStore | None,
                      head: Head | None = None) -> tuple[Recognizer, Iterator[Window], _Clock]:
    """Make the source's first window (so bad input fails before any weights are touched), then load.

    Returns the recognizer, all the windows (the first included) and the clock that timed both.
    """
    clock = _Clock()
    windows = clock.timed(open_source(source, streams_named(chosen), video), "inputs")
    first = next(windows)
    mark = time.perf_counter()
    recognizer = Recognizer.load(chosen, weight_sets=chosen, load=load, engine=engine, store=store, head=head)
    clock.seconds["load"] = time.perf_counter() - mark
    return recognizer, itertools.chain([first], windows), clock


def classify(source: Source, streams: str | Stream | Iterable[str | Stream] = ("rgb",), pretrain: str = "kinetics",
             *, top_k: int = 5, fusion: str = "mean", video: VideoOptions = VideoOptions(),
             load: LoadOptions = LoadOptions(), engine: EngineOptions = EngineOptions(),
             weight_sets: Mapping[str, WeightSet] | None = None, store: WeightStore | None = None,
             head: Head | None = None) -> Result:
    """Classify a video, a frames folder or clip arrays with pretrained I3D, in one call.

    Checks the options and the input (a video's first window is prepared)
    before any weights are touched; ``Result.seconds`` splits the time into
    inputs, load and inference. With ``head``, over the head's own classes.
    """
    chosen = choose_weight_sets(streams, pretrain, weight_sets)
    if head is not None:
        check_head(head, chosen)
        head.check_settings(video.numbers())
    _check_ranking(head.classes if head is not None else next(iter(chosen.values())).categories, top_k, fusion)
    recognizer, windows, clock = _load_after_input(source, chosen, video, load, engine, store, head)
    return recognizer.classify_windows(windows, top_k=top_k, fusion=fusion, clock=clock,
                                       progress=video.progress and is_video(source))


def extract_features(source: Source, streams: str | Stream | Iterable[str | Stream] = ("rgb",),
                     pretrain: str = "kinetics", *, logits: bool = False, video: VideoOptions = VideoOptions(),
                     load: LoadOptions = LoadOptions(), engine: EngineOptions = EngineOptions(),
                     weight_sets: Mapping[str, WeightSet] | None = None,
                     store: WeightStore | None = None) -> Features:
    """Per-window 1024-d I3D features of a video, a frames folder or clip arrays, in one call."""
    recognizer, windows, clock = _load_after_input(source, choose_weight_sets(streams, pretrain, weight_sets),
                                                   video, load, engine, store)
    return recognizer.features_of_windows(windows, logits=logits, clock=clock)
