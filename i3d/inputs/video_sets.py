"""One side of an FVD comparison as a set of videos: a folder, or an array of uint8 videos.

A folder holds video files (:data:`~i3d.inputs.datasets.VIDEO_EXTENSIONS`) and/or
frame folders (numbered images), taken in natural name order; hidden entries and
other files are passed over. An array is uint8 ``(N, T, H, W, 3)`` RGB, given in
memory or as a ``.npy`` file (memory-mapped, never unpickled) or a ``.npz`` holding
that one array. Videos are read as stored: a video file's first decoded frames
(no frame-rate resampling), a frame folder's first images, an array's first frames.
Each video may have its own size; every frame of one video has the same size.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import InputError
from i3d.files import sha256_file
from i3d.inputs.arrays import NPY_MAGIC, physical_memory, read_npy_header, regular_file, stat_input

VideoSource = str | os.PathLike | np.ndarray
"""A folder of videos or frame folders, a ``.npy``/``.npz`` file of uint8 videos, or such an array."""

ARRAY_SHAPE = "uint8 (N, T, H, W, 3) RGB videos"


@dataclass(frozen=True)
class VideoSet:
    """The videos of one side, readable one at a time; ``source`` names the side in messages."""

    source: str
    paths: tuple[str, ...] = ()  # a folder's videos and frame folders
    array: np.ndarray | None = None  # or an array of videos

    def __len__(self) -> int:
        return len(self.paths) if self.array is None else len(self.array)

    def frames(self, index: int, count: int) -> np.ndarray:
        """The first ``count`` frames of video ``index``, uint8 (count, H, W, 3) RGB."""
        from i3d.inputs.frame_folders import first_folder_frames
        from i3d.inputs.video import first_video_frames

        if self.array is not None:
            return np.ascontiguousarray(self.array[index, :count])
        path = self.paths[index]
        return first_folder_frames(path, count) if os.path.isdir(path) else first_video_frames(path, count)

    def content_sha256(self, index: int, count: int) -> str:
        """sha256 naming what video ``index`` gives for ``count`` frames, read without decoding it.

        A video file: the file's bytes. A frame folder: its first ``count`` images' bytes
        (fewer images give a hash all the same; reading them then fails). An array: the
        shape and bytes of the first ``count`` frames.
        """
        if self.array is not None:
            clip = np.ascontiguousarray(self.array[index, :count])
            digest = hashlib.sha256(f"array {clip.shape}\n".encode())
            digest.update(memoryview(clip).cast("B"))
            return digest.hexdigest()
        path = self.paths[index]
        if not os.path.isdir(path):
            try:
                return sha256_file(path)
            except OSError as err:
                raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
        from i3d.inputs.frame_folders import image_paths

        digest = hashlib.sha256(b"frames\n")
        for image in image_paths(path)[:count]:
            try:
                digest.update(f"{sha256_file(image)}\n".encode())
            except OSError as err:
                raise InputError(f"{image}: cannot read ({err.strerror or err})") from None
        return digest.hexdigest()


def open_video_set(source: VideoSource, frames: int) -> VideoSet:
    """The side's videos, checked as far as can be without decoding: at least one, arrays of the right kind."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        info = stat_input(path)
        if stat.S_ISDIR(info.st_mode):
            return _folder(path)
        return _array_file(path, frames)
    return VideoSet("array", array=check_videos(source, "array", frames))


def check_videos(videos, name: str, frames: int) -> np.ndarray:
    """``videos`` as an ndarray of uint8 (N, T, H, W, 3) with N >= 1 and T >= ``frames``; InputError if not."""
    try:
        videos = np.asarray(videos) if not isinstance(videos, np.ndarray) else videos
    except ValueError:  # a ragged list
        raise InputError(f"{name}: videos of mixed shapes; give one {ARRAY_SHAPE} array") from None
    if videos.dtype == object:
        raise InputError(f"{name}: holds Python objects (videos of mixed shapes?); give one {ARRAY_SHAPE} array")
    if videos.ndim != 5:
        raise InputError(f"{name}: shape {videos.shape}; give {ARRAY_SHAPE}")
    if videos.shape[-1] != 3:
        raise InputError(f"{name}: {videos.shape[-1]} channels (shape {videos.shape}); give {ARRAY_SHAPE}")
    if videos.dtype != np.uint8:
        hint = " (scale floats in [0, 1] by 255 and round)" if videos.dtype.kind == "f" else ""
        raise InputError(f"{name}: dtype {videos.dtype}; give {ARRAY_SHAPE} with values 0-255{hint}")
    count, length, height, width = videos.shape[:4]
    if count == 0:
        raise InputError(f"{name}: holds no videos")
    if min(height, width) < 1:
        raise InputError(f"{name}: frames are {width}x{height} px")
    if length < frames:
        raise InputError(f"{name}: videos have {length} frames; the first {frames} of each are needed")
    return videos


def _folder(path: Path) -> VideoSet:
    from i3d.inputs.video import VIDEO_EXTENSIONS
    from i3d.inputs.video import IMAGE_EXTENSIONS, natural_key

    try:
        entries = sorted(os.scandir(path), key=lambda e: natural_key(e.name))
    except OSError as err:
        raise InputError(f"{path}: cannot list the folder ({err.strerror or err})") from None
    videos, images = [], 0
    for entry in entries:
        if entry.name.startswith("."):
            continue
        lower = entry.name.lower()
        if entry.is_dir():
            videos.append(entry.path)
        elif lower.endswith(VIDEO_EXTENSIONS):
            videos.append(entry.path)
        elif lower.endswith(IMAGE_EXTENSIONS):
            images += 1
    if not videos:
        what = ("images, not videos (one video as frames? put each video's frames in a folder of its own)"
                if images else f"no videos ({', '.join(VIDEO_EXTENSIONS)}) and no frame folders")
        raise InputError(f"{path}: holds {what}")
    return VideoSet(str(path), paths=tuple(videos))


def _check_array_size(path: Path, handle, size: int, in_memory: bool) -> None:
    """Refuse, from its .npy header alone, an array whose stated size is not what the file (or the .npz
    member, ``size`` bytes uncompressed) holds, or one that would be decompressed into more memory than
    half of this machine's."""
    shape, dtype = read_npy_header(handle)
    if dtype.hasobject:
        raise InputError(f"{path}: holds Python objects (videos of mixed shapes?); give one {ARRAY_SHAPE} array")
    needed = math.prod(shape) * dtype.itemsize
    if needed != size - handle.tell():
        raise InputError(f"{path}: its header says shape {shape} {dtype} ({needed} bytes) but it holds "
                         f"{size - handle.tell()} bytes of data; save the videos again")
    memory = physical_memory()
    if in_memory and memory is not None and needed > memory // 2:
        raise InputError(f"{path}: its array is {needed / 1e9:.1f} GB decompressed (shape {shape}), more than half "
                         "this machine's memory; save it with numpy.save as a .npy (read as needed, not whole)")


def _array_file(path: Path, frames: int) -> VideoSet:
    """Videos from a .npy (memory-mapped) or a .npz holding one array."""
    regular_file(path, "a folder of videos or a .npy/.npz file of videos")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(NPY_MAGIC))
            handle.seek(0)
            is_zip = zipfile.is_zipfile(handle)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        if head == NPY_MAGIC:
            with open(path, "rb") as handle:
                _check_array_size(path, handle, os.fstat(handle.fileno()).st_size, in_memory=False)
            videos = np.load(path, mmap_mode="r", allow_pickle=False)
        elif is_zip:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if len(names) != 1:
                    shown = ", ".join(name.removesuffix(".npy") for name in names) or "(none)"
                    raise InputError(f"{path}: holds arrays {shown}; give a .npz of one "
                                     f"{ARRAY_SHAPE} array, or FVD statistics")
                with archive.open(names[0]) as member:  # the header is read, not the data
                    _check_array_size(path, member, archive.getinfo(names[0]).file_size, in_memory=True)
            with np.load(path, allow_pickle=False) as arrays:
                videos = arrays[arrays.files[0]]
        else:
            raise InputError(f"{path}: neither a folder, a .npy nor a .npz file; give {ARRAY_SHAPE} or a folder "
                             "of videos")
    except InputError:
        raise
    except ValueError as err:
        why = ("holds Python objects (videos of mixed shapes?)" if "pickle" in str(err)
               else f"cannot be read as an array ({err})")
        raise InputError(f"{path}: {why}; give one {ARRAY_SHAPE} array") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: cannot be read as an array ({err})") from None
    return VideoSet(str(path), array=check_videos(videos, str(path), frames))
