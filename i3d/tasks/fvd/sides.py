"""One side's videos as a protocol reads them: float arrays converted by its rule, its count of videos.

uint8 sides open as :func:`~i3d.inputs.video_sets.open_video_set` opens them. A float
array (in memory, a ``.npy`` or a one-array ``.npz``) is taken only with its value range
stated and becomes the frames the protocol reads (:func:`~i3d.tasks.fvd.input_checks.float_videos`).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from i3d.errors import InputError
from i3d.inputs.arrays import NPY_MAGIC, read_npy_header
from i3d.inputs.video_sets import VideoSet, VideoSource, check_videos, open_video_set
from i3d.tasks.fvd.input_checks import check_unscaled_uint8, float_videos
from i3d.tasks.fvd.protocols import Protocol
from i3d.tasks.fvd.sampling import first_videos


def _stored_dtype(path: Path) -> np.dtype | None:
    """The dtype a .npy or one-array .npz states in its header, or None (not such a file; opened as usual)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(NPY_MAGIC)) == NPY_MAGIC:
                handle.seek(0)
                return read_npy_header(handle)[1]
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if len(names) != 1:
                return None
            with archive.open(names[0]) as member:
                return read_npy_header(member)[1]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _float_array(source: VideoSource) -> tuple[np.ndarray, str] | None:
    """(the array, its name) when ``source`` holds float videos; None otherwise."""
    if isinstance(source, np.ndarray):
        return (source, "array") if source.dtype.kind == "f" else None
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
        return None
    dtype = _stored_dtype(Path(source))
    if dtype is None or dtype.kind != "f":
        return None
    try:
        loaded = np.load(source, mmap_mode="r", allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                loaded = loaded[loaded.files[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{source}: cannot be read as an array ({err})") from None
    return loaded, os.fspath(source)


def open_side_videos(source: VideoSource, label: str, frames: int, protocol: Protocol,
                     value_range: str | None) -> VideoSet:
    """The side's videos, checked (float ones converted by ``protocol``'s rule, uint8 ones that look like an
    unscaled [0, 1] cast refused), cut to the protocol's count; warns when it has fewer."""
    floats = _float_array(source)
    if floats is not None:
        array, name = floats
        check_videos(np.broadcast_to(np.uint8(0), array.shape), name, frames)  # shape, channels, frames
        videos = VideoSet(name, array=float_videos(array, value_range, protocol.to_uint8, name))
    else:
        videos = open_video_set(source, frames)
        if videos.array is not None:
            check_unscaled_uint8(videos.array, frames, videos.source)
    wanted = protocol.videos(label)
    if wanted is not None and len(videos) < wanted and len(videos) >= 2:
        warnings.warn(f"the {label} side has {len(videos)} videos; protocol {protocol.name} uses {wanted}, and FVD "
                      f"from fewer is biased upward, so this value does not compare with its published ones",
                      stacklevel=3)
    return first_videos(videos, wanted)
