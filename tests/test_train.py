"""i3d train: a head on real clips of classes Kinetics does not have (../shared/fewshot), used everywhere."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import SHARED, run_cli, tiny_top

from i3d.errors import InputError, OptionError, WeightsError
from i3d.heads import Head
from i3d.inputs.dataset_items import Dataset, ListOptions, VideoItem
from i3d.inputs.datasets import load_dataset
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.training.options import TrainOptions
from i3d.tasks.training.splits import check_groups, check_labels, grouped_folds, hold_out, split_by_column
from i3d.tasks.training.train import train

FEWSHOT = SHARED / "fewshot"
VIDEO = VideoOptions(window=16, max_frames=16)  # one window a clip: real features, a short run
LISTING = ListOptions(root=FEWSHOT / "clips", group_column="group", split_column="split")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, recognizer):
    """The default head on the fewshot training split, scored on its test split."""
    out = tmp_path_factory.mktemp("head") / "head"
    train_set, val_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", LISTING))
    head, report = train(train_set, out, recognizer, video=VIDEO, val_set=val_set)
    return out, head, report


@pytest.mark.slow  # the module's head: 74 clips' features
def test_the_head_learns_classes_kinetics_lumps_together(trained):
    out, head, report = trained
    assert head.classes == ("handwash_step3", "handwash_step5_right", "handwash_step7_left", "pushup_correct_form",
                            "pushup_incorrect_form", "typing")
    assert report["train"]["videos"] == 50 and report["validation"]["videos"] == 24
    assert report["validation"]["top1"] >= 0.7  # measured 0.83 with one 16-frame window a clip; chance is 0.17
    assert report["training"]["windows"] == {"rgb": 50}
    meta = json.loads((out / "head.json").read_text())
    assert meta["settings"] == {"fps": 25.0, "window": 16, "stride": None, "crop": "center",
                                "flow_algorithm": "tvl1", "precision": "fp32"}
    assert meta["weight_sets"]["rgb"]["set"] == "rgb_kinetics" and len(meta["head_npz_sha256"]) == 64
    assert {p.name for p in out.iterdir()} >= {"head.npz", "head.json", "train_report.json", "confusion.png",
                                               "per_class_accuracy.png", "features"}


@pytest.mark.slow  # the module's head: 74 clips' features
def test_the_default_head_is_at_least_as_good_as_a_plain_baseline(trained):
    """Plain logistic regression (scikit-learn defaults) on one mean feature per video, same features."""
    from sklearn.linear_model import LogisticRegression

    out, head, report = trained

    def mean_features(side: str):
        rows = [v for v in report["videos"] if v["side"] == side]
        feats = [np.load(out / "features" / "features" / f"{v['key']}.rgb.npy").reshape(-1, 1024).mean(axis=0)
                 for v in rows]
        return np.stack(feats), [v["label"] for v in rows]

    x, y = mean_features("train")
    xv, yv = mean_features("validation")
    baseline = float(np.mean(LogisticRegression(max_iter=5000).fit(x, y).predict(xv) == np.array(yv)))
    assert report["validation"]["top1"] >= baseline


@pytest.mark.slow  # the module's head: 74 clips' features
def test_a_head_reloads_bit_identically_and_matches_classify(trained, recognizer):
    out, head, report = trained
    again = Head.load(out)
    assert again.classes == head.classes and again.fingerprint() == head.fingerprint()
    for name in ("weight", "bias", "mean", "scale"):
        assert np.array_equal(getattr(again.streams["rgb"], name), getattr(head.streams["rgb"], name))
    with_head = Recognizer(recognizer.runners, recognizer.weight_sets, recognizer.backend, recognizer.engine, again)
    [row] = [v for v in report["videos"] if v["key"] == "actrecog__typing1.mp4"]
    result = with_head.classify(FEWSHOT / "clips" / "actrecog__typing1.mp4", video=VIDEO, top_k=3)
    np.testing.assert_allclose(result.logits, row["logits"], atol=1e-4)
    assert result.top[0].label == "typing" and result.categories == head.classes


@pytest.mark.slow  # the module's head: 74 clips' features
def test_a_head_refuses_other_features(trained):
    out, head, _ = trained
    with pytest.raises(OptionError, match="trained with window 16; this run has 250"):
        head.check_settings(VideoOptions().numbers())
    with pytest.raises(OptionError, match="trained on rgb features; this run has rgb\\+flow"):
        head.check_streams({"rgb": ("rgb_kinetics", head.weight_sets["rgb"]["index_sha256"]), "flow": ("x", "0")})
    with pytest.raises(OptionError, match="from rgb_kinetics .*this run uses rgb_imagenet"):
        head.check_streams({"rgb": ("rgb_imagenet", "f" * 64)})


@pytest.mark.slow  # the module's head: 74 clips' features
def test_a_tampered_head_is_refused(trained, tmp_path, shared_weights_dir):
    out, _, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("features"))
    data = bytearray((copy / "head.npz").read_bytes())
    data[-200] ^= 1
    (copy / "head.npz").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the sha256 in head.json"):
        Head.load(copy)
    proc = run_cli("--video", str(FEWSHOT / "clips" / "actrecog__typing1.mp4"), "--head", str(copy), "--offline",
                   weights_dir=shared_weights_dir)
    assert proc.returncode == 4 and proc.stderr.count("\n") == 1 and "head.npz" in proc.stderr
    with pytest.raises(InputError, match="no such file"):
        Head.load(tmp_path / "nothing")


@pytest.mark.slow  # the module's head: 74 clips' features
def test_training_again_reuses_the_features_and_redoes_only_what_is_gone(trained, recognizer, tmp_path):
    out = tmp_path / "head"
    shutil.copytree(trained[0], out)  # the module's head stays as it is for the other tests
    features = out / "features" / "features"
    first = {p.name: p.stat().st_mtime_ns for p in features.glob("*.rgb.npy")}
    (out / "features" / "results" / "actrecog__typing1.mp4.json").unlink()  # as if killed before this video
    train_set, val_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", LISTING))
    again, _ = train(train_set, out, recognizer, video=VIDEO, val_set=val_set,
                     options=TrainOptions(class_weight="none"))
    after = {p.name: p.stat().st_mtime_ns for p in features.glob("*.rgb.npy")}
    changed = sorted(name for name in first if after[name] != first[name])
    assert changed == ["actrecog__typing1.mp4.rgb.npy"]
    assert again.record["class_weight"] == "none"


def _items(*rows):
    return tuple(VideoItem(f"v{i}.mp4", Path(f"/nowhere/v{i}.mp4"), label, group)
                 for i, (label, group) in enumerate(rows))


def _dataset(*rows):
    return Dataset(_items(*rows), (), Path("/nowhere"), "list")


@pytest.mark.parametrize("rows, message", [
    ((("a", None), ("a", None)), "hold one class \\('a'\\)"),
    ((("a", None), ("a", None), ("b", None)), "class 'b' has 1 training video"),
    ((("a", None), ("a", None), (None, None)), "has no label"),
    ((("Push up", None), ("Push up", None), ("push_up", None), ("push_up", None)),
     "'Push up' and 'push_up' differ only by case or spaces"),
])
def test_bad_training_data_is_refused_in_one_line(rows, message):
    with pytest.raises(InputError, match=message):
        check_labels(_dataset(*rows))


def test_a_class_held_in_one_group_is_refused():
    with pytest.raises(InputError, match="class 'b': every video is in group 'g3'"):
        check_groups(list(_items(("a", "g1"), ("a", "g2"), ("b", "g3"), ("b", "g3"))))


def test_grouped_folds_and_hold_out_never_split_a_group():
    rng = np.random.default_rng(0)
    rows = [(label, f"{label}-g{rng.integers(0, 5)}" if i % 3 else f"shared{i % 4}")
            for i, label in enumerate(["a", "b", "c"] * 20)]
    items = list(_items(*rows))
    labels = np.array([["a", "b", "c"].index(item.label) for item in items])
    folds = grouped_folds(items, labels, 5, seed=0)
    assert 2 <= len(folds) <= 5
    for train_idx, test_idx in folds:
        assert not {items[i].group for i in train_idx} & {items[i].group for i in test_idx}
        assert sorted([*train_idx, *test_idx]) == list(range(len(items)))
    kept, held = hold_out(_dataset(*rows), 0.25, seed=0)
    assert not {i.group for i in kept.items} & {i.group for i in held.items}
    assert len(kept.items) + len(held.items) == len(items) and held.items


def test_a_head_is_refused_with_other_fps_stride_crop_or_flow_algorithm(tmp_path, shared_weights_dir):
    """The README: a head is used only with the feature settings it was trained on (flow_algorithm where it has a
    flow stream), refused by name before any video is read; on the command line, exit 2."""
    import dataclasses

    from support import random_head

    trained_with = {"fps": 25.0, "window": 16, "stride": 8, "crop": "center", "flow_algorithm": "tvl1",
                    "precision": "fp32"}
    rgb = dataclasses.replace(random_head(3), settings=trained_with)
    same = VideoOptions(window=16, stride=8)
    rgb.check_settings(same.numbers())  # the same settings pass
    for changed, words in ((dict(fps=30.0), "fps 25.0; this run has 30.0"),
                           (dict(stride=16), "stride 8; this run has 16"),
                           (dict(crop="full"), "crop 'center'; this run has 'full'"),
                           (dict(window=32), "window 16; this run has 32")):
        with pytest.raises(OptionError, match=words):
            rgb.check_settings(dataclasses.replace(same, **changed).numbers())
    rgb.check_settings(dataclasses.replace(same, flow_algorithm="dis").numbers())  # no flow stream: not checked
    both = dataclasses.replace(rgb, streams={**rgb.streams, "flow": rgb.streams["rgb"]})
    with pytest.raises(OptionError, match="flow_algorithm 'tvl1'; this run has 'dis'"):
        both.check_settings(dataclasses.replace(same, flow_algorithm="dis").numbers())
    rgb.save(tmp_path / "head")
    proc = run_cli("--video", str(FEWSHOT / "clips" / "actrecog__typing1.mp4"), "--head", str(tmp_path / "head"),
                   "--window", "16", "--stride", "8", "--fps", "30", "--offline", weights_dir=shared_weights_dir)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--fps" in proc.stderr, proc.stderr


def test_bad_training_data_from_the_command_is_exit_3_in_one_line(tmp_path, shared_weights_dir):
    """One class with a single training video: refused (exit 3) before any features are computed."""
    rows = [line.split("\t") for line in (FEWSHOT / "labels.tsv").read_text().splitlines()[1:]]
    typing = [r for r in rows if r[1] == "typing" and r[3] == "train"][:2]
    pushup = [r for r in rows if r[1] == "pushup_correct_form" and r[3] == "train"][:1]
    listing = tmp_path / "train.tsv"
    listing.write_text("path\tlabel\n" + "".join(f"{FEWSHOT / 'clips' / r[0]}\t{r[1]}\n" for r in typing + pushup))
    proc = run_cli("train", str(listing), "--out", str(tmp_path / "head"), "--offline",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert "class 'pushup_correct_form' has 1 training video" in proc.stderr
    assert not (tmp_path / "head" / "head.npz").exists()


def test_fine_tuning_starts_from_the_linear_heads_answers_exactly():
    """The README: epoch 0 of fine-tuning gives the linear head's answers exactly. A top of one 1x1x1 logits
    layer over its input, averaged: the linear head folded into it must score the validation videos as the
    linear head does on the mean of each window's activations, worked out here in float64."""
    from i3d.tasks.training.fine_tune import fine_tune_stream
    from i3d.tasks.training.options import FineTuneOptions

    rng = np.random.default_rng(0)
    top, linear, videos, labels = tiny_top(rng, 9)
    _, _, record = fine_tune_stream(videos[:3], labels[:3], videos, labels, linear, top,
                                    FineTuneOptions(epochs=1, patience=1, windows_per_step=2))
    right, loglik = 0, 0.0
    for windows, label in zip(videos, labels):
        by_hand = np.mean([((w.astype(np.float64).mean(axis=(0, 1, 2)) - linear.mean) / linear.scale)
                           @ linear.weight.T.astype(np.float64) + linear.bias for w in windows], axis=0)
        right += int(np.argmax(by_hand) == label)
        loglik += by_hand[label] - by_hand.max() - np.log(np.exp(by_hand - by_hand.max()).sum())
    epoch0 = record["history"][0]
    assert epoch0["epoch"] == 0 and epoch0["val_accuracy"] == round(right / 9, 4)
    assert epoch0["val_log_likelihood"] == pytest.approx(loglik / 9, abs=1e-4)  # recorded to 4 places


def test_train_command_on_class_folders(tmp_path, shared_weights_dir):
    """README: `i3d train my_videos/ --labels-from-folders` fits a head over the folders' classes."""
    rows = [line.split("\t") for line in (FEWSHOT / "labels.tsv").read_text().splitlines()[1:]]
    for label in ("pushup_correct_form", "typing"):
        (tmp_path / "videos" / label).mkdir(parents=True)
        for r in [r for r in rows if r[1] == label and r[3] == "train"][:3]:
            (tmp_path / "videos" / label / r[0]).symlink_to(FEWSHOT / "clips" / r[0])
    proc = run_cli("train", str(tmp_path / "videos"), "--labels-from-folders", "--out", str(tmp_path / "head"),
                   "--window", "16", "--max-frames", "16", "--format", "json", "--offline",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["train"]["videos"] == 6 and report["training"]["windows"] == {"rgb": 6}
    head = Head.load(tmp_path / "head")
    assert head.classes == ("pushup_correct_form", "typing") and head.streams["rgb"].weight.shape == (2, 1024)
    assert head.settings["window"] == 16


def test_train_command_refuses_an_out_inside_the_videos_and_two_validation_sides(tmp_path, shared_weights_dir):
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    proc = run_cli("train", str(videos), "--labels-from-folders", "--out", str(videos / "head"), "--offline",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 2 and "inside the input folder" in proc.stderr
    proc = run_cli("train", str(FEWSHOT / "labels.tsv"), "--split-column", "split", "--val-fraction", "0.3",
                   "--out", str(tmp_path / "h"), weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 2 and "give one" in proc.stderr
    assert not os.path.exists(tmp_path / "h")


@pytest.mark.slow  # the module's head: 74 clips' features
def test_batch_with_the_head_scores_the_users_own_labels(trained, tmp_path, shared_weights_dir):
    out, head, report = trained
    # four test-side videos the module's run already has features for (one of them typing23)
    validation = {v["key"]: v for v in report["videos"] if v["side"] == "validation"}
    chosen = ["actrecog__typing23.mp4", *[k for k in sorted(validation) if k != "actrecog__typing23.mp4"][:3]]
    listing = tmp_path / "test.tsv"
    listing.write_text("path\tlabel\n" + "".join(f"{FEWSHOT / 'clips' / k}\t{validation[k]['label']}\n"
                                                   for k in chosen))
    proc = run_cli("features", str(listing), "--out", str(tmp_path / "run"), "--head", str(out), "--window", "16",
                   "--max-frames", "16", "--format", "json", "--offline", weights_dir=shared_weights_dir,
                   module="i3d")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["labelled"] == 4 and summary["unmapped_labels"] == []
    right = [head.classes[int(np.argmax(validation[k]["logits"]))] == validation[k]["label"] for k in chosen]
    assert summary["top1"] == pytest.approx(sum(right) / 4, abs=1e-9)  # the module's own run of the same videos
    assert summary["settings"]["head"]["sha256"] == head.fingerprint()
    [path] = (tmp_path / "run" / "features").rglob("actrecog__typing23.mp4.rgb.head_logits.npy")
    head_logits = np.load(path)
    # worked out by hand on the features the module's training run computed: standardise, then the linear layer
    part = head.streams["rgb"]
    features = np.load(out / "features" / "features" / "actrecog__typing23.mp4.rgb.npy").reshape(-1, 1024)
    by_hand = ((features.astype(np.float64) - part.mean) / part.scale) @ part.weight.T.astype(np.float64) + part.bias
    assert head_logits.shape == (1, 6)
    np.testing.assert_allclose(head_logits, by_hand, atol=1e-3)
    refused = run_cli("batch", str(listing), "--out", str(tmp_path / "other"), "--head", str(out), "--offline",
                      weights_dir=shared_weights_dir, module="i3d")
    assert refused.returncode == 2 and "trained with window 16; this run has 250" in refused.stderr


def _list(path: Path, split: str, classes: tuple[str, ...], per_class: int) -> Path:
    """A path/label list of the first ``per_class`` fewshot clips of each class on one split side."""
    rows = [line.split("\t") for line in (FEWSHOT / "labels.tsv").read_text().splitlines()[1:]]
    chosen = []
    for label in classes:
        chosen += [r for r in rows if r[1] == label and r[3] == split][:per_class]
    path.write_text("path\tlabel\n" + "".join(f"{FEWSHOT / 'clips' / r[0]}\t{r[1]}\n" for r in chosen))
    return path


@pytest.mark.slow  # two features runs and two trainings (test_train_command_on_class_folders: fast)
def test_train_reuses_an_i3d_features_folder_and_scores_a_val_source(tmp_path, shared_weights_dir):
    classes = ("pushup_correct_form", "typing")
    train_list = _list(tmp_path / "train.tsv", "train", classes, 3)
    val_list = _list(tmp_path / "val.tsv", "test", classes, 2)
    feats = tmp_path / "feats"
    common = ("--window", "16", "--max-frames", "32", "--offline")
    proc = run_cli("features", str(train_list), "--out", str(feats), "--workers", "0", *common,
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.stat().st_mtime_ns for p in (feats / "features").rglob("*.rgb.npy")}
    assert len(before) == 6
    proc = run_cli("train", str(train_list), "--features", str(feats), "--val", str(val_list),
                   "--out", str(tmp_path / "head"), "--format", "json", *common,
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["validation"]["videos"] == 4 and report["train"]["videos"] == 6
    # a regression pin: push-ups and typing are far apart in I3D's features (all 4 right when last checked)
    assert report["validation"]["top1"] == 1.0
    after = {p.name: p.stat().st_mtime_ns for p in (feats / "features").rglob("*.rgb.npy")}
    assert {name: after[name] for name in before} == before  # reused, not recomputed
    assert len(after) == 10  # the folder was completed with the validation videos
    assert not (tmp_path / "head" / "features").exists()
    refused = run_cli("train", str(train_list), "--features", str(feats), "--out", str(tmp_path / "other"),
                      "--window", "32", "--max-frames", "32", "--offline", weights_dir=shared_weights_dir, module="i3d")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and "video.window 16 there, 32 here" in refused.stderr
    assert json.loads((feats / "settings.json").read_text())["video"]["window"] == 16  # never overwritten


@pytest.mark.slow  # the module's head: 74 clips' features
def test_annotate_and_plot_with_a_head_name_its_classes(trained, tmp_path, shared_weights_dir, recognizer):
    from i3d.report.annotate import make_panel

    out, head, _ = trained
    clip = FEWSHOT / "clips" / "actrecog__typing1.mp4"
    proc = run_cli("classify", "--video", str(clip), "--head", str(out), "--window", "16", "--max-frames", "32",
                   "--annotate", str(tmp_path / "a.mp4"), "--plot", str(tmp_path / "p.png"), "--format", "json",
                   "--offline", weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["top"][0]["label"] == "typing"
    import av
    from PIL import Image

    with av.open(str(clip)) as container:
        fps = float(container.streams.video[0].average_rate)  # 29.97: the source's frames are kept
    with av.open(str(tmp_path / "a.mp4")) as container:  # the span classified (32 frames at 25 fps), annotated
        assert abs(sum(1 for _ in container.decode(video=0)) - 32 / 25 * fps) <= 1.5
    with Image.open(tmp_path / "p.png") as image:
        assert image.format == "PNG" and image.size[0] == 1000
    with_head = Recognizer(recognizer.runners, recognizer.weight_sets, recognizer.backend, recognizer.engine, head)
    result = with_head.classify(clip, video=VIDEO, top_k=3)
    assert [p.label for p in result.windows[0].top][0] == "typing"
    assert make_panel(result.windows[0], 320, 240).rgb.shape[1] > 0


@pytest.mark.slow  # the module's head: 74 clips' features
def test_a_head_on_features_of_another_precision_warns(trained, recognizer):
    from dataclasses import replace as changed

    _, head, _ = trained
    with pytest.warns(UserWarning, match="trained on fp32 features; this run computes them in int8"):
        Recognizer(recognizer.runners, recognizer.weight_sets, recognizer.backend,
                   changed(recognizer.engine, precision="int8"), head)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recognizer(recognizer.runners, recognizer.weight_sets, recognizer.backend, recognizer.engine, head)


FINE_TUNE_VIDEO = VideoOptions(window=16, max_frames=16)
"""One window a clip for the fine-tuning test: each window's activations and features are a pass of the network
(what fine-tuning keeps and how the head runs everywhere are checked, not how well it learns)."""


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, recognizer):
    """Mixed_5c fine-tuned for two epochs on 3 classes x 4 training videos, stopped on 2 videos a class."""
    from i3d.tasks.training.options import FineTuneOptions

    train_set, val_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", LISTING))
    classes = sorted({item.label for item in train_set.items})[:3]

    def few(dataset: Dataset, count: int) -> Dataset:
        return Dataset(tuple(item for label in classes for item in
                             [i for i in dataset.items if i.label == label][:count]), (), dataset.root, dataset.layout)

    out = tmp_path_factory.mktemp("fine-tuned") / "head"
    head, report = train(few(train_set, 4), out, recognizer, video=FINE_TUNE_VIDEO, val_set=few(val_set, 2),
                         options=TrainOptions(fine_tune=FineTuneOptions(epochs=2, patience=2)))
    return out, head, report


@pytest.mark.slow  # Mixed_5c fine-tuned on 18 clips' activations
def test_a_fine_tuned_head_starts_from_the_linear_one_and_runs_everywhere(fine_tuned, shared_store):
    from i3d.runtime.base import EngineOptions

    out, head, report = fine_tuned
    tuning = report["training"]["fine_tune"]
    history = tuning["streams"]["rgb"]["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2] and tuning["block"] == "mixed_5c"
    # before its first step the top gives the linear head's answers: exactly on the same inputs (see
    # test_fine_tuning_starts_from_the_linear_heads_answers_exactly); here the top reads the kept float16
    # activations and the linear head float32 features, so one video in six may fall the other way
    assert abs(history[0]["val_accuracy"] - tuning["linear_validation"]["top1"]) <= 1 / 6 + 1e-9
    assert json.loads((out / "head.json").read_text())["fine_tuned"] == "mixed_5c"
    again = Head.load(out)
    assert again.fine_tuned == "mixed_5c" and again.fingerprint() == head.fingerprint()
    assert set(again.tops["rgb"]) >= {"Mixed_5c.Branch_0.Conv3d_0a_1x1.conv_3d.0", "Logits.Conv3d_0c_1x1.conv_3d.1"}
    [row] = [v for v in report["videos"] if v["side"] == "train"][:1]
    logits = {}
    for backend in ("openvino", "tensorflow"):
        tuned = Recognizer.load("rgb", store=shared_store, engine=EngineOptions(backend=backend), head=again)
        result = tuned.classify(FEWSHOT / "clips" / row["key"], video=FINE_TUNE_VIDEO, top_k=3)
        logits[backend] = np.asarray(result.logits)
        assert result.label == again.classes[int(np.argmax(row["logits"]))]
        np.testing.assert_allclose(logits[backend], row["logits"], atol=5e-3)  # report: float16 activations
    np.testing.assert_allclose(logits["openvino"], logits["tensorflow"], atol=1e-3)
    with pytest.raises(OptionError, match="int8 is calibrated for Kinetics"):
        Recognizer.load("rgb", store=shared_store, engine=EngineOptions(precision="int8"), head=again)
    plain = Recognizer.load("rgb", store=shared_store)
    with pytest.raises(OptionError, match="is fine-tuned: its rgb network is the head's own"):
        Recognizer(plain.runners, plain.weight_sets, plain.backend, plain.engine, again)
