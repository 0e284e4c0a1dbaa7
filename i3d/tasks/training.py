"""``i3d train``: a head for the user's own classes, fitted on frozen I3D features.

Quo Vadis (Carreira & Zisserman 2017, table 4) finds that training only the last layer on
frozen Kinetics features comes within 0.3 points of fine-tuning the whole network, so the
head is one linear layer per stream: multinomial logistic regression (scikit-learn) on
standardised 1024-d features. Every window (and every crop view with ``crop="ten"``) is a
training sample; a video's answer is the mean of its windows' logits, fused over the
streams, as :meth:`Recognizer.classify` does.

The regularisation strength C is chosen per stream by cross-validation over the training
videos, in folds that keep every group (or, without groups, every video) on one side and
score videos, not windows. Features come from :func:`i3d.tasks.batch.run_batch` into the
head folder's ``features/``, so a rerun (other head settings, or after a kill) reuses every
video already done.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.files import atomic_path
from i3d.heads import CHECKED_SETTINGS, Head, StreamHead
from i3d.inputs.dataset_items import Dataset, VideoItem
from i3d.preprocess.windows import VideoOptions
from i3d.results import FUSIONS, fuse_logits
from i3d.tasks.batch import BatchOptions, run_batch
from i3d.tasks.batch_folder import comparable, differences, draw_charts, read_record, settings_of, tool_version
from i3d.tasks.fine_tune import FineTuneOptions, check_fine_tune
from i3d.tasks.recognizer import Recognizer

CLASS_WEIGHTS = ("balanced", "none")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
"""The regularisation strengths cross-validation chooses from (scikit-learn's C: larger, less regularised)."""
VAL_SPLITS = ("test", "val", "validation")
"""Split-column values that put a video on the validation side ("train" puts it on the training side)."""


@dataclass(frozen=True)
class TrainOptions:
    """How the head is fitted."""

    class_weight: str = "balanced"  # balanced: classes weigh alike whatever their video counts; none
    val_fraction: float | None = None  # hold out this share of the groups for a validation score
    folds: int = 5  # cross-validation folds for choosing C (fewer when a class has fewer groups)
    fusion: str = "mean"
    seed: int = 0
    fine_tune: FineTuneOptions | None = None  # also train Mixed_5c below the logits (see i3d.tasks.fine_tune)


@dataclass(frozen=True)
class Sample:
    """One labelled video's features: per stream (windows x views, 1024)."""

    item: VideoItem
    features: dict[str, np.ndarray]


def check_options(options: TrainOptions) -> TrainOptions:
    if options.class_weight not in CLASS_WEIGHTS:
        raise OptionError("class_weight", f"is {options.class_weight!r}; choose from {', '.join(CLASS_WEIGHTS)}")
    if options.val_fraction is not None and not 0 < options.val_fraction < 1:
        raise OptionError("val_fraction", f"must be between 0 and 1, not {options.val_fraction}")
    if not 2 <= options.folds <= 20:
        raise OptionError("folds", f"must be between 2 and 20, not {options.folds}")
    if options.fusion not in FUSIONS:
        raise OptionError("fusion", f"is {options.fusion!r}; choose from {', '.join(FUSIONS)}")
    if options.fine_tune is not None:
        check_fine_tune(options.fine_tune)
    return options


def split_by_column(dataset: Dataset) -> tuple[Dataset, Dataset | None]:
    """(training side, validation side) of a dataset read with a split column; InputError for other values."""
    train, val = [], []
    for item in dataset.items:
        side = (item.split or "").strip().lower()
        if side == "train":
            train.append(item)
        elif side in VAL_SPLITS:
            val.append(item)
        else:
            raise InputError(f"{item.key}: split {item.split!r}; give train, or {', '.join(VAL_SPLITS)}")
    return replace(dataset, items=tuple(train)), (replace(dataset, items=tuple(val)) if val else None)


def check_labels(dataset: Dataset, side: str = "training") -> tuple[str, ...]:
    """The classes of a labelled dataset, sorted; InputError for anything that would be a silent guess."""
    if dataset.missing:
        raise InputError(f"{dataset.missing[0].path}: listed for {side} but not on disk "
                         f"({len(dataset.missing)} missing); fix the list")
    unlabelled = [item for item in dataset.items if item.label is None]
    if unlabelled:
        raise InputError(f"{unlabelled[0].path}: has no label ({len(unlabelled)} unlabelled); every {side} video "
                         "needs one")
    counts = Counter(item.label for item in dataset.items)
    alike: dict[str, str] = {}
    for label in sorted(counts):
        norm = re.sub(r"[\s_]+", " ", label).strip().casefold()
        if norm in alike:
            raise InputError(f"labels {alike[norm]!r} and {label!r} differ only by case or spaces; use one spelling")
        alike[norm] = label
    if len(counts) < 2:
        raise InputError(f"the {side} videos hold one class ({next(iter(counts), 'none')!r}); a head needs two or more")
    few = sorted(label for label, n in counts.items() if n < 2)
    if few:
        raise InputError(f"class {few[0]!r} has {counts[few[0]]} {side} video; each class needs at least 2")
    return tuple(sorted(counts))


def _groups(items: list[VideoItem]) -> list[str]:
    """Each video's fold unit: its group, else the video itself."""
    return [item.group if item.group is not None else f"video:{item.key}" for item in items]


def check_groups(items: list[VideoItem]) -> None:
    """With groups, refuse a class whose videos are all in one group: no fold could hold it out."""
    if not any(item.group is not None for item in items):
        return
    by_class: dict[str, set[str]] = {}
    for item, group in zip(items, _groups(items)):
        by_class.setdefault(item.label, set()).add(group)
    for label, groups in sorted(by_class.items()):
        if len(groups) < 2:
            raise InputError(f"class {label!r}: every video is in group {next(iter(groups))!r}; grouped folds need "
                             "at least two groups per class (add videos of another group, or drop the group column)")


def _check_validation(dataset: Dataset, classes: tuple[str, ...]) -> None:
    if dataset.missing:
        raise InputError(f"{dataset.missing[0].path}: listed for validation but not on disk; fix the list")
    for item in dataset.items:
        if item.label not in classes:
            raise InputError(f"{item.path}: validation label {item.label!r} is not one of the training classes "
                             f"({', '.join(classes)})")


def hold_out(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training side, validation side): about ``fraction`` of the groups held out, per class where it can be."""
    from sklearn.model_selection import StratifiedGroupKFold

    items = list(dataset.items)
    splits = max(2, round(1 / fraction))
    folds = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    train, val = next(folds.split(np.zeros(len(items)), [i.label for i in items], _groups(items)))
    return (replace(dataset, items=tuple(items[i] for i in sorted(train))),
            replace(dataset, items=tuple(items[i] for i in sorted(val))))


def _folder_settings(folder: Path) -> dict:
    """The settings.json of an existing features folder ({} when there is none yet)."""
    from i3d.files import read_regular_file

    path = folder / "settings.json"
    if not path.exists():
        return {}
    try:
        return json.loads(read_regular_file(path, 1 << 20, "a features folder's settings"))
    except ValueError as err:
        raise InputError(f"{path}: not JSON ({err}); give a folder written by i3d features") from None


def extract(dataset: Dataset, folder: Path, recognizer: Recognizer, video: VideoOptions,
            batch: BatchOptions, reuse: bool = False) -> list[Sample]:
    """Every video's features, through a resumable batch folder; a video that fails is refused (InputError).

    ``reuse``: ``folder`` is the user's own ``i3d features`` folder: its settings are never overwritten (a
    mismatch is refused) and its ranking settings (top-k, fusion, label map) are kept, as they change no feature.
    """
    label_map = None
    if reuse:
        existing = _folder_settings(folder)
        if existing and not existing.get("features"):
            raise InputError(f"{folder}: holds no features (made by i3d batch without --features); "
                             "give an i3d features folder")
        batch = replace(batch, overwrite=False, top_k=existing.get("top_k", 1), fusion=existing.get("fusion", "mean"))
        label_map = existing.get("label_map") or None
        if existing:
            wanted = settings_of(recognizer, video, fusion=batch.fusion, top_k=batch.top_k, features=True,
                                 label_map=label_map)
            differ = differences(comparable(existing), comparable(wanted))
            if differ:
                raise OptionError("features", f"{folder} holds features made with other settings "
                                              f"({'; '.join(differ[:3])}); give the options it was made with")
    else:
        batch = replace(batch, top_k=1)
    run_batch(dataset, folder, recognizer, video=video, label_map=label_map,
              options=replace(batch, features=True, shard=None, retry_failed=True))
    samples = []
    for item in dataset.items:
        record = read_record(folder, item.key)
        if record is None or record.get("status") != "ok":
            error = "not run" if record is None else record.get("error")
            raise InputError(f"{item.path}: no features ({error}); fix or remove the video")
        feats = {}
        for stream, relative in record["features"].items():
            array = np.load(folder / relative, allow_pickle=False)
            feats[stream] = np.asarray(array, np.float32).reshape(-1, array.shape[-1])
        samples.append(Sample(item, feats))
    return samples


def _fit(x: np.ndarray, y: np.ndarray, c: float, class_weight: str, classes: int, seed: int):
    from sklearn.linear_model import LogisticRegression

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


def _video_logits(x: np.ndarray, owner: np.ndarray, weight: np.ndarray, bias: np.ndarray, videos: int) -> np.ndarray:
    """(videos, classes): the mean over each video's samples of their logits."""
    logits = x @ weight.T + bias
    out = np.zeros((videos, weight.shape[0]), np.float64)
    np.add.at(out, owner, logits)
    return out / np.bincount(owner, minlength=videos)[:, None]


def _stacked(samples: list[Sample], stream: str) -> tuple[np.ndarray, np.ndarray]:
    """(all samples' feature rows, the index of the video each row belongs to)."""
    rows = [s.features[stream] for s in samples]
    return np.concatenate(rows), np.repeat(np.arange(len(rows)), [len(r) for r in rows])


def grouped_folds(items: list[VideoItem], labels: np.ndarray, folds: int, seed: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training videos, held-out videos) index pairs: a group (or a video without one) is always on one side,
    classes spread as evenly as the groups allow; fewer folds when a class has fewer groups."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = _groups(items)
    per_class = min(len({g for g, label in zip(groups, labels) if label == k}) for k in set(labels.tolist()))
    splits = max(2, min(folds, per_class))
    return list(StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
                .split(np.zeros(len(items)), labels, groups))


def fit_stream(samples: list[Sample], stream: str, labels: np.ndarray, options: TrainOptions
               ) -> tuple[StreamHead, dict]:
    """One stream's head with C chosen by grouped cross-validation; returns it and the search's scores."""
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
    scores = {}
    for c in C_GRID:
        right = loglik = counted = 0
        for (train_videos, test_videos), (rows, test_rows, local) in zip(folds, masks):
            fitted = _fit(x[rows], y[rows], c, options.class_weight, classes, options.seed)
            if fitted is None:
                continue
            logits = _video_logits(x[test_rows], local, *fitted, len(test_videos))
            truth = labels[test_videos]
            right += int((logits.argmax(axis=1) == truth).sum())
            shifted = logits - logits.max(axis=1, keepdims=True)
            loglik += float((shifted[np.arange(len(truth)), truth] - np.log(np.exp(shifted).sum(axis=1))).sum())
            counted += len(truth)
        if counted:
            scores[c] = (right / counted, loglik / counted)
    if not scores:
        raise InputError("no cross-validation fold held every class; add videos (or groups) to the smallest classes")
    best = max(scores, key=lambda c: scores[c])
    weight, bias = _fit(x, y, best, options.class_weight, classes, options.seed)
    record = {"C": best, "folds": splits, "cv": {f"{c:g}": {"accuracy": round(a, 4), "log_likelihood": round(ll, 4)}
                                                  for c, (a, ll) in scores.items()}}
    return StreamHead(weight, bias, mean.astype(np.float32), scale.astype(np.float32)), record


def video_logits(head: Head, sample: Sample, fusion: str) -> np.ndarray:
    """A video's fused logits under ``head``: per stream the mean of its windows' (and views') logits."""
    return fuse_logits([head.logits(stream, sample.features[stream]).mean(axis=0) for stream in head.streams],
                       fusion)


def scores(head: Head, samples: list[Sample], fusion: str) -> dict:
    """Top-1, top-5 and mean class accuracy of ``head`` on labelled samples, and the confusion counts."""
    index = {label: i for i, label in enumerate(head.classes)}
    truth, ranked = [], []
    for sample in samples:
        if sample.item.label not in index:
            raise InputError(f"{sample.item.path}: label {sample.item.label!r} is not a class of the head "
                             f"({', '.join(head.classes)})")
        truth.append(index[sample.item.label])
        ranked.append(np.argsort(-video_logits(head, sample, fusion)))
    truth = np.array(truth)
    top1 = np.array([r[0] for r in ranked])
    top5 = np.array([t in r[:5] for t, r in zip(truth, ranked)])
    per_class = {head.classes[k]: {"videos": int((truth == k).sum()), "top1": float((top1[truth == k] == k).mean()),
                                   "top5": float(top5[truth == k].mean())} for k in sorted(set(truth))}
    return {"videos": len(samples), "top1": float((top1 == truth).mean()), "top5": float(top5.mean()),
            "mean_class_accuracy": float(np.mean([row["top1"] for row in per_class.values()])),
            "per_class": per_class, "truth": truth.tolist(), "predicted": top1.tolist()}


def _fine_tune(train_samples: list[Sample], val_samples: list[Sample], labels: np.ndarray, classes: tuple[str, ...],
               linear: dict[str, StreamHead], recognizer: Recognizer, video: VideoOptions, out: Path,
               options: TrainOptions, progress: bool):
    """Mixed_5c and the logits trained per stream from the linear heads.

    Returns (the tops' arrays, their stream heads, their training records, and the samples again with the
    fine-tuned network's features, for scoring). Early stopping watches the validation side, or without one
    a grouped fold of the training videos (the top is then trained on the others only).
    """
    from i3d.model import with_features
    from i3d.runtime.fine_tuned import pretrained_top, set_top_arrays
    from i3d.tasks.fine_tune import activations, fine_tune_stream
    from i3d.weights.loading import LoadOptions

    ft = options.fine_tune
    settings = {"video": video.numbers(), "weights": {n: ws.index_sha256 for n, ws in recognizer.weight_sets.items()}}
    everything = train_samples + val_samples
    acts = activations([s.item for s in everything], out / "activations", recognizer, video, settings, progress)
    train_acts, val_acts = acts[:len(train_samples)], acts[len(train_samples):]
    fit_ids = np.arange(len(train_samples))
    if val_samples:
        stop_acts = val_acts
        stop_labels = np.array([classes.index(s.item.label) for s in val_samples])
    else:
        fit_ids, stop_ids = grouped_folds([s.item for s in train_samples], labels, options.folds, options.seed)[0]
        stop_acts, stop_labels = [train_acts[i] for i in stop_ids], labels[stop_ids]
    tops, heads, records, features = {}, {}, {}, {}
    for stream, ws in recognizer.weight_sets.items():
        top = pretrained_top(ws, recognizer.store, LoadOptions(download=False), len(classes),
                             ft.dropout_keep_prob)
        tops[stream], heads[stream], records[stream] = fine_tune_stream(
            [train_acts[i][stream] for i in fit_ids], labels[fit_ids], [a[stream] for a in stop_acts], stop_labels,
            linear[stream], top, ft)
        records[stream]["stopped_on"] = ("the validation videos" if val_samples
                                         else f"{len(stop_labels)} held-out training videos")
        set_top_arrays(top, tops[stream], "the fine-tuned top")
        both = with_features(top)
        features[stream] = [np.stack([np.asarray(both([w[None].astype(np.float32)], training=False)[1])[0]
                                      for w in a[stream]]) for a in acts]
    redone = [Sample(s.item, {name: features[name][i] for name in features}) for i, s in enumerate(everything)]
    return tops, heads, records, redone[:len(train_samples)], redone[len(train_samples):]


def train(train_set: Dataset, out: str | os.PathLike, recognizer: Recognizer, *, video: VideoOptions = VideoOptions(),
          options: TrainOptions = TrainOptions(), batch: BatchOptions = BatchOptions(),
          val_set: Dataset | None = None, features_dir: str | os.PathLike | None = None) -> tuple[Head, dict]:
    """Fit a head on ``train_set``'s labelled videos and write it into ``out``; returns it and its report.

    ``val_set`` (or ``options.val_fraction`` of the groups) is scored, never trained on. Features are kept
    in ``out/features``, or in ``features_dir`` (an ``i3d features`` folder, reused and completed).
    """
    options = check_options(options)
    out = Path(out)
    classes = check_labels(train_set)
    check_groups(list(train_set.items))
    if val_set is None and options.val_fraction is not None:
        train_set, val_set = hold_out(train_set, options.val_fraction, options.seed)
        classes = check_labels(train_set)
    if val_set is not None:
        _check_validation(val_set, classes)
        overlap = {i.key for i in train_set.items} & {i.key for i in val_set.items}
        if overlap:
            raise InputError(f"{sorted(overlap)[0]}: is on both the training and the validation side; keep it on one")
    video.check(recognizer.streams)
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
        from i3d.runtime.fine_tuned import check_fine_tune_precision

        check_fine_tune_precision(recognizer.engine)  # before the activations pass
        linear = Head(classes, dict(streams), {}, {})
        linear_val = scores(linear, val_samples, options.fusion) if val_samples else None
        tops, tuned, tuning, train_samples, val_samples = _fine_tune(
            train_samples, val_samples, labels, classes, dict(streams), recognizer, video, out, options,
            batch.progress)
        streams.update(tuned)
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
        record["validation"] = {k: report["validation"][k] for k in ("videos", "top1", "top5", "mean_class_accuracy")}
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
