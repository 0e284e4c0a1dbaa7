"""Load model-ready clips from arrays and .npy files and refuse anything the network would misread."""

from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from i3d.errors import InputError
from i3d.limits import CLIP_SIZE, check_clip_shape

RANGE_TOLERANCE = 1e-3
"""How far past [-1, 1] a value may lie before the clip is refused as wrongly scaled."""

NPY_MAGIC = b"\x93NUMPY"


if TYPE_CHECKING:
    from i3d.streams import Stream


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, in words ("a FIFO", "a socket"...)."""
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return "a special file"


def stat_input(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """``os.stat(path)`` (links followed) with its failures as one-line InputErrors.

    Opens nothing, so it is safe on a FIFO or a device; ``what`` ("file",
    "directory") completes "no such ...".
    """
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{os.fspath(path)}: no such {what}") from None
    except PermissionError:
        raise InputError(f"{os.fspath(path)}: permission denied (a folder on the way is not searchable); "
                         "fix the permissions or copy it somewhere readable") from None
    except ValueError:  # a NUL character in the name
        raise InputError(f"{os.fspath(path)!r}: no such {what} (the name holds a NUL character)") from None
    except OSError as err:
        raise InputError(f"{os.fspath(path)}: cannot access ({err.strerror or err})") from None


def regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """:func:`stat_input`, refusing a folder or a special file (a FIFO, a device: never opened) where ``what``
    (say "a video file") belongs."""
    info = stat_input(path)
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{os.fspath(path)}: is a directory, not {what}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{os.fspath(path)}: not a regular file ({file_kind(info.st_mode)}); give {what}")
    return info


def _expected(stream: Stream) -> str:
    return f"(1, T, {CLIP_SIZE}, {CLIP_SIZE}, {stream.channels}) float32 in [-1, 1] for the {stream.name} stream"


def _size_text(size: int) -> str:
    """A byte count for people: ``602 GB``, ``3.1 MB``, ``64 bytes``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def validate_clip(clip: np.ndarray, stream: Stream, source: str = "clip", views: int = 1,
                  values_known: bool = False) -> np.ndarray:
    """Check a clip array and return it as float32 (1, T, 224, 224, C).

    Accepts (1, T, 224, 224, C) or (T, 224, 224, C) real floating arrays with
    values in [-1, 1]; ``source`` names the file in error messages. ``views``
    > 1 takes (views, T, 224, 224, C): several crops of the same frames.
    ``values_known`` skips reading the values, for clips in [-1, 1] by
    construction (uint8 pixels through the scaling table); the shape is checked.
    """
    channels = stream.channels
    expected = _expected(stream)
    if clip.dtype.kind != "f":
        raise InputError(f"{source}: dtype {clip.dtype}; expected {expected}")
    if clip.ndim == 4 and views == 1:
        clip = clip[np.newaxis]
    if clip.ndim != 5 or clip.shape[0] != views:
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
    if values_known:
        return clip
    low, high = float(clip.min()), float(clip.max())  # NaN anywhere makes both NaN; two passes, no mask
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"{source}: {int(clip.size - np.isfinite(clip).sum())} values are NaN or infinite")
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise InputError(f"{source}: values span [{low:.3g}, {high:.3g}], outside [-1, 1] "
                         f"({stream.range_hint})")
    return clip


def load_clip(path: str | os.PathLike, stream: Stream) -> np.ndarray:
    """Read a .npy clip for ``stream`` and validate it; never unpickles.

    The header is checked before any data is read: only floating dtypes, and a
    shape whose size matches the bytes in the file and fits in this machine's
    memory (so a forged or truncated header cannot trigger a giant allocation).
    Special files (FIFOs, devices) are refused without being opened.
    """
    path = Path(path)
    info = regular_file(path, "a .npy file saved with numpy.save")
    if info.st_size == 0:
        raise InputError(f"{path}: file is empty; save a float32 array with numpy.save")
    try:
        handle = open(path, "rb")
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable or copy it somewhere readable") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    with handle:
        try:
            if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
                handle.seek(0)
                if zipfile.is_zipfile(handle):
                    raise InputError(f"{path}: is an .npz archive; save the clip with numpy.save as one .npy array")
                raise InputError(f"{path}: not a valid .npy file; save a float32 array with numpy.save")
            handle.seek(0)
            _check_header(handle, path, info.st_size, stream)
            handle.seek(0)
            clip = np.load(handle, allow_pickle=False)
        except InputError:
            raise
        except ValueError as err:
            why = "holds pickled objects" if "pickle" in str(err) else f"is not a valid .npy file ({err})"
            raise InputError(f"{path}: {why}; save a float32 array with numpy.save") from None
        except (OSError, EOFError) as err:
            raise InputError(f"{path}: cannot be read as .npy ({err})") from None
        except MemoryError:
            raise InputError(f"{path}: the clip ({_size_text(info.st_size)}) does not fit in free memory; "
                             "use a shorter clip (fewer frames)") from None
    if not isinstance(clip, np.ndarray):
        raise InputError(f"{path}: is not a single .npy array")
    return validate_clip(clip, stream, str(path))


def read_npy_header(handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header at ``handle``'s position, which is left at the data; ValueError for
    a header numpy cannot read or one that states a negative dimension."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only in a UTF-8 header; a clip's header is ASCII
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported format version {version[0]}.{version[1]}")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"the header states shape {shape}")
    return shape, dtype


def _check_header(handle: BinaryIO, path: Path, file_size: int, stream: Stream) -> None:
    """Refuse, from the .npy header alone, a clip whose data cannot be a float array of the stated size."""
    shape, dtype = read_npy_header(handle)
    if dtype.hasobject:
        raise InputError(f"{path}: holds pickled objects; save a float32 array with numpy.save")
    if dtype.kind != "f":
        raise InputError(f"{path}: dtype {dtype}; expected {_expected(stream)}")
    needed = math.prod(shape) * dtype.itemsize
    held = file_size - handle.tell()
    if needed != held:
        raise InputError(f"{path}: header says shape {shape} {dtype} ({_size_text(needed)}) but the file holds "
                         f"{held} bytes of data: truncated or not a numpy.save file; save the clip again")
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise InputError(f"{path}: the clip is {_size_text(needed)} (shape {shape} {dtype}), more than this "
                         f"machine's {_size_text(memory)} of memory; use a shorter clip (fewer frames)")
