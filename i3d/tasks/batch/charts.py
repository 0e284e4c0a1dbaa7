"""A dataset run's charts: the confusion matrix and per-class accuracy, best effort."""

from __future__ import annotations

from pathlib import Path

from i3d.files import warn_not_written

CHARTS = ("confusion.png", "per_class_accuracy.png")
"""The charts :func:`draw_charts` draws beside the summary's tables."""


def draw_charts(out: Path, truth: list[int], predicted: list[int], categories: tuple[str, ...],
                rows: list[tuple[str, int, float, float]]) -> None:
    """confusion.png and per_class_accuracy.png in ``out``, when some videos are labelled; best effort.

    A chart that cannot be drawn (matplotlib missing, disk full) costs one
    warning line; the records and the summary are already written.
    """
    if not truth:
        return
    try:  # matplotlib: optional, and slow to import
        from i3d.report.charts import plot_confusion, plot_per_class_accuracy
    except ImportError as err:
        warn_not_written(" and ".join(CHARTS), err)
        return
    for name, draw in ((CHARTS[0], lambda path: plot_confusion(truth, predicted, categories, path)),
                       (CHARTS[1], lambda path: plot_per_class_accuracy(rows, path))):
        try:
            draw(out / name)
        except Exception as err:  # noqa: BLE001 - a chart never breaks a batch
            warn_not_written(name, err)
