"""Which videos a head is trained on and which it is scored on: the split column, a held-out share, and the
grouped folds cross-validation uses, with the checks that keep each from being a silent guess."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import numpy as np

from i3d.errors import InputError
from i3d.inputs.dataset_items import Dataset, VideoItem

VAL_SPLITS = ("test", "val", "validation")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters a class name may not hold: line breaks and other controls would reach subtitles, tables and charts."""
"""Split-column values that put a video on the validation side ("train" puts it on the training side)."""


def split_by_column(dataset: Dataset) -> tuple[Dataset, Dataset | None]:
    """(training side, validation side) of a dataset read with a split column; InputError for other values."""
    train, val = [], []
    for item in dataset.items:
        side = (item.split or "").strip().lower()
        if side == "train":
            train.append(item)
        elif side in VAL_SPLITS:
            val.append(item)
        else:
            raise InputError(f"{item.key}: split {item.split!r}; give train, or {', '.join(VAL_SPLITS)}")
    return replace(dataset, items=tuple(train)), (replace(dataset, items=tuple(val)) if val else None)


def check_labels(dataset: Dataset, side: str = "training") -> tuple[str, ...]:
    """The classes of a labelled dataset, sorted; InputError for anything that would be a silent guess."""
    if dataset.missing:
        raise InputError(f"{dataset.missing[0].path}: listed for {side} but not on disk "
                         f"({len(dataset.missing)} missing); fix the list")
    unlabelled = [item for item in dataset.items if item.label is None]
    if unlabelled:
        raise InputError(f"{unlabelled[0].path}: has no label ({len(unlabelled)} unlabelled); every {side} video "
                         "needs one")
    odd = next((item for item in dataset.items if _CONTROL.search(item.label)), None)
    if odd is not None:
        raise InputError(f"{odd.key}: label {odd.label!r} holds a line break or control character; a class name is "
                         "one line of printable text")
    counts = Counter(item.label for item in dataset.items)
    alike: dict[str, str] = {}
    for label in sorted(counts):
        norm = re.sub(r"[\s_]+", " ", label).strip().casefold()
        if norm in alike:
            raise InputError(f"labels {alike[norm]!r} and {label!r} differ only by case or spaces; use one spelling")
        alike[norm] = label
    if len(counts) < 2:
        raise InputError(f"the {side} videos hold one class ({next(iter(counts), 'none')!r}); a head needs two or more")
    few = sorted(label for label, n in counts.items() if n < 2)
    if few:
        raise InputError(f"class {few[0]!r} has {counts[few[0]]} {side} video; each class needs at least 2")
    return tuple(sorted(counts))


def groups_of(items: list[VideoItem]) -> list[str]:
    """Each video's fold unit: its group, else the video itself."""
    return [item.group if item.group is not None else f"video:{item.key}" for item in items]


def check_groups(items: list[VideoItem]) -> None:
    """With groups, refuse a class whose videos are all in one group: no fold could hold it out."""
    if not any(item.group is not None for item in items):
        return
    by_class: dict[str, set[str]] = {}
    for item, group in zip(items, groups_of(items)):
        by_class.setdefault(item.label, set()).add(group)
    for label, groups in sorted(by_class.items()):
        if len(groups) < 2:
            raise InputError(f"class {label!r}: every video is in group {next(iter(groups))!r}; grouped folds need "
                             "at least two groups per class (add videos of another group, or drop the group column)")


def check_validation(dataset: Dataset, classes: tuple[str, ...]) -> None:
    if dataset.missing:
        raise InputError(f"{dataset.missing[0].path}: listed for validation but not on disk; fix the list")
    for item in dataset.items:
        if item.label not in classes:
            raise InputError(f"{item.path}: validation label {item.label!r} is not one of the training classes "
                             f"({', '.join(classes)})")


def hold_out(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training side, validation side): about ``fraction`` of the groups held out, per class where it can be."""
    from sklearn.model_selection import StratifiedGroupKFold  # scikit-learn: slow to import, only for training

    items = list(dataset.items)
    splits = max(2, round(1 / fraction))
    folds = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    train, val = next(folds.split(np.zeros(len(items)), [i.label for i in items], groups_of(items)))
    return (replace(dataset, items=tuple(items[i] for i in sorted(train))),
            replace(dataset, items=tuple(items[i] for i in sorted(val))))


def grouped_folds(items: list[VideoItem], labels: np.ndarray, folds: int, seed: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training videos, held-out videos) index pairs: a group (or a video without one) is always on one side,
    classes spread as evenly as the groups allow; fewer folds when a class has fewer groups."""
    from sklearn.model_selection import StratifiedGroupKFold  # scikit-learn: slow to import, only for training

    groups = groups_of(items)
    per_class = min(len({g for g, label in zip(groups, labels) if label == k}) for k in set(labels.tolist()))
    splits = max(2, min(folds, per_class))
    return list(StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
                .split(np.zeros(len(items)), labels, groups))
