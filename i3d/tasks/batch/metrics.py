"""Accuracy of ranked answers against the true classes: top-1, top-5, per class and the mean over classes.

One count for a dataset run's summary and a trained head's report, so both say the same about the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Accuracy:
    """Per class index (ascending): (videos, top-1 hits, top-5 hits), and the rates they give."""

    per_class: dict[int, tuple[int, int, int]]

    @property
    def videos(self) -> int:
        return sum(n for n, _, _ in self.per_class.values())

    @property
    def top1(self) -> float | None:
        return sum(hit for _, hit, _ in self.per_class.values()) / self.videos if self.per_class else None

    @property
    def top5(self) -> float | None:
        return sum(hit for _, _, hit in self.per_class.values()) / self.videos if self.per_class else None

    @property
    def mean_class_accuracy(self) -> float | None:
        """The mean over classes of each class's top-1 rate (classes weigh alike, whatever their video counts)."""
        return float(np.mean([hit / n for n, hit, _ in self.per_class.values()])) if self.per_class else None

    def rows(self, categories: Sequence[str]) -> list[tuple[str, int, float, float]]:
        """(class, videos, top-1, top-5) per class, as the per-class chart takes them."""
        return [(categories[k], n, top1 / n, top5 / n) for k, (n, top1, top5) in self.per_class.items()]


def accuracy(truth: Sequence[int], ranked: Sequence[Sequence[int]]) -> Accuracy:
    """Counts of ``ranked`` (each video's class indices, best first: as many as known) against ``truth``."""
    counts: dict[int, list[int]] = {}
    for label, order in zip(truth, ranked, strict=True):
        label, best = int(label), [int(k) for k in order[:5]]
        row = counts.setdefault(label, [0, 0, 0])
        row[0] += 1
        row[1] += best[0] == label
        row[2] += label in best
    return Accuracy({k: (n, top1, top5) for k, (n, top1, top5) in sorted(counts.items())})
