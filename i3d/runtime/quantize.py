"""int8 I3D: the float32 OpenVINO model quantised by NNCF's post-training quantisation, made once and cached.

Quantising needs calibration clips: by default windows of the sample clip of the
stream (``data/``, made by ``python -m i3d samples``), mirrored too; or windows of the
user's own videos (a folder), prepared exactly as the tool prepares any video. The
int8 model is cached beside the float32 IR (see :mod:`i3d.runtime.ir`) in a
folder keyed by the weights' pinned checksum, the calibration data's checksum and
the NNCF and OpenVINO versions, written and verified the same way: a corrupt or
stale folder is rebuilt, never used. Quantising takes a while, so it always says
what it is doing on stderr, never on stdout (NNCF's own lines and bars included).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import I3DError, InputError
from i3d.files import sha256_file
from i3d.interrupts import keep_interrupts
from i3d.streams import Stream
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore
from i3d.runtime.ir import Variant, float_model, ir_model, read_ir, save_ir

CALIBRATION_FORMAT = 1
"""Changes when the way calibration windows are made changes, so older int8 models are not reused."""
CALIBRATION_FRAMES = 64
"""Frames per calibration window."""
SAMPLE_STARTS = (0, 15)
"""Where the sample clip's calibration windows start (the 79-frame sample: its first and last 64 frames)."""
MAX_WINDOWS = 32
"""At most this many calibration windows from a folder of videos (spread over the videos)."""


@dataclass(frozen=True)
class Calibration:
    """What a stream's int8 model is calibrated on: the files, their checksum, and how to say it."""

    stream: Stream
    files: tuple[Path, ...]
    sha256: str
    description: str
    videos: bool  # True: videos prepared as the tool prepares them; False: the sample's model-ready .npy


def calibration_for(stream: Stream, folder: Path | None = None) -> Calibration:
    """The calibration of ``stream``: the videos in ``folder`` (and its sub-folders), or its sample clip.

    The checksum covers every file's bytes and names and the window scheme, so changing any
    of them makes a new int8 model. InputError when there is nothing to calibrate on.
    """
    if folder is None:
        from i3d.inputs import samples

        files = (samples.sample_path(stream.name, samples.DATA_DIR),)
        if not files[0].is_file():
            raise InputError(f"{files[0]}: sample clip missing (int8 is calibrated on it); run `python -m i3d "
                             "samples` first, or give a calibration folder of videos")
        description = f"{2 * len(SAMPLE_STARTS)} windows of the sample clip {files[0].name}"
        names = [files[0].name]
    else:
        from i3d.inputs.video import VIDEO_EXTENSIONS

        folder = Path(folder)
        files = tuple(sorted(path for path in folder.rglob("*") if path.name.lower().endswith(VIDEO_EXTENSIONS)
                             and not path.name.startswith(".") and path.is_file()))
        if not files:
            raise InputError(f"{folder}: holds no videos ({', '.join(VIDEO_EXTENSIONS)}) to calibrate int8 on")
        description = f"at most {MAX_WINDOWS} windows of the {len(files)} video(s) in {folder}"
        names = [path.relative_to(folder).as_posix() for path in files]
    digest = hashlib.sha256(f"format {CALIBRATION_FORMAT}, {CALIBRATION_FRAMES} frames, stream {stream.name}, "
                            f"{'videos' if folder is not None else 'sample'}\n".encode())
    for name, path in zip(names, files):
        digest.update(f"{name}\t{sha256_file(path)}\n".encode())
    return Calibration(stream, files, digest.hexdigest(), description, videos=folder is not None)


def mirrored(clip: np.ndarray, stream: Stream) -> np.ndarray:
    """``clip`` (1, T, H, W, C) mirrored left-right; a flow clip's x displacement changes sign with it."""
    flipped = clip[:, :, :, ::-1].copy()
    if stream.name == "flow":
        flipped[..., 0] *= -1
    return flipped


def _note(text: str) -> None:
    """One line on stderr, at once: what quantising is doing."""
    print(text, file=sys.stderr, flush=True)


def sample_windows(calibration: Calibration) -> list[np.ndarray]:
    """The sample clip's calibration windows: 64 frames from each of :data:`SAMPLE_STARTS`, and their mirrors."""
    from i3d.inputs.arrays import load_clip

    clip = load_clip(calibration.files[0], calibration.stream)
    windows = [np.ascontiguousarray(clip[:, start:start + CALIBRATION_FRAMES]) for start in SAMPLE_STARTS]
    return windows + [mirrored(window, calibration.stream) for window in windows]


def video_windows(calibration: Calibration) -> list[np.ndarray]:
    """Calibration windows of the videos: each prepared as any video (centre crop, 25 fps, flow by TV-L1),
    cut into 64-frame windows, at most :data:`MAX_WINDOWS` in all, spread over the videos."""
    from i3d.caches import default_cache_dir
    from i3d.preprocess.windows import VideoOptions, iter_windows

    options = VideoOptions(window=CALIBRATION_FRAMES, flow_cache=default_cache_dir() / "flow")
    per_video = max(1, -(-MAX_WINDOWS // len(calibration.files)))
    windows: list[np.ndarray] = []
    for number, path in enumerate(calibration.files, 1):
        if len(windows) >= MAX_WINDOWS:
            break
        _note(f"int8 calibration: preparing video {number}/{len(calibration.files)} ({path.name})")
        try:
            for taken, window in enumerate(iter_windows(path, (calibration.stream,), options), 1):
                windows.append(window.clips[calibration.stream.name])
                if taken >= per_video or len(windows) >= MAX_WINDOWS:
                    break
        except I3DError as err:
            _note(f"warning: int8 calibration skips {path.name}: {err}")
    if not windows:
        raise InputError(f"none of the {len(calibration.files)} calibration video(s) could be prepared")
    return windows


@contextlib.contextmanager
def _nncf_to_stderr() -> Iterator[None]:
    """NNCF's log lines and progress bars on stderr: stdout is the command's result (JSON, a table)."""
    import nncf  # noqa: F401  (sets up its logger)

    logger = logging.getLogger("nncf")
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)


def quantize(ov_model, windows: list[np.ndarray]):
    """``ov_model`` quantised to int8 by NNCF's post-training quantisation, calibrated on ``windows``."""
    import nncf

    from i3d.runtime.ov_core import ov_core

    ov_core()  # NNCF compiles with Cores of its own: the process's CPU plugin comes first and outlives theirs
    with _nncf_to_stderr(), keep_interrupts():
        return nncf.quantize(ov_model, nncf.Dataset(windows), subset_size=len(windows))


def int8_variant(calibration: Calibration) -> Variant:
    """The int8 model's cache key beside the float32 IR: calibration checksum and NNCF/OpenVINO versions."""
    import nncf
    import openvino as ov

    return Variant(tag=f"int8-cal{calibration.sha256[:12]}-nncf{nncf.__version__}",
                   fields=(("precision", "int8"), ("calibration_sha256", calibration.sha256),
                           ("calibration", calibration.description), ("nncf", nncf.__version__),
                           ("openvino", ov.get_version())))


def int8_model(ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
               calibration_dir: Path | None = None) -> tuple[object, str, str]:
    """(the set's int8 OpenVINO model, where it came from, the calibration's checksum).

    From the cache when a verified one is there; else quantised now (with notes on stderr)
    and cached, best effort. A checkpoint named in ``load`` is quantised and not cached.
    """
    calibration = calibration_for(ws.stream, calibration_dir)
    variant = int8_variant(calibration)
    found = None if load.checkpoint is not None else read_ir(ws, store, variant)
    if found is not None:
        folder, xml, weights = found
        return ir_model(xml, weights), f"OpenVINO int8 IR {folder}", calibration.sha256
    where = "not cached: a checkpoint" if load.checkpoint is not None else f"cached in {store.openvino_dir}"
    _note(f"quantising {ws.name} to int8 with NNCF (once per weight set and calibration; {where}), "
          f"calibrated on {calibration.description}")
    start = time.perf_counter()
    model, _ = float_model(ws, store, load)
    windows = video_windows(calibration) if calibration.videos else sample_windows(calibration)
    quantized = quantize(model, windows)
    _note(f"int8 {ws.name} ready in {time.perf_counter() - start:.0f} s ({len(windows)} calibration windows)")
    if load.checkpoint is None:
        save_ir(quantized, ws, store, variant)
    return quantized, "quantised now", calibration.sha256


def cached_int8(ws: WeightSet, store: WeightStore, calibration_dir: Path | None = None) -> Path | None:
    """The verified int8 folder of ``ws`` for this calibration, or None (a folder that does not verify is
    discarded)."""
    found = read_ir(ws, store, int8_variant(calibration_for(ws.stream, calibration_dir)))
    return None if found is None else found[0]
