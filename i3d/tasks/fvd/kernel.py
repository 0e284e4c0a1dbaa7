"""KVD: the Kernel Video Distance, the unbiased squared MMD between two sides' embeddings.

Unterthiner et al. (2018) proposed KVD beside FVD; it is computed as KID is
(Binkowski et al., "Demystifying MMD GANs", 2018): the cubic polynomial kernel
``k(x, y) = (x.y / d + 1)^3`` on the same d-dimensional embeddings FVD uses, and the
unbiased estimator of MMD^2 on subsets of m videos from each side::

    MMD^2 = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2

Unlike FVD it has no bias from the number of videos (its expectation is the same
at every m) and assumes no Gaussian, but it is noisier; so it is averaged over
``subsets`` random subsets (each drawn without replacement, each side on its own)
and reported with the standard deviation over them. It can be slightly negative
when the two sides are alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBSETS = 100
SUBSET_SIZE = 1000
"""KID's customary subsets: 100 of 1000 (fewer when a side has fewer videos)."""


@dataclass(frozen=True)
class KernelDistance:
    """KVD's mean and standard deviation (N-1) over ``subsets`` subsets of ``subset_size`` videos per side."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, M) matrix of ``(x_i . y_j / d + 1)^3`` for (N, d) and (M, d) embeddings, in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 between (m, d) and (n, d) embeddings with the cubic polynomial kernel (m, n >= 2)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.sum() / (m * n))


def kernel_distance(real: np.ndarray, generated: np.ndarray, rng: np.random.Generator, subsets: int = SUBSETS,
                    subset_size: int | None = None) -> KernelDistance:
    """KVD over ``subsets`` subsets of ``subset_size`` videos per side (default: 1000 or the smaller side's count)."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    most = min(len(real), len(generated))
    size = min(SUBSET_SIZE, most) if subset_size is None else subset_size
    if not 2 <= size <= most or subsets < 1:
        raise ValueError(f"KVD needs subsets of 2 to {most} videos and at least one subset, not {subsets} of {size}")
    values = np.array([mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                                     generated[rng.choice(len(generated), size, replace=False)])
                       for _ in range(subsets)])
    return KernelDistance(float(values.mean()), float(values.std(ddof=1)) if subsets > 1 else 0.0, subsets, size)
