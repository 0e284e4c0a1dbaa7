"""Labels: a dataset's own label text matched onto a model's classes, never by a guess.

:func:`match_labels` maps labels onto the model's classes by an optional label map
(:func:`read_label_map`), then by :func:`normalise_label`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from i3d.errors import InputError
from i3d.inputs.dataset_items import text_lines


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
    for number, line in text_lines(path):
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
