"""The Fréchet distance straight from two sets of embeddings, through factors of their covariances.

A bootstrap or a subset fit computes the distance hundreds of times; tf-gan's form
(:mod:`i3d.tasks.fvd.frechet`) takes two full SVDs of D x D matrices each time
(D = 400). The same trace comes cheaper: for any factors ``S1 = F1 F1^T`` and
``S2 = F2 F2^T``, the eigenvalues of ``S1 S2`` are those of ``(F1^T F2)(F1^T F2)^T``,
so ``tr sqrt(S1 S2)`` is the sum of the singular values of ``F1^T F2`` (its nuclear
norm). With ``X`` the centred embeddings and ``R`` the triangle of its QR
decomposition (``X^T X = R^T R``), ``F = R^T / sqrt(N - 1)``: the matrix whose
singular values are needed is at most min(N, D) square, and only its values are
computed, never its vectors. The result equals tf-gan's to float64 rounding (tested
to 1e-9), apart from tf-gan's rule of leaving singular values below 1e-10 unrooted,
which moves a 400-dimensional distance by less than 1e-3.
"""

from __future__ import annotations

import numpy as np


def _factor(embeddings: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, R / sqrt(N - ddof)) with ``R^T R = X^T X`` for the centred (N, D) embeddings X."""
    mean = embeddings.mean(axis=0)
    triangle = np.linalg.qr(embeddings - mean, mode="r")
    return mean, triangle / np.sqrt(len(embeddings) - ddof)


def embedding_distance(real: np.ndarray, generated: np.ndarray, ddof: int = 1) -> float:
    """The Fréchet distance between the Gaussians of (N, D) and (M, D) embeddings (N, M >= 2), in float64, with
    covariances normalised by N - ``ddof`` (1: the reference's N-1; 0: N, as some protocols do)."""
    mean1, factor1 = _factor(np.asarray(real, np.float64), ddof)
    mean2, factor2 = _factor(np.asarray(generated, np.float64), ddof)
    cross = np.linalg.svd(factor1 @ factor2.T, compute_uv=False).sum()
    return float(np.sum((mean1 - mean2) ** 2) + np.sum(factor1 ** 2) + np.sum(factor2 ** 2) - 2.0 * cross)
