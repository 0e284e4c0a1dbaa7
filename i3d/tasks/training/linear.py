"""The linear head: per stream, multinomial logistic regression on standardised features, its strength C
chosen by grouped cross-validation (by log-likelihood, a proper scoring rule: accuracy alone picks heads
that are right but unsure) and its temperature fitted on the chosen C's cross-validated logits; and a
head's answers, scores and calibration on labelled videos."""

from __future__ import annotations

import numpy as np

from i3d.errors import InputError
from i3d.heads import Head, StreamHead
from i3d.results import fuse_logits
from i3d.tasks.batch.metrics import accuracy
from i3d.tasks.training.calibration import confidence, fit_temperature, log_likelihood, softmax
from i3d.tasks.training.features import Sample
from i3d.tasks.training.options import TrainOptions
from i3d.tasks.training.splits import grouped_folds

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
"""The regularisation strengths cross-validation chooses from (scikit-learn's C: larger, less regularised)."""


def _fit(x: np.ndarray, y: np.ndarray, c: float, class_weight: str, classes: int,
         seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of the logistic regression, as softmax logits over ``classes``; None when a class is
    missing from ``y``."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn: slow to import, only for training

    model = LogisticRegression(C=c, max_iter=2000, class_weight=None if class_weight == "none" else "balanced",
                               random_state=seed)
    model.fit(x, y)
    if set(model.classes_) != set(range(classes)):
        return None  # a fold without some class: skipped
    weight, bias = model.coef_, model.intercept_
    if weight.shape[0] == 1:  # two classes: scikit-learn keeps one row; as softmax logits, split it in two
        weight = np.concatenate([-weight / 2, weight / 2])
        bias = np.concatenate([-bias / 2, bias / 2])
    return weight.astype(np.float32), bias.astype(np.float32)


def _fold_logits(x: np.ndarray, owner: np.ndarray, weight: np.ndarray, bias: np.ndarray, videos: int) -> np.ndarray:
    """(videos, classes): a fold's held-out videos' logits, each the mean of its samples' (as
    :func:`video_logits` gives one video's under a head)."""
    logits = x @ weight.T + bias
    out = np.zeros((videos, weight.shape[0]), np.float64)
    np.add.at(out, owner, logits)
    return out / np.bincount(owner, minlength=videos)[:, None]


def _stacked(samples: list[Sample], stream: str) -> tuple[np.ndarray, np.ndarray]:
    """(all samples' feature rows, the index of the video each row belongs to)."""
    rows = [s.features[stream] for s in samples]
    return np.concatenate(rows), np.repeat(np.arange(len(rows)), [len(r) for r in rows])


def fit_stream(samples: list[Sample], stream: str, labels: np.ndarray, options: TrainOptions
               ) -> tuple[StreamHead, dict]:
    """One stream's head, C chosen by grouped cross-validation's log-likelihood and its logits divided by the
    temperature fitted on that C's held-out videos; returns it and the search's record (scores per C, the
    temperature, the cross-validated calibration before and after it)."""
    x, owner = _stacked(samples, stream)
    wide = x.astype(np.float64)  # float32 sums of large features overflow
    mean, scale = wide.mean(axis=0), wide.std(axis=0)
    scale[scale < 1e-6] = 1.0
    if not (np.isfinite(wide).all() and np.isfinite(mean.astype(np.float32)).all()
            and np.isfinite(scale.astype(np.float32)).all()):
        raise InputError(f"the {stream} features are not finite or too large to standardise in float32; check "
                         f"the {stream} weights")
    x = ((wide - mean) / scale).astype(np.float32)
    y = labels[owner]
    classes = int(labels.max()) + 1
    folds = grouped_folds([s.item for s in samples], labels, options.folds, options.seed)
    splits = len(folds)
    # per fold: its training rows, its held-out rows, and which held-out video each of those rows belongs to
    masks = []
    for train_videos, test_videos in folds:
        test_rows = np.isin(owner, test_videos)
        position = np.zeros(len(samples), np.int64)
        position[test_videos] = np.arange(len(test_videos))
        masks.append((np.isin(owner, train_videos), test_rows, position[owner[test_rows]]))
    scores, held_out = {}, {}
    for c in C_GRID:
        logits = np.full((len(samples), classes), np.nan)  # each video's logits from the fold that held it out
        for (train_videos, test_videos), (rows, test_rows, local) in zip(folds, masks):
            fitted = _fit(x[rows], y[rows], c, options.class_weight, classes, options.seed)
            if fitted is not None:
                logits[test_videos] = _fold_logits(x[test_rows], local, *fitted, len(test_videos))
        counted = ~np.isnan(logits).any(axis=1)
        if counted.any():
            truth = labels[counted]
            scores[c] = (float((logits[counted].argmax(axis=1) == truth).mean()),
                         log_likelihood(logits[counted], truth))
            held_out[c] = (logits[counted], truth)
    if not scores:
        raise InputError("no cross-validation fold held every class; add videos (or groups) to the smallest classes")
    best = max(scores, key=lambda c: (scores[c][1], scores[c][0]))  # log-likelihood first, accuracy on a tie
    cv_logits, cv_truth = held_out[best]
    temperature = fit_temperature(cv_logits, cv_truth)
    weight, bias = _fit(x, y, best, options.class_weight, classes, options.seed)
    record = {"C": best, "chosen_by": "cross-validated log-likelihood", "folds": splits,
              "cv": {f"{c:g}": {"accuracy": round(a, 4), "log_likelihood": round(ll, 4)}
                     for c, (a, ll) in scores.items()},
              "temperature": round(temperature, 4),
              "cv_calibration": {"before_temperature": confidence(softmax(cv_logits), cv_truth),
                                 "after_temperature": confidence(softmax(cv_logits / temperature), cv_truth)}}
    head = StreamHead((weight / temperature).astype(np.float32), (bias / temperature).astype(np.float32),
                      mean.astype(np.float32), scale.astype(np.float32))
    return head, record


def video_logits(head: Head, sample: Sample, fusion: str) -> np.ndarray:
    """A video's fused logits under ``head``: per stream the mean of its windows' (and views') logits."""
    return fuse_logits([head.logits(stream, sample.features[stream]).mean(axis=0) for stream in head.streams],
                       fusion)


def scores(head: Head, samples: list[Sample], fusion: str) -> dict:
    """Top-1, top-5 and mean class accuracy of ``head`` on labelled samples, its calibration (top-1 ECE, how
    sure the right answers are) and the confusion counts."""
    index = {label: i for i, label in enumerate(head.classes)}
    truth, ranked, logits = [], [], []
    for sample in samples:
        if sample.item.label not in index:
            raise InputError(f"{sample.item.path}: label {sample.item.label!r} is not a class of the head "
                             f"({', '.join(head.classes)})")
        truth.append(index[sample.item.label])
        logits.append(video_logits(head, sample, fusion))
        ranked.append(np.argsort(-logits[-1]))
    counts = accuracy(truth, ranked)
    per_class = {head.classes[k]: {"videos": n, "top1": top1 / n, "top5": top5 / n}
                 for k, (n, top1, top5) in counts.per_class.items()}
    return {"videos": len(samples), "top1": counts.top1, "top5": counts.top5,
            "mean_class_accuracy": counts.mean_class_accuracy, "per_class": per_class,
            "calibration": confidence(softmax(np.stack(logits)), np.array(truth)), "truth": truth,
            "predicted": [int(order[0]) for order in ranked]}
