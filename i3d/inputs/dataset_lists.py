"""The list-file layouts of a dataset: .txt, .jsonl, .csv and .tsv lists, Kinetics CSVs, and the
official UCF101 and HMDB51 split files (the rules of each are in :mod:`i3d.inputs.datasets`)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from i3d.errors import InputError, OptionError
from i3d.inputs.dataset_items import (
    LABEL_COLUMNS, PATH_COLUMNS, Dataset, ListOptions, VideoItem, absolute, finish, key_problem, list_item, read_list_text,
    refuse_options, text_lines,
)
from i3d.inputs.video import VIDEO_EXTENSIONS

KINETICS_COLUMNS: tuple[str, ...] = ("youtube_id", "time_start", "time_end")

_HMDB_SPLIT = re.compile(r"(?P<label>.+)_test_split(?P<number>\d+)\.txt")


def load_list(source: Path, options: ListOptions) -> Dataset:
    """The videos a list file names (.txt, .jsonl, .csv, .tsv or a Kinetics CSV)."""
    root = list_root(source, options.root)
    suffix = source.suffix.lower()
    if suffix in (".txt", ".jsonl"):
        refuse_options(options, f"{source} is a {suffix} list (groups and splits come from .csv/.tsv columns)",
                       "group_column", "split_column")
    if suffix == ".txt":
        return finish(_read_txt(source, root), root, "list", source)
    if suffix == ".jsonl":
        return finish(_read_jsonl(source, root, options), root, "list", source)
    return _load_table(source, root, options, delimiter="," if suffix == ".csv" else "\t")


def list_root(source: Path, root: Path | None) -> Path:
    if root is None:
        return absolute(source.parent)
    if not Path(root).is_dir():
        raise OptionError("root", f"is {root}, which is not a folder; give the folder the list's paths are in")
    return absolute(Path(root))


def _read_txt(path: Path, root: Path) -> Iterator[tuple[int, VideoItem]]:
    for number, line in text_lines(path):
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
        yield number, list_item(raw, label.strip() or None, root)


def _read_jsonl(path: Path, root: Path, options: ListOptions) -> Iterator[tuple[int, VideoItem]]:
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not JSON ({err.msg}); write one object per line") from None
        except RecursionError:
            raise InputError(f"{path}:{number}: nested too deeply to read; write one flat object per line") from None
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
        yield number, list_item(raw.strip(), (label or "").strip() or None, root)


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
        refuse_options(options, f"{path} is a Kinetics CSV", "group_column", "split_column")
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
    extra = {}
    for option in ("group_column", "split_column"):
        chosen = getattr(options, option)
        if chosen is not None:
            name = _pick(names, chosen, (), f"{path}:1", option.replace("_", " "), required=True)
            extra[option] = columns[name.casefold()]

    def entries() -> Iterator[tuple[int, VideoItem]]:
        for number, row in rows:
            raw = row[path_index]
            if not raw:
                raise InputError(f"{path}:{number}: the {path_name!r} cell is empty; give the video's path")
            group, split = (row[extra[o]] if o in extra else None for o in ("group_column", "split_column"))
            yield number, list_item(raw, None if label_index is None else row[label_index], root, group, split)

    return finish(entries(), root, "list", path)


def _read_table(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line, stripped cells) rows of a CSV (quoted) or TSV (unquoted) file;
    rows of empty cells skipped, rows of the wrong width refused."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(read_list_text(path), newline=""), delimiter=delimiter, quoting=quoting,
                        strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
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
    except csv.Error as err:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV ({err}); fix its quoting") from None
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


def load_split(root: Path, split_file: Path) -> Dataset:
    root = absolute(root)
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
    return finish(_read_ucf(split_file, root), root, "ucf-split", split_file)


def _finish_many(sources: Iterable[tuple[Path, Iterable[tuple[int, VideoItem]]]], root: Path) -> Dataset:
    """:func:`_finish` over several files, a key given twice named by file and line."""
    seen: dict[str, str] = {}
    present: list[VideoItem] = []
    missing: list[VideoItem] = []
    for path, entries in sources:
        for line, item in entries:
            problem = key_problem(item.key)
            if problem is not None:
                raise InputError(f"{path}:{line}: {problem}; fix the line")
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
    for number, line in text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise InputError(f"{path}:{number}: expected 'name.avi 0|1|2', got {line.strip()!r}; fix the line")
        if "/" in fields[0] or fields[0] in (".", ".."):
            raise InputError(f"{path}:{number}: {fields[0][:80]!r} is not a file name in {label}/; fix the line")
        if fields[1] == "2":
            yield number, VideoItem(f"{label}/{fields[0]}", root / label / fields[0], label)


def _read_ucf(path: Path, root: Path) -> Iterator[tuple[int, VideoItem]]:
    """The videos of a UCF101 split list, labelled by their folder, checked against classInd.txt if beside it."""
    classes = _read_class_index(path.parent / "classInd.txt")
    for number, line in text_lines(path):
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
    for number, line in text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise InputError(f"{path}:{number}: expected 'number ClassName', got {line.strip()!r}; fix the line")
        names.add(fields[1])
    return names
