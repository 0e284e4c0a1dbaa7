"""Temporal detection scored as ActivityNet's detection evaluation defines it: AP per class, mAP per tIoU.

For one class and one tIoU threshold, the predicted segments of every video are
ranked by score, highest first (equal scores keep the order they were given
in). Each in turn is matched to the ground-truth segment of its video and class
with which it has the highest tIoU (intersection over union of the two time
intervals; among equal tIoUs the first listed), skipping those already matched
at this threshold: a match at tIoU >= the threshold is a true positive, anything
else a false positive. Precision and recall follow after each prediction; AP is
the area under the precision-recall curve after precision is made monotone (each
precision replaced by the highest at that recall or beyond), summed where recall
changes. mAP is the mean AP over the classes that have ground truth.

What cannot be scored is left out, one line each, and the rest is scored: a
segment ending before it starts, a prediction of a class with no ground truth, a
video of the results with no ground truth, a video of the ground truth with no
results (not run, which is not the same as nothing found: an empty list of
results is scored).

Ground truth is ActivityNet's JSON (``{"database": {video: {"annotations":
[{"label", "segment": [start, end]}]}}}``) or THUMOS-14's per-class files
(``<Class>_val.txt`` / ``<Class>_test.txt``: ``video start end`` per line; a folder
of them or one file; ``Ambiguous_*`` files are left out, as THUMOS does).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d.errors import InputError
from i3d.files import read_regular_file
from i3d.inputs.dataset_items import text_lines

TIOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MAX_GROUND_TRUTH_BYTES = 256 << 20
"""The largest ground-truth or results file read (ActivityNet 1.3's ground truth is about 5 MB)."""


@dataclass(frozen=True)
class Span:
    """One labelled interval of one video (a ground-truth segment, or a scored prediction)."""

    video: str
    label: str
    start: float
    end: float
    score: float = 1.0


@dataclass
class Evaluation:
    """AP per class and threshold, mAP per threshold and their mean, and what was left out (one line each)."""

    ap: dict[str, dict[str, float]]
    map: dict[str, float]
    left_out: list[str] = field(default_factory=list)
    videos: int = 0
    ground_truth_segments: int = 0
    predicted_segments: int = 0

    def as_json(self) -> dict:
        return {"map": self.map, "ap": self.ap, "left_out": self.left_out, "videos": self.videos,
                "ground_truth_segments": self.ground_truth_segments, "predicted_segments": self.predicted_segments}


def tiou(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Temporal IoU of [start, end] with each of [starts, ends]."""
    inter = np.clip(np.minimum(end, ends) - np.maximum(start, starts), 0.0, None)
    union = (end - start) + (ends - starts) - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the monotone precision envelope, summed where recall changes."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[changes] - r[changes - 1]) * p[changes]))


def average_precision(truth: Sequence[Span], predicted: Sequence[Span],
                      thresholds: Sequence[float] = TIOU_THRESHOLDS) -> np.ndarray:
    """One class's AP at each tIoU threshold (``truth`` not empty)."""
    if not truth:
        raise ValueError("average precision needs at least one ground-truth segment")
    order = sorted(range(len(predicted)), key=lambda i: -predicted[i].score)  # stable: ties keep their order
    by_video: dict[str, list[int]] = {}
    for i, span in enumerate(truth):
        by_video.setdefault(span.video, []).append(i)
    starts = np.array([s.start for s in truth])
    ends = np.array([s.end for s in truth])
    matched = np.zeros((len(thresholds), len(truth)), dtype=bool)
    hits = np.zeros((len(thresholds), len(order)))
    for rank, i in enumerate(order):
        candidates = np.array(by_video.get(predicted[i].video, []), dtype=int)
        if not len(candidates):
            continue
        overlaps = tiou(predicted[i].start, predicted[i].end, starts[candidates], ends[candidates])
        best_first = candidates[np.argsort(-overlaps, kind="stable")]
        overlap_of = dict(zip(candidates.tolist(), overlaps.tolist()))
        for t, threshold in enumerate(thresholds):
            for j in best_first:
                if overlap_of[int(j)] < threshold:
                    break
                if not matched[t, j]:
                    matched[t, j] = True
                    hits[t, rank] = 1
                    break
    true_positives = np.cumsum(hits, axis=1)
    false_positives = np.cumsum(1 - hits, axis=1)
    recall = true_positives / len(truth)
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    return np.array([interpolated_ap(precision[t], recall[t]) if len(order) else 0.0
                     for t in range(len(thresholds))])


def _valid(spans: Sequence[Span], what: str, left_out: list[str]) -> list[Span]:
    kept = []
    for span in spans:
        if not (np.isfinite(span.start) and np.isfinite(span.end) and np.isfinite(span.score)):
            left_out.append(f"{what} {span.video} {span.label!r}: a time or score is not a number; left out")
        elif span.end <= span.start:
            left_out.append(f"{what} {span.video} {span.label!r} [{span.start:g}, {span.end:g}]: ends before "
                            "it starts; left out")
        else:
            kept.append(span)
    return kept


def evaluate(truth: Sequence[Span], predicted: Sequence[Span], videos: Sequence[str] | None = None,
             truth_videos: Sequence[str] | None = None,
             thresholds: Sequence[float] = TIOU_THRESHOLDS) -> Evaluation:
    """AP and mAP of ``predicted`` against ``truth`` (see the module docstring for what is left out).

    ``videos`` are the videos the results cover (default: those with a prediction); ``truth_videos``
    those the ground truth covers (default: those with a ground-truth segment).
    """
    left_out: list[str] = []
    truth = _valid(truth, "ground truth", left_out)
    predicted = _valid(predicted, "result", left_out)
    run = set(videos) if videos is not None else {s.video for s in predicted}
    known = set(truth_videos) if truth_videos is not None else {s.video for s in truth}
    for video in sorted(run - known):
        left_out.append(f"result video {video}: not in the ground truth; left out")
    for video in sorted(known - run):
        left_out.append(f"ground-truth video {video}: no results (not run); left out")
    scored = run & known
    truth = [s for s in truth if s.video in scored]
    predicted = [s for s in predicted if s.video in scored]
    classes = sorted({s.label for s in truth})
    for label in sorted({s.label for s in predicted} - set(classes)):
        count = sum(1 for s in predicted if s.label == label)
        left_out.append(f"class {label!r}: {count} predicted segment(s) but no ground truth; left out")
    keys = [f"{t:.1f}" for t in thresholds]
    ap = {}
    for label in classes:
        values = average_precision([s for s in truth if s.label == label],
                                   [s for s in predicted if s.label == label], thresholds)
        ap[label] = {k: round(float(v), 6) for k, v in zip(keys, values)}
    means = {k: round(float(np.mean([ap[c][k] for c in classes])), 6) if classes else None for k in keys}
    means["mean"] = round(float(np.mean(list(means.values()))), 6) if classes else None
    return Evaluation(ap=ap, map=means, left_out=left_out, videos=len(scored), ground_truth_segments=len(truth),
                      predicted_segments=sum(1 for s in predicted if s.label in ap))


# ------------------------------------------------------------------------------------------ files


def _json(path: Path, what: str):
    data = read_regular_file(path, MAX_GROUND_TRUTH_BYTES, what)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: not JSON ({str(err).splitlines()[0][:120]}); give {what}") from None
    except RecursionError:  # nesting deeper than the parser's stack: no ground truth is shaped so
        raise InputError(f"{path}: nested too deeply to be {what}; give {what}") from None


def _seconds(value, where: str, name: str) -> float:
    """A JSON number as a float; an integer too large for one (400 digits) is refused, not an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        raise InputError(f"{where}: the {name} is a {len(str(abs(value)))}-digit integer, too large for a "
                         "number; give an ordinary number") from None


def _interval(value, where: str) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{where}: 'segment' must be [start, end] in seconds, not {str(value)[:60]}")
    return _seconds(value[0], where, "start"), _seconds(value[1], where, "end")


def read_activitynet_truth(path: Path) -> tuple[list[Span], list[str]]:
    """Ground-truth segments and the videos of an ActivityNet ground-truth JSON."""
    data = _json(path, "an ActivityNet ground-truth JSON")
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise InputError(f"{path}: no 'database' object; give ActivityNet's ground-truth JSON")
    spans = []
    for video, entry in database.items():
        annotations = entry.get("annotations", []) if isinstance(entry, dict) else None
        if not isinstance(annotations, list):
            raise InputError(f"{path}: video {video}: 'annotations' must be a list")
        for n, note in enumerate(annotations):
            where = f"{path}: video {video}, annotation {n}"
            if not isinstance(note, dict) or not isinstance(note.get("label"), str):
                raise InputError(f"{where}: needs a 'label' string and a 'segment'")
            start, end = _interval(note.get("segment"), where)
            spans.append(Span(str(video), note["label"], start, end))
    return spans, [str(v) for v in database]


def read_thumos_truth(path: Path) -> tuple[list[Span], list[str]]:
    """Ground-truth segments and videos of THUMOS-14 per-class files (a folder of them, or one)."""
    files = sorted(p for p in path.glob("*.txt")) if path.is_dir() else [path]
    files = [p for p in files if not p.name.startswith("Ambiguous_")]
    if not files:
        raise InputError(f"{path}: no <Class>_test.txt or <Class>_val.txt files; give THUMOS-14's annotations")
    spans = []
    for file in files:
        label = file.stem.rsplit("_", 1)[0] if "_" in file.stem else file.stem
        for number, line in text_lines(file):
            fields = line.split()
            if not fields:
                continue
            try:
                spans.append(Span(fields[0], label, float(fields[1]), float(fields[2])))
            except (IndexError, ValueError):
                raise InputError(f"{file}:{number}: expected 'video start end', got {line.strip()[:60]!r}") from None
    return spans, sorted({s.video for s in spans})


def read_truth(path: str | os.PathLike) -> tuple[list[Span], list[str]]:
    """Ground truth from ActivityNet's JSON or THUMOS-14's annotation files (chosen by what ``path`` is)."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".txt":
        return read_thumos_truth(path)
    return read_activitynet_truth(path)


def read_results(path: str | os.PathLike) -> tuple[list[Span], list[str]]:
    """Predicted segments and the videos of an ActivityNet results JSON (``{"results": {video: [...]}}``)."""
    path = Path(path)
    data = _json(path, "an ActivityNet results JSON")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise InputError(f"{path}: no 'results' object; give a results JSON such as i3d segments writes")
    spans = []
    for video, rows in results.items():
        for n, row in enumerate(rows if isinstance(rows, list) else [None]):
            where = f"{path}: video {video}, result {n}"
            if not isinstance(row, dict) or not isinstance(row.get("label"), str):
                raise InputError(f"{where}: needs 'label', 'segment' and 'score'")
            start, end = _interval(row.get("segment"), where)
            score = row.get("score", 1.0)
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                raise InputError(f"{where}: 'score' must be a number")
            spans.append(Span(str(video), row["label"], start, end, _seconds(score, where, "score")))
    return spans, [str(v) for v in results]


def results_json(segments: Mapping[str, Sequence]) -> dict:
    """ActivityNet's results form for ``{video: [Segment, ...]}``."""
    return {"version": "ActivityNet results (i3d segments)",
            "results": {video: [s.as_json() for s in rows] for video, rows in segments.items()},
            "external_data": {"used": True, "details": "I3D pretrained on Kinetics-400 (DeepMind's weights)"}}
