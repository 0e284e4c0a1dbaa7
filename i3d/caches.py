"""Checksummed float32 arrays on disk: the entries of the tool's caches (flow chunks, FVD embeddings).

An entry is ``<sha256 key>.npy``: a plain ``.npy`` file followed by a trailer, a
magic line naming the cache and the SHA-256 of every byte before it. Before any
data is read the reader checks that the entry is a regular file (opened with
``O_NONBLOCK``, so a FIFO never blocks), then its header's shape and dtype, its
size and the checksum; an entry that fails is removed with one warning line and
computed again. Writes are atomic. A cache is best effort: a failure to read or
write it costs one warning line, never the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from i3d.files import STALE_AFTER_S, atomic_path, reason, remove_older_than

CACHE_DIR_ENV = "I3D_CACHE_DIR"
_TEMP_NAME = re.compile(r"\.[0-9a-f]{64}\.npy\.[A-Za-z0-9_]+\.tmp\.npy")  # atomic_path's temporary names
_swept: dict[str, float] = {}  # cache folder -> time.monotonic() of its last sweep for stale temporaries


def default_cache_dir() -> Path:
    """The cache folder: ``$I3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/i3d``, else ``~/.cache/i3d``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "i3d"


class _Corrupt(Exception):
    """An entry that was read but is not a valid entry; the message says why."""


def entry_key(payload: dict) -> str:
    """Hex sha256 naming an entry: ``payload`` (content hash, settings, format) as canonical JSON, so key
    order does not matter."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_exact(f, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``f``; returns the bytes read (fewer only at end of file)."""
    done = 0
    while done < len(buffer):
        n = f.readinto(buffer[done:])
        if not n:
            break
        done += n
    return done


def _read_entry(f, size: int, shape: tuple[int, ...], trailer: bytes,
                check: Callable[[np.ndarray], str | None] | None) -> np.ndarray:
    """An open entry's array; raises _Corrupt, before reading any data if the header or size are wrong."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            stored_shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            stored_shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _Corrupt(f"unsupported .npy version {version}")
    except (_Corrupt, OSError):
        raise
    except Exception as e:  # whatever numpy makes of a damaged header
        raise _Corrupt(f"unreadable .npy header ({reason(e)})") from None
    if tuple(stored_shape) != shape or dtype != np.dtype(np.float32) or fortran:
        raise _Corrupt(f"header says {dtype} {tuple(stored_shape)}{' in Fortran order' if fortran else ''}, "
                       f"expected float32 {shape}")
    offset = f.tell()
    expected_size = offset + int(np.prod(shape)) * 4 + len(trailer) + 32
    if size != expected_size:
        raise _Corrupt(f"{size} bytes where its header implies {expected_size}")
    f.seek(0)
    head = f.read(offset)
    arr = np.empty(shape, np.float32)
    data = memoryview(arr).cast("B")
    if len(head) != offset or _read_exact(f, data) != len(data):
        raise _Corrupt("shorter than its header says")
    digest = hashlib.sha256(head)
    digest.update(data)
    if f.read(len(trailer) + 33) != trailer + digest.digest():
        raise _Corrupt("checksum mismatch")
    problem = check(arr) if check is not None else None
    if problem:
        raise _Corrupt(problem)
    return arr


def _drop_entry(path: str, problem: str) -> bool:
    """Remove an unusable entry with one warning line; returns whether a fresh one may be stored there."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        warnings.warn(f"{path}: {problem}, and it cannot be removed ({reason(e)}); computing without the cache")
        return False
    warnings.warn(f"{path}: {problem}; removed it, recomputing")
    return True


def load_entry(path: str, shape: tuple[int, ...], what: str, trailer: bytes,
               check: Callable[[np.ndarray], str | None] | None = None) -> tuple[np.ndarray | None, bool]:
    """(the entry's float32 array of ``shape``, or None; whether a fresh result may be stored at ``path``).

    ``what`` names the cache in warnings ("flow cache"); ``trailer`` is its magic
    line; ``check`` returns what is wrong with a read array, or None. Never raises for
    a bad or unreadable entry: a corrupt one is removed and a special file (FIFO,
    device, folder) is never opened; each costs one warning line.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None, _drop_entry(path, f"{what} entry is not a regular file")
        # O_NONBLOCK: a FIFO swapped in since the stat cannot block the open; fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, True
    except OSError as e:
        warnings.warn(f"{path}: cannot read {what} entry ({reason(e)}); computing without the cache")
        return None, False
    try:
        with open(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Corrupt("not a regular file")
            return _read_entry(f, info.st_size, shape, trailer, check), False
    except _Corrupt as e:
        return None, _drop_entry(path, f"corrupt {what} entry ({e})")
    except OSError as e:
        warnings.warn(f"{path}: cannot read {what} entry ({reason(e)}); computing without the cache")
        return None, False


class _HashingWriter:
    """A binary file wrapper that feeds every byte written through it to a SHA-256."""

    def __init__(self, f) -> None:
        self.f = f
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.f.write(data)


def save_entry(path: str, arr: np.ndarray, what: str, trailer: bytes) -> None:
    """Write an entry atomically (never a half-written one); a failure costs one warning line, not the run."""
    try:
        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as f:
                hashing = _HashingWriter(f)
                np.save(hashing, np.ascontiguousarray(arr, np.float32), allow_pickle=False)
                f.write(trailer + hashing.sha256.digest())
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:  # one line per folder and reason: Python's default filter shows it once
        warnings.warn(f"{os.path.dirname(path)}: cannot write to the {what} ({reason(e)}); continuing without it")


def sweep_stale_temporaries(folder: str) -> None:
    """Remove the temporary files killed runs left in ``folder`` over an hour ago; best effort, hourly at most."""
    now = time.monotonic()
    if folder in _swept and now - _swept[folder] < STALE_AFTER_S:
        return
    _swept[folder] = now
    try:
        with os.scandir(folder) as entries:
            temporaries = [Path(entry.path) for entry in entries
                           if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:
        return
    remove_older_than(temporaries, STALE_AFTER_S)


class EntryCache:
    """One cache folder of entries named by their key: what the flow cache and the FVD embedding cache are.

    ``what`` names the cache in warnings, ``trailer`` is its magic line and ``check`` says what is
    wrong with a read array (or None). An entry that could not be read and cannot be removed is
    not written again by this object (the reader already had its one warning line).
    """

    def __init__(self, folder: str | os.PathLike, what: str, trailer: bytes,
                 check: Callable[[np.ndarray], str | None] | None = None) -> None:
        self.folder = Path(folder)
        self.what, self.trailer, self.check = what, trailer, check
        self._not_writable: set[str] = set()
        sweep_stale_temporaries(os.fspath(self.folder))  # left by killed runs

    def path(self, key: str) -> str:
        return os.path.join(self.folder, f"{key}.npy")

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The entry's float32 array of ``shape``, or None (absent, unreadable, or corrupt: removed)."""
        array, may_store = load_entry(self.path(key), shape, self.what, self.trailer, self.check)
        if array is None and not may_store:
            self._not_writable.add(key)
        return array

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` under ``key`` atomically; a failure is one warning line."""
        if key not in self._not_writable:
            save_entry(self.path(key), array, self.what, self.trailer)
