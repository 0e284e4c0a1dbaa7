"""Folders of numbered images read as videos (natural order: 2.png before 10.png).

The images are taken as already sampled at the requested fps; each is read by Python
and decoded from memory (any file name works), then prepared like a video's frames by
:mod:`i3d.inputs.video`. Messages name the image file.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Iterator

import numpy as np
from tqdm import tqdm

from i3d.errors import InputError
from i3d.limits import MIN_FRAMES
from i3d.quiet import quiet_opencv
from i3d.inputs.arrays import file_kind, regular_file, stat_input
from i3d.inputs.video import IMAGE_EXTENSIONS, first_frames, natural_key
from i3d.inputs.clock import DecodedVideo, Prepare, check_read_args, collect_frames, pick_frames
from i3d.inputs.frames import check_frame
from i3d.transforms import resize_short_side

quiet_opencv()  # before OpenCV loads: its own log lines stay off stderr
import cv2  # noqa: E402


def read_image(path: str) -> np.ndarray:
    """An image file as OpenCV's BGR array, read by Python and decoded from memory (any file name works)."""
    info = regular_file(path, "an image")
    if info.st_size == 0:
        raise InputError(f"{path}: cannot read image (file is empty)")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the image readable") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read image ({err.strerror or err})") from None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        image = None
    if image is None:
        raise InputError(f"{path}: cannot read image (not an image, damaged, or an unsupported format)")
    return image


def list_images(name: str) -> list[str]:
    """The image file names in folder ``name``, natural order; refuses a missing, unreadable or empty folder."""
    info = stat_input(name, "directory")
    if not stat.S_ISDIR(info.st_mode):
        kind = "a file" if stat.S_ISREG(info.st_mode) else file_kind(info.st_mode)
        raise InputError(f"{name}: not a directory ({kind}); give a folder of numbered images")
    try:
        entries = os.listdir(name)
    except PermissionError:
        raise InputError(f"{name}: permission denied; make the folder readable") from None
    except OSError as err:
        raise InputError(f"{name}: cannot list the folder ({err.strerror or err})") from None
    files = sorted((f for f in entries if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)),
                   key=natural_key)
    if not files:
        raise InputError(f"{name}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder")
    return files


def iter_frames_dir(directory: str | os.PathLike, *, fps: float = 25.0, start: float | None = None,
                    end: float | None = None, max_frames: int | None = None,
                    progress: bool = False,
                    prepare: Prepare = resize_short_side) -> Iterator[tuple[np.ndarray, float, int]]:
    """Stream a folder of numbered images like :func:`iter_video` (taken as already at ``fps``).

    A missing, unreadable or image-less folder fails here, at once; a bad image
    fails when it is reached, its message naming the image file.
    """
    name = os.fspath(directory)
    check_read_args(fps, start, end, max_frames, MIN_FRAMES)
    paths = [os.path.join(name, f) for f in list_images(name)]

    def source() -> Iterator[tuple[np.ndarray, float]]:
        for i, path in enumerate(tqdm(paths, desc=os.path.basename(name) or name, unit="frame",
                                      file=sys.stderr, disable=not progress, leave=False)):
            yield check_frame(read_image(path), f"{path}: image"), i / fps

    return pick_frames(source(), name=name, fps=fps, frame_duration=1 / fps, start=start, end=end,
                        max_frames=max_frames, prepare=prepare, label=paths.__getitem__)


def read_frames_dir(directory: str | os.PathLike, *, fps: float = 25.0,
                    start: float | None = None, end: float | None = None,
                    max_frames: int | None = None, progress: bool = False,
                    min_frames: int = MIN_FRAMES, prepare: Prepare = resize_short_side) -> DecodedVideo:
    """Read a folder of numbered images (natural sort: 2.png before 10.png) as a video.

    The images are taken as already sampled at ``fps`` (no resampling); each is
    resized to short side 256 and converted to RGB. start/end/max_frames as in
    read_video.
    """
    name = os.fspath(directory)
    check_read_args(fps, start, end, max_frames, min_frames)
    picked = iter_frames_dir(directory, fps=fps, start=start, end=end, max_frames=max_frames, progress=progress,
                             prepare=prepare)
    return collect_frames(picked, name, fps, fps, bool(start or end is not None or max_frames), min_frames)


def image_paths(directory: str | os.PathLike) -> list[str]:
    """The image files of a frames folder, natural order (2.png before 10.png); InputError when there are none."""
    name = os.fspath(directory)
    return [os.path.join(name, f) for f in list_images(name)]


def first_folder_frames(directory: str | os.PathLike, count: int) -> np.ndarray:
    """The first ``count`` images of a frames folder (natural order) as uint8 (count, H, W, 3) RGB."""
    images = (check_frame(read_image(path), f"{path}: image") for path in image_paths(directory)[:count])
    return first_frames(images, count, os.fspath(directory), "image")
