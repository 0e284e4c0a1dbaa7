"""Write a clip to ``.npy`` one frame at a time, so a long video never has to fit in memory.

The file is an ordinary ``numpy.save`` array of shape ``(1, T, H, W, C)``; T
is known only at the end, so the header is written with room for any frame
count and rewritten in place (same length) when the writer closes. Frames go
to a temporary file beside the target, renamed onto it only when the array is
complete: a failed or interrupted run leaves no partial ``.npy`` behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from i3d.errors import OptionError
from i3d.files import atomic_path
from i3d.transforms import CROP_SIZE, VIEWS
from i3d.preprocess.windows import check_length, iter_clip_frames

if TYPE_CHECKING:
    from i3d.preprocess.windows import VideoOptions
    from i3d.streams import Stream

_HEADER_ROOM = 20  # digits reserved for T: any frame count fits without moving the data


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 ``.npy`` header, padded so its length does not depend on T."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    text += " " * (_HEADER_ROOM - len(str(shape[1])))
    magic = np.lib.format.magic(1, 0)
    size = len(magic) + 2 + len(text) + 1
    text += " " * (-size % 64) + "\n"  # numpy aligns the data to 64 bytes
    return magic + len(text).to_bytes(2, "little") + text.encode("latin1")


class ClipWriter:
    """Append (H, W, C) frames of one dtype; on a clean exit ``path`` holds them as (1, T, H, W, C).

    Use as a context manager. ``frames`` counts what was written so far.
    """

    def __init__(self, path: str | os.PathLike, frame_shape: tuple[int, int, int], dtype=np.float32) -> None:
        self.path = Path(path)
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._handle = None

    def __enter__(self) -> ClipWriter:
        with self._stack as stack:
            tmp = stack.enter_context(atomic_path(self.path, suffix=".npy"))
            self._handle = stack.enter_context(open(tmp, "wb"))
            self._handle.write(_header((1, 0, *self.frame_shape), self.dtype))
            self._stack = stack.pop_all()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (its shape and dtype must match the writer's)."""
        if frame.shape != self.frame_shape:
            raise ValueError(f"{self.path}: frame of shape {frame.shape}, expected {self.frame_shape}")
        self._handle.write(np.ascontiguousarray(frame, dtype=self.dtype).tobytes())
        self.frames += 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        """Finish the header and rename into place; on an error remove the temporary file instead."""
        if kind is None:
            try:
                self._handle.seek(0)
                self._handle.write(_header((1, self.frames, *self.frame_shape), self.dtype))
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except BaseException as err:
                if not self._stack.__exit__(type(err), err, err.__traceback__):
                    raise
                return False
        return bool(self._stack.__exit__(kind, error, traceback))


def save_clips(source: str | os.PathLike, streams: tuple[Stream, ...], options: VideoOptions,
               paths: dict[str, Path]) -> dict[str, tuple[int, ...]]:
    """Write the whole video's clips (what ``read_clips`` returns) to ``paths`` by stream name, streamed.

    Memory stays that of one flow chunk however long the video; disk holds
    about 0.6 MB per frame for RGB and 0.4 MB for flow. Raises InputError (and
    writes nothing) when the video is too short. Returns each file's shape.
    """
    if VIEWS[options.crop] != 1:
        raise OptionError("crop", f"{options.crop!r} makes several views per frame; preprocess writes one "
                                  "(use 'center' or 'full')")
    with contextlib.ExitStack() as stack:
        writers = {stream.name: stack.enter_context(ClipWriter(paths[stream.name],
                                                                (CROP_SIZE, CROP_SIZE, stream.channels)))
                   for stream in streams}
        frames = 0
        for frame in iter_clip_frames(source, streams, options):
            frames += 1
            for name, array in frame.items():
                writers[name].write(array)
        check_length(frames, os.fspath(source), streams, options)
        return {name: (1, writer.frames, *writer.frame_shape) for name, writer in writers.items()}
