"""Decode videos into RGB frames resampled to 25 fps (folders of images: :mod:`i3d.inputs.frame_folders`).

DeepMind's Kinetics pipeline (Carreira & Zisserman 2017) starts by resampling
every video to 25 fps; the resizes and crops that follow live in
:mod:`i3d.transforms` and reach the decoder as a ``prepare``
callable, applied once to each source frame that is picked.

Resampling is by timestamp: output frame k sits at time k/fps on a global grid
and shows the latest source frame whose timestamp is <= k/fps (+1 ms). A 50 fps
source therefore keeps every second frame, 30 fps drops one frame in six and
24 fps repeats one in 25. Timestamps come from ``CAP_PROP_POS_MSEC`` relative
to the first frame; a missing or non-increasing one is replaced by the previous
timestamp + 1/source_fps, so a stream without usable timestamps falls back to
index/source_fps. Decoding streams frame by frame: only the prepared frames are
kept, never the full-resolution video.

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
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from i3d.errors import InputError, OptionError
from i3d.limits import MIN_FRAMES
from i3d.quiet import quiet_opencv
from i3d.inputs.arrays import regular_file

quiet_opencv()  # before OpenCV loads: its own log lines stay off stderr
import cv2  # noqa: E402

from i3d.transforms import resize_short_side  # noqa: E402

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv",
                                     ".flv", ".gif", ".3gp", ".ogv")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_EPS = 1e-3  # seconds: a source frame this close after a grid time still counts as "at" it
_GRID_TOL = 1e-6  # tolerance when turning start/end seconds into grid indices


@dataclass
class DecodedVideo:
    """Frames resampled to ``fps`` (and prepared: resized to short side 256 by default).

    frames: uint8 (T, H, W, 3) RGB; timestamps: seconds of each output frame
    (grid times k/fps from the first source frame); source_indices: which
    decoded source frame each output frame shows; source_fps as reported by
    the container (or the folder's assumed rate).
    """

    frames: np.ndarray
    fps: float
    timestamps: np.ndarray
    source_fps: float
    path: str
    source_indices: np.ndarray


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV BGR / BGRA / gray image -> RGB (3 channels)."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _video_frame(name: str, index: int) -> str:
    """How messages name a video's frame: ``clip.mp4: frame 3 (counting from 1)`` for index 2."""
    return f"{name}: frame {index + 1} (counting from 1)"


def check_frame(frame: np.ndarray | None, what: str) -> np.ndarray:
    """Refuse an empty, tiny or non-8-bit frame; ``what`` names it (a video's frame, an image file)."""
    if frame is None or frame.size == 0 or frame.ndim not in (2, 3):
        raise InputError(f"{what} is empty")
    h, w = frame.shape[:2]
    if h < 2 or w < 2:
        raise InputError(f"{what} is {w}x{h} px; frames must be at least 2x2")
    if frame.dtype != np.uint8:
        raise InputError(f"{what} has pixel type {frame.dtype}, expected 8-bit")
    return frame


MAX_FPS = 1000.0
"""The highest frame rate asked for (no camera films faster for action recognition)."""
MAX_SECONDS = 1e9
"""The latest start or end (31 years): beyond it, times times the frame rate stop being exact numbers."""
MAX_FRAMES = 1 << 40


def check_range(fps: float, start: float | None, end: float | None, max_frames: int | None) -> None:
    """Refuse a frame rate, time range or frame cap no video could satisfy, or one so large that frame
    numbers computed from it would overflow."""
    if not (0 < fps <= MAX_FPS):
        raise OptionError("fps", f"must be positive and at most {MAX_FPS:g}, not {fps}")
    if start is not None and not (0 <= start <= MAX_SECONDS):
        raise OptionError("start", f"must be between 0 and {MAX_SECONDS:g} seconds, not {start}")
    if end is not None and not math.isfinite(end):
        raise OptionError("end", f"must be a finite number of seconds, not {end}")
    if end is not None and not end <= MAX_SECONDS:
        raise OptionError("end", f"must be at most {MAX_SECONDS:g} seconds, not {end}")
    if end is not None and not end > (start or 0.0):
        raise OptionError("end", f"({end} s) must be after start ({start or 0.0} s)")
    if max_frames is not None and not 1 <= max_frames <= MAX_FRAMES:
        raise OptionError("max_frames", f"must be between 1 and {MAX_FRAMES}, not {max_frames}")


def check_read_args(fps: float, start: float | None, end: float | None, max_frames: int | None,
                min_frames: int) -> None:
    check_range(fps, start, end, max_frames)
    if min_frames < 1:
        raise OptionError("min_frames", f"must be >= 1, not {min_frames}")


Prepare = Callable[[np.ndarray], np.ndarray]


def pick_frames(source: Iterable[tuple[np.ndarray, float]], *, name: str, fps: float,
                 frame_duration: float, start: float | None, end: float | None,
                 max_frames: int | None, prepare: Prepare = resize_short_side,
                 label: Callable[[int], str] | None = None) -> Iterator[tuple[np.ndarray, float, int]]:
    """Yield (prepared RGB frame, grid time, source index) per grid time k/fps in [start, end).

    Each grid time takes the latest source frame at or before it. ``source``
    yields (raw frame, seconds since the first frame) with increasing times. A
    frame is converted and prepared only if it is picked, and once even if picked
    repeatedly. Stops reading as soon as the range or max_frames is full, and
    holds one raw frame at a time, so memory does not grow with the video.
    ``label`` names source frame i in messages (default: the video's frame i + 1).
    """
    label = label or (lambda i: _video_frame(name, i))
    k = math.ceil(start * fps - _GRID_TOL) if start else 0
    k_end = math.ceil(end * fps - _GRID_TOL) if end is not None else math.inf
    limit = max_frames if max_frames is not None else math.inf
    first_shape: tuple[int, ...] | None = None
    emitted = 0

    def emit(frame: np.ndarray, index: int, until: float) -> Iterator[tuple[np.ndarray, float, int]]:
        """Give ``frame`` every grid time before ``until``."""
        nonlocal k, first_shape, emitted
        small = None
        while k < k_end and emitted < limit and k / fps + _EPS < until:
            if small is None:
                small = prepare(to_rgb(frame))
                first_shape = first_shape or small.shape
                if small.shape != first_shape:
                    raise InputError(f"{label(index)} is {frame.shape[1]}x{frame.shape[0]} px, a different"
                                     f" shape from the first frame; every frame must have the same size")
            yield small, k / fps, index
            emitted += 1
            k += 1

    def full() -> bool:
        return k >= k_end or emitted >= limit

    prev: np.ndarray | None = None
    prev_t = 0.0
    index = -1
    for index, (frame, t) in enumerate(source):
        if prev is not None:
            yield from emit(prev, index - 1, t)
            if full():
                return
        prev, prev_t = frame, t
    if prev is not None:
        yield from emit(prev, index, prev_t + frame_duration)


def collect_frames(picked: Iterable[tuple[np.ndarray, float, int]], name: str, fps: float, source_fps: float,
             cropped: bool, min_frames: int) -> DecodedVideo:
    """Gather streamed frames into a DecodedVideo, refusing too few."""
    picked = list(picked)
    check_frame_count(len(picked), name, fps, cropped, min_frames)
    frames, times, indices = zip(*picked)
    return DecodedVideo(np.stack(frames), float(fps), np.asarray(times, np.float64), source_fps, name,
                        np.asarray(indices, np.int64))


def check_frame_count(count: int, name: str, fps: float, cropped: bool, min_frames: int = MIN_FRAMES) -> None:
    """Refuse a video with fewer than ``min_frames`` frames after resampling."""
    if count < min_frames:
        where = " in the requested range" if cropped else ""
        raise InputError(f"{name}: video has {count} frames at {fps:g} fps{where}; "
                         f"I3D needs at least {min_frames}")


class TimestampClock:
    """Turns per-frame CAP_PROP_POS_MSEC readings into seconds since the first frame.

    A missing (NaN, negative) or non-increasing reading becomes the previous
    time + 1/source_fps, so a stream without usable timestamps gets index/source_fps.
    Subtracting the first reading also absorbs a constant offset (some AVI
    demuxers report the next frame's position).
    """

    def __init__(self, source_fps: float) -> None:
        self.step = 1.0 / source_fps
        self.t0: float | None = None
        self.prev = -math.inf

    def __call__(self, ms: float) -> float:
        ok = math.isfinite(ms) and ms >= 0
        if self.t0 is None:
            self.t0 = ms / 1000 if ok else 0.0
        t = ms / 1000 - self.t0 if ok else math.nan
        if not t > self.prev:
            t = self.prev + self.step if self.prev > -math.inf else 0.0
        self.prev = t
        return t


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
        frame = check_frame(frame, _video_frame(name, n))
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
