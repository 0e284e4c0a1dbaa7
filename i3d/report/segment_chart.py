"""A long video's timeline as PNG: a row per class, its segments as bars over its score curve.

Rows are the classes with segments (at most :data:`MAX_ROWS`, the best-scoring
first), or the best-scoring classes when none has one. 1000 px wide, 90 +
:data:`ROW` px per row high; drawn as :mod:`i3d.report.charts` draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i3d.report.charts import COLOURS, STYLE, WIDTH, new_figure, save_figure
from i3d.results import Segment

ROW, EXTRA, MAX_ROWS, EMPTY_ROWS = 70, 90, 12, 3


def chart_classes(scores: np.ndarray, segments: Sequence[Segment]) -> list[int]:
    """The class indices drawn, top row first."""
    best: dict[int, float] = {}
    for s in segments:
        best[s.index] = max(best.get(s.index, 0.0), s.score)
    if best:
        return sorted(best, key=lambda i: -best[i])[:MAX_ROWS]
    return [int(i) for i in np.argsort(-scores.max(axis=0), kind="stable")[:EMPTY_ROWS]]


def timeline_size(scores: np.ndarray, segments: Sequence[Segment]) -> tuple[int, int]:
    return WIDTH, EXTRA + ROW * len(chart_classes(scores, segments))


def plot_segments(times: np.ndarray, scores: np.ndarray, categories: Sequence[str], segments: Sequence[Segment],
                  path: str | os.PathLike, title: str = "") -> Path:
    """Draw the timeline of ``scores`` ((F, C), the smoothed frame scores at ``times``) and ``segments``."""
    import matplotlib

    rows = chart_classes(scores, segments)
    width, height = timeline_size(scores, segments)
    with matplotlib.rc_context(STYLE):
        figure = new_figure(width, height)
        top = 1 - 40 / height
        axes = figure.add_axes((0.25, 50 / height, 0.72, top - 50 / height))
        end = float(times[-1] + (times[1] - times[0] if len(times) > 1 else 0.04)) if len(times) else 1.0
        for row, index in enumerate(rows):
            base = len(rows) - 1 - row
            colour = COLOURS[row % len(COLOURS)]
            axes.fill_between(times, base, base + 0.85 * scores[:, index], color=colour, alpha=0.25, linewidth=0)
            axes.plot(times, base + 0.85 * scores[:, index], color=colour, linewidth=1)
            for s in (s for s in segments if s.index == index):
                axes.broken_barh([(s.start, s.duration)], (base + 0.02, 0.12), color=colour)
        axes.set_yticks([len(rows) - 1 - r + 0.4 for r in range(len(rows))])
        axes.set_yticklabels([categories[i][:32] for i in rows])
        axes.set_ylim(0, max(len(rows), 1))
        axes.set_xlim(float(times[0]) if len(times) else 0.0, end)
        axes.set_xlabel("seconds")
        axes.grid(axis="x", color="#dddddd", linewidth=0.6)
        if title:
            figure.text(0.5, 1 - 14 / height, title[:110], ha="center", va="top", fontsize=12, fontweight="bold")
        return save_figure(figure, path)


