"""``i3d train --fine-tune mixed_5c``: Mixed_5c and the logits layer trained on cached Mixed_5b activations.

The frozen trunk (everything below Mixed_5c) runs once per window; its activations are
kept in the head folder's ``activations/``, so every epoch costs only the top block, on a
CPU. The top starts from Kinetics' Mixed_5c and the fitted linear head (its standardisation
folded into the logits layer), so before the first step it gives exactly the linear head's
answers; training (Adam, dropout before the logits, batch norm frozen) keeps the epoch with
the best validation log-likelihood, epoch 0 included, and stops after ``patience`` epochs
without improvement.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from i3d.files import atomic_path
from i3d.heads import StreamHead
from i3d.inputs.dataset_items import VideoItem
from i3d.preprocess.windows import VideoOptions
from i3d.runtime.fine_tuned import TrunkRunner, pretrained_top, set_top_arrays, top_arrays
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.sources import open_source
from i3d.tasks.training.features import Sample
from i3d.tasks.training.options import FineTuneOptions, TrainOptions
from i3d.tasks.training.splits import grouped_folds
from i3d.weights.loading import LoadOptions


@dataclass(frozen=True)
class FineTuned:
    """What fine-tuning gave per stream: the top's arrays, its logits layer as a head on the top's features,
    the training's record; and the samples again with the fine-tuned network's features, for scoring."""

    tops: dict[str, dict[str, np.ndarray]]
    heads: dict[str, StreamHead]
    records: dict[str, dict]
    train: list[Sample]
    validation: list[Sample]

def activations(items: Sequence[VideoItem], folder: Path, recognizer: Recognizer, video: VideoOptions,
                settings: dict, progress: bool = False) -> list[dict[str, list[np.ndarray]]]:
    """Per video, per stream, each window's (and crop view's) Mixed_5b activations (T/8, 7, 7, 832), float16.

    Kept in ``folder`` (one .npz per video and stream) under ``settings``: a rerun reads them back, and a
    folder made with other settings is emptied first.
    """
    stamp = folder / "settings.json"
    try:
        kept = json.loads(stamp.read_text())
    except (OSError, ValueError, RecursionError):  # none, or unreadable: nothing kept can be trusted
        kept = None
    if folder.exists() and kept != settings:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
    trunks: dict[str, TrunkRunner] = {}
    out = []
    for item in tqdm(items, desc="Mixed_5b activations", unit="video", disable=not progress, leave=False):
        paths = {s.name: folder / f"{item.key}.{s.name}.npz" for s in recognizer.streams}
        if all(p.is_file() for p in paths.values()):
            out.append({name: _read(path) for name, path in paths.items()})
            continue
        if not trunks:
            store = recognizer.store
            trunks = {name: TrunkRunner(ws, store, LoadOptions(download=False), recognizer.engine)
                      for name, ws in recognizer.weight_sets.items()}
        got: dict[str, list[np.ndarray]] = {name: [] for name in paths}
        for window in open_source(item.path, recognizer.streams, video):
            for name, trunk in trunks.items():
                got[name] += list(trunk.activations(window.clips[name]).astype(np.float16))
        for name, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, **{f"w{i}": a for i, a in enumerate(got[name])})
        out.append(got)
    return out


def _read(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


def _batches(rows: list[tuple[np.ndarray, int]], size: int, rng: np.random.Generator):
    """Shuffled batches of equally long activations (windows of one length go together)."""
    by_length: dict[int, list[int]] = {}
    for i in rng.permutation(len(rows)):
        by_length.setdefault(rows[i][0].shape[0], []).append(int(i))
    batches = [ids[k:k + size] for ids in by_length.values() for k in range(0, len(ids), size)]
    for b in rng.permutation(len(batches)):
        ids = batches[b]
        yield (np.stack([rows[i][0] for i in ids]).astype(np.float32), np.array([rows[i][1] for i in ids]))


def _video_scores(top, videos: list[list[np.ndarray]], labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean log-likelihood) over videos, each scored by the mean of its windows' logits."""
    right, loglik = 0, 0.0
    for windows, label in zip(videos, labels):
        logits = np.mean([np.asarray(top(a[None].astype(np.float32), training=False))[0] for a in windows], axis=0)
        shifted = logits - logits.max()
        loglik += float(shifted[label] - np.log(np.exp(shifted).sum()))
        right += int(np.argmax(logits) == label)
    return right / len(videos), loglik / len(videos)


def fine_tune_stream(train: list[list[np.ndarray]], train_labels: np.ndarray, val: list[list[np.ndarray]],
                     val_labels: np.ndarray, linear: StreamHead, top, options: FineTuneOptions
                     ) -> tuple[dict[str, np.ndarray], StreamHead, dict]:
    """Train ``top`` (a Keras top with Kinetics' Mixed_5c) from ``linear``; returns its arrays, its logits layer
    as a :class:`StreamHead` on the top's features, and the training's record."""
    import keras  # TensorFlow: slow to import, only when fine-tuning
    import tensorflow as tf


    seed = TrainOptions.seed if options.seed is None else options.seed  # None: the training's default
    keras.utils.set_random_seed(seed)
    weight = linear.weight / linear.scale  # fold the standardisation into the logits layer
    bias = linear.bias - weight @ linear.mean
    conv = top.get_layer("Logits.Conv3d_0c_1x1.conv_3d")
    conv.set_weights([weight.T.reshape(1, 1, 1, *weight.T.shape).astype(np.float32), bias.astype(np.float32)])
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # a few dozen videos cannot re-estimate Kinetics' statistics
    optimizer = keras.optimizers.Adam(options.learning_rate)
    loss_of = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(y, top(x, training=True))
        grads = tape.gradient(loss, top.trainable_weights)
        optimizer.apply_gradients(zip(grads, top.trainable_weights))
        return loss

    rows = [(a, int(label)) for windows, label in zip(train, train_labels) for a in windows]
    rng = np.random.default_rng(seed)
    accuracy, loglik = _video_scores(top, val, val_labels)
    history = [{"epoch": 0, "val_accuracy": round(accuracy, 4), "val_log_likelihood": round(loglik, 4)}]
    best, best_arrays, waited = (loglik, 0), top_arrays(top), 0
    for epoch in range(1, options.epochs + 1):
        losses = [float(step(x, y)) for x, y in _batches(rows, options.windows_per_step, rng)]
        accuracy, loglik = _video_scores(top, val, val_labels)
        history.append({"epoch": epoch, "train_loss": round(float(np.mean(losses)), 4),
                        "val_accuracy": round(accuracy, 4), "val_log_likelihood": round(loglik, 4)})
        if loglik > best[0]:
            best, best_arrays, waited = (loglik, epoch), top_arrays(top), 0
        else:
            waited += 1
            if waited >= options.patience:
                break
    kernel = best_arrays["Logits.Conv3d_0c_1x1.conv_3d.0"].reshape(-1, len(linear.bias))
    head = StreamHead(np.ascontiguousarray(kernel.T, np.float32), best_arrays["Logits.Conv3d_0c_1x1.conv_3d.1"],
                      np.zeros(kernel.shape[0], np.float32), np.ones(kernel.shape[0], np.float32))
    record = {"block": options.block, "best_epoch": best[1], "epochs_run": len(history) - 1,
              "learning_rate": options.learning_rate, "batch_size": options.windows_per_step,
              "dropout_keep_prob": options.dropout_keep_prob, "history": history}
    return best_arrays, head, record


def fine_tune(train_samples: list[Sample], val_samples: list[Sample], labels: np.ndarray, classes: tuple[str, ...],
              linear: dict[str, StreamHead], recognizer: Recognizer, *, video: VideoOptions, out: Path,
              options: TrainOptions, progress: bool = False) -> FineTuned:
    """Mixed_5c and the logits trained per stream from the linear heads (``options.fine_tune``).

    Early stopping watches the validation side, or without one a grouped fold of the training videos (the
    top is then trained on the others only). The activations are kept in ``out/activations``.
    """
    from i3d.model import with_features  # TensorFlow: slow to import, only when fine-tuning

    ft = options.fine_tune if options.fine_tune.seed is not None else replace(options.fine_tune, seed=options.seed)
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
    return FineTuned(tops, heads, records, redone[:len(train_samples)], redone[len(train_samples):])
