"""Decode video files with OpenCV into RGB frames on the 25 fps grid of :mod:`i3d.inputs.clock`
(folders of images: :mod:`i3d.inputs.frame_folders`).

Decoding streams frame by frame: only the prepared frames are kept, never the full-resolution video.
Timestamps come from ``CAP_PROP_POS_MSEC``, turned into seconds since the first frame by
:class:`~i3d.inputs.clock.TimestampClock`.

Paths are checked with ``os.stat`` before anything opens them: a FIFO or a
device is refused (opening a FIFO would block), as are unreadable files. A
video path that is not valid UTF-8 reaches OpenCV through an ASCII link to the
same file, so any file name the system allows works. Frame numbers in messages
count from 1.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from typing import Iterator

import numpy as np
from tqdm import tqdm

from i3d.errors import InputError
from i3d.limits import MIN_FRAMES
from i3d.quiet import quiet_opencv
from i3d.inputs.arrays import regular_file
from i3d.inputs.clock import (
    DecodedVideo, Prepare, TimestampClock, check_read_args, collect_frames, pick_frames,
)
from i3d.inputs.frames import check_frame, to_rgb, video_frame_name

quiet_opencv()  # before OpenCV loads: its own log lines stay off stderr
import cv2  # noqa: E402

from i3d.transforms import resize_short_side  # noqa: E402

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv",
                                     ".flv", ".gif", ".3gp", ".ogv")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _check_file(path: str) -> None:
    """Refuse a missing, special, empty or unreadable video file without opening anything that could block."""
    info = regular_file(path, "a video file")
    if info.st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:  # OpenCV would only say "cannot open"; O_NONBLOCK in case it became a FIFO since the stat
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable or copy it somewhere "
                         "readable") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def _ascii_link(path: str) -> tuple[str, str | None]:
    """A name OpenCV can take for ``path``: itself when it is valid UTF-8, else a link in a private folder.

    OpenCV crashes on names that are not valid UTF-8 (surrogate-escaped bytes);
    the link (``video`` + the extension, when ASCII) points at the same file.
    Returns the name and the folder to remove, if one was made.
    """
    try:
        path.encode("utf-8")
        return path, None
    except UnicodeEncodeError:
        pass
    ext = os.path.splitext(path)[1]
    ext = ext if ext.isascii() and ext[1:].isalnum() else ""
    try:
        folder = tempfile.mkdtemp(prefix="i3d-video-")
    except OSError as err:
        raise InputError(f"{path}: the name is not valid UTF-8 and no temporary folder for a link to it could "
                         f"be made ({err.strerror or err}); rename the file") from None
    link = os.path.join(folder, "video" + ext)
    try:
        link.encode("utf-8")
        os.symlink(os.path.abspath(path), link)
    except (OSError, UnicodeEncodeError) as err:
        shutil.rmtree(folder, ignore_errors=True)
        why = err.strerror if isinstance(err, OSError) and err.strerror else "the temporary folder's name is not UTF-8"
        raise InputError(f"{path}: the name is not valid UTF-8 and no link to it could be made ({why}); "
                         "rename the file") from None
    return link, folder


_decode_threads = 0  # 0: FFmpeg's own choice (a thread per core)


def set_decode_threads(threads: int) -> None:
    """Threads FFmpeg decodes each video with in this process (0: its own choice, one per core).

    Worker processes that decode videos side by side use 1: the cores are
    already shared out among them, and one thread per video costs about 15%
    less CPU than frame threading (5.1 against 6.0 CPU s for the devset here).
    """
    global _decode_threads
    if threads < 0:
        raise ValueError(f"decode threads must be 0 or more, not {threads}")
    _decode_threads = threads


def _open_video(name: str) -> tuple[cv2.VideoCapture, float, int]:
    """Open a video file; returns the capture, its frame rate and its frame count (0 if unknown)."""
    _check_file(name)
    backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    target, folder = _ascii_link(name)
    try:
        cap = (cv2.VideoCapture(target, backend, [cv2.CAP_PROP_N_THREADS, _decode_threads]) if _decode_threads
               else cv2.VideoCapture(target, backend))
    except cv2.error as e:
        raise InputError(f"{name}: cannot open as a video ({str(e).strip().splitlines()[-1]})") from None
    finally:
        if folder is not None:  # the capture keeps its own open handle: the link is needed only to open
            shutil.rmtree(folder, ignore_errors=True)
    if not cap.isOpened():
        raise InputError(f"{name}: cannot open as a video (not a video file or unsupported codec)")
    src_fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not (math.isfinite(src_fps) and 0 < src_fps <= 1000):
        src_fps = 0.0
    return cap, src_fps, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)


def _decode(cap: cv2.VideoCapture, name: str, src_fps: float, count: int,
            bar: tqdm, strict: bool = False) -> Iterator[tuple[np.ndarray, float]]:
    """Yield (BGR frame, seconds since the first frame).

    A stream that ends well before the frame count its container lists (a damaged tail: real
    datasets hold such files) gives one warning naming the file and the frames lost, and its
    decoded frames are used; with ``strict`` it is refused at its end.
    """
    clock = TimestampClock(src_fps)
    n = 0
    while True:
        try:
            ok, frame = cap.read()
        except cv2.error:
            ok, frame = False, None
        if not ok:
            break
        frame = check_frame(frame, video_frame_name(name, n))
        t = clock(cap.get(cv2.CAP_PROP_POS_MSEC))
        n += 1
        bar.update(1)
        yield frame, t
    if n == 0:
        raise InputError(f"{name}: no frame could be decoded")
    if count > 0 and count - n > max(5, 0.05 * count):
        where = f"{n + 1} (counting from 1, about {n / src_fps:.2f} s in)"
        if strict:
            raise InputError(f"{name}: truncated or unreadable frame at {where}: only {n} of the {count} frames the "
                             "container lists decode; repair or re-encode the file, or leave out --strict to "
                             "use the frames that decode")
        warnings.warn(f"{name}: only {n} of the {count} frames the container lists decode ({count - n} lost "
                      f"from frame {where}); using those {n} (--strict refuses such files)", stacklevel=2)


def _iter_opened(cap: cv2.VideoCapture, name: str, src_fps: float, count: int, *, fps: float,
                   start: float | None, end: float | None, max_frames: int | None,
                   progress: bool, prepare: Prepare, strict: bool = False) -> Iterator[tuple[np.ndarray, float, int]]:
    """Resampled frames of an opened capture; releases it when done or abandoned."""
    try:
        with tqdm(total=count if count > 0 else None, desc=os.path.basename(name), unit="frame",
                  file=sys.stderr, disable=not progress, leave=False) as bar:
            yield from pick_frames(_decode(cap, name, src_fps, count, bar, strict), name=name, fps=fps,
                                    frame_duration=1 / src_fps, start=start, end=end,
                                    max_frames=max_frames, prepare=prepare)
    finally:
        cap.release()


def iter_video(path: str | os.PathLike, *, fps: float = 25.0, start: float | None = None,
               end: float | None = None, max_frames: int | None = None, progress: bool = False,
               prepare: Prepare = resize_short_side, strict: bool = False) -> Iterator[tuple[np.ndarray, float, int]]:
    """Stream a video as (prepared RGB frame, seconds, source index) at ``fps``.

    The streaming form of :func:`read_video` (same frames, same errors, except
    that the minimum length is the caller's to check): memory stays bounded
    however long the video is. A file that cannot be opened fails here, at once.
    """
    name = os.fspath(path)
    check_read_args(fps, start, end, max_frames, MIN_FRAMES)
    cap, src_fps, count = _open_video(name)
    return _iter_opened(cap, name, src_fps or fps, count, fps=fps, start=start, end=end,
                          max_frames=max_frames, progress=progress, prepare=prepare, strict=strict)


def source_fps(path: str | os.PathLike, default: float = 25.0) -> float:
    """A video file's frame rate as its container reports it (``default`` when it reports none).

    A folder of frames has no rate of its own: it is taken as ``default``, as
    :func:`iter_frames_dir` takes it.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        return default
    cap, fps, _ = _open_video(name)
    cap.release()
    return fps or default


def video_duration(path: str | os.PathLike) -> float | None:
    """A video file's length in seconds from its container (frames over rate), or None when it does not say."""
    cap, fps, count = _open_video(os.fspath(path))
    cap.release()
    return count / fps if fps and count > 0 else None


def read_video(path: str | os.PathLike, *, fps: float = 25.0, start: float | None = None,
               end: float | None = None, max_frames: int | None = None,
               progress: bool = False, min_frames: int = MIN_FRAMES,
               prepare: Prepare = resize_short_side, strict: bool = False) -> DecodedVideo:
    """The whole of :func:`iter_video` in memory (default: short side 256), at least ``min_frames``.

    start/end (seconds) keep grid times in [start, end); max_frames caps the
    number of output frames. Raises InputError for missing, empty, unreadable
    or truncated files and for fewer than ``min_frames`` output frames.
    """
    name = os.fspath(path)
    check_read_args(fps, start, end, max_frames, min_frames)
    cap, src_fps, count = _open_video(name)
    picked = _iter_opened(cap, name, src_fps or fps, count, fps=fps, start=start, end=end,
                            max_frames=max_frames, progress=progress, prepare=prepare, strict=strict)
    return collect_frames(picked, name, fps, src_fps or fps, bool(start or end is not None or max_frames), min_frames)


def first_frames(frames: Iterator[np.ndarray], count: int, name: str, unit: str) -> np.ndarray:
    """The first ``count`` RGB frames of ``frames``, all of one size; InputError when there are fewer."""
    taken = []
    for frame in frames:
        rgb = to_rgb(frame)
        if taken and rgb.shape != taken[0].shape:
            raise InputError(f"{name}: {unit} {len(taken) + 1} is {rgb.shape[1]}x{rgb.shape[0]} px, a different "
                             f"size from the first; every frame must have the same size")
        taken.append(rgb)
        if len(taken) == count:
            return np.stack(taken)
    raise InputError(f"{name}: has {len(taken)} frames; the first {count} are needed")


def first_video_frames(path: str | os.PathLike, count: int) -> np.ndarray:
    """A video's first ``count`` decoded frames as stored (no resampling, no resize): uint8 (count, H, W, 3) RGB."""
    name = os.fspath(path)
    cap, src_fps, frame_count = _open_video(name)
    decoded = _decode(cap, name, src_fps or 25.0, frame_count, tqdm(disable=True))
    try:
        return first_frames((frame for frame, _ in decoded), count, name, "frame")
    finally:
        decoded.close()
        cap.release()
