"""The README's claims about i3d train that test_train.py leaves out: --crop ten (every view a sample),
--val-fraction (whole groups held out), and fine-tuning's early stop keeping the best epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import tiny_top, write_video

from i3d.heads import Head
from i3d.preprocess.windows import VideoOptions

SHORT = ("--window", "10", "--max-frames", "10", "--offline", "--format", "json")  # one 10-frame window a video


def _listing(folder, rows: list[tuple[str, str]]):
    """A path/label/group list of synthetic 320x256 videos (10 frames each), one per (label, group) row."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path\tlabel\tgroup"]
    for i, (label, group) in enumerate(rows):
        video = write_video(folder / f"v{i}.avi", 10, width=320, height=256, seed=i)
        lines.append(f"{video}\t{label}\t{group}")
    (folder / "list.tsv").write_text("\n".join(lines) + "\n")
    return folder / "list.tsv"


def _train(argv: list[str], weights_dir, monkeypatch, capsys) -> dict:
    """``i3d train`` run in this process (no interpreter to start); returns its JSON report."""
    from i3d.commands.train import main

    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(weights_dir))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow  # 40 views through the network for training, 10 more to check them
def test_crop_ten_trains_on_every_view(tmp_path, shared_weights_dir, recognizer, monkeypatch, capsys):
    """README: every window a training sample (every view, with --crop ten). The kept features of a video are
    its ten views, as the library computes them on its own; the head standardises over all of them."""
    listing = _listing(tmp_path / "videos", [("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")])
    out = tmp_path / "head"
    report = _train([str(listing), "--group-column", "group", "--crop", "ten", "--out", str(out), *SHORT],
                    shared_weights_dir, monkeypatch, capsys)
    assert report["training"]["windows"] == {"rgb": 4 * 10}  # 4 videos x 1 window x 10 views
    kept = {p.name: np.load(p) for p in (out / "features" / "features").rglob("*.rgb.npy")}
    assert len(kept) == 4 and all(a.shape == (1, 10, 1024) for a in kept.values())
    [first] = [a for name, a in kept.items() if name.startswith("v0.avi")]
    alone = recognizer.features(tmp_path / "videos" / "v0.avi",
                                video=VideoOptions(window=10, max_frames=10, crop="ten")).features["rgb"]
    np.testing.assert_allclose(first, alone, atol=1e-4)
    every_view = np.concatenate([a.reshape(-1, 1024) for a in kept.values()]).astype(np.float64)
    head = Head.load(out)
    assert head.settings["crop"] == "ten"
    np.testing.assert_allclose(head.streams["rgb"].mean, every_view.mean(axis=0), rtol=1e-5, atol=1e-5)
    centres = np.stack([a[0, 4] for a in kept.values()]).astype(np.float64)
    assert np.abs(head.streams["rgb"].mean - centres.mean(axis=0)).max() > 1e-3  # not the centre views alone


@pytest.mark.slow  # 10 videos through the network (the fast tier has train's command on class folders)
def test_val_fraction_holds_out_whole_groups(tmp_path, shared_weights_dir, monkeypatch, capsys):
    """README: --val-fraction F holds out whole groups (about F of them), scored, never trained on."""
    rows = [(label, f"{label}{g}") for label in ("a", "b") for g in (1, 1, 2, 3, 4)]  # 4 groups a class, 10 videos
    listing = _listing(tmp_path / "videos", rows)
    out = tmp_path / "head"
    report = _train([str(listing), "--group-column", "group", "--val-fraction", "0.25", "--out", str(out), *SHORT],
                    shared_weights_dir, monkeypatch, capsys)
    group_of = {f"v{i}.avi": group for i, (_, group) in enumerate(rows)}
    saved = json.loads((out / "train_report.json").read_text())["videos"]
    sides = {side: {group_of[v["key"]] for v in saved if v["side"] == side} for side in ("train", "validation")}
    assert not sides["train"] & sides["validation"]  # a group is on one side only
    assert len(sides["validation"]) == round(0.25 * 8)  # a quarter of the 8 groups
    assert {g[0] for g in sides["validation"]} == {"a", "b"}  # per class where it can be
    held = sum(1 for v in saved if v["side"] == "validation")
    assert report["validation"]["videos"] == held and report["train"]["videos"] == 10 - held
    assert sum(report["training"]["videos"].values()) == 10 - held  # trained on the rest only
    assert report["training"]["windows"] == {"rgb": 10 - held}


def test_early_stopping_keeps_the_best_epoch():
    """README: early stopping watches the validation log-likelihood and keeps the best epoch, after `patience`
    epochs without a better one. A tiny top trained fast enough to wander: the epoch kept is the best of the
    recorded history, the run stops `patience` epochs after it, and the arrays returned score the validation
    videos (worked out here in float64) as the history says that epoch did."""
    from i3d.tasks.training.fine_tune import fine_tune_stream
    from i3d.tasks.training.options import FineTuneOptions

    rng = np.random.default_rng(2)
    top, linear, videos, labels = tiny_top(rng, 12)
    val_labels = labels.copy()
    val_labels[:6] = rng.permutation(labels[:6])  # the validation side disagrees on some: training overshoots
    options = FineTuneOptions(epochs=12, patience=3, windows_per_step=4, learning_rate=0.05)
    _, head, record = fine_tune_stream(videos, labels, videos, val_labels, linear, top, options)
    scores = [h["val_log_likelihood"] for h in record["history"]]
    print("validation log-likelihood by epoch:", scores, "best", record["best_epoch"])
    best = int(np.argmax(scores))  # the first of equals: a later epoch must beat it to be kept
    assert record["best_epoch"] == best
    assert 0 < best < record["epochs_run"] < options.epochs, "this seed should stop early after a middle epoch"
    assert record["epochs_run"] == best + options.patience
    assert all(s <= scores[best] for s in scores[best + 1:])
    loglik = 0.0
    for windows, label in zip(videos, val_labels):
        by_hand = np.mean([w.astype(np.float64).mean(axis=(0, 1, 2)) @ head.weight.T.astype(np.float64)
                           + head.bias for w in windows], axis=0)
        loglik += by_hand[label] - by_hand.max() - np.log(np.exp(by_hand - by_hand.max()).sum())
    assert loglik / len(videos) == pytest.approx(scores[best], abs=2e-4)  # recorded to 4 places
    assert loglik / len(videos) != pytest.approx(scores[-1], abs=2e-4)  # not the last epoch's arrays


@pytest.mark.slow  # Kinetics' Mixed_5c in Keras
def test_epoch_0_of_the_real_top_is_the_linear_head_exactly(shared_store):
    """README: the top starts from Kinetics' Mixed_5c and the fitted linear head, so epoch 0 gives the linear head's
    answers exactly. Here on the real top (Mixed_5c, dropout, frozen batch norm) and Mixed_5b activations as they
    are kept (float16): the linear head scores the top's own features of those activations, worked out in float64,
    exactly as epoch 0 records. (test_train.py's real run compares the linear head on float32 features from the
    whole network with the top on the float16 activations: the rounding moves a feature by about 1e-3 of its size,
    enough to turn a near-tie video, hence its allowance there; compared in the same precision, as here, nothing
    differs.)"""
    from i3d.heads import StreamHead
    from i3d.model import with_features
    from i3d.runtime.fine_tuned import pretrained_top
    from i3d.tasks.training.fine_tune import fine_tune_stream
    from i3d.tasks.training.options import FineTuneOptions
    from i3d.weights.loading import LoadOptions
    from i3d.weights.sets import get_weight_set

    rng = np.random.default_rng(0)
    classes = 3
    top = pretrained_top(get_weight_set("rgb", "kinetics"), shared_store, LoadOptions(download=False), classes, 0.5)
    videos = [[np.maximum(rng.normal(0, 1, (2, 7, 7, 832)), 0).astype(np.float16) for _ in range(2)]
              for _ in range(6)]  # after a ReLU, as Mixed_5b's are; 2 windows of 16 frames a video
    labels = np.array([0, 1, 2] * 2)
    both = with_features(top)  # Mixed_5c is Kinetics' until the first step: its features, before training
    features = [[np.asarray(both(w[None].astype(np.float32), training=False)[1], np.float64)[0] for w in windows]
                for windows in videos]
    spread = np.concatenate(features)
    linear = StreamHead(weight=rng.normal(size=(classes, 1024)).astype(np.float32) * 0.05,
                        bias=rng.normal(size=classes).astype(np.float32),
                        mean=spread.mean(axis=0).astype(np.float32),
                        scale=(spread.std(axis=0) + 0.1).astype(np.float32))
    _, _, record = fine_tune_stream(videos[:3], labels[:3], videos, labels, linear, top,
                                    FineTuneOptions(epochs=1, patience=1, windows_per_step=2))
    right, loglik = 0, 0.0
    for rows, label in zip(features, labels):
        by_hand = np.mean([((f - linear.mean) / linear.scale) @ linear.weight.T.astype(np.float64) + linear.bias
                           for f in rows], axis=0)
        right += int(np.argmax(by_hand) == label)
        loglik += by_hand[label] - by_hand.max() - np.log(np.exp(by_hand - by_hand.max()).sum())
    epoch0 = record["history"][0]
    print("epoch 0:", epoch0, "by hand:", right / 6, round(loglik / 6, 4))
    assert epoch0["val_accuracy"] == round(right / 6, 4)
    assert epoch0["val_log_likelihood"] == pytest.approx(loglik / 6, abs=2e-4)  # recorded to 4 places
