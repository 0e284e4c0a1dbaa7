"""evaluate.py on real and synthetic videos: labels, preprocess parity, windows, flow cache, bad files."""

from __future__ import annotations

import json
import re
import tracemalloc

import cv2
import numpy as np
import pytest
from support import ARM_WRESTLING, needs_video, run_cli, stand_in_flow_copy, write_video


@pytest.fixture(scope="module")
def arm_wrestling_json(shared_weights_dir):
    proc = run_cli("--video", str(ARM_WRESTLING), "--format", "json", "--top-k", "5", weights_dir=shared_weights_dir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@needs_video
def test_arm_wrestling_video_is_arm_wrestling(arm_wrestling_json):
    result = arm_wrestling_json
    assert result["top"][0]["label"] == "arm wrestling" and result["top"][0]["probability"] > 0.99
    assert result["frames"] == {"rgb": 250}  # 280 frames at 28 fps = 10 s = 250 frames at 25 fps
    assert len(result["windows"]) == 1 and result["windows"][0]["end"] == pytest.approx(10.0)


@pytest.mark.slow  # preprocess, then a second run
@needs_video
def test_preprocess_then_npy_gives_the_same_logits(arm_wrestling_json, shared_weights_dir, tmp_path):
    proc = run_cli("preprocess", str(ARM_WRESTLING), "--type", "rgb", "--out", str(tmp_path),
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    rgb = tmp_path / "arm_wrestling_rgb.npy"
    assert np.load(rgb).shape == (1, 250, 224, 224, 3)
    proc = run_cli("--rgb", str(rgb), "--format", "json", weights_dir=shared_weights_dir)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(json.loads(proc.stdout)["logits"], arm_wrestling_json["logits"])


@pytest.mark.slow  # arm_wrestling.mp4 in windows, and its features again
@needs_video
def test_windows_give_a_timeline(shared_weights_dir):
    proc = run_cli("--video", str(ARM_WRESTLING), "--window", "100", "--stride", "75", "--format", "json",
                   weights_dir=shared_weights_dir)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    spans = [(w["start"], w["end"], w["frames"]) for w in result["windows"]]
    assert spans == [(0.0, 4.0, 100), (3.0, 7.0, 100), (6.0, 10.0, 100)]
    assert all(w["top"][0]["label"] == "arm wrestling" for w in result["windows"])
    # the table, on short windows every 6 s (the last one ends with the 10 s video)
    proc = run_cli("--video", str(ARM_WRESTLING), "--window", "16", "--stride", "150", "--top-k", "2",
                   weights_dir=shared_weights_dir)
    assert proc.returncode == 0, proc.stderr
    assert "| window | start s | end s |" in proc.stdout
    rows = [[cell.strip() for cell in line.split("|")[1:4]] for line in proc.stdout.splitlines()
            if re.match(r"\|\s+\d+\s+\|\s+\d+\.\d\d\s", line)]
    assert rows == [["0", "0.00", "0.64"], ["1", "6.00", "6.64"], ["2", "9.36", "10.00"]]


def test_windowing_keeps_memory_bounded(tmp_path):
    """Peak memory is set by the window, not the video: 300 frames cost no more than 60."""
    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.streams import RGB

    def peak_bytes(frames: int) -> tuple[int, int]:
        video = write_video(tmp_path / f"v{frames}.avi", frames, width=80, height=60)
        tracemalloc.start()
        count = 0
        for window in iter_windows(video, (RGB,), VideoOptions(window=20)):
            assert window.clips["rgb"].shape == (1, 20, 224, 224, 3)
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, peak

    (short_count, short_peak), (long_count, long_peak) = peak_bytes(60), peak_bytes(300)
    assert (short_count, long_count) == (3, 15)
    assert long_peak < short_peak * 1.1, (short_peak, long_peak)
    assert long_peak < 300 * 256 * 341 * 3  # less than the decoded video itself


@pytest.mark.slow  # a flow stream, three times
def test_flow_cache_skips_recomputation_and_keeps_logits(tmp_path, monkeypatch, stand_in_flow):
    """The flow stream twice on a video: the second run computes no flow and gives identical logits."""
    import i3d
    from i3d.preprocess import flow

    store = i3d.WeightStore(tmp_path / "weights")
    injected = {"flow": stand_in_flow_copy(stand_in_flow, store.root)}
    cache = tmp_path / "cache" / "flow"
    video = write_video(tmp_path / "moving.avi", 14)

    def run(flow_cache):
        return i3d.classify(video, "flow", weight_sets=injected, store=store, load=i3d.LoadOptions(download=False),
                            video=i3d.VideoOptions(flow_cache=flow_cache))

    first = run(cache)
    cached = list(cache.glob("*.npy"))
    assert len(cached) == 1 and not list(cache.glob(".*"))
    assert first.frames == {"flow": 13}

    def no_flow(*args, **kwargs):
        raise AssertionError("flow was recomputed")

    monkeypatch.setattr(flow, "_raw_flow", no_flow)
    assert np.array_equal(run(cache).logits, first.logits)
    with pytest.raises(AssertionError, match="flow was recomputed"):  # proves the cache was what spared the work
        run(None)


def _bad_videos(folder):
    cases = {"missing": (folder / "nope.mp4", "no such file")}
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    cases["empty"] = (empty, "empty")
    text = folder / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    cases["not a video"] = (text, "cannot open as a video")
    short = write_video(folder / "short.avi", 5)
    cases["5 frames"] = (short, "at least 9")
    whole = write_video(folder / "whole.avi", 60).read_bytes()
    truncated = folder / "truncated.avi"
    truncated.write_bytes(whole[: len(whole) // 2])
    cases["truncated"] = (truncated, "truncated")
    frames = folder / "thin"
    frames.mkdir()
    for i in range(12):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((32, 1, 3), 128, np.uint8))
    cases["1-pixel-wide frames"] = (frames, "at least 2x2")
    return cases


def test_every_bad_video_exits_3_with_one_line(tmp_path):
    weights, cache, inputs = tmp_path / "weights", tmp_path / "cache", tmp_path / "inputs"
    for folder in (weights, cache, inputs):
        folder.mkdir()
    for case, (path, message) in _bad_videos(inputs).items():
        flag = "--frames" if path.is_dir() else "--video"
        strict = ["--strict"] if case == "truncated" else []  # without it, a damaged tail is used with a warning
        proc = run_cli(flag, str(path), "--type", "both", *strict, weights_dir=weights)
        assert proc.returncode == 3, (case, proc.stderr)
        assert message in proc.stderr and str(path) in proc.stderr, (case, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == "", case
    assert list(weights.iterdir()) == [] and list(cache.iterdir()) == []


@pytest.mark.parametrize("args,message", [
    (["--video", "x.mp4", "--rgb", "y.npy"], "not both"),
    (["--video", "x.mp4", "--window", "8"], "at least 9"),
    (["--video", "x.mp4", "--type", "both", "--window", "9"], "at least 10"),
])
def test_video_usage_errors_exit_2(tmp_path, args, message):
    proc = run_cli(*args, weights_dir=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.slow  # arm_wrestling.mp4 twice more
@needs_video
def test_features_per_window_agree_with_classify(shared_store):
    """One Recognizer: features are (windows, 1024); their logits are classify's per-window logits."""
    import i3d

    recognizer = i3d.Recognizer.load("rgb", store=shared_store, load=i3d.LoadOptions(download=False))
    options = i3d.VideoOptions(window=50, stride=25, max_frames=100)  # the first 4 s: overlapping windows
    feats = recognizer.features(ARM_WRESTLING, video=options, logits=True)
    result = recognizer.classify(ARM_WRESTLING, video=options, top_k=3)
    assert feats.features["rgb"].shape == (3, 1024) and feats.features["rgb"].dtype == np.float32
    assert feats.logits["rgb"].shape == (3, 400)
    assert [(w.first_frame, w.frames, w.start, w.end) for w in feats.windows] == [
        (0, 50, 0.0, 2.0), (25, 50, 1.0, 3.0), (50, 50, 2.0, 4.0)]
    for row, window in zip(feats.logits["rgb"], result.windows):
        np.testing.assert_array_equal(row.astype(np.float64), window.logits)
    assert np.all(feats.features["rgb"] >= 0)  # averaged after ReLU
    assert not np.allclose(feats.features["rgb"][0], feats.features["rgb"][2])
    assert i3d.extract_features(ARM_WRESTLING, video=options, store=shared_store,
                                load=i3d.LoadOptions(download=False)).features["rgb"].shape == (3, 1024)
