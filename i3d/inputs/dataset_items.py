"""What a dataset is made of: its videos (keyed by path), how a SOURCE is read, and shards.

The layouts that produce these are in :mod:`i3d.inputs.datasets`; the helpers here are what
every layout shares (keys, duplicate lines, missing files, UTF-8 text).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from i3d.errors import InputError, OptionError
from i3d.files import read_regular_file

LAYOUTS: tuple[str, ...] = ("folder", "class-folders", "list", "ucf-split", "kinetics-csv")
PATH_COLUMNS: tuple[str, ...] = ("path", "file", "video", "filename")
LABEL_COLUMNS: tuple[str, ...] = ("label", "class", "category")

_SHARD = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class VideoItem:
    """One video of a dataset."""

    key: str  # its path relative to the dataset root, '/'-separated: unique, names outputs, picks the shard
    path: Path  # where to read it
    label: str | None  # the dataset's own label text, or None
    group: str | None = None  # what it shares a recording with (a subject, a session), from a group column
    split: str | None = None  # which side it is on (train, test...), from a split column


@dataclass(frozen=True)
class Dataset:
    """The videos a SOURCE names: those on disk, those listed but absent, and how they were read."""

    items: tuple[VideoItem, ...]  # on disk, in list order (list files) or by key (folders)
    missing: tuple[VideoItem, ...]  # listed but not a regular file on disk
    root: Path  # what keys are relative to
    layout: str  # one of LAYOUTS


@dataclass(frozen=True)
class ListOptions:
    """How to read a SOURCE; each option applies to some layouts only and is refused by the others."""

    labels_from_folders: bool = False  # folder SOURCE: the first folder under the root is the label
    root: Path | None = None  # list files: where relative paths live (default: the list's folder)
    path_column: str | None = None  # csv/tsv/jsonl: default the first of PATH_COLUMNS present
    label_column: str | None = None  # csv/tsv/jsonl/Kinetics: default the first of LABEL_COLUMNS present
    split_file: Path | None = None  # UCF101/HMDB51 split file (or HMDB folder of them); SOURCE is then the root
    group_column: str | None = None  # csv/tsv/jsonl: the column naming each video's group
    split_column: str | None = None  # csv/tsv/jsonl: the column naming each video's side (train, test, val)

    def check(self) -> None:
        """Refuse options that cannot go together whatever SOURCE is: a split file names every video and its
        side, so it takes none of the others (OptionError). What SOURCE's layout refuses is checked where it
        is read (:func:`refuse_options`)."""
        if self.split_file is not None:
            refuse_options(self, "a split file is given", "labels_from_folders", "root", "path_column",
                           "label_column", "group_column", "split_column")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard K of N, K counted from 1."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise OptionError("shard", f"is {text!r}; give K/N, as 1/4 for the first of four shards")
    index, count = int(match.group(1)), int(match.group(2))
    check_shard(index, count)
    return index, count


def shard(items: Sequence[VideoItem], index: int, count: int) -> tuple[VideoItem, ...]:
    """The items of shard ``index`` of ``count`` (from 1), in their given order.

    An item belongs to shard ``int(sha256(key), 16) % count + 1``: every item is in exactly one shard,
    and which one depends on its key alone, not on the list's order or length.
    """
    check_shard(index, count)
    return tuple(item for item in items if shard_of(item.key, count) == index)


def shard_of(key: str, count: int) -> int:
    """The shard (from 1) that the item keyed ``key`` belongs to among ``count``."""
    return int(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest(), 16) % count + 1


def check_shard(index: int, count: int) -> None:
    if count < 1:
        raise OptionError("shard", f"count is {count}; it must be at least 1")
    if not 1 <= index <= count:
        raise OptionError("shard", f"is {index}/{count}; K must be between 1 and {count}")


def refuse_options(options: ListOptions, why: str, *names: str) -> None:
    """OptionError for the first of ``names`` set in ``options``: it does not apply to this layout."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value is not False:
            raise OptionError(name, f"does not apply when {why}; leave it out")


def absolute(path: Path) -> Path:
    """``path`` made absolute and lexically normalised, symlinks kept."""
    return Path(os.path.normpath(path.absolute()))


MAX_NAME_BYTES = 200
"""The longest file or folder name a key may hold: outputs add ``.<stream>.npy`` and temporary suffixes
to it, and file systems stop at 255 bytes."""


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name outputs under a folder (it would leave it, or no file system could hold it),
    or None: every output named by a key stays inside ``--out``, whatever a list says."""
    parts = key.split("/")
    if key.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\0" in key:
        return f"{key[:80]!r} would name outputs outside the output folder ('..', '.', an empty or absolute part)"
    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in parts)
    if longest > MAX_NAME_BYTES:
        return f"{key[:80]!r}... has a name of {longest} bytes (at most {MAX_NAME_BYTES})"
    return None


def finish(entries: Iterable[tuple[int, VideoItem]], root: Path, layout: str, where: Path) -> Dataset:
    """Items split into present and missing, refusing a key listed twice or one that could not name outputs
    (:func:`key_problem`); ``entries`` are (line, item)."""
    lines: dict[str, int] = {}
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for line, item in entries:
        problem = key_problem(item.key)
        if problem is not None:
            raise InputError(f"{where}:{line}: {problem}; fix the line")
        if item.key in lines:
            raise InputError(f"{where}:{line}: {item.key!r} is listed twice (first on line {lines[item.key]}); "
                             "remove one of the two lines")
        lines[item.key] = line
        (present if item.path.is_file() else missing).append(item)
    if not lines:
        raise InputError(f"{where}: lists no videos; add one per line")
    return Dataset(tuple(present), tuple(missing), root, layout)


def list_item(raw: str, label: str | None, root: Path, group: str | None = None,
              split: str | None = None) -> VideoItem:
    """The item for a path as a list writes it, relative to ``root`` unless absolute."""
    full = Path(os.path.normpath(Path(raw) if os.path.isabs(raw) else root / raw))
    if full == root or root in full.parents:
        key = full.relative_to(root).as_posix()
    else:
        key = full.as_posix().lstrip("/")
    return VideoItem(key, full, label or None, group or None, split or None)


MAX_LIST_BYTES = 64 << 20
"""The largest list, split or label map file read (Kinetics-700's training CSV is 25 MB)."""


def read_list_text(path: Path) -> str:
    """A list file's text: UTF-8 (a BOM dropped), a regular file (a FIFO or device is refused unopened for
    reading, never blocked on) of at most :data:`MAX_LIST_BYTES`."""
    data = read_regular_file(path, MAX_LIST_BYTES, "a UTF-8 text file")
    if len(data) > MAX_LIST_BYTES:
        raise InputError(f"{path}: grew past {MAX_LIST_BYTES >> 20} MiB while being read; give a finished list")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a UTF-8 text file (see :func:`read_list_text`)."""
    yield from enumerate(io.StringIO(read_list_text(path), newline=""), start=1)
