"""FVD at infinite N: the Fréchet distance is linear in 1/N, so fit it over subset sizes and read it at 1/N = 0.

Chong and Forsyth ("Effectively Unbiased FID and Inception Score and where to find
them", CVPR 2020) show that FID computed from N samples is, to first order,
``FID_inf + k / N``: the estimated covariances carry noise whose share of the trace
falls as 1/N. The same holds for FVD. So: draw subsets of N videos from each side
(without replacement; ``draws`` subsets per size), compute FVD of each pair (the
reference's value, through covariance factors: :mod:`i3d.tasks.fvd.factored`),
fit a line to the mean FVD at each size against 1/N by least squares, and report
its intercept, FVD_inf, with the slope k and the fit's R^2 (near 1 when the line
describes the points). Subsets at the full size are the full sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from i3d.tasks.fvd.factored import embedding_distance

SIZES = 8
"""Subset sizes by default: evenly spaced from a fifth of the smaller side's videos to all of them."""
SMALLEST_SIZE = 2
"""A covariance needs two videos."""


@dataclass(frozen=True)
class UnbiasedFVD:
    """FVD_inf (the fit's intercept), the slope, R^2, and the sizes with the mean and standard deviation (N-1)
    of FVD over the ``draws`` subsets at each."""

    value: float
    slope: float
    r2: float
    sizes: tuple[int, ...]
    distances: tuple[float, ...]
    spread: tuple[float, ...]
    draws: int


def default_sizes(count: int, sizes: int = SIZES) -> tuple[int, ...]:
    """``sizes`` subset sizes evenly spaced from ``count // 5`` (at least 2) to ``count``, without repeats."""
    smallest = max(count // 5, SMALLEST_SIZE)
    return tuple(sorted({int(round(n)) for n in np.linspace(smallest, count, sizes)}))


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, R^2) of the least-squares line through the points (x, y)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (slope * x + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return float(slope), float(intercept), 1.0 - residual / total if total > 0 else 1.0


def unbiased_fvd(real: np.ndarray, generated: np.ndarray, sizes: tuple[int, ...], rng: np.random.Generator,
                 draws: int = 3, ddof: int = 1) -> UnbiasedFVD:
    """FVD_inf from subsets of ``sizes`` videos (each at most the smaller side's count, two sizes at least;
    covariances normalised by N - ``ddof``: the intercept is the same for either, the slope is not)."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    sizes = tuple(sorted(set(sizes)))
    if len(sizes) < 2 or sizes[0] < SMALLEST_SIZE or sizes[-1] > min(len(real), len(generated)):
        raise ValueError(f"subset sizes {sizes}: need two or more from {SMALLEST_SIZE} to "
                         f"{min(len(real), len(generated))}")
    points = np.empty((len(sizes), draws))
    for i, size in enumerate(sizes):
        if size == len(real) == len(generated):  # every subset is the full sets
            points[i] = embedding_distance(real, generated, ddof)
            continue
        for d in range(draws):
            pick_real = rng.choice(len(real), size, replace=False)
            pick_generated = rng.choice(len(generated), size, replace=False)
            points[i, d] = embedding_distance(real[pick_real], generated[pick_generated], ddof)
    inverse = 1.0 / np.asarray(sizes, np.float64)
    slope, intercept, r2 = fit_line(inverse, points.mean(axis=1))
    spread = points.std(axis=1, ddof=1) if draws > 1 else np.zeros(len(sizes))
    return UnbiasedFVD(intercept, slope, r2, sizes, tuple(map(float, points.mean(axis=1))), tuple(map(float, spread)),
                       draws)
