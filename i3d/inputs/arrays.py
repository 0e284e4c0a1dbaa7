"""Load model-ready clips from arrays and .npy files and refuse anything the network would misread."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..limits import CLIP_SIZE, check_clip_shape

RANGE_TOLERANCE = 1e-3
"""How far past [-1, 1] a value may lie before the clip is refused as wrongly scaled."""

NPY_MAGIC = b"\x93NUMPY"


if TYPE_CHECKING:
    from ..streams import Stream


def validate_clip(clip: np.ndarray, stream: Stream, source: str = "clip") -> np.ndarray:
    """Check a clip array and return it as float32 (1, T, 224, 224, C).

    Accepts (1, T, 224, 224, C) or (T, 224, 224, C) real floating arrays with
    values in [-1, 1]; ``source`` names the file in error messages.
    """
    channels = stream.channels
    expected = f"(1, T, {CLIP_SIZE}, {CLIP_SIZE}, {channels}) float32 in [-1, 1] for the {stream.name} stream"
    if clip.dtype.kind != "f":
        raise InputError(f"{source}: dtype {clip.dtype}; expected {expected}")
    if clip.ndim == 4:
        clip = clip[np.newaxis]
    if clip.ndim != 5 or clip.shape[0] != 1:
        raise InputError(f"{source}: shape {clip.shape}; expected {expected}")
    _, frames, height, width, got_channels = clip.shape
    if got_channels != channels:
        raise InputError(f"{source}: {got_channels} channels; expected {expected}")
    if (height, width) != (CLIP_SIZE, CLIP_SIZE):
        raise InputError(f"{source}: frames are {height}x{width}; expected {expected}")
    try:
        check_clip_shape(frames, height, width)
    except ValueError as err:
        raise InputError(f"{source}: {err}") from None
    clip = np.ascontiguousarray(clip, dtype=np.float32)
    finite = np.isfinite(clip)
    if not finite.all():
        raise InputError(f"{source}: {int((~finite).sum())} values are NaN or infinite")
    low, high = float(clip.min()), float(clip.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise InputError(f"{source}: values span [{low:.3g}, {high:.3g}], outside [-1, 1] "
                         f"({stream.range_hint})")
    return clip


def load_clip(path: str | os.PathLike, stream: Stream) -> np.ndarray:
    """Read a .npy clip for ``stream`` and validate it; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        raise InputError(f"{path}: is an .npz archive; save the clip with numpy.save as one .npy array")
    with open(path, "rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        raise InputError(f"{path}: not a valid .npy file; save a float32 array with numpy.save")
    try:
        clip = np.load(path, allow_pickle=False)
    except ValueError as err:
        why = "holds pickled objects" if "pickle" in str(err) else f"is not a valid .npy file ({err})"
        raise InputError(f"{path}: {why}; save a float32 array with numpy.save") from None
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot be read as .npy ({err})") from None
    if not isinstance(clip, np.ndarray):
        raise InputError(f"{path}: is not a single .npy array")
    return validate_clip(clip, stream, str(path))
