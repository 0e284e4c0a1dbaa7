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

Labels are the dataset's own text; :func:`i3d.inputs.labels.match_labels` maps
them onto the model's classes by an optional label map, then by
:func:`~i3d.inputs.labels.normalise_label`, never by a guess.
:func:`i3d.inputs.dataset_items.shard` splits a dataset for ``--shard K/N`` by a
hash of each key, so shards do not depend on the list's order. The list-file
layouts are read by :mod:`i3d.inputs.dataset_lists`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from i3d.errors import InputError
from i3d.inputs.dataset_items import Dataset, ListOptions, VideoItem, absolute, refuse_options
from i3d.inputs.dataset_lists import load_list, load_split
from i3d.inputs.video import VIDEO_EXTENSIONS

LIST_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt", ".jsonl")


def load_dataset(source: str | os.PathLike, options: ListOptions = ListOptions()) -> Dataset:
    """The videos ``source`` names: a folder, a list file, a Kinetics CSV, or a dataset root with
    ``options.split_file`` (see the module docstring for each layout's rules)."""
    source = Path(source)
    options.check()
    if options.split_file is not None:
        if not source.is_dir():
            raise InputError(f"{source}: not a folder; with a split file, give the dataset root folder as SOURCE")
        return load_split(source, Path(options.split_file))
    if source.is_dir():
        refuse_options(options, f"{source} is a folder", "root", "path_column", "label_column", "group_column",
                       "split_column")
        return _load_folder(source, options.labels_from_folders)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder; give a folder of videos or a list file "
                         f"({', '.join(LIST_EXTENSIONS)})")
    suffix = source.suffix.lower()
    if suffix not in LIST_EXTENSIONS:
        what = "a video, not a dataset" if suffix in VIDEO_EXTENSIONS else "not a list file"
        raise InputError(f"{source}: {what}; give a folder of videos or a list file ({', '.join(LIST_EXTENSIONS)})")
    refuse_options(options, f"{source} is a list file", "labels_from_folders")
    return load_list(source, options)


# ------------------------------------------------------------------------------------------ folders


def _load_folder(root: Path, labels_from_folders: bool) -> Dataset:
    root = absolute(root)
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
