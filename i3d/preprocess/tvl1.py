"""TV-L1 optical flow that reproduces OpenCV's ``DualTVL1OpticalFlow`` (default parameters) bit for bit, faster.

The method is Zach, Pock and Bischof's duality-based TV-L1 (2007) as described
by Sánchez, Meinhardt-Llopis and Facciolo ("TV-L1 Optical Flow Estimation",
IPOL 2013), with OpenCV's documented defaults: tau 0.25, lambda 0.15, theta
0.3, 5 scales 0.8 apart, 5 warps, epsilon 0.01, 30 inner and 10 outer
iterations, a 5x5 median filter of the flow before each outer iteration, no
gamma, no initial flow.

Per scale (coarsest first, flow upsampled and scaled by 1/0.8 between
scales), per warp: the second image and its central-difference gradient are
warped by the current flow (bicubic, zero outside), and the linearised data
term is formed; then, per outer iteration, the flow is median-filtered and up to
30 primal-dual iterations run until the summed squared change of the flow is at
most epsilon^2 times the pixel count. Pyramid, warping and median filtering
are OpenCV's own functions; the iterations are compiled with numba
(:mod:`i3d.preprocess.tvl1_kernels`), each fused into two passes over the
image, with OpenCV's float32 operation order throughout. A video's pairs are
solved side by side, one per thread (:func:`tvl1_flows`); a single pair can
instead spread its rows over threads (:func:`tvl1_flow`), which is as fast on
idle cores but slows down badly when other programs share them (every pass
ends with the threads waiting for each other).

Stopping: OpenCV sums the squared change serially in float32. The default
``stop="exact"`` sums in float64 in parallel and falls back to that serial
float32 sum only when the float64 total is within the serial sum's worst-case
rounding error of the threshold, so every stopping decision, and hence the
flow, is OpenCV's. ``stop="serial"`` always takes the serial sum and counts
how often the float64 total alone would have decided differently.

Compiled code is cached on disk in ``$NUMBA_CACHE_DIR`` if set, else in
``<i3d cache>/numba`` (``$I3D_CACHE_DIR``, ``$XDG_CACHE_HOME/i3d`` or
``~/.cache/i3d``), else wherever numba finds a writable place; without one it
is compiled again in each process. The first compilation takes tens of
seconds and is reported on stderr once.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from i3d.interrupts import keep_interrupts, signals_held
from i3d.processes import available_cores
from i3d.quiet import quiet_opencv

quiet_opencv()
import cv2  # noqa: E402

TAU = 0.25
LAMBDA = 0.15
THETA = 0.3
SCALES = 5
WARPS = 5
EPSILON = 0.01
INNER_ITERATIONS = 30
OUTER_ITERATIONS = 10
SCALE_STEP = 0.8
MEDIAN_SIZE = 5
MIN_SIDE = 16
"""A coarser scale is used only while both its sides are at least this many pixels."""

STOP_MODES = ("exact", "serial", "float64")

_lock = threading.Lock()
_kernels: dict | None = None


@dataclass
class Engine:
    """How the compiled kernels were obtained: for the one-line note after a first compilation."""

    compiled: bool
    seconds: float
    cache_dir: str | None


@dataclass
class SolveStats:
    """Counts from one or more solves: iterations run, serial float32 sums taken, and the float64-only
    decisions that would have differed from OpenCV's serial sum (counted only where the serial sum ran)."""

    iterations: int = 0
    serial_sums: int = 0
    float64_flips: int = 0
    per_scale: list[tuple[tuple[int, int], int]] = field(default_factory=list)  # ((h, w), iterations)


def _numba_cache_dir() -> str | None:
    """A writable folder for compiled code, or None to leave the choice to numba."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    from i3d.caches import default_cache_dir

    folder = default_cache_dir() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    return str(folder)


def load_engine() -> Engine:
    """Compile the kernels, or load them from the disk cache; safe to call often (the work is done once)."""
    global _kernels
    with _lock:
        if _kernels is not None:
            return _kernels["engine"]
        mark = time.perf_counter()
        with signals_held():  # a SIGTERM mid-import would be numba's ImportError and a printed traceback
            import numba
            from numba.core import config

            from i3d.preprocess import tvl1_kernels

        folder = _numba_cache_dir()
        saved = config.CACHE_DIR
        if folder:
            config.CACHE_DIR = folder  # read by numba's cache locator when each kernel is created below
        try:
            with keep_interrupts():  # LLVM's callbacks would swallow a Ctrl-C
                try:
                    found = tvl1_kernels.compile_all(cache=True)
                    if not folder:  # numba chose: beside the source if writable, else its own user folder
                        folder = found["iterate"].stats.cache_path
                except RuntimeError:  # no writable place at all: compile in memory
                    found = tvl1_kernels.compile_all(cache=False)
                    folder = None
        finally:
            config.CACHE_DIR = saved
        compiled = any(sum(k.stats.cache_misses.values()) or not k.stats.cache_hits for k in found.values())
        found["engine"] = Engine(compiled, time.perf_counter() - mark, folder)
        found["numba"] = numba
        found["modes"] = {"serial": tvl1_kernels.SERIAL, "exact": tvl1_kernels.EXACT,
                          "float64": tvl1_kernels.FLOAT64}
        _kernels = found
        return found["engine"]


def compile_note(engine: Engine) -> str | None:
    """One line saying the kernels were just compiled, or None if they came from the cache."""
    if not engine.compiled:
        return None
    where = f"kept in {engine.cache_dir}" if engine.cache_dir else "no writable cache folder, so once per process"
    return f"i3d: compiled the TV-L1 flow engine in {engine.seconds:.1f} s ({where})"


def tvl1_flow(image0: np.ndarray, image1: np.ndarray, *, threads: int = 1, stop: str = "exact",
              stats: SolveStats | None = None) -> np.ndarray:
    """Flow (H, W, 2) float32 from uint8 gray ``image0`` to ``image1``: OpenCV's TV-L1 result, bit for bit.

    threads: 1 (default) solves the pair on the calling thread; more spread its
    rows over that many threads (faster on idle cores only: for many pairs use
    :func:`tvl1_flows`). stop: see the module docstring. stats: filled with
    iteration counts when given.
    """
    if stop not in STOP_MODES:
        raise ValueError(f"stop is {stop!r}; use one of {', '.join(STOP_MODES)}")
    for image in (image0, image1):
        if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"expected 2-D uint8 gray images, got {getattr(image, 'dtype', type(image))} "
                             f"{getattr(image, 'shape', '')}")
    if image0.shape != image1.shape:
        raise ValueError(f"images differ in size: {image0.shape} and {image1.shape}")
    if min(image0.shape) < 3:
        raise ValueError(f"images of {image0.shape[1]}x{image0.shape[0]} px are too small for TV-L1")
    load_engine()
    k = _kernels
    threads = max(1, min(threads, k["numba"].config.NUMBA_NUM_THREADS))
    if threads > 1:
        k["numba"].set_num_threads(threads)
    iterate = k["iterate_threads"] if threads > 1 else k["iterate"]
    mode = k["modes"][stop]

    pyramid0 = [image0.astype(np.float32)]
    pyramid1 = [image1.astype(np.float32)]
    for _ in range(1, SCALES):
        smaller0 = cv2.resize(pyramid0[-1], None, fx=SCALE_STEP, fy=SCALE_STEP, interpolation=cv2.INTER_LINEAR)
        smaller1 = cv2.resize(pyramid1[-1], None, fx=SCALE_STEP, fy=SCALE_STEP, interpolation=cv2.INTER_LINEAR)
        if smaller0.shape[0] < MIN_SIDE or smaller0.shape[1] < MIN_SIDE:
            break
        pyramid0.append(smaller0)
        pyramid1.append(smaller1)

    u1 = np.zeros(pyramid0[-1].shape, np.float32)
    u2 = np.zeros(pyramid0[-1].shape, np.float32)
    upscale = np.float32(1 / SCALE_STEP)
    for s in range(len(pyramid0) - 1, -1, -1):
        u1, u2 = _one_scale(k, iterate, pyramid0[s], pyramid1[s], u1, u2, mode, stats)
        if s == 0:
            break
        size = pyramid0[s - 1].shape[::-1]
        u1 = cv2.resize(u1, size, interpolation=cv2.INTER_LINEAR) * upscale
        u2 = cv2.resize(u2, size, interpolation=cv2.INTER_LINEAR) * upscale
    return np.stack([u1, u2], axis=-1)


def _one_scale(k: dict, iterate, i0: np.ndarray, i1: np.ndarray, u1: np.ndarray, u2: np.ndarray, mode: int,
               stats: SolveStats | None) -> tuple[np.ndarray, np.ndarray]:
    """The warps and iterations at one scale; returns the refined flow."""
    shape = i0.shape
    eps = np.float32(EPSILON * EPSILON * (shape[0] * shape[1]))
    l_t = np.float32(LAMBDA * THETA)
    taut = np.float32(TAU / THETA)
    theta = np.float32(THETA)

    def image() -> np.ndarray:
        return np.empty(shape, np.float32)

    i1x, i1y = image(), image()
    k["centered_gradient"](i1, i1x, i1y)
    map_x, map_y, grad, rho_c, terms = (image() for _ in range(5))
    p11, p12, p21, p22 = (np.zeros(shape, np.float32) for _ in range(4))
    row_sums = np.empty(shape[0], np.float64)
    counts = np.zeros(4, np.int64)
    u1 = np.ascontiguousarray(u1)
    u2 = np.ascontiguousarray(u2)
    iterations = 0
    for _ in range(WARPS):
        k["warp_maps"](u1, u2, map_x, map_y)
        i1w = cv2.remap(i1, map_x, map_y, cv2.INTER_CUBIC)
        i1wx = cv2.remap(i1x, map_x, map_y, cv2.INTER_CUBIC)
        i1wy = cv2.remap(i1y, map_x, map_y, cv2.INTER_CUBIC)
        k["grad_rho"](i0, i1w, i1wx, i1wy, u1, u2, grad, rho_c)
        above = True
        for _ in range(OUTER_ITERATIONS):
            if not above:
                break
            u1 = cv2.medianBlur(u1, MEDIAN_SIZE)
            u2 = cv2.medianBlur(u2, MEDIAN_SIZE)
            iterate(i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms, row_sums,
                         l_t, theta, taut, eps, INNER_ITERATIONS, mode, counts)
            iterations += int(counts[0])
            above = bool(counts[1])
    if stats is not None:
        stats.iterations += iterations
        stats.serial_sums += int(counts[2])
        stats.float64_flips += int(counts[3])
        stats.per_scale.append((shape, iterations))
    return u1, u2


def tvl1_flows(gray: np.ndarray, *, threads: int | None = None, stop: str = "exact",
               on_pair: Callable[[], None] | None = None) -> np.ndarray:
    """Flow (T-1, H, W, 2) float32 between consecutive uint8 gray frames (T, H, W), each pair as
    :func:`tvl1_flow` gives it.

    Pairs are solved side by side, one per thread (default: every core
    available), each on its thread alone: no thread waits for another within a
    pair, which keeps the speed when other programs share the cores.
    ``on_pair`` is called (on this thread) as each pair completes.
    """
    n_pairs = len(gray) - 1
    threads = max(1, min(threads or available_cores(), n_pairs))
    out = np.empty((n_pairs, *gray.shape[1:], 2), np.float32)
    if threads == 1:
        for i in range(n_pairs):
            out[i] = tvl1_flow(gray[i], gray[i + 1], threads=1, stop=stop)
            if on_pair:
                on_pair()
        return out
    load_engine()
    with cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tvl1") as pool:
        futures = {pool.submit(tvl1_flow, gray[i], gray[i + 1], threads=1, stop=stop): i for i in range(n_pairs)}
        try:
            for future in cf.as_completed(futures):
                out[futures[future]] = future.result()
                if on_pair:
                    on_pair()
        except BaseException:  # Ctrl-C or a failed pair: drop the pairs not started yet
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return out


def report_compile(write=None) -> Engine:
    """Load the engine and, if that meant compiling, say so in one line (``write``, default stderr)."""
    engine = load_engine()
    note = compile_note(engine)
    if note:
        (write or (lambda text: print(text, file=sys.stderr)))(note)
        engine.compiled = False  # said once per process
    return engine
