"""Kinetics-400 class names, in the order of the checkpoints' logits."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import I3DError

LABELS_FILE = Path(__file__).resolve().parent.parent / "data" / "kinetics_400_labels.txt"


@lru_cache(maxsize=None)
def kinetics_400_labels(path: Path = LABELS_FILE) -> tuple[str, ...]:
    """The 400 class names; index i is logit i of every shipped weight set."""
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as err:
        raise I3DError(f"{path}: cannot read the class list ({err.strerror}); restore it from git") from None
    if len(names) != 400:
        raise I3DError(f"{path}: holds {len(names)} class names, expected 400; restore it from git")
    return names
