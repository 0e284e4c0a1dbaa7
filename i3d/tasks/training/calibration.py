"""How far a head's probabilities can be trusted: temperature scaling and the expected calibration error.

A head whose top-1 probability is 0.5 should be right half the time: ``--threshold`` in ``live``
and ``segments`` reads the probability, so an under-confident head stays silent on right
answers. The temperature T divides the logits (softmax(logits / T)); it is fitted by maximum
likelihood on cross-validated logits, videos the fold's head was not trained on (Guo et al.,
"On Calibration of Modern Neural Networks", 2017), and folded into the head's weights.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error (Guo et al.'s 15)."""
TEMPERATURES = (0.05, 20.0)
"""The range a fitted temperature is kept in (a fold set with every answer right would push it to 0)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    from scipy.special import softmax as rows  # scikit-learn's own dependency; slow to import, only for training

    return rows(np.asarray(logits, np.float64), axis=1)


def log_likelihood(logits: np.ndarray, truth: np.ndarray) -> float:
    """Mean log-probability of the true classes (a proper scoring rule: higher is better)."""
    from scipy.special import log_softmax  # as above

    log_p = log_softmax(np.asarray(logits, np.float64), axis=1)
    return float(log_p[np.arange(len(truth)), truth].mean())


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-1 ECE: over equal-width bins of the top-1 probability, the videos' share times |accuracy - mean
    probability| in the bin, summed (0: calibrated)."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence, right = probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(truth)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # bin b holds (b/bins, (b+1)/bins]
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(right[inside].mean() - confidence[inside].mean())
    return float(total / len(truth))


def confidence(probabilities: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy, ECE, and how sure the right answers are: mean top-1 probability when right, and the share of
    right answers whose top-1 probability is under 0.5 (those a --threshold 0.5 misses)."""
    probabilities = np.asarray(probabilities, np.float64)
    top = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(truth)
    return {"videos": int(len(truth)), "accuracy": round(float(right.mean()), 4),
            "ece": round(expected_calibration_error(probabilities, truth), 4),
            "mean_top1_probability_when_right": round(float(top[right].mean()), 4) if right.any() else None,
            "right_under_0.5": round(float((top[right] < 0.5).mean()), 4) if right.any() else None}


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that maximises the log-likelihood of ``truth`` under softmax(logits / T), in
    :data:`TEMPERATURES` (a one-dimensional bounded search on log T)."""
    from scipy.optimize import minimize_scalar  # scikit-learn's own dependency; slow to import, only for training

    logits, truth = np.asarray(logits, np.float64), np.asarray(truth)
    low, high = np.log(TEMPERATURES)
    found = minimize_scalar(lambda log_t: -log_likelihood(logits / np.exp(log_t), truth), bounds=(low, high),
                            method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))
