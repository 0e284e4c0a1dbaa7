"""The batch charts' layout, measured with matplotlib's renderer: every text inside the figure and no two texts
overlapping, at 2, 16 and 101 classes (issue 38: a cut title, a legend over the title)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from i3d.report import charts
from i3d.weights.sets import read_categories

KINETICS = list(read_categories("kinetics_400.txt", 400))


def text_boxes(figure) -> list[tuple[str, object]]:
    """(text, bounding box in pixels) of every visible, non-empty text the drawn figure holds."""
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in figure.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.figure is not None]


def assert_laid_out(figure) -> None:
    width, height = figure.bbox.width, figure.bbox.height
    boxes = text_boxes(figure)
    assert len(boxes) > 3
    for text, box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (text, box.bounds, width, height)
    edges = np.array([[box.x0, box.y0, box.x1, box.y1] for _, box in boxes])  # all pairs at once
    x0, y0, x1, y1 = (edges[:, i] for i in range(4))
    apart = ((x1[:, None] <= x0[None]) | (x1[None] <= x0[:, None])
             | (y1[:, None] <= y0[None]) | (y1[None] <= y0[:, None]))
    overlapping = [(boxes[i][0], boxes[j][0]) for i, j in zip(*np.nonzero(~apart)) if i < j]
    assert not overlapping, overlapping[:5]


def longest_names(count: int) -> list[str]:
    """The ``count`` longest Kinetics-400 class names, sorted: the widest labels a Kinetics batch can have."""
    return sorted(sorted(KINETICS, key=len, reverse=True)[:count])


@pytest.mark.parametrize("classes", [2, 16, 101])
def test_the_confusion_chart_keeps_every_text_inside_and_apart(classes):
    names = longest_names(classes)
    index = [KINETICS.index(n) for n in names]
    truth = [i for i in index for _ in range(9)]  # 9 videos a class, each with one miss: every count cell is used
    predicted = [i if k else index[(j + 1) % classes] for j, i in enumerate(index) for k in range(9)]
    predicted[0] = KINETICS.index("zumba") if "zumba" not in names else 0  # one answer outside: an "other" column
    with matplotlib.rc_context(charts.STYLE):
        figure = charts.confusion_figure(truth, predicted, KINETICS)
        assert (figure.bbox.width, figure.bbox.height) == charts.confusion_chart_size(classes, classes + 1)
        right = sum(t == p for t, p in zip(truth, predicted))
        title = f"Confusion over {classes} classes, {9 * classes} videos (top-1 {right / len(truth):.1%})"
        assert title in [t for t, _ in text_boxes(figure)]
        assert_laid_out(figure)


@pytest.mark.parametrize("classes", [2, 16, 101])
def test_the_per_class_chart_keeps_every_text_inside_and_apart(classes):
    rng = np.random.default_rng(classes)
    rows = [(name, 138, float(a), float(min(1.0, a + 0.1))) for name, a in
            zip(longest_names(classes), rng.uniform(0, 1, classes))]
    with matplotlib.rc_context(charts.STYLE):
        figure = charts.per_class_accuracy_figure(rows)
        assert (figure.bbox.width, figure.bbox.height) == charts.accuracy_chart_size(classes)
        texts = [t for t, _ in text_boxes(figure)]
        assert "top-1" in texts and "top-5" in texts and texts.count("n=138") == classes
        assert_laid_out(figure)
