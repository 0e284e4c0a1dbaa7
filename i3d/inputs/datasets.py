"""Datasets: what a batch run is pointed at, turned into videos with their labels.

:func:`load_dataset` reads one of these layouts and returns a :class:`Dataset`:
the videos found (``items``), the ones listed but absent (``missing``, reported,
never dropped in silence), the root the keys are relative to, and which layout
was read. Nothing is decoded here; a video is a file name with an extension in
:data:`VIDEO_EXTENSIONS` (compared in lower case).

``folder`` / ``class-folders``
    SOURCE is a folder, searched recursively. Hidden files and folders (a name
    starting with ``.``) are skipped; symlinked folders are followed except into
    one of their own ancestors (a loop). A symlink named like a video whose
    target is gone is listed in ``missing``. Labels are None, or, with
    ``ListOptions(labels_from_folders=True)``, the first folder under the root
    (``root/<label>/.../clip.mp4``); a video directly in the root is then an
    error. Items are sorted by key.

``list``
    SOURCE is a list file, chosen by its extension:

    * ``.csv`` (standard CSV quoting) or ``.tsv`` (plain tab-separated, no
      quoting): a header row, then one row per video. The path column is
      ``path_column`` or else the first of ``path``, ``file``, ``video``,
      ``filename`` present; the label column is ``label_column`` or else the
      first of ``label``, ``class``, ``category`` present, and without one the
      labels are None. Column names are compared case-insensitively; other
      columns are ignored. Rows whose cells are all empty are skipped.
    * ``.txt``: one video per line; blank lines and lines starting with ``#``
      are skipped. A line holding a tab is ``path<TAB>label`` (the only way to
      give a path with spaces). Otherwise the line is split at its first run of
      whitespace: the path, then the label (the rest of the line, which may hold
      spaces); a path read that way must have a video extension, so that
      ``my clip.mp4`` is refused rather than read as path ``my``.
    * ``.jsonl``: one JSON object per non-blank line, with the path under the
      same keys as the CSV columns and an optional label (a string or null).

    Cells and values are stripped of surrounding whitespace; an empty label is
    None. Relative paths are relative to ``ListOptions.root`` or else the list's
    folder; absolute paths are allowed. Items keep the list's order.

``kinetics-csv``
    A ``.csv`` whose header holds ``youtube_id``, ``time_start`` and
    ``time_end`` (DeepMind's Kinetics annotation files; ``label``, ``split``,
    ``is_cc`` are optional, the rest ignored), when no ``path_column`` is given
    and no path column is present. Each row names the file
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.<video extension>``, looked
    for in the root (``ListOptions.root`` or the CSV's folder) and in the
    row's label folder there: ``root/<label>/``, ``root/<label with spaces as
    _>/`` or that name without quotes and parentheses. Exactly one match is
    needed: none puts the row in ``missing`` (its key is then the file name
    without an extension), two or more are an error.

``ucf-split``
    SOURCE is the dataset root and ``ListOptions.split_file`` an official split:

    * UCF101 ``testlistNN.txt`` / ``trainlistNN.txt``: lines
      ``Class/v_Class_gXX_cYY.avi``, in train lists followed by a class number,
      which is ignored. The label is the folder name. If ``classInd.txt`` sits
      beside the split file, every folder name must be one of its classes.
    * HMDB51 per-class files ``<class>_test_split<N>.txt`` (lines
      ``name.avi 0|1|2``; 1 = train, 2 = test, 0 = unused): only the lines
      marked 2 are read, as ``root/<class>/name.avi`` labelled ``<class>``.
      ``split_file`` is one such file or a folder of them; a folder holding
      several split numbers is refused (put one split's files in a folder of
      their own).

A key is a video's path relative to the root with ``/`` separators (an
absolute path outside the root keys as that path without its leading ``/``).
Keys are unique within a dataset: a list naming one video twice is an error
naming both lines. Line numbers count from 1, as an editor shows them.

Labels are the dataset's own text; :func:`match_labels` maps them onto the
model's classes by an optional label map, then by :func:`normalise_label`,
never by a guess. :func:`shard` splits a dataset for ``--shard K/N`` by a hash
of each key, so shards do not depend on the list's order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from i3d.errors import InputError, OptionError
from i3d.inputs.video import VIDEO_EXTENSIONS

LIST_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt", ".jsonl")
LAYOUTS: tuple[str, ...] = ("folder", "class-folders", "list", "ucf-split", "kinetics-csv")
PATH_COLUMNS: tuple[str, ...] = ("path", "file", "video", "filename")
LABEL_COLUMNS: tuple[str, ...] = ("label", "class", "category")
KINETICS_COLUMNS: tuple[str, ...] = ("youtube_id", "time_start", "time_end")

_HMDB_SPLIT = re.compile(r"(?P<label>.+)_test_split(?P<number>\d+)\.txt")
_SHARD = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class VideoItem:
    """One video of a dataset."""

    key: str  # its path relative to the dataset root, '/'-separated: unique, names outputs, picks the shard
    path: Path  # where to read it
    label: str | None  # the dataset's own label text, or None


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


# ---------------------------------------------------------------------------------------------- labels


def normalise_label(text: str) -> str:
    """``text`` as labels are compared: case-folded, ``_`` and ``-`` read as spaces, whitespace runs
    collapsed to one space and trimmed. Quotes, apostrophes and parentheses are kept as they are, so
    ``riding_a_bike`` equals ``Riding a bike`` and ``Hurling (sport)`` equals ``hurling (sport)``,
    but ``hurling`` does not match ``hurling (sport)``."""
    return " ".join(text.casefold().replace("_", " ").replace("-", " ").split())


def read_label_map(path: str | os.PathLike) -> dict[str, str]:
    """A label map file: dataset label, a tab, class name on each line; ``#`` comments and blank lines
    skipped, a first row ``label<TAB>class`` skipped as a header. A label given twice for different
    classes (after :func:`normalise_label`, on both sides) is an error naming both lines."""
    path = Path(path)
    mapping: dict[str, str] = {}
    seen: dict[str, tuple[int, str]] = {}  # normalised label -> (line, normalised class)
    first = True
    for number, line in _text_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = [field.strip() for field in line.rstrip("\r\n").split("\t")]
        if first and [f.casefold() for f in fields] == ["label", "class"]:
            first = False
            continue
        first = False
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise InputError(f"{path}:{number}: expected 'dataset label<TAB>class name', got {text!r}; "
                             "separate the two with one tab")
        label, target = fields
        key, value = normalise_label(label), normalise_label(target)
        if key in seen and seen[key][1] != value:
            raise InputError(f"{path}:{number}: label {label!r} is mapped again, to a different class than on "
                             f"line {seen[key][0]}; keep one of the two lines")
        seen.setdefault(key, (number, value))
        mapping.setdefault(label, target)
    return mapping


def match_labels(labels: Iterable[str | None], categories: Sequence[str],
                 label_map: Mapping[str, str] | None = None) -> dict[str, int | None]:
    """Each distinct dataset label -> the index of its class in ``categories``, or None when unmapped.

    A label found in ``label_map`` (keys compared after :func:`normalise_label`) takes the map's class;
    any other label matches a class whose normalised name equals its own. Nothing else is tried (no
    fuzzy matching): unmapped labels are the caller's to report and leave out of accuracy. None labels
    (unlabelled videos) are skipped. Every map target must be a class name, else InputError.
    """
    classes: dict[str, int] = {}
    for index, name in enumerate(categories):
        norm = normalise_label(name)
        if norm in classes:
            raise InputError(f"class names {categories[classes[norm]]!r} and {name!r} read the same once "
                             "normalised; labels cannot be matched to them")
        classes[norm] = index
    mapped: dict[str, tuple[str, int]] = {}  # normalised map label -> (its label, class index)
    for label, target in (label_map or {}).items():
        index = classes.get(normalise_label(target))
        if index is None:
            raise InputError(f"label map: {label!r} maps to {target!r}, which is not one of the "
                             f"{len(categories)} class names; fix its class name")
        key = normalise_label(label)
        if key in mapped and mapped[key][1] != index:
            raise InputError(f"label map: {mapped[key][0]!r} and {label!r} read the same once normalised but map "
                             "to different classes; keep one")
        mapped.setdefault(key, (label, index))
    result: dict[str, int | None] = {}
    for label in labels:
        if label is None or label in result:
            continue
        norm = normalise_label(label)
        result[label] = mapped[norm][1] if norm in mapped else classes.get(norm)
    return result


# ---------------------------------------------------------------------------------------------- shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard K of N, K counted from 1."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise OptionError("shard", f"is {text!r}; give K/N, as 1/4 for the first of four shards")
    index, count = int(match.group(1)), int(match.group(2))
    _check_shard(index, count)
    return index, count


def shard(items: Sequence[VideoItem], index: int, count: int) -> tuple[VideoItem, ...]:
    """The items of shard ``index`` of ``count`` (from 1), in their given order.

    An item belongs to shard ``int(sha256(key), 16) % count + 1``: every item is in exactly one shard,
    and which one depends on its key alone, not on the list's order or length.
    """
    _check_shard(index, count)
    return tuple(item for item in items if shard_of(item.key, count) == index)


def shard_of(key: str, count: int) -> int:
    """The shard (from 1) that the item keyed ``key`` belongs to among ``count``."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % count + 1


def _check_shard(index: int, count: int) -> None:
    if count < 1:
        raise OptionError("shard", f"count is {count}; it must be at least 1")
    if not 1 <= index <= count:
        raise OptionError("shard", f"is {index}/{count}; K must be between 1 and {count}")


# ---------------------------------------------------------------------------------------------- loading


def load_dataset(source: str | os.PathLike, options: ListOptions = ListOptions()) -> Dataset:
    """The videos ``source`` names: a folder, a list file, a Kinetics CSV, or a dataset root with
    ``options.split_file`` (see the module docstring for each layout's rules)."""
    source = Path(source)
    if options.split_file is not None:
        _refuse(options, "a split file is given", "labels_from_folders", "root", "path_column", "label_column")
        if not source.is_dir():
            raise InputError(f"{source}: not a folder; with a split file, give the dataset root folder as SOURCE")
        return _load_split(source, Path(options.split_file))
    if source.is_dir():
        _refuse(options, f"{source} is a folder", "root", "path_column", "label_column")
        return _load_folder(source, options.labels_from_folders)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder; give a folder of videos or a list file "
                         f"({', '.join(LIST_EXTENSIONS)})")
    suffix = source.suffix.lower()
    if suffix not in LIST_EXTENSIONS:
        what = "a video, not a dataset" if suffix in VIDEO_EXTENSIONS else "not a list file"
        raise InputError(f"{source}: {what}; give a folder of videos or a list file ({', '.join(LIST_EXTENSIONS)})")
    _refuse(options, f"{source} is a list file", "labels_from_folders")
    root = _list_root(source, options.root)
    if suffix == ".txt":
        return _finish(_read_txt(source, root), root, "list", source)
    if suffix == ".jsonl":
        return _finish(_read_jsonl(source, root, options), root, "list", source)
    return _load_table(source, root, options, delimiter="," if suffix == ".csv" else "\t")


def _refuse(options: ListOptions, why: str, *names: str) -> None:
    """OptionError for the first of ``names`` set in ``options``: it does not apply to this layout."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value is not False:
            raise OptionError(name, f"does not apply when {why}; leave it out")


def _list_root(source: Path, root: Path | None) -> Path:
    if root is None:
        return _absolute(source.parent)
    if not Path(root).is_dir():
        raise OptionError("root", f"is {root}, which is not a folder; give the folder the list's paths are in")
    return _absolute(Path(root))


def _absolute(path: Path) -> Path:
    """``path`` made absolute and lexically normalised, symlinks kept."""
    return Path(os.path.normpath(path.absolute()))


def _finish(entries: Iterable[tuple[int, VideoItem]], root: Path, layout: str, where: Path) -> Dataset:
    """Items split into present and missing, refusing a key listed twice; ``entries`` are (line, item)."""
    lines: dict[str, int] = {}
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for line, item in entries:
        if item.key in lines:
            raise InputError(f"{where}:{line}: {item.key!r} is listed twice (first on line {lines[item.key]}); "
                             "remove one of the two lines")
        lines[item.key] = line
        (present if item.path.is_file() else missing).append(item)
    if not lines:
        raise InputError(f"{where}: lists no videos; add one per line")
    return Dataset(tuple(present), tuple(missing), root, layout)


def _item(raw: str, label: str | None, root: Path) -> VideoItem:
    """The item for a path as a list writes it, relative to ``root`` unless absolute."""
    full = Path(os.path.normpath(Path(raw) if os.path.isabs(raw) else root / raw))
    if full == root or root in full.parents:
        key = full.relative_to(root).as_posix()
    else:
        key = full.as_posix().lstrip("/")
    return VideoItem(key, full, label or None)


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a UTF-8 text file; a BOM is dropped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror}); check the path and its permissions") from None


# ------------------------------------------------------------------------------------------ folders


def _load_folder(root: Path, labels_from_folders: bool) -> Dataset:
    root = _absolute(root)
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for parts, path in _walk(root, (), frozenset()):
        key = "/".join(parts)
        label = None
        if labels_from_folders:
            if len(parts) == 1:
                raise InputError(f"{path}: is directly in {root}, but labels come from folders; move it into "
                                 "its class folder or drop labels_from_folders")
            label = parts[0]
        (present if path.is_file() else missing).append(VideoItem(key, path, label))
    if not present and not missing:
        raise InputError(f"{root}: holds no videos ({', '.join(VIDEO_EXTENSIONS)}); give the folder they are in")
    layout = "class-folders" if labels_from_folders else "folder"
    return Dataset(tuple(sorted(present, key=lambda i: i.key)), tuple(sorted(missing, key=lambda i: i.key)),
                   root, layout)


def _walk(folder: Path, parts: tuple[str, ...],
          ancestors: frozenset[tuple[int, int]]) -> Iterator[tuple[tuple[str, ...], Path]]:
    """(path parts under the root, path) of every video below ``folder``, hidden names and loops skipped."""
    try:
        info = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise InputError(f"{folder}: cannot list the folder ({err.strerror}); fix its permissions") from None
    here = (info.st_dev, info.st_ino)
    if here in ancestors:
        return  # a symlink back into one of its own ancestors: following it would never end
    ancestors = ancestors | {here}
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, parts + (entry.name,), ancestors)
        elif entry.name.lower().endswith(VIDEO_EXTENSIONS):
            yield parts + (entry.name,), path


# ------------------------------------------------------------------------------------------ list files


def _read_txt(path: Path, root: Path) -> Iterator[tuple[int, VideoItem]]:
    for number, line in _text_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "\t" in text:
            fields = [f.strip() for f in text.split("\t")]
            if len(fields) > 2:
                raise InputError(f"{path}:{number}: holds {len(fields) - 1} tabs; write 'path<TAB>label' "
                                 "with one tab")
            raw, label = fields
        else:
            raw, label = (text.split(None, 1) + [""])[:2]
            if label and not raw.lower().endswith(VIDEO_EXTENSIONS):
                raise InputError(f"{path}:{number}: {raw!r} is not a video file name; if the path holds spaces, "
                                 "separate it from the label with a tab")
        if not raw:
            raise InputError(f"{path}:{number}: no path before the tab; write 'path<TAB>label'")
        yield number, _item(raw, label.strip() or None, root)


def _read_jsonl(path: Path, root: Path, options: ListOptions) -> Iterator[tuple[int, VideoItem]]:
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not JSON ({err.msg}); write one object per line") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: holds a JSON {type(record).__name__}; write one object per line")
        keys = {str(k).casefold(): k for k in record}
        if len(keys) != len(record):
            raise InputError(f"{path}:{number}: holds keys that differ only in case; keep one of each")
        path_key = _pick(keys, options.path_column, PATH_COLUMNS, f"{path}:{number}", "path key", required=True)
        label_key = _pick(keys, options.label_column, LABEL_COLUMNS, f"{path}:{number}", "label key")
        raw = record[path_key]
        label = record[label_key] if label_key is not None else None
        if not isinstance(raw, str) or not raw.strip():
            raise InputError(f"{path}:{number}: {path_key!r} is {raw!r}; give the video's path as a string")
        if label is not None and not isinstance(label, str):
            raise InputError(f"{path}:{number}: {label_key!r} is {label!r}; give the label as a string or null")
        yield number, _item(raw.strip(), (label or "").strip() or None, root)


def _pick(keys: Mapping[str, str], chosen: str | None, aliases: Sequence[str], where: str, what: str,
          required: bool = False) -> str | None:
    """The column or key to read: ``chosen`` (which must be present) or the first alias present."""
    if chosen is not None:
        if chosen.strip().casefold() not in keys:
            raise InputError(f"{where}: no {what} {chosen!r} (has {', '.join(map(repr, keys.values())) or 'none'}); "
                             "name one that is there")
        return keys[chosen.strip().casefold()]
    for alias in aliases:
        if alias in keys:
            return keys[alias]
    if required:
        raise InputError(f"{where}: no {what} ({' or '.join(aliases)}) among {', '.join(map(repr, keys.values()))}; "
                         "name it with path_column")
    return None


def _load_table(path: Path, root: Path, options: ListOptions, delimiter: str) -> Dataset:
    """A .csv or .tsv list, or a Kinetics annotation CSV."""
    header, rows = _read_table(path, delimiter)
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = name.strip().casefold()
        if key in columns:
            raise InputError(f"{path}:1: column {name.strip()!r} appears twice in the header; rename one")
        columns[key] = index
    names = {key: header[i].strip() for key, i in columns.items()}
    kinetics = all(c in columns for c in KINETICS_COLUMNS)
    if kinetics and options.path_column is None:
        if any(alias in columns for alias in PATH_COLUMNS):
            raise InputError(f"{path}:1: has both Kinetics columns (youtube_id, time_start, time_end) and a path "
                             "column; set path_column to read it as a plain list")
        label_name = _pick(names, options.label_column, ("label",), f"{path}:1", "label column")
        return _load_kinetics(path, root, rows, columns, None if label_name is None else columns[label_name.casefold()])
    if len(header) == 1 and delimiter == "," and "\t" in header[0]:
        raise InputError(f"{path}:1: the header holds tabs, not commas; name the file .tsv")
    path_name = _pick(names, options.path_column, PATH_COLUMNS, f"{path}:1", "path column", required=True)
    label_name = _pick(names, options.label_column, LABEL_COLUMNS, f"{path}:1", "label column")
    path_index = columns[path_name.casefold()]
    label_index = None if label_name is None else columns[label_name.casefold()]

    def entries() -> Iterator[tuple[int, VideoItem]]:
        for number, row in rows:
            raw = row[path_index]
            if not raw:
                raise InputError(f"{path}:{number}: the {path_name!r} cell is empty; give the video's path")
            yield number, _item(raw, None if label_index is None else row[label_index], root)

    return _finish(entries(), root, "list", path)


def _read_table(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line, stripped cells) rows of a CSV (quoted) or TSV (unquoted) file;
    rows of empty cells skipped, rows of the wrong width refused."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting, strict=True)
            header: list[str] | None = None
            rows: list[tuple[int, list[str]]] = []
            end = 0
            for row in reader:
                start, end = end + 1, reader.line_num
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                if header is None:
                    header = cells
                    continue
                if len(cells) != len(header):
                    raise InputError(f"{path}:{start}: has {len(cells)} fields, the header has {len(header)}; "
                                     "fix the row")
                rows.append((start, cells))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except csv.Error as err:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV ({err}); fix its quoting") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror}); check the path and its permissions") from None
    if header is None:
        raise InputError(f"{path}: empty; give a header row, then one row per video")
    return header, rows


# ------------------------------------------------------------------------------------------ Kinetics


def _load_kinetics(path: Path, root: Path, rows: list[tuple[int, list[str]]], columns: Mapping[str, int],
                   label_index: int | None) -> Dataset:
    folders: dict[Path, dict[str, list[str]]] = {}

    def videos_in(folder: Path) -> dict[str, list[str]]:
        """File stem -> the video file names with that stem in ``folder`` (listed once)."""
        if folder not in folders:
            found: dict[str, list[str]] = {}
            try:
                names = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                names = []
            except OSError as err:
                raise InputError(f"{folder}: cannot list the folder ({err.strerror}); fix its permissions") from None
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    found.setdefault(stem, []).append(name)
            folders[folder] = found
        return folders[folder]

    stems: dict[str, int] = {}
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for number, row in rows:
        youtube_id = row[columns["youtube_id"]]
        start = _whole_seconds(row[columns["time_start"]], path, number, "time_start")
        end = _whole_seconds(row[columns["time_end"]], path, number, "time_end")
        if not youtube_id:
            raise InputError(f"{path}:{number}: the youtube_id cell is empty; fix the row")
        label = (row[label_index] if label_index is not None else "") or None
        stem = f"{youtube_id}_{start:06d}_{end:06d}"
        if stem in stems:
            raise InputError(f"{path}:{number}: clip {stem} is listed twice (first on line {stems[stem]}); "
                             "remove one of the two rows")
        stems[stem] = number
        candidates: list[Path] = []
        for folder in _kinetics_folders(root, label):
            candidates += [folder / name for name in videos_in(folder).get(stem, [])]
        candidates = [c for c in candidates if c.is_file()]
        if len(candidates) > 1:
            raise InputError(f"{path}:{number}: clip {stem} matches {len(candidates)} files "
                             f"({', '.join(str(c) for c in candidates)}); keep one")
        if candidates:
            present.append(VideoItem(candidates[0].relative_to(root).as_posix(), candidates[0], label))
        else:
            missing.append(VideoItem(stem, root / stem, label))
    if not stems:
        raise InputError(f"{path}: lists no clips; add one row per clip")
    return Dataset(tuple(present), tuple(missing), root, "kinetics-csv")


def _kinetics_folders(root: Path, label: str | None) -> list[Path]:
    """Where a Kinetics clip may be: the root, then its label's folder as downloaders name it."""
    folders = [root]
    if label:
        underscored = label.replace(" ", "_")
        for name in (label, underscored, re.sub(r"[\"'()]", "", underscored)):
            if "/" not in name and name not in (".", "..") and root / name not in folders:
                folders.append(root / name)
    return folders


def _whole_seconds(text: str, path: Path, number: int, column: str) -> int:
    """A Kinetics time cell as whole seconds (``14`` or ``14.0``); anything else is an error."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise InputError(f"{path}:{number}: {column} is {text!r}; Kinetics times are whole seconds")
    return int(value)


# ------------------------------------------------------------------------------------------ splits


def _load_split(root: Path, split_file: Path) -> Dataset:
    root = _absolute(root)
    if split_file.is_dir():
        files = sorted(p for p in split_file.iterdir() if _HMDB_SPLIT.fullmatch(p.name) and p.is_file())
        if not files:
            raise InputError(f"{split_file}: holds no HMDB51 split files (<class>_test_split<N>.txt); "
                             "give the folder they are in, or one UCF101 split file")
        numbers = sorted({int(_HMDB_SPLIT.fullmatch(p.name).group("number")) for p in files})
        if len(numbers) > 1:
            raise InputError(f"{split_file}: holds files for splits {', '.join(map(str, numbers))}; put one "
                             "split's files in a folder of their own and give that folder")
        return _finish_many(((f, _read_hmdb(f, root)) for f in files), root)
    if not split_file.is_file():
        raise InputError(f"{split_file}: no such split file; give e.g. testlist01.txt or "
                         "brush_hair_test_split1.txt")
    if _HMDB_SPLIT.fullmatch(split_file.name):
        return _finish_many([(split_file, _read_hmdb(split_file, root))], root)
    return _finish(_read_ucf(split_file, root), root, "ucf-split", split_file)


def _finish_many(sources: Iterable[tuple[Path, Iterable[tuple[int, VideoItem]]]], root: Path) -> Dataset:
    """:func:`_finish` over several files, a key given twice named by file and line."""
    seen: dict[str, str] = {}
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for path, entries in sources:
        for line, item in entries:
            if item.key in seen:
                raise InputError(f"{path}:{line}: {item.key!r} is listed twice (first at {seen[item.key]}); "
                                 "remove one of the two lines")
            seen[item.key] = f"{path}:{line}"
            (present if item.path.is_file() else missing).append(item)
    if not seen:
        raise InputError(f"{root}: the split files mark no video as test (2); check the split")
    return Dataset(tuple(present), tuple(missing), root, "ucf-split")


def _read_hmdb(path: Path, root: Path) -> Iterator[tuple[int, VideoItem]]:
    """The test videos (marked 2) of one HMDB51 per-class split file."""
    label = _HMDB_SPLIT.fullmatch(path.name).group("label")
    for number, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise InputError(f"{path}:{number}: expected 'name.avi 0|1|2', got {line.strip()!r}; fix the line")
        if fields[1] == "2":
            yield number, VideoItem(f"{label}/{fields[0]}", root / label / fields[0], label)


def _read_ucf(path: Path, root: Path) -> Iterator[tuple[int, VideoItem]]:
    """The videos of a UCF101 split list, labelled by their folder, checked against classInd.txt if beside it."""
    classes = _read_class_index(path.parent / "classInd.txt")
    for number, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
            raise InputError(f"{path}:{number}: expected 'Class/video.avi' and an optional class number, "
                             f"got {line.strip()!r}; fix the line")
        parts = fields[0].split("/")
        if len(parts) < 2 or not all(parts) or ".." in parts:
            raise InputError(f"{path}:{number}: {fields[0]!r} is not 'Class/video.avi'; fix the line")
        if classes is not None and parts[0] not in classes:
            raise InputError(f"{path}:{number}: class {parts[0]!r} is not in {path.parent / 'classInd.txt'}; "
                             "use the split file of the same release")
        yield number, VideoItem(fields[0], root.joinpath(*parts), parts[0])


def _read_class_index(path: Path) -> set[str] | None:
    """The class names of a UCF101 ``classInd.txt`` (lines ``N ClassName``), or None if there is none."""
    if not path.is_file():
        return None
    names: set[str] = set()
    for number, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise InputError(f"{path}:{number}: expected 'number ClassName', got {line.strip()!r}; fix the line")
        names.add(fields[1])
    return names
