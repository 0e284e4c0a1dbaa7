"""Optical-flow input for I3D's flow stream, following DeepMind's Kinetics preprocessing.

Each 256-short-side RGB frame is converted to grayscale and TV-L1 flow
(OpenCV's DualTVL1OpticalFlow, default parameters) is computed between
consecutive frames; values are clipped to [-20, 20] px and divided by 20, so
the result lies in [-1, 1] with channels (x, y). ``algorithm="tvl1"`` runs the
project's own engine (:mod:`i3d.preprocess.tvl1`), which gives OpenCV's result
bit for bit several times faster; ``"tvl1-opencv"`` runs OpenCV's
implementation itself (the reference, and a fallback). ``algorithm="dis"`` uses
DIS (medium preset) instead: ~100x faster than OpenCV's TV-L1, but a different
value distribution from what the pretrained flow weights saw, so it is opt-in.

Alignment: T frames give T-1 flow fields and field t is the motion from frame t
to frame t+1. The RGB stream uses all T frames and the flow stream its T-1
fields; the network averages each stream over time, so their lengths need not
match.

A video's flow is computed once per frame pair, as its frames stream by
(:func:`iter_flow_pairs`), in chunks of :data:`CHUNK_PAIRS` pairs counted from the
first frame read, so the windows cut from a video (overlapping or not, of any
length) share every pair. With a cache folder each chunk's clipped flow
(float32, pixels) is stored as ``<cache_dir>/<key>.npy``, keyed by the SHA-256
of the chunk's decoded frames plus the algorithm and OpenCV version (the two
TV-L1 engines give identical flow, so they share entries). An entry
is a plain ``.npy`` file followed by a trailer holding the SHA-256 of every
byte before it; its header, size and checksum are checked before it is used,
and an entry that fails is removed and recomputed. The cache is best effort:
a failure to read or write it costs one warning line, never the run.

Pairs are independent: by default they run inline, the project's TV-L1
solving a chunk's pairs side by side (one thread per core) and OpenCV's solvers
spreading each pair over every core; ``workers > 1`` spreads contiguous parts
of a chunk over a process pool instead. The result does not depend on the
number of workers or on the chunking.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from i3d.caches import EntryCache, entry_key
from i3d.errors import InputError, OptionError
from i3d.processes import available_cores, spawn_pool, terminate_pool
from i3d.streams import FLOW_ALGORITHMS
from i3d.quiet import quiet_opencv
from i3d.preprocess import tvl1

quiet_opencv()  # before OpenCV loads: its own log lines stay off stderr
import cv2  # noqa: E402

FLOW_BOUND = 20.0
_SAME_FLOW = {"tvl1-opencv": "tvl1"}
"""Algorithms whose flow is bit-identical to another's, by the name their results are stored under."""
CACHE_FORMAT = 2  # bump when the stored content changes meaning (2: checksum trailer)
CHUNK_PAIRS = 32
"""Frame pairs per computed (and cached) piece of a streamed video's flow."""
T = TypeVar("T")
CACHE_TRAILER = b"I3D-FLOW-SHA256\n"
"""Magic that starts an entry's trailer; the SHA-256 digest (32 bytes) of all preceding bytes follows."""


def flow_result_name(algorithm: str) -> str:
    """The name under which an algorithm's results are stored and compared: engines with identical output share one."""
    return _SAME_FLOW.get(algorithm, algorithm)


def _make_flow(algorithm: str):
    """A fresh OpenCV solver (``tvl1-opencv`` or ``dis``)."""
    if algorithm == "tvl1-opencv":
        return cv2.optflow.DualTVL1OpticalFlow_create()
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _flow_chunk(gray: np.ndarray, algorithm: str, single_thread: bool = False,
                on_pair: Callable[[], None] | None = None) -> np.ndarray:
    """Clipped flow in pixels, float32 (len(gray)-1, H, W, 2), for consecutive gray frames.

    The project's TV-L1 solves the pairs side by side, one per core; OpenCV's
    solvers take them one at a time, each spread over its own threads.
    ``on_pair`` is called as each pair completes.
    """
    if single_thread:  # pool workers: the pool already uses every core
        cv2.setNumThreads(1)
    if algorithm == "tvl1":  # stateless: the pairs side by side
        out = tvl1.tvl1_flows(gray, threads=1 if single_thread else None, on_pair=on_pair)
        return np.clip(out, -FLOW_BOUND, FLOW_BOUND, out=out)
    out = np.empty((len(gray) - 1, *gray.shape[1:], 2), np.float32)
    for i in range(len(gray) - 1):  # a fresh solver per pair: no state carried between pairs
        out[i] = _make_flow(algorithm).calc(gray[i], gray[i + 1], None)
        if on_pair:
            on_pair()
    return np.clip(out, -FLOW_BOUND, FLOW_BOUND, out=out)


def _prepare_engine(algorithm: str) -> None:
    """Compile (or load) the TV-L1 engine before any pair is solved, saying so in one line if it compiled."""
    if algorithm == "tvl1":
        tvl1.report_compile(lambda text: tqdm.write(text, file=sys.stderr))


def _chunks(n_pairs: int, parts: int) -> list[tuple[int, int]]:
    """Split pair indices 0..n_pairs-1 into ``parts`` contiguous near-equal [a, b) ranges."""
    parts = max(1, min(parts, n_pairs))
    edges = [round(i * n_pairs / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _main_importable() -> bool:
    """Whether spawned workers can re-import the caller's __main__ (not a stdin script)."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


def _flow_bar(progress: bool, algorithm: str, total: int | None = None) -> tqdm:
    return tqdm(total=total, desc=f"flow ({algorithm})", unit="pair", file=sys.stderr,
                disable=not progress, leave=False)


def _raw_flow(gray: np.ndarray, algorithm: str, workers: int, bar: tqdm) -> np.ndarray:
    """Clipped flow in pixels for every consecutive pair of ``gray``: the one place pairs are solved."""
    n_pairs = len(gray) - 1
    _prepare_engine(algorithm)  # before a pool starts, so its workers load the compiled code from disk
    if workers > 1 and not _main_importable():
        warnings.warn("__main__ is not an importable file (stdin?); computing flow inline")
        workers = 1
    if workers == 1 or n_pairs == 1:
        return _flow_chunk(gray, algorithm, on_pair=lambda: bar.update(1))
    # Several small parts per worker so the bar moves. Any exception here (Ctrl-C,
    # SIGTERM, a failed pair) terminates the workers at once instead of letting
    # running pairs finish.
    parts = _chunks(n_pairs, min(n_pairs, workers * 4))
    results: dict[int, np.ndarray] = {}
    pool = spawn_pool(min(workers, len(parts)))
    try:
        futures = {pool.submit(_flow_chunk, gray[a:b + 1], algorithm, True): (a, b) for a, b in parts}
        for fut in cf.as_completed(futures):
            a, b = futures[fut]
            results[a] = fut.result()
            bar.update(b - a)
    except BaseException:
        terminate_pool(pool)
        raise
    pool.shutdown()
    return np.concatenate([results[a] for a, _ in parts])


def frames_sha256(frames: np.ndarray) -> str:
    """Hex SHA-256 of an array's shape, dtype and bytes."""
    arr = np.ascontiguousarray(frames)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype.str}|".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def flow_cache_key(video_sha256: str, params: dict) -> str:
    """Hex SHA-256 naming a cached flow result.

    ``video_sha256`` is the content hash of the input (file_sha256 of the video,
    or frames_sha256 of the decoded frames as compute_flow uses); ``params``
    holds every other setting that changes the result (algorithm, fps, start,
    end, max_frames, short side, ...). The OpenCV version and cache format are
    added here. Keys are canonical JSON, so dict order does not matter.
    """
    return entry_key({"content": video_sha256, "params": params, "opencv": cv2.__version__, "format": CACHE_FORMAT})


def _outside_bounds(arr: np.ndarray) -> str | None:
    """What is wrong with a cached chunk of clipped flow, or None."""
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > FLOW_BOUND:
        return f"values outside [-{FLOW_BOUND:g}, {FLOW_BOUND:g}]"
    return None


def check_flow_settings(algorithm: str, workers: int | None) -> int:
    """Refuse an unknown algorithm or worker count; returns the worker count (default 1)."""
    if algorithm not in FLOW_ALGORITHMS:
        raise OptionError("flow_algorithm", f"is {algorithm!r}; use one of {', '.join(FLOW_ALGORITHMS)}")
    workers = 1 if workers is None else int(workers)
    if not 1 <= workers <= max_flow_workers():
        raise OptionError("flow_workers", f"must be between 1 and {max_flow_workers()} (this machine's cores; "
                                          f"each worker holds about 80 MB), not {workers}")
    return workers


def max_flow_workers() -> int:
    """More flow processes than cores only cost memory: the cores available, at least 2."""
    return max(2, available_cores())


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"compute_flow: expected (T, H, W, 3) RGB frames, got shape "
                         f"{getattr(frames, 'shape', None)}")
    if frames.dtype != np.uint8:
        raise InputError(f"compute_flow: expected uint8 frames, got {frames.dtype}")
    t, h, w = frames.shape[:3]
    if t < 2:
        raise InputError(f"compute_flow: need at least 2 frames for optical flow, got {t}")
    if h < 8 or w < 8:
        raise InputError(f"compute_flow: frames are {w}x{h} px, too small for optical flow")


def gray_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) -> the uint8 gray frames (T, H, W) flow is computed from."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def _flow(frames: np.ndarray, algorithm: str, workers: int, bar: tqdm, cache_dir: str | os.PathLike | None,
          cache_key_extra: str) -> np.ndarray:
    """Flow in [-1, 1] of checked frames, through the cache when there is one."""
    cache = key = None
    if cache_dir is not None:
        cache = EntryCache(cache_dir, "flow cache", CACHE_TRAILER, _outside_bounds)
        key = flow_cache_key(frames_sha256(frames), {"algorithm": flow_result_name(algorithm),
                                                     "extra": cache_key_extra})
        cached = cache.get(key, (len(frames) - 1, *frames.shape[1:3], 2))
        if cached is not None:
            bar.update(len(frames) - 1)
            return cached / np.float32(FLOW_BOUND)
    gray = gray_frames(frames)
    try:
        raw = _raw_flow(gray, algorithm, workers, bar)
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "OpenCV error"
        raise InputError(f"compute_flow: optical flow failed ({msg})") from None
    if cache is not None:
        cache.put(key, raw)
    return raw / np.float32(FLOW_BOUND)


def compute_flow(frames: np.ndarray, *, algorithm: str = "tvl1", workers: int | None = None,
                 progress: bool = False, cache_dir: str | os.PathLike | None = None,
                 cache_key_extra: str = "") -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) -> float32 flow (T-1, H, W, 2) in [-1, 1], channels (x, y).

    workers: processes (default 1: inline, where the engine's own threads already
    use every core, which measured faster than a process pool on 2 cores).
    cache_dir: reuse/store the result there as one entry, keyed by the frames'
    content, the algorithm (``tvl1`` and ``tvl1-opencv`` alike), the OpenCV
    version and ``cache_key_extra`` (free text for anything else the caller
    wants to distinguish). A corrupt cache entry is deleted and recomputed;
    cache failures cost a warning line, never the result.
    """
    workers = check_flow_settings(algorithm, workers)
    _check_frames(frames)
    with _flow_bar(progress, algorithm, len(frames) - 1) as bar:
        return _flow(frames, algorithm, workers, bar, cache_dir, cache_key_extra)


def iter_flow_pairs(items: Iterable[T], frame_of: Callable[[T], np.ndarray], *, algorithm: str = "tvl1",
                workers: int | None = None, progress: bool = False, cache_dir: str | os.PathLike | None = None,
                chunk: int = CHUNK_PAIRS) -> Iterator[tuple[T, np.ndarray | None]]:
    """Pair each streamed item with the flow field from its frame to the next one's.

    ``frame_of(item)`` is the item's uint8 RGB frame at short side 256. Yields
    (item, field in [-1, 1]) and, for the last item, (item, None). Pairs are
    solved once each, ``chunk`` at a time; at most ``chunk + 1`` frames are held.
    """
    workers = check_flow_settings(algorithm, workers)
    buffer: list[T] = []
    with _flow_bar(progress, algorithm) as bar:
        for item in items:
            buffer.append(item)
            if len(buffer) == chunk + 1:
                yield from _paired(buffer, frame_of, algorithm, workers, bar, cache_dir)
                buffer = buffer[-1:]
        if len(buffer) > 1:
            yield from _paired(buffer, frame_of, algorithm, workers, bar, cache_dir)
    if buffer:
        yield buffer[-1], None


def _paired(buffer: list[T], frame_of: Callable[[T], np.ndarray], algorithm: str, workers: int, bar: tqdm,
            cache_dir: str | os.PathLike | None) -> Iterator[tuple[T, np.ndarray]]:
    frames = np.stack([frame_of(item) for item in buffer])
    _check_frames(frames)
    fields = _flow(frames, algorithm, workers, bar, cache_dir, "")
    for item, field in zip(buffer[:-1], fields):
        yield item, field
