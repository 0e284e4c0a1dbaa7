"""Charts as PNG: a clip's top classes, a video's timeline, a dataset's confusion matrix and per-class accuracy.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display,
no global figure list); each figure is cleared once saved. Sizes in pixels
(at 100 dpi):

- :func:`plot_result`: 1000 wide; 110 + 30 per class high for the bar chart,
  plus 400 for the timeline when the result has several windows.
- :func:`plot_confusion`: 300 + ``cell`` per column wide (at least 700), 220 +
  ``cell`` per row high (at least 500), ``cell`` = 24 px, less for many classes
  so the image stays within about 4000 px.
- :func:`plot_per_class_accuracy`: 1000 wide, 120 + ``row`` per class high,
  ``row`` = 22 px, less for many classes (same limit).

Colours are the Okabe-Ito set, which reads for colour-blind eyes too; text is
DejaVu Sans, matplotlib's own font, so charts look the same on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i3d.files import atomic_path, check_output_file
from i3d.results import Result, softmax

WIDTH = 1000
DPI = 100
BAR_ROW, BAR_EXTRA, TIMELINE_HEIGHT = 30, 110, 400
TIMELINE_CLASSES = 5
"""Classes followed over time: the video's top ones, and any class that wins a window (at most 7 in all)."""
CELL, ROW, MAX_SIDE = 24, 22, 4000
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
STYLE = {"font.family": "DejaVu Sans", "font.size": 11, "axes.titlesize": 13, "axes.titleweight": "bold",
         "axes.edgecolor": "#888888", "axes.labelcolor": "#222222", "xtick.color": "#444444",
         "ytick.color": "#222222", "axes.spines.top": False, "axes.spines.right": False}


def check_chart_path(path: str | os.PathLike, option: str = "out") -> Path:
    """Refuse a chart name no run could write (not .png, a folder, an unwritable folder): OptionError."""
    return check_output_file(path, option, (".png",))


def result_chart_size(result: Result) -> tuple[int, int]:
    """(width, height) in pixels of :func:`plot_result`'s PNG for ``result``."""
    height = BAR_EXTRA + BAR_ROW * len(result.top)
    return WIDTH, height + (TIMELINE_HEIGHT if len(result.windows) > 1 else 0)


def _cell(count: int, preferred: int, fixed: int) -> int:
    """Pixels per row or column: ``preferred``, less when ``count`` of them would pass MAX_SIDE (at least 2)."""
    return max(2, min(preferred, (MAX_SIDE - fixed) // max(count, 1)))


def confusion_chart_size(rows: int, columns: int) -> tuple[int, int]:
    cell = _cell(max(rows, columns), CELL, 300)
    return max(700, 300 + cell * columns), max(500, 220 + cell * rows)


def accuracy_chart_size(classes: int) -> tuple[int, int]:
    return WIDTH, 120 + _cell(classes, ROW, 120) * classes


def new_figure(width: int, height: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG at its exact pixel size (atomically), then clear it."""
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=DPI)
    finally:
        figure.clear()
    return path


def _percent(probability: float) -> str:
    return f"{probability:.1%}" if probability >= 0.001 else f"{probability:.1e}"


def _bars(axes, result: Result) -> None:
    rows = result.top
    y = np.arange(len(rows))
    values = [row.probability for row in rows]
    axes.barh(y, values, color=[COLOURS[0]] + [COLOURS[4]] * (len(rows) - 1), height=0.7)
    axes.set_yticks(y, [row.label for row in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xticks(np.linspace(0, 1, 6), [f"{v:.0%}" for v in np.linspace(0, 1, 6)])
    for position, value in zip(y, values):
        axes.text(value + 0.01, position, _percent(value), va="center", fontsize=10, color="#222222")
    axes.set_title(f"Top {len(rows)} classes" + (f" (mean over {len(result.windows)} windows)"
                                                 if len(result.windows) > 1 else ""), loc="left")
    axes.grid(axis="x", color="#e5e5e5")
    axes.set_axisbelow(True)


def _timeline(axes, result: Result) -> None:
    classes = [row.index for row in result.top[:TIMELINE_CLASSES]]
    for window in result.windows:
        if window.top[0].index not in classes and len(classes) < len(COLOURS):
            classes.append(window.top[0].index)
    starts = np.array([w.span.start for w in result.windows])
    ends = np.array([w.span.end for w in result.windows])
    centres = (starts + ends) / 2
    probabilities = np.stack([softmax(w.logits) for w in result.windows])
    for colour, index in zip(COLOURS, classes):
        axes.plot(centres, probabilities[:, index], marker="o", color=colour, linewidth=2,
                  label=result.categories[index])
    for start, end in zip(starts, ends):  # each window's extent, as a faint band along the bottom
        axes.axvspan(start, end, ymin=0, ymax=0.025, color="#999999", alpha=0.35, linewidth=0)
    axes.set_xlim(starts.min(), ends.max())
    axes.set_ylim(-0.02, 1.05)
    axes.set_xlabel("seconds (each point is a window, at its centre)")
    axes.set_ylabel("probability")
    axes.set_title("Over time", loc="left")
    axes.grid(color="#e5e5e5")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(classes), 3), frameon=False)


def plot_result(result: Result, path: str | os.PathLike) -> Path:
    """A horizontal bar chart of ``result.top``; under it, with several windows, the top classes over time."""
    import matplotlib

    path = check_chart_path(path)
    width, height = result_chart_size(result)
    with matplotlib.rc_context(STYLE):
        figure = new_figure(width, height)
        bars = BAR_EXTRA + BAR_ROW * len(result.top)
        if len(result.windows) > 1:
            room, gap = height - 45 - 130, 110  # pixels for the two axes and the gap between them
            grid = figure.add_gridspec(2, 1, height_ratios=(bars - gap, TIMELINE_HEIGHT - 130 - 45),
                                       left=0.28, right=0.96, top=1 - 45 / height, bottom=130 / height,
                                       hspace=2 * gap / (room - gap))
            _bars(figure.add_subplot(grid[0]), result)
            _timeline(figure.add_subplot(grid[1]), result)
        else:
            figure.subplots_adjust(left=0.28, right=0.96, top=1 - 45 / height, bottom=50 / height)
            _bars(figure.add_subplot(), result)
        return save_figure(figure, path)


def plot_confusion(truth: Sequence[int], predicted: Sequence[int], categories: Sequence[str],
                   path: str | os.PathLike) -> Path:
    """The confusion matrix over the true classes present, rows normalised; an "other" column for the rest.

    Row i is the videos of true class i; each cell shows how many of them were
    predicted as the column's class (count written in the cell, colour = share
    of the row). Predictions outside the true classes fall in "other".
    """
    import matplotlib

    path = check_chart_path(path)
    with matplotlib.rc_context(STYLE):
        return save_figure(confusion_figure(truth, predicted, categories), path)


def confusion_figure(truth: Sequence[int], predicted: Sequence[int], categories: Sequence[str]):
    """:func:`plot_confusion`'s figure (drawn under :data:`STYLE`). Its layout is matplotlib's constrained one,
    so the title, the class names and the axis labels are kept inside the figure, apart."""
    present = sorted(set(truth), key=lambda i: categories[i])
    where = {index: row for row, index in enumerate(present)}
    other = any(p not in where for p in predicted)
    columns = len(present) + other
    counts = np.zeros((len(present), columns), np.int64)
    for t, p in zip(truth, predicted):
        counts[where[t], where.get(p, columns - 1)] += 1
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    width, height = confusion_chart_size(len(present), columns)
    cell = _cell(max(len(present), columns), CELL, 300)
    names = [categories[i] for i in present] + (["other"] if other else [])
    figure = new_figure(width, height)
    figure.set_layout_engine("constrained", w_pad=10 / DPI, h_pad=10 / DPI)
    axes = figure.add_subplot()
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    size = max(4.0, min(9.0, cell * 0.4))
    if cell >= 8:  # upright names would overlap their neighbours: the columns' are vertical
        axes.set_xticks(range(columns), names, rotation=90, fontsize=size)
        axes.set_yticks(range(len(present)), names[: len(present)], fontsize=size)
    else:
        axes.set_xticks([])
        axes.set_yticks([])
    if cell >= 14:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axes.text(column, row, str(count), ha="center", va="center", fontsize=size,
                          color="white" if shares[row, column] > 0.5 else "#222222")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true class")
    accuracy = np.trace(counts[:, : len(present)]) / max(counts.sum(), 1)
    figure.suptitle(f"Confusion over {len(present)} classes, {counts.sum()} videos (top-1 {accuracy:.1%})",
                    x=10 / width, ha="left", fontsize=STYLE["axes.titlesize"], fontweight="bold")
    return figure


def plot_per_class_accuracy(rows: Sequence[tuple[str, int, float, float]], path: str | os.PathLike) -> Path:
    """Per-class top-1 (dark) and top-5 (light) accuracy, best first; ``rows`` are (class, videos, top1, top5)."""
    import matplotlib

    path = check_chart_path(path)
    with matplotlib.rc_context(STYLE):
        return save_figure(per_class_accuracy_figure(rows), path)


def per_class_accuracy_figure(rows: Sequence[tuple[str, int, float, float]]):
    """:func:`plot_per_class_accuracy`'s figure (drawn under :data:`STYLE`): the title at the top left, the
    legend at the top right, both above the bars, in matplotlib's constrained layout."""
    rows = sorted(rows, key=lambda r: (-r[2], -r[3], r[0]))
    width, height = accuracy_chart_size(len(rows))
    row_px = _cell(len(rows), ROW, 120)
    figure = new_figure(width, height)
    figure.set_layout_engine("constrained", w_pad=10 / DPI, h_pad=6 / DPI)
    axes = figure.add_subplot()
    y = np.arange(len(rows))
    axes.barh(y, [r[3] for r in rows], color="#A6CEE3", height=0.8, label="top-5")
    axes.barh(y, [r[2] for r in rows], color=COLOURS[0], height=0.8, label="top-1")
    size = max(4.0, min(10.0, row_px * 0.45))
    if row_px >= 8:
        axes.set_yticks(y, [r[0] for r in rows], fontsize=size)
        for position, (_, videos, _, _) in zip(y, rows):
            axes.text(1.01, position, f"n={videos}", va="center", fontsize=size, color="#444444",
                      transform=axes.get_yaxis_transform())
    else:
        axes.set_yticks([])
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlim(0, 1)
    axes.set_xticks(np.linspace(0, 1, 6), [f"{v:.0%}" for v in np.linspace(0, 1, 6)])
    axes.grid(axis="x", color="#e5e5e5")
    axes.set_axisbelow(True)
    mean = float(np.mean([r[2] for r in rows])) if rows else 0.0
    figure.suptitle(f"Per-class accuracy ({len(rows)} classes, mean top-1 {mean:.1%})", x=10 / width, ha="left",
                    fontsize=STYLE["axes.titlesize"], fontweight="bold")
    figure.legend(loc="outside upper right", ncol=2, frameon=False)
    return figure
