"""Dense windows: chunks shared out so every window is answered once, with its margins, off one pass's steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import SAMPLES, run_cli

from i3d.errors import OptionError
from i3d.preprocess.dense import MARGIN, STEP, DenseSpans, DenseTiling, chunk_and_hop, window_means, with_last
from i3d.preprocess.windows import VideoOptions, sliding_windows
from i3d.streams import RGB


def tiled(frames: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Every dense window of a ``frames``-frame video as (first frame, frames, its chunk's first, its chunk's
    frame count), cut exactly as a video's frames are."""
    tiling, found = DenseTiling(window, stride), []
    for (first, picked), last in with_last(sliding_windows(range(frames), *chunk_and_hop(window, stride))):
        spans = tiling.spans(first, len(picked), last)
        found += [(first + s, spans.frames(n, len(picked)), first, len(picked)) for n, s in enumerate(spans.starts)]
    return found


@pytest.mark.parametrize("frames", [20, 64, 79, 255, 256, 300, 347, 392, 1000, 2507])
@pytest.mark.parametrize("stride", [8, 16, 64])
def test_every_window_is_answered_once_with_its_margins(frames, stride):
    windows = tiled(frames, 64, stride)
    starts = [w[0] for w in windows]
    assert starts == sorted(set(starts)) and starts[0] == 0  # in order, once each, from the first frame
    assert windows[-1][0] + windows[-1][1] == frames  # the last runs to the video's end
    for start, count, chunk_first, chunk_frames in windows:
        assert (start - chunk_first) % STEP == 0  # on its chunk's steps
        assert count >= min(64, frames)
        if chunk_first > 0:  # margins to the chunk's edges, where they are not the video's own
            assert start - chunk_first >= MARGIN
        if chunk_first + chunk_frames < frames:
            assert chunk_first + chunk_frames - (start + count) >= MARGIN
    gaps = np.diff(starts)
    assert (gaps < stride + STEP).all() and (gaps != stride).sum() <= 2  # regular but where the tail chunk starts


def test_chunks_overlap_just_enough():
    assert chunk_and_hop(64, 8) == (256, 136)  # 256 frames every 136: 1.9 frames of work per video frame
    assert chunk_and_hop(64, 16) == (256, 144)
    assert chunk_and_hop(64, 64) == (256, 128)
    assert chunk_and_hop(248, 8) == (624, 320)  # a longer window widens the chunk


def test_window_means_are_the_steps_each_window_spans():
    steps = np.arange(31, dtype=np.float64)[None, :, None] * np.ones((2, 1, 3))  # (views 2, 31 steps, 3)
    spans = DenseSpans(64, (0, 8, 192), to_end=True)  # the last runs to the chunk's end: 64 frames, 7 steps
    means = window_means(steps, spans, 256)
    assert means.shape == (3, 2, 3)
    assert means[:, 0, 0].tolist() == [3.0, 4.0, 27.0]  # steps 0-6, 1-7, 24-30
    short = window_means(np.arange(2.0)[None, :, None], DenseSpans(64, (0,), to_end=True), 20)
    assert short[0, 0, 0] == 0.5  # a clip shorter than a window: all of its steps


def test_dense_options_are_whole_steps():
    for window, stride in ((60, None), (64, 12), (64, 72), (8, None), (None, None)):
        with pytest.raises(OptionError):
            VideoOptions(window=window, stride=stride, dense=True).check((RGB,))
    assert VideoOptions(window=64, dense=True).window_and_step() == (64, 8)
    assert "dense" not in VideoOptions(window=64).numbers()  # folders made without it still match


@pytest.fixture(scope="module")
def cricket(cricket_clips):
    return np.load(cricket_clips["rgb"])


def test_a_clip_is_the_mean_of_its_steps(recognizer, cricket):
    runner = recognizer.runners["rgb"]
    logits, features = runner.outputs(cricket)
    step_logits, step_features = runner.step_outputs(cricket)
    assert step_logits.shape == (1, 9, 400) and step_features.shape == (1, 9, 1024)  # 79 frames: 10 - 1 steps
    assert np.abs(step_logits.mean(axis=1) - logits).max() < 1e-5
    assert np.abs(step_features.mean(axis=1) - features).max() < 1e-6


@pytest.mark.slow  # the TensorFlow network as well
def test_tensorflow_steps_too(shared_store, cricket):
    from i3d.runtime.tensorflow import TensorFlowRunner
    from i3d.weights.sets import get_weight_set

    runner = TensorFlowRunner.load(get_weight_set("rgb", "kinetics"), shared_store)
    logits, _ = runner.outputs(cricket[:, :40])
    step_logits, step_features = runner.step_outputs(cricket[:, :40])
    assert step_logits.shape == (1, 4, 400) and step_features.shape == (1, 4, 1024)
    assert np.abs(step_logits.mean(axis=1) - logits).max() < 1e-5


@pytest.mark.slow  # a video's windows twice
def test_dense_windows_of_a_video_against_windows_run_alone(recognizer):
    video = SAMPLES / "arm_wrestling.mp4"
    first = dict(window=64, stride=16, max_frames=112)  # 4.5 s: the first 4 windows
    dense = recognizer.features(video, video=VideoOptions(**first, dense=True), logits=True)
    alone = recognizer.features(video, video=VideoOptions(**first), logits=True)
    spans = [(w.first_frame, w.frames) for w in dense.windows]
    assert spans[0] == (0, 64) and all(b[0] - a[0] == 16 for a, b in zip(spans[:-2], spans[1:-1]))
    same = {(w.first_frame, w.frames): i for i, w in enumerate(alone.windows)}
    pairs = [(i, same[key]) for i, key in enumerate(spans) if key in same]
    assert len(pairs) >= len(spans) - 1
    a = dense.logits["rgb"][[i for i, _ in pairs]]
    b = alone.logits["rgb"][[j for _, j in pairs]]
    assert (a.argmax(axis=1) == b.argmax(axis=1)).all()  # the same answer in every window
    assert 0.0 < np.abs(a - b).mean() < 1.0  # not the same computation: real frames beyond the edges
    assert dense.features["rgb"].shape == (len(spans), 1024)


def test_segments_dense_on_the_command_line(shared_weights_dir, tmp_path, recognizer):
    from i3d.preprocess.windows import SHORT_STRIDE, SHORT_WINDOW

    out = tmp_path / "out"
    done = run_cli("segments", str(SAMPLES / "clip_c.avi"), "--out", str(out), "--dense", "--format", "json",
                   "--no-charts", module="i3d", weights_dir=shared_weights_dir)
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(next((out / "features").rglob("*.json")).read_text())
    starts = [w["first_frame"] for w in sidecar["windows"]]
    assert starts[:3] == [0, 16, 32]
    # the command's windows are the library's dense ones (run here, in this process), logit for logit
    ours = recognizer.features(SAMPLES / "clip_c.avi", logits=True,
                               video=VideoOptions(window=SHORT_WINDOW, stride=SHORT_STRIDE, dense=True))
    assert [w.first_frame for w in ours.windows] == starts
    np.testing.assert_allclose(np.load(next((out / "features").rglob("*.rgb.logits.npy"))), ours.logits["rgb"],
                               atol=1e-4)
    segments = json.loads(done.stdout)["segments"]["clip_c"]
    assert segments and {s["label"] for s in segments} <= set(recognizer.categories)
    refused = run_cli("segments", str(SAMPLES / "clip_c.avi"), "--out", str(tmp_path / "other"), "--dense",
                      "--window", "60", module="i3d", weights_dir=shared_weights_dir)
    assert refused.returncode == 2 and "multiple of 8" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow  # a second segments process (the dense command test keeps the command in the fast tier)
def test_segments_with_a_head_and_chosen_classes_on_the_command_line(shared_weights_dir, tmp_path):
    """README: with --head the scores are over the head's classes; --classes keeps some classes only."""
    from support import random_head

    random_head(3, seed=1).save(tmp_path / "head")
    common = ("--head", str(tmp_path / "head"), "--window", "32", "--stride", "32", "--threshold", "0.01",
              "--min-duration", "0", "--format", "json", "--no-charts", "--offline")
    everything = run_cli("segments", str(SAMPLES / "clip_c.avi"), "--out", str(tmp_path / "all"), *common,
                         module="i3d", weights_dir=shared_weights_dir)
    assert everything.returncode == 0, everything.stderr
    found = json.loads(everything.stdout)["segments"]["clip_c"]
    assert found and {s["label"] for s in found} <= {"class 0", "class 1", "class 2"}
    [scores] = (tmp_path / "all" / "segments").glob("*.scores.npz")
    with np.load(scores) as saved:
        assert saved["scores"].shape[1] == 3 and tuple(saved["classes"]) == ("class 0", "class 1", "class 2")
        np.testing.assert_allclose(saved["scores"].sum(axis=1), 1.0, atol=1e-5)  # probabilities over 3 classes
    some = run_cli("segments", str(SAMPLES / "clip_c.avi"), "--out", str(tmp_path / "some"), *common,
                   "--classes", "class 1,class 2", module="i3d", weights_dir=shared_weights_dir)
    assert some.returncode == 0, some.stderr
    kept = json.loads(some.stdout)["segments"]["clip_c"]
    assert kept == [s for s in found if s["label"] in ("class 1", "class 2")]
