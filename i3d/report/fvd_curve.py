"""FVD against 1/N as PNG: the subset points, the fitted line read at 1/N = 0 (FVD_inf), the bootstrap band.

Each point is the mean FVD over the subsets of N videos per side, with a bar of
one standard deviation over them; the line is the least-squares fit through the
points, drawn on to 1/N = 0, where its intercept, FVD_inf, is marked. With a
bootstrap interval, the band is the line shifted by that interval's offsets from
the full sets' FVD (``low - FVD`` below, ``high - FVD`` above): how far the whole
curve moves with the choice of videos. 1000 x 600 px, drawn as
:mod:`i3d.report.charts` draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i3d.report.charts import COLOURS, STYLE, new_figure, save_figure

WIDTH, HEIGHT = 1000, 600


def plot_fvd_curve(sizes: Sequence[int], distances: Sequence[float], spread: Sequence[float], slope: float,
                   intercept: float, r2: float, path: str | os.PathLike,
                   interval: tuple[float, float, float, float] | None = None, title: str = "") -> Path:
    """Draw FVD at each subset size (mean ``distances``, ``spread`` one standard deviation) against 1/N with the
    line ``intercept + slope / N``; ``interval``: (FVD, low, high, confidence) of a bootstrap, drawn as a band."""
    import matplotlib

    inverse = 1.0 / np.asarray(sizes, np.float64)
    x = np.linspace(0.0, float(inverse.max()) * 1.05, 100)
    line = intercept + slope * x
    with matplotlib.rc_context(STYLE):
        figure = new_figure(WIDTH, HEIGHT)
        axes = figure.add_axes((0.1, 0.12, 0.86, 0.76))
        if interval is not None:
            distance, low, high, confidence = interval
            axes.fill_between(x, line + (low - distance), line + (high - distance), color=COLOURS[4], alpha=0.25,
                              linewidth=0, label=f"bootstrap {confidence:.0%} interval, along the fit")
        axes.plot(x, line, color=COLOURS[0], linewidth=1.5,
                  label=f"fit: {intercept:.4g} + {slope:.4g} / N  (R² {r2:.3f})")
        axes.errorbar(inverse, distances, yerr=spread, fmt="o", color=COLOURS[1], ecolor=COLOURS[1], capsize=3,
                      label="FVD over subsets of N videos per side (mean ± sd)")
        labelled = -np.inf
        for n, xi, yi in sorted(zip(sizes, inverse, distances), key=lambda point: point[1]):
            if xi - labelled > 0.06 * x[-1]:  # a label per point where they do not crowd
                axes.annotate(f"N={n}", (xi, yi), textcoords="offset points", xytext=(4, 6), fontsize=9,
                              color="#444444")
                labelled = xi
        axes.plot([0.0], [intercept], marker="D", color=COLOURS[5], linestyle="none",
                  label=f"FVD∞ = {intercept:.4g}")
        axes.set_xlim(-0.02 * float(x[-1]), float(x[-1]))
        axes.set_xlabel("1 / N  (videos per side)")
        axes.set_ylabel("FVD")
        axes.grid(color="#dddddd", linewidth=0.6)
        axes.legend(loc="upper left", frameon=False, fontsize=10)
        figure.text(0.5, 1 - 14 / HEIGHT, (title or "FVD against 1/N, read at 1/N = 0")[:110], ha="center",
                    va="top", fontsize=12, fontweight="bold")
        return save_figure(figure, path)
