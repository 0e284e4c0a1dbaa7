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
from i3d.inputs.video_sets import VideoSet, VideoSource, open_video_set
from i3d.limits import CLIP_SIZE, MIN_FRAMES
from i3d.network import network_sha256
from i3d.preprocess.legacy_bilinear import resize_bilinear_legacy
from i3d.runtime.base import EngineOptions
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet, get_weight_set
from i3d.weights.store import WeightStore
from i3d.tasks.fvd.embedding_cache import cache_key, embedding_cache
from i3d.tasks.fvd.frechet import frechet_distance, moments
from i3d.tasks.fvd.stats import VideoStats, check_compatible, fvd_settings, is_stats_file, load_stats
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
    arrays or frames read here, not a dataset run's or one video's."""

    frames: int = DEFAULT_FRAMES
    batch_size: int = 8
    engine: EngineOptions = EngineOptions()
    cache_dir: Path | None = None
    progress: bool = False

    def check(self) -> None:
        if not isinstance(self.frames, int) or self.frames < MIN_FRAMES:
            raise OptionError("frames", f"must be at least {MIN_FRAMES} (the fewest I3D takes), not {self.frames}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise OptionError("batch_size", f"must be at least 1, not {self.batch_size}")


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
        self.ws = reference_weight_set()
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
        self.settings = fvd_settings(options.frames, self.ws, precision)
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

        With a cache, videos found there are not embedded, nor are repeats of one video's content.
        """
        frames, count = self.options.frames, len(videos)
        out = np.empty((count, self.ws.num_classes), np.float32)
        keys: list[str | None] = [None] * count
        todo, first_of, hits = [], {}, 0  # videos to embed; with keys, the first video of each content
        for index in range(count):
            if self.cache is not None:
                keys[index] = key = cache_key(videos.content_sha256(index, frames), self.params)
                if key in first_of:  # the same content again: embedded once
                    continue
                first_of[key] = index
                hit = self.cache.get(key, (self.ws.num_classes,))
                if hit is not None:
                    out[index] = hit
                    hits += 1
                    continue
            todo.append(index)
        if todo:
            self._embed(videos, todo, keys, out, label)
        for index, key in enumerate(keys):
            if key is not None and first_of[key] != index:
                out[index] = out[first_of[key]]
        return out, hits, len(todo)

    def _embed(self, videos: VideoSet, todo: list[int], keys: list[str | None], out: np.ndarray, label: str) -> None:
        """Embed videos ``todo`` into ``out`` in batches, reading the next batch while one runs; cache each."""
        frames = self.options.frames
        runner = self._runner()
        batches = [todo[i:i + self.options.batch_size] for i in range(0, len(todo), self.options.batch_size)]

        def prepare(batch: list[int]) -> np.ndarray:
            return np.stack([model_input(videos.frames(index, frames)) for index in batch])

        mark = time.perf_counter()
        with tqdm(total=len(todo), desc=f"embedding {label}", unit="video", file=sys.stderr,
                  disable=not self.options.progress, leave=False) as bar, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(prepare, batches[0])
            for number, batch in enumerate(batches):
                clips = pending.result()
                if number + 1 < len(batches):
                    pending = pool.submit(prepare, batches[number + 1])
                logits = runner.outputs(clips)[0]
                for index, row in zip(batch, logits):
                    out[index] = row
                    if keys[index] is not None:
                        self.cache.put(keys[index], row)
                bar.update(len(batch))
        self.seconds["embedding"] += time.perf_counter() - mark

    def stats(self, side: VideoSet | VideoStats, label: str) -> tuple[VideoStats, SideSummary]:
        if isinstance(side, VideoStats):
            return side, SideSummary(side.source, side.count, from_stats=True)
        embeddings, cached, embedded = self.embed(side, label)
        mean, cov = moments(embeddings)
        stats = VideoStats(mean, cov, len(embeddings), self.settings, self.backend, source=side.source)
        return stats, SideSummary(side.source, len(embeddings), embedded, cached)


def _open_side(side: Side, label: str, settings: dict) -> VideoSet | VideoStats:
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
        opened = open_video_set(side, settings["frames"])
        count = len(opened)
    if count < 2:
        raise InputError(f"{opened.source}: the {label} side has {count} video; FVD needs at least 2 per side "
                         "(for a covariance)")
    if count < RECOMMENDED_VIDEOS:
        warnings.warn(f"the {label} side has {count} videos; FVD from fewer than {RECOMMENDED_VIDEOS} per side is "
                      "biased upward and compares only with values from as many videos", stacklevel=3)
    return opened


def _embedder(options: FVDOptions, load: LoadOptions, store: WeightStore | None, recognizer) -> _Embedder:
    options.check()
    return _Embedder(options, load, store, recognizer)


def fvd_embeddings(source: VideoSource, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
                   store: WeightStore | None = None, recognizer=None) -> np.ndarray:
    """(N, 400) float32 FVD embeddings of a side's videos, in its order (a folder: natural name order)."""
    embedder = _embedder(options, load, store, recognizer)
    return embedder.embed(open_video_set(source, options.frames), "videos")[0]


def fvd_stats(source: Side, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
              store: WeightStore | None = None, recognizer=None) -> VideoStats:
    """One side's statistics (mean, covariance, count, settings); ``.save(path)`` keeps them for later runs."""
    embedder = _embedder(options, load, store, recognizer)
    return embedder.stats(_open_side(source, "given", embedder.settings), "videos")[0]


def fvd(real: Side, generated: Side, options: FVDOptions = FVDOptions(), *, load: LoadOptions = LoadOptions(),
        store: WeightStore | None = None, recognizer=None) -> FVDResult:
    """The FVD between two sides, each videos or saved statistics.

    Both sides are opened and checked (statistics against this run's settings)
    before any weights are loaded; the network loads only if a video is not in the
    cache. ``recognizer``: an already loaded rgb/kinetics :class:`~i3d.Recognizer` to use.
    """
    embedder = _embedder(options, load, store, recognizer)
    sides = [_open_side(real, "real", embedder.settings), _open_side(generated, "generated", embedder.settings)]
    (real_stats, real_summary), (gen_stats, gen_summary) = (embedder.stats(side, label) for side, label
                                                            in zip(sides, ("real", "generated")))
    mark = time.perf_counter()
    distance = frechet_distance(real_stats.mean, real_stats.cov, gen_stats.mean, gen_stats.cov)
    seconds = {**embedder.seconds, "distance": time.perf_counter() - mark}
    return FVDResult(distance, options.frames, real_summary, gen_summary, embedder.settings, embedder.backend,
                     embedder.weights, real_stats, gen_stats, seconds)
