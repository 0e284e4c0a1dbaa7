"""A head's probabilities: C chosen by cross-validated log-likelihood, a temperature fitted on held-out videos, and
the expected calibration error reported (issue 38, item 12). Synthetic features: no network needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from i3d.inputs.dataset_items import VideoItem
from i3d.tasks.training.calibration import confidence, expected_calibration_error, fit_temperature
from i3d.tasks.training.features import Sample
from i3d.tasks.training.linear import C_GRID, fit_stream
from i3d.tasks.training.options import TrainOptions


def test_ece_is_the_weighted_gap_between_accuracy_and_confidence_per_bin():
    # bin (0.6, 0.667]: two videos at 0.65, one right: |0.5 - 0.65| = 0.15; bin (0.933, 1]: two at 0.95, both
    # right: |1 - 0.95| = 0.05; weights 2/4 each -> 0.10
    probabilities = np.array([[0.65, 0.35], [0.65, 0.35], [0.95, 0.05], [0.05, 0.95]])
    truth = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probabilities, truth) == pytest.approx(0.5 * 0.15 + 0.5 * 0.05)
    stats = confidence(probabilities, truth)
    assert stats["accuracy"] == 0.75 and stats["mean_top1_probability_when_right"] == pytest.approx(
        (0.65 + 0.95 + 0.95) / 3, abs=1e-4) and stats["right_under_0.5"] == 0.0


def test_the_temperature_found_is_the_one_the_answers_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(4000, 5))
    scaled = logits / 0.4  # answers drawn from softmax(logits / 0.4): the right temperature is 0.4
    p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(5, p=row) for row in p])
    assert fit_temperature(logits, truth) == pytest.approx(0.4, rel=0.08)


def samples_of(features: np.ndarray, labels: np.ndarray) -> list[Sample]:
    """One video per row (two windows each: the row and a jittered copy), each its own group."""
    rng = np.random.default_rng(1)
    return [Sample(VideoItem(f"v{i}", Path(f"v{i}.mp4"), str(label), group=f"g{i}"),
                   {"rgb": np.stack([row, row + rng.normal(scale=0.1, size=row.shape)]).astype(np.float32)})
            for i, (row, label) in enumerate(zip(features, labels))]


def test_the_head_is_chosen_by_log_likelihood_and_divided_by_its_temperature():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 20)
    centres = rng.normal(size=(3, 12))
    features = centres[labels] + rng.normal(scale=1.2, size=(60, 12))  # overlapping classes: some answers wrong
    samples = samples_of(features, labels)
    head, record = fit_stream(samples, "rgb", labels, TrainOptions())
    cv = {float(c): row for c, row in record["cv"].items()}
    assert set(cv) == set(C_GRID) and record["chosen_by"] == "cross-validated log-likelihood"
    assert record["C"] == max(cv, key=lambda c: cv[c]["log_likelihood"])
    # the weights are scikit-learn's at that C on the standardised windows, divided by the temperature
    x = np.concatenate([s.features["rgb"] for s in samples]).astype(np.float64)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    model = LogisticRegression(C=record["C"], max_iter=2000, class_weight="balanced", random_state=0)
    model.fit(x, np.repeat(labels, 2))
    t = record["temperature"]
    np.testing.assert_allclose(head.weight * t, model.coef_, rtol=1e-3, atol=1e-3)
    before, after = record["cv_calibration"]["before_temperature"], record["cv_calibration"]["after_temperature"]
    assert before["accuracy"] == after["accuracy"]  # a temperature never changes an answer
    assert after["ece"] <= before["ece"] + 1e-9 and 0 <= after["ece"] < 0.25
