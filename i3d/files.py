"""Small file helpers: sha256 and git blob ids, all-or-nothing writes, output checks, best-effort cache upkeep."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from i3d.errors import InputError, OptionError

STALE_AFTER_S = 3600.0
"""A cache's temporary file or folder older than this (mtime) is a left-over of a killed run."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files need little memory."""
    return _digest_file(hashlib.sha256(), path, chunk_size)


def git_blob_id(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The id ``git hash-object`` gives a file: hex SHA-1 of ``blob <size>\\0`` and its bytes.

    Published repositories list their files by this id, so a file can be matched to one.
    """
    return _digest_file(hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode()), path, chunk_size)


def _digest_file(digest, path: str | os.PathLike, chunk_size: int) -> str:
    """Feed the file to ``digest`` in chunks (little memory for large files); its hex digest."""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def usual_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what an ordinary ``open``/``mkdir`` would have made."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    A failure or interrupt inside the block removes the temporary file, so
    readers never see a half-written ``target``. ``suffix`` keeps extensions
    that writers insist on (Keras wants ``.weights.h5``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, usual_mode())  # mkstemp makes 0600; the result should be an ordinary file
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_output_file(path: str | os.PathLike, option: str, suffixes: tuple[str, ...]) -> Path:
    """Refuse an output file no run could write, before any work is done (OptionError naming ``option``).

    The name must end in one of ``suffixes`` (lower case, with the dot; any
    case is accepted), must not be a folder, and its nearest existing folder
    must be a writable folder (the missing ones are made when the file is written).
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        kinds = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
        raise OptionError(option, f"{path}: unknown file type {path.suffix or '(none)'!r}; use {kinds}")
    if path.is_dir():
        raise OptionError(option, f"{path} is a folder; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OptionError(option, f"{path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OptionError(option, f"{path}: the folder {parent} is not writable; choose another")
    return path


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()  # links followed
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def refuse_output_over_input(outputs: Mapping[str, str | os.PathLike | None],
                             inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse, before any work, an output that would replace or change an input (OptionError, exit 2).

    ``outputs`` maps each output's option (``annotate``, ``save_stats``...) to its path;
    ``None`` entries are skipped on both sides. An output is refused when it is an input
    (compared resolved, symbolic links followed, hard links by inode), when it lies inside
    an input folder (a plot written among the frames it was made from), or when an input
    lies inside an output folder that the run fills.
    """
    sources = [Path(path) for path in inputs if path is not None]
    resolved_sources = [(source, source.resolve(), _identity(source)) for source in sources]
    for option, path in outputs.items():
        if path is None:
            continue
        target = Path(path)
        resolved = target.resolve()
        identity = _identity(target)
        for source, resolved_source, source_identity in resolved_sources:
            same = resolved == resolved_source or (identity is not None and identity == source_identity)
            if same:
                raise OptionError(option, f"{target} is also an input ({source}); writing it would destroy "
                                          "the input: choose another name")
            if resolved_source.is_dir() and _inside(resolved, resolved_source):
                raise OptionError(option, f"{target} is inside the input folder {source}; writing it would change "
                                          "the input: choose a name outside it")
            if resolved.is_dir() and _inside(resolved_source, resolved):
                raise OptionError(option, f"{target} holds the input {source}; choose an output folder apart "
                                          "from the inputs")


def reason(err: BaseException, limit: int = 200) -> str:
    """A short one-line reason for ``err``: the OS's words for an OSError with an errno, else the message's
    first line (HDF5 and OpenVINO messages run over several lines)."""
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    lines = [" ".join(line.split()) for line in str(err).splitlines()]
    text = next((line for line in lines if line), "") or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def warn_not_written(what: str, err: BaseException) -> None:
    """The one stderr line for a best-effort cache that could not be written."""
    print(f"warning: could not write {what} ({reason(err)}); continuing without it", file=sys.stderr)


def remove_older_than(paths: Iterable[Path], seconds: float) -> list[Path]:
    """Remove each file or folder of ``paths`` last modified more than ``seconds`` ago; best effort.

    For temporaries left by killed runs: anything that cannot be examined or removed is left
    alone, never an error. Symbolic links are removed themselves, never followed. Returns
    what was removed.
    """
    cutoff = time.time() - seconds
    removed = []
    for path in paths:
        try:
            info = path.lstat()
            if info.st_mtime >= cutoff:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)  # removes what it can
                if os.path.lexists(path):
                    continue
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def read_regular_file(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; InputError (one line naming ``what`` is
    wanted) for a missing file, a folder, a FIFO or device (never blocked on: opened O_NONBLOCK and
    checked before reading), or one that is too large."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{name}: no such file; give {what}") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory; give {what}") from None
    except OSError as err:
        raise InputError(f"{name}: cannot open ({reason(err)}); give {what}") from None
    with open(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{name}: not a regular file; give {what}")
        if info.st_size > limit:
            raise InputError(f"{name}: {info.st_size} bytes, more than the {limit >> 20} MiB allowed here; "
                             f"give {what}")
        try:
            return handle.read(limit + 1)
        except OSError as err:
            raise InputError(f"{name}: cannot read ({reason(err)})") from None
