"""A side's FVD statistics (mean, covariance, count) with the settings that made them, in a ``.npz``.

The settings name everything that changes the embeddings (frames, how clips are
taken, resize, value range, output, weights); statistics made with other settings
are refused rather than compared. The backend is recorded but not checked: it
changes embeddings only by float rounding.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import InputError
from i3d.files import atomic_path
from i3d.inputs.arrays import NPY_MAGIC, regular_file
from i3d.weights.sets import WeightSet

STATS_FORMAT = 1
STATS_KEYS = ("mean", "cov", "count", "settings", "backend")
CLIPS = "first"
"""How clips are taken: each video's first N frames (as stored, no frame-rate resampling)."""
RESIZE = "tf1-bilinear-224x224"
"""TF1 legacy bilinear (align_corners=False, half_pixel_centers=False), aspect squashed, no crop."""
VALUE_RANGE = "2x/255-1"
EMBEDDING = "logits-mean-over-time-400"
"""The TF-Hub module's default output: the 400 logits averaged over time."""


def fvd_settings(frames: int, ws: WeightSet, precision: str = "fp32") -> dict:
    """Everything that decides a video's FVD embedding, as recorded in stats and cache keys (``precision``:
    fp32 is the reference; statistics made in bf16 or int8 never mix with fp32 ones)."""
    return {"format": STATS_FORMAT, "frames": frames, "clips": CLIPS, "resize": RESIZE, "range": VALUE_RANGE,
            "embedding": EMBEDDING, "weights": ws.deepmind_name, "weights_index_sha256": ws.index_sha256,
            "precision": precision}


@dataclass(frozen=True)
class VideoStats:
    """Mean (D,) and covariance (D, D) in float64 of ``count`` videos' embeddings, and how they were made."""

    mean: np.ndarray
    cov: np.ndarray
    count: int
    settings: dict
    backend: str
    source: str = "statistics"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the statistics to ``path`` (a ``.npz``) all at once; OSError when it cannot be written."""
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, mean=self.mean, cov=self.cov, count=np.int64(self.count),
                     settings=np.str_(json.dumps(self.settings, sort_keys=True)), backend=np.str_(self.backend))
        return path


def is_stats_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.npz`` holding FVD statistics (rather than videos); never raises."""
    try:
        if not Path(path).is_file():
            return False
        with open(path, "rb") as handle:
            if handle.read(len(NPY_MAGIC)) == NPY_MAGIC:
                return False
        with zipfile.ZipFile(path) as archive:
            return {f"{key}.npy" for key in STATS_KEYS} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_stats(path: str | os.PathLike) -> VideoStats:
    """Statistics written by :meth:`VideoStats.save`; InputError when the file is not such statistics."""
    regular_file(path, "a .npz of FVD statistics")
    try:
        with zipfile.ZipFile(path) as archive:
            largest = max((info.file_size for info in archive.infolist()), default=0)
        if largest > MAX_STATS_MEMBER_BYTES:
            raise InputError(f"{path}: holds an array of {largest} bytes decompressed, more than FVD statistics "
                             f"need ({MAX_STATS_MEMBER_BYTES >> 20} MiB); give statistics i3d fvd saved")
        with np.load(path, allow_pickle=False) as archive:
            mean, cov = np.asarray(archive["mean"], np.float64), np.asarray(archive["cov"], np.float64)
            count_array = archive["count"]
            if count_array.shape != () or count_array.dtype.kind not in "iu":
                raise InputError(f"{path}: its count is a {count_array.dtype} array of shape {count_array.shape}, "
                                 "not a number of videos; give statistics i3d fvd saved")
            count = int(count_array)
            settings = json.loads(str(archive["settings"]))
            backend = str(archive["backend"])
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, RecursionError) as err:
        raise InputError(f"{path}: not readable as FVD statistics ({type(err).__name__}: {err})") from None
    dims = mean.shape[0] if mean.ndim == 1 else -1
    if dims < 1 or cov.shape != (dims, dims) or not isinstance(settings, dict):
        raise InputError(f"{path}: not FVD statistics (mean {mean.shape}, covariance {cov.shape})")
    if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        raise InputError(f"{path}: statistics hold NaN or infinite values")
    if count < 2:
        raise InputError(f"{path}: statistics of {count} video(s); a covariance needs at least 2")
    problem = covariance_problem(mean, cov)
    if problem is not None:
        raise InputError(f"{path}: {problem}; these are not statistics i3d fvd saved, make them again")
    return VideoStats(mean, cov, count, settings, backend, source=os.fspath(path))


MAX_STATS_MEMBER_BYTES = 64 << 20
"""The largest array a statistics file may hold decompressed (a 1024-d covariance is 8 MiB)."""
MAX_STATS_MAGNITUDE = 1e100
"""Larger means or covariances are refused: their squares and products would overflow float64."""


def covariance_problem(mean: np.ndarray, cov: np.ndarray) -> str | None:
    """Why (mean, cov) cannot be a set of embeddings' moments, or None: values too large to square, a
    covariance that is not symmetric or not positive semi-definite (it would give a negative distance)."""
    scale = max(float(np.abs(mean).max()), float(np.abs(cov).max()))
    if scale > MAX_STATS_MAGNITUDE:
        return f"they hold values up to {scale:.3g}, beyond any embedding's"
    if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12 * max(scale, 1.0)):
        return "its covariance is not symmetric"
    lowest, highest = np.linalg.eigvalsh(cov)[[0, -1]]
    if lowest < -1e-6 * max(float(highest), 1e-12):
        return f"its covariance is not positive semi-definite (an eigenvalue of {lowest:.3g})"
    return None


def check_compatible(stats: VideoStats, settings: dict) -> None:
    """Refuse statistics made with other settings than this run's, naming each difference (first of all another
    protocol: statistics without a protocol are the reference's, ``tfhub``)."""
    made, wanted = stats.settings.get("protocol", "tfhub"), settings.get("protocol", "tfhub")
    if made != wanted:
        raise InputError(f"{stats.source}: statistics made under protocol {made} (this run: {wanted}); protocols "
                         f"differ in resize, clips, range and counts, so make them again with --protocol {wanted}")
    keys = sorted(set(stats.settings) | set(settings))
    differ = [f"{key} {stats.settings.get(key)!r} (this run: {settings.get(key)!r})" for key in keys
              if stats.settings.get(key) != settings.get(key)]
    if differ:
        raise InputError(f"{stats.source}: statistics made with other settings: {'; '.join(differ)}; "
                         "make them again with this run's settings")
