"""The Fréchet distance between two Gaussians, in float64, as tf-gan computes it for FID and FVD.

``d = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(A S2 A)`` with ``A = sqrt(S1)``:
the symmetric form of ``tr sqrt(S1 S2)``. Each square root is taken through an SVD
(``U diag(s') V^T`` with ``s' = sqrt(s)``, where singular values below 1e-10 are
kept as they are, not rooted), as tf-gan's ``trace_sqrt_product`` does; covariances
use N-1 normalisation. This is the reference FVD's formula, step for step.
"""

from __future__ import annotations

import numpy as np

from i3d.errors import InputError

SQRT_EPS = 1e-10
"""Singular values below this are left unrooted, as tf-gan does."""


def moments(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance with N-1 normalisation) of (N, D) embeddings, in float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"need at least 2 embeddings for a covariance, got shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """tf-gan's square root of a symmetric positive semi-definite matrix, through its SVD."""
    u, s, vt = np.linalg.svd(matrix)
    rooted = np.where(s < SQRT_EPS, s, np.sqrt(s))
    return (u * rooted) @ vt


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr sqrt(sigma1 sigma2)``, computed as ``tr sqrt(A sigma2 A)`` with ``A = sqrt(sigma1)``."""
    root = symmetric_sqrt(sigma1)
    return float(np.trace(symmetric_sqrt(root @ (sigma2 @ root))))


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet distance between N(mean1, cov1) and N(mean2, cov2), float64 throughout."""
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    trace = np.trace(cov1 + cov2) - 2.0 * trace_sqrt_product(cov1, cov2)
    return float(trace + np.sum((mean1 - mean2) ** 2))
