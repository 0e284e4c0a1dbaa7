"""``i3d train``: a head for the user's own classes, fitted on frozen I3D features.

Quo Vadis (Carreira & Zisserman 2017, table 4) finds that training only the last layer on
frozen Kinetics features comes within 0.3 points of fine-tuning the whole network, so the
head is one linear layer per stream: multinomial logistic regression (scikit-learn) on
standardised 1024-d features. Every window (and every crop view with ``crop="ten"``) is a
training sample; a video's answer is the mean of its windows' logits, fused over the
streams, as :meth:`Recognizer.classify` does.

The regularisation strength C is chosen per stream by cross-validation over the training
videos, in folds that keep every group (or, without groups, every video) on one side and
score videos, not windows. Features come from :func:`i3d.tasks.batch.run.run_batch` into the
head folder's ``features/``, so a rerun (other head settings, or after a kill) reuses every
video already done.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from i3d.errors import InputError
from i3d.files import atomic_path
from i3d.heads import CHECKED_SETTINGS, Head
from i3d.inputs.dataset_items import Dataset
from i3d.preprocess.windows import VideoOptions
from i3d.runtime.fine_tuned import check_fine_tune_precision
from i3d.tasks.batch.charts import draw_charts
from i3d.tasks.batch.folder import tool_version
from i3d.tasks.batch.run import BatchOptions
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.training.features import extract
from i3d.tasks.training.fine_tune import fine_tune
from i3d.tasks.training.linear import fit_stream, scores, video_logits
from i3d.tasks.training.options import TrainOptions
from i3d.tasks.training.splits import check_groups, check_labels, check_validation, hold_out


def train(train_set: Dataset, out: str | os.PathLike, recognizer: Recognizer, *, video: VideoOptions = VideoOptions(),
          options: TrainOptions = TrainOptions(), batch: BatchOptions = BatchOptions(),
          val_set: Dataset | None = None, features_dir: str | os.PathLike | None = None) -> tuple[Head, dict]:
    """Fit a head on ``train_set``'s labelled videos and write it into ``out``; returns it and its report.

    ``val_set`` (or ``options.val_fraction`` of the groups) is scored, never trained on. Features are kept
    in ``out/features``, or in ``features_dir`` (an ``i3d features`` folder, reused and completed).
    """
    options.check()
    out = Path(out)
    classes = check_labels(train_set)
    check_groups(list(train_set.items))
    if val_set is None and options.val_fraction is not None:
        train_set, val_set = hold_out(train_set, options.val_fraction, options.seed)
        classes = check_labels(train_set)
    if val_set is not None:
        check_validation(val_set, classes)
        overlap = {i.key for i in train_set.items} & {i.key for i in val_set.items}
        if overlap:
            raise InputError(f"{sorted(overlap)[0]}: is on both the training and the validation side; keep it on one")
    recognizer.check(video)
    everything = replace(train_set, items=train_set.items + (val_set.items if val_set else ()), missing=())
    folder = out / "features" if features_dir is None else Path(features_dir)
    samples = extract(everything, folder, recognizer, video, batch, reuse=features_dir is not None)
    train_samples, val_samples = samples[:len(train_set.items)], samples[len(train_set.items):]
    labels = np.array([classes.index(s.item.label) for s in train_samples])
    streams, search = {}, {}
    for stream in recognizer.streams:
        streams[stream.name], search[stream.name] = fit_stream(train_samples, stream.name, labels, options)
    tops: dict[str, dict[str, np.ndarray]] = {}
    if options.fine_tune is not None:
        check_fine_tune_precision(recognizer.engine)  # before the activations pass
        linear = Head(classes, dict(streams), {}, {})
        linear_val = scores(linear, val_samples, options.fusion) if val_samples else None
        tuned = fine_tune(train_samples, val_samples, labels, classes, dict(streams), recognizer, video=video,
                          out=out, options=options, progress=batch.progress)
        tops, tuning, train_samples, val_samples = tuned.tops, tuned.records, tuned.train, tuned.validation
        streams.update(tuned.heads)
    numbers = video.numbers()
    settings = {name: numbers[name] for name in CHECKED_SETTINGS}
    settings["precision"] = recognizer.engine.precision
    record = {"search": search, "class_weight": options.class_weight, "fusion": options.fusion,
              "videos": dict(Counter(s.item.label for s in train_samples)),
              "windows": {stream: int(sum(len(s.features[stream]) for s in train_samples))
                          for stream in streams},
              "i3d_version": tool_version()}
    if tops:
        record["fine_tune"] = {"block": options.fine_tune.block, "streams": tuning}
        if linear_val is not None:
            record["fine_tune"]["linear_validation"] = {k: linear_val[k] for k in ("top1", "top5",
                                                                                   "mean_class_accuracy")}
    head = Head(classes, streams, {name: {"set": ws.name, "index_sha256": ws.index_sha256}
                                   for name, ws in recognizer.weight_sets.items()}, settings, record, out, tops)
    report = {"classes": list(classes), "train": scores(head, train_samples, options.fusion)}
    if val_samples:
        report["validation"] = scores(head, val_samples, options.fusion)
        record["validation"] = {k: report["validation"][k] for k in ("videos", "top1", "top5", "mean_class_accuracy",
                                                                     "calibration")}
    report["training"] = record
    report["videos"] = [{"key": s.item.key, "label": s.item.label, "side": side,
                         "logits": [round(float(v), 6) for v in video_logits(head, s, options.fusion)]}
                        for side, group in (("train", train_samples), ("validation", val_samples)) for s in group]
    head.save(out)
    with atomic_path(out / "train_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    if val_samples:
        val = report["validation"]
        rows = [(label, row["videos"], row["top1"], row["top5"]) for label, row in val["per_class"].items()]
        draw_charts(out, val["truth"], val["predicted"], classes, rows)
    return head, report
