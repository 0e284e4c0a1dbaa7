"""The Fréchet Video Distance (Unterthiner et al. 2018), exactly as its reference implementation computes it.

::

    import i3d
    result = i3d.fvd("real_videos/", "samples.npy")   # folders, .npy/.npz arrays, or saved statistics
    print(result.distance)

The reference (google-research ``frechet_video_distance``) embeds each video with
TF-Hub's ``i3d-kinetics-400`` module, which is DeepMind's rgb_scratch network: our
rgb/kinetics weight set, verified by checksum. Each side's videos are taken as their
first ``frames`` frames (as stored: no frame-rate resampling); every frame is resized
to 224x224 with TF1's legacy bilinear sampling (aspect ratio squashed, no crop,
:mod:`i3d.preprocess.legacy_bilinear`), scaled as ``2x/255 - 1``, and the network's
400 logits averaged over time are the embedding. The distance between the two sides'
Gaussians is tf-gan's, in float64 (:mod:`i3d.tasks.fvd.frechet`).

Embeddings run in batches on the fast backend (OpenVINO on a CPU) and, with a cache
folder, are kept per video (:mod:`i3d.tasks.fvd.embedding_cache`), so a rerun after adding
videos embeds only the new ones. A side's statistics can be saved and stand in for it
(:mod:`i3d.tasks.fvd.stats`).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from i3d.errors import InputError, OptionError
from i3d.inputs.video_sets import VideoSet, VideoSource
from i3d.limits import CLIP_SIZE, MIN_FRAMES
from i3d.network import network_sha256
from i3d.preprocess.legacy_bilinear import resize_bilinear_legacy
from i3d.runtime.base import EngineOptions
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet, get_weight_set
from i3d.weights.store import WeightStore
from i3d.tasks.fvd.analysis import Analysis, AnalysisOptions, analyse
from i3d.tasks.fvd.embedding_cache import cache_key, embedding_cache
from i3d.tasks.fvd.frechet import frechet_distance, moments
from i3d.tasks.fvd.input_checks import check_value_range, warn_mismatched_sides
from i3d.tasks.fvd.protocols import (DEFAULT_PROTOCOL, get_protocol, network_input_params, protocol_settings,
                                     protocol_weight_set)
from i3d.tasks.fvd.sampling import read_clip, side_clips
from i3d.tasks.fvd.sides import open_side_videos
from i3d.tasks.fvd.stats import VideoStats, check_compatible, is_stats_file, load_stats
from i3d.tasks.recognizer import Recognizer

DEFAULT_FRAMES = 16
RECOMMENDED_VIDEOS = 400
"""Fewer videos per side than this (the embedding's dimensions) warn: the covariance is then singular and FVD,
like FID, is biased upward by an amount that depends on the count, so values from different counts do not compare."""

Side = VideoSource | VideoStats
"""A side of the comparison: videos (a folder, a .npy/.npz file, an array) or their statistics (a VideoStats or
the path of a saved one)."""


@dataclass(frozen=True)
class FVDOptions:
    """``frames`` per video (the first ones; FVD-16 by default), videos per forward pass, the engine, and the
    embedding cache folder (None: no cache). ``progress`` is the embedding bar, FVD's own: its videos are
    arrays or frames read here, not a dataset run's or one video's. ``protocol``: whose choices of resize,
    clips, range, counts and covariance (:mod:`i3d.tasks.fvd.protocols`; ``tfhub``, the reference, by default).
    ``value_range``: float videos' range (``0,1``, ``-1,1``, ``0,255``; float videos are refused without it).
    ``prefixes``: shorter clip lengths whose FVD is reported too, on the same clips' first frames."""

    frames: int = DEFAULT_FRAMES
    batch_size: int = 8
    engine: EngineOptions = EngineOptions()
    cache_dir: Path | None = None
    progress: bool = False
    protocol: str = DEFAULT_PROTOCOL
    value_range: str | None = None
    prefixes: tuple[int, ...] = ()

    def check(self) -> None:
        if not isinstance(self.frames, int) or self.frames < MIN_FRAMES:
            raise OptionError("frames", f"must be at least {MIN_FRAMES} (the fewest I3D takes), not {self.frames}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise OptionError("batch_size", f"must be at least 1, not {self.batch_size}")
        get_protocol(self.protocol).check()
        check_value_range(self.value_range)
        for length in self.prefixes:
            if not isinstance(length, int) or not MIN_FRAMES <= length < self.frames:
                raise OptionError("prefixes", f"must each be at least {MIN_FRAMES} and fewer than frames "
                                              f"({self.frames}), not {length}")


@dataclass(frozen=True)
class SideSummary:
    """One side: where it came from, how many videos, how many were embedded now and how many found in the
    cache (the rest repeat another video's content: embedded once)."""

    source: str
    videos: int
    embedded: int = 0
    cached: int = 0
    from_stats: bool = False


@dataclass(frozen=True)
class FVDResult:
    """The distance, both sides, and everything that made it."""

    distance: float
    frames: int
    real: SideSummary
    generated: SideSummary
    settings: dict
    backend: str
    weights: dict[str, str]
    real_stats: VideoStats
    generated_stats: VideoStats
    seconds: dict[str, float] = field(default_factory=dict)
    analysis: Analysis | None = None
    """The bootstrap interval, FVD_inf and KVD that :class:`AnalysisOptions` asked for (None: none asked)."""

    protocol: dict = field(default_factory=dict)
    """Every choice of the protocol that made it (:meth:`~i3d.tasks.fvd.protocols.Protocol.choices`)."""
    prefixes: dict[int, float] = field(default_factory=dict)
    """FVD of each shorter prefix asked for (``FVDOptions.prefixes``), by its number of frames."""


def reference_weight_set() -> WeightSet:
    """The reference's network: TF-Hub's i3d-kinetics-400 is DeepMind's rgb_scratch, our rgb/kinetics set."""
    return get_weight_set("rgb", "kinetics")


SCALE = np.float32(2 / 255)
"""The reference writes ``2. * x / 255. - 1`` in a TF1 graph, whose optimiser folds the constants: TensorFlow
computes ``x * float32(2/255) - 1`` (tested bit for bit; ``(2x)/255 - 1`` differs from it by 1 ulp on about half
of all values)."""


def model_input(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (T, H, W, 3) -> float32 (T, 224, 224, 3) in [-1, 1], bit for bit as the reference's graph."""
    resized = resize_bilinear_legacy(frames, CLIP_SIZE, CLIP_SIZE)
    return resized * SCALE - np.float32(1)


class _Embedder:
    """Embeds video sets with the reference network, loaded on first need, through the cache."""

    def __init__(self, options: FVDOptions, load: LoadOptions, store: WeightStore | None, recognizer) -> None:
        self.options, self.load, self.store, self.recognizer = options, load, store, recognizer
        self.protocol = get_protocol(options.protocol)
        self.ws = protocol_weight_set(self.protocol)
        if recognizer is not None:
            if recognizer.weights != {"rgb": self.ws.deepmind_name}:
                raise OptionError("recognizer", f"runs {recognizer.weights}; FVD needs the rgb stream's "
                                                f"{self.ws.deepmind_name} weights alone")
            self.backend = recognizer.backend
        else:
            options.engine.check()
            self.backend = options.engine.resolved().backend
        precision = (options.engine if recognizer is None else recognizer.engine).precision
        if precision != "fp32":
            warnings.warn(f"FVD with {precision} precision: only fp32 is the reference, so this distance does not "
                          "compare with published FVD values (embeddings in this precision are not cached)")
        self.precision = precision
        self.settings = protocol_settings(self.protocol, options.frames, self.ws, precision)
        self.prefix_embeddings: dict[str, dict[int, np.ndarray]] = {}
        self.params = {**self.settings, "backend": self.backend, "network": network_sha256()}
        # int8 embeddings also depend on the calibration set, known only once the network is built: not cached
        cache_dir = options.cache_dir if precision == "fp32" else None
        self.cache = embedding_cache(cache_dir)
        self.seconds = {"load": 0.0, "embedding": 0.0}

    @property
    def weights(self) -> dict[str, str]:
        return {"rgb": self.ws.deepmind_name}

    def _runner(self):
        if self.recognizer is None:
            mark = time.perf_counter()
            self.recognizer = Recognizer.load("rgb", "kinetics", load=self.load, engine=self.options.engine,
                                              store=self.store)
            self.seconds["load"] += time.perf_counter() - mark
        return self.recognizer.runners["rgb"]

    def embed(self, videos: VideoSet, label: str) -> tuple[np.ndarray, int, int]:
        """((N, 400) float32 embeddings in the set's order, how many were found in the cache, how many
        were run through the network now).

        Each video's clip is the protocol's for side ``label`` (``generated``, else the real side's rule).
        With a cache, videos found there are not embedded, nor are repeats of one video's content. With
        prefixes, each prefix of the same clips is embedded from the same decoding and kept in
        ``prefix_embeddings[label]``.
        """
        frames = self.options.frames
        lengths = sorted({*self.options.prefixes, frames})
        rule = self.protocol.clips("generated" if label == "generated" else "real")
        indices = side_clips(videos, rule, frames, self.protocol.seed)
        count = len(videos)
        outs = {n: np.empty((count, self.ws.num_classes), np.float32) for n in lengths}
        keys: dict[int, list[str | None]] = {n: [None] * count for n in lengths}
        todo: dict[int, list[int]] = {n: [] for n in lengths}
        firsts: dict[int, dict[str, int]] = {n: {} for n in lengths}
        hits = dict.fromkeys(lengths, 0)
        for n in lengths:
            for index in range(count):
                if self.cache is not None:
                    keys[n][index] = key = self._key(videos, index, n, indices)
                    if key in firsts[n]:  # the same content again: embedded once
                        continue
                    firsts[n][key] = index
                    hit = self.cache.get(key, (self.ws.num_classes,))
                    if hit is not None:
                        outs[n][index] = hit
                        hits[n] += 1
                        continue
                todo[n].append(index)
        if any(todo.values()):
            self._embed(videos, indices, todo, keys, outs, label)
        for n in lengths:
            for index, key in enumerate(keys[n]):
                if key is not None and firsts[n][key] != index:
                    outs[n][index] = outs[n][firsts[n][key]]
        if self.options.prefixes:
            self.prefix_embeddings[label] = outs
        return outs[frames], hits[frames], len(todo[frames])

    def _key(self, videos: VideoSet, index: int, frames: int, indices: list[np.ndarray] | None) -> str:
        """The cache key of video ``index``'s clip of ``frames`` frames: its content and the network's input
        settings (for the reference, exactly as they always were), with the frame indices where drawn."""
        params = {**network_input_params(self.protocol, frames, self.ws, self.precision), "backend": self.backend,
                  "network": network_sha256()}
        if self.protocol.is_reference and indices is None:
            return cache_key(videos.content_sha256(index, frames), params)
        picked = np.arange(frames) if indices is None else indices[index][:frames]
        return cache_key(videos.content_sha256(index, int(picked[-1]) + 1), {**params, "indices": picked.tolist()})

    def _embed(self, videos: VideoSet, indices: list[np.ndarray] | None, todo: dict[int, list[int]],
               keys: dict[int, list[str | None]], outs: dict[int, np.ndarray], label: str) -> None:
        """Embed the videos in ``todo[n]`` (for each clip length n) into ``outs[n]`` in batches, decoding each
        video once for every length and reading the next batch while one runs; cache each."""
        frames = self.options.frames
        needed = sorted(set().union(*todo.values()))
        wanted = {n: set(todo[n]) for n in todo}
        runner = self._runner()
        batches = [needed[i:i + self.options.batch_size] for i in range(0, len(needed), self.options.batch_size)]

        def prepare(batch: list[int]) -> dict[int, tuple[list[int], np.ndarray]]:
            clips = {index: read_clip(videos, index, None if indices is None else indices[index], frames)
                     for index in batch}
            return {n: (rows, np.stack([self.protocol.model_input(clips[index][:n]) for index in rows]))
                    for n in todo if (rows := [index for index in batch if index in wanted[n]])}

        mark = time.perf_counter()
        with tqdm(total=len(needed), desc=f"embedding {label}", unit="video", file=sys.stderr,
                  disable=not self.options.progress, leave=False) as bar, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(prepare, batches[0])
            for number, batch in enumerate(batches):
                prepared = pending.result()
                if number + 1 < len(batches):
                    pending = pool.submit(prepare, batches[number + 1])
                for n, (rows, clips) in prepared.items():
                    logits = runner.outputs(clips)[0]
                    for index, row in zip(rows, logits):
                        outs[n][index] = row
                        if keys[n][index] is not None:
                            self.cache.put(keys[n][index], row)
                bar.update(len(batch))
        self.seconds["embedding"] += time.perf_counter() - mark

    def moments(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, covariance) as the protocol normalises it: N-1, or N (``E[xx^T] - mu mu^T``)."""
        mean, cov = moments(embeddings)
        if self.protocol.covariance == "N":
            cov = cov * ((len(embeddings) - 1) / len(embeddings))
        return mean, cov

    def stats(self, side: VideoSet | VideoStats, label: str) -> tuple[VideoStats, SideSummary, np.ndarray | None]:
        """(statistics, summary, the embeddings: None for saved statistics)."""
        if isinstance(side, VideoStats):
            return side, SideSummary(side.source, side.count, from_stats=True), None
        embeddings, cached, embedded = self.embed(side, label)
        mean, cov = self.moments(embeddings)
        stats = VideoStats(mean, cov, len(embeddings), self.settings, self.backend, source=side.source)
        return stats, SideSummary(side.source, len(embeddings), embedded, cached), embeddings


def _open_side(side: Side, label: str, settings: dict, options: FVDOptions = FVDOptions()) -> VideoSet | VideoStats:
    """A side's videos (checked as far as can be without decoding) or its statistics (checked against
    ``settings``); warns when it holds fewer than :data:`RECOMMENDED_VIDEOS`."""
    if isinstance(side, VideoStats):
        stats = side
    elif isinstance(side, (str, os.PathLike)) and is_stats_file(side):
        stats = load_stats(side)
    else:
        stats = None
    if stats is not None:
        check_compatible(stats, settings)
        if stats.mean.shape != (ws_dims := reference_weight_set().num_classes,):
            raise InputError(f"{stats.source}: statistics of {stats.mean.shape[0]} dimensions; FVD's have {ws_dims}")
        opened, count = stats, stats.count
    else:
        opened = open_side_videos(side, label, settings["frames"], get_protocol(options.protocol),
                                  options.value_range)
        count = len(opened)
    if count < 2:
        raise InputError(f"{opened.source}: the {label} side has {count} video; FVD needs at least 2 per side "
                         "(for a covariance)")
    # a protocol with a count of its own warned already when the side has fewer
    if count < RECOMMENDED_VIDEOS and (stats is not None or get_protocol(options.protocol).videos(label) is None):
        warnings.warn(f"the {label} side has {count} videos; FVD from fewer than {RECOMMENDED_VIDEOS} per side is "
                      "biased upward and compares only with values from as many videos", stacklevel=3)
    return opened


def _embedder(options: FVDOptions, load: LoadOptions, store: WeightStore | None, recognizer) -> _Embedder:
    options.check()
    return _Embedder(options, load, store, recognizer)


def fvd_embeddings(source: VideoSource, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
                   store: WeightStore | None = None, recognizer=None, side: str = "real") -> np.ndarray:
    """(N, 400) float32 FVD embeddings of a side's videos, in its order (a folder: natural name order);
    ``side`` (``real`` or ``generated``) picks the protocol's clip rule and count for that side."""
    embedder = _embedder(options, load, store, recognizer)
    return embedder.embed(open_side_videos(source, side, options.frames, embedder.protocol, options.value_range),
                          side)[0]


def fvd_stats(source: Side, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
              store: WeightStore | None = None, recognizer=None) -> VideoStats:
    """One side's statistics (mean, covariance, count, settings); ``.save(path)`` keeps them for later runs."""
    embedder = _embedder(options, load, store, recognizer)
    return embedder.stats(_open_side(source, "given", embedder.settings, options), "videos")[0]


def fvd(real: Side, generated: Side, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
        store: WeightStore | None = None, recognizer=None, analysis: AnalysisOptions | None = None) -> FVDResult:
    """The FVD between two sides, each videos or saved statistics.

    Both sides are opened and checked (statistics against this run's settings)
    before any weights are loaded; the network loads only if a video is not in the
    cache. ``recognizer``: an already loaded rgb/kinetics :class:`~i3d.Recognizer` to use.
    ``analysis``: a bootstrap interval, FVD_inf and/or KVD besides (:mod:`i3d.tasks.fvd.analysis`),
    checked against both sides before anything is embedded.
    """
    if analysis is not None:
        analysis.check()
    embedder = _embedder(options, load, store, recognizer)
    sides = [_open_side(real, "real", embedder.settings, options),
             _open_side(generated, "generated", embedder.settings, options)]
    if options.prefixes and any(isinstance(side, VideoStats) for side in sides):
        raise InputError("FVD of prefixes needs videos on both sides, not saved statistics")
    if not any(isinstance(side, VideoStats) for side in sides):
        warn_mismatched_sides(*sides, embedder.protocol.name, embedder.protocol.resize)
    if analysis is not None:
        counts = [side.count if isinstance(side, VideoStats) else len(side) for side in sides]
        analysis.check_sides(*counts, *(isinstance(side, VideoStats) for side in sides))
    (real_stats, real_summary, real_x), (gen_stats, gen_summary, gen_x) = (
        embedder.stats(side, label) for side, label in zip(sides, ("real", "generated")))
    mark = time.perf_counter()
    distance = frechet_distance(real_stats.mean, real_stats.cov, gen_stats.mean, gen_stats.cov)
    seconds = {**embedder.seconds, "distance": time.perf_counter() - mark}
    analysed = None
    if analysis is not None and analysis.needs_embeddings:
        mark = time.perf_counter()
        analysed = analyse(real_x, gen_x, analysis, ddof=0 if embedder.protocol.covariance == "N" else 1)
        seconds["analysis"] = time.perf_counter() - mark
    prefixes = {length: frechet_distance(*embedder.moments(embedder.prefix_embeddings["real"][length]),
                                         *embedder.moments(embedder.prefix_embeddings["generated"][length]))
                for length in options.prefixes}
    return FVDResult(distance, options.frames, real_summary, gen_summary, embedder.settings, embedder.backend,
                     embedder.weights, real_stats, gen_stats, seconds, analysed,
                     protocol=embedder.protocol.choices(), prefixes=prefixes)
