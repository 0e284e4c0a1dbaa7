"""i3d segments on a long video made of real clips of different classes joined end to end, with known boundaries."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from support import SHARED, run_cli

from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.run import BatchOptions
from i3d.tasks.segments.evaluation import tiou
from i3d.tasks.segments.run import run_segments, single_video
from i3d.tasks.segments.cut import SegmentOptions

CLIPS = SHARED / "devset" / "clips"
JOINED = [("knitting", "UCF101__v_Knitting_g10_c02.mp4"), ("archery", "UCF101__v_Archery_g01_c01.avi"),
          ("tai chi", "other__ta_chi__st-gcn.mp4")]
VIDEO = VideoOptions(window=64, stride=32)  # the command's window, every other of its default steps

pytestmark = pytest.mark.slow  # 22.5 s of video in 64-frame windows every 32 (test_dense runs segments fast)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """The joined video, and its ground truth as ActivityNet's JSON."""
    if not CLIPS.is_dir():
        pytest.skip("../shared/devset is not beside the checkout")
    from i3d.report.joined import join_videos

    folder = tmp_path_factory.mktemp("joined")
    spans = join_videos([CLIPS / name for _, name in JOINED], folder / "videos" / "joined.mp4")
    truth = [{"label": label, "segment": list(span)} for (label, _), span in zip(JOINED, spans)]
    (folder / "gt.json").write_text(json.dumps({"database": {"joined": {"annotations": truth}}}))
    return folder / "videos" / "joined.mp4", folder / "gt.json", spans


@pytest.fixture(scope="module")
def found(joined, recognizer, tmp_path_factory):
    video, gt, _ = joined
    out = tmp_path_factory.mktemp("segments") / "out"
    return out, run_segments(single_video(video), out, recognizer, video=VIDEO, options=BatchOptions(),
                             ground_truth=gt)


def test_each_clip_is_found_with_its_label(joined, found):
    _, _, spans = joined
    out, report = found
    segments = report.segments["joined"]
    assert 20 < spans[-1][1] < 25  # about 22.5 s of video
    for (label, _), (start, end) in zip(JOINED, spans):
        mine = [s for s in segments if s.label == label]
        assert mine, f"no {label} segment in {[(s.label, s.start, s.end) for s in segments]}"
        best = max(tiou(start, end, np.array([s.start for s in mine]), np.array([s.end for s in mine])))
        assert best >= 0.5, (label, start, end, mine)
    evaluation = report.evaluation
    assert evaluation.map["0.5"] == pytest.approx(1.0)
    assert json.loads((out / "evaluation.json").read_text())["map"] == evaluation.map
    written = json.loads((out / "segments.json").read_text())
    assert written["results"]["joined"] == [s.as_json() for s in segments]


def test_the_scores_are_the_windows_classify_gives(joined, found, recognizer):
    video, _, _ = joined
    out, _ = found
    saved = np.load(out / "segments" / "joined.mp4.scores.npz", allow_pickle=False)
    sidecar = json.loads((out / "features" / "joined.mp4.json").read_text())
    kept = np.load(out / "features" / "joined.mp4.rgb.logits.npy")
    spans = {w["first_frame"]: n for n, w in enumerate(sidecar["windows"])}
    result = recognizer.classify(video, video=dataclasses.replace(VIDEO, max_frames=100))  # the first 4 s
    regular = result.windows[:-1]  # the last is aligned to the 100th frame
    assert len(regular) == 2  # windows from frames 0 and 32, run again by classify here
    for window in regular:
        np.testing.assert_allclose(kept[spans[window.span.first_frame]], window.logits, atol=1e-5)
    # worked out here as the README says it: a frame's score is the mean of the softmax of every window covering
    # it; frames count from the first window's first frame, at 25 fps from its start time
    firsts = np.array([w["first_frame"] for w in sidecar["windows"]])
    lengths = np.array([w["frames"] for w in sidecar["windows"]])
    frames = np.arange(firsts.min(), (firsts + lengths).max())
    covering = (frames[:, None] >= firsts[None]) & (frames[:, None] < (firsts + lengths)[None])  # (F, W)
    exp = np.exp(kept.astype(np.float64) - kept.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    expected = covering @ probabilities / covering.sum(axis=1, keepdims=True)
    first = sidecar["windows"][int(np.argmin(firsts))]
    np.testing.assert_allclose(saved["scores"], expected, atol=1e-5)
    np.testing.assert_allclose(saved["times"], first["start"] + (frames - frames[0]) / 25.0, atol=1e-9)
    assert tuple(saved["classes"]) == recognizer.categories
    assert saved["scores"].shape == (len(frames), 400) and len(frames) > 560  # all 22.5 s


def test_subtitles_and_timeline_are_written(found):
    from PIL import Image

    out, report = found
    segments = report.segments["joined"]
    srt = (out / "segments" / "joined.mp4.srt").read_text()
    assert srt.count(" --> ") == len(segments) and "knitting (" in srt
    assert (out / "segments" / "joined.mp4.vtt").read_text().startswith("WEBVTT\n\n00:00:0")
    rows = (out / "segments" / "joined.mp4.csv").read_text().splitlines()
    assert len(rows) == len(segments) + 1 and rows[1].startswith("joined,")
    rows = min(len({s.label for s in segments}), 12)  # a row per class with segments, at most 12
    with Image.open(out / "segments" / "joined.mp4.timeline.png") as image:
        assert image.size == (1000, 90 + 70 * rows)  # 1000 px wide, 90 + 70 px per row high


def test_cut_again_with_other_thresholds_without_running_the_network(joined, found, recognizer, tmp_path):
    import shutil

    video, gt, _ = joined
    shared, report = found
    out = tmp_path / "out"
    shutil.copytree(shared, out)  # cut again in a copy: the module's folder stays as the other tests read it
    strict = run_segments(single_video(video), out, recognizer, video=VIDEO, ground_truth=gt,
                          segment=SegmentOptions(threshold=0.99), charts=False)
    assert (strict.batch.processed, strict.batch.skipped) == (0, 1)
    assert len(strict.segments["joined"]) < len(report.segments["joined"])


def test_the_command(joined, found, shared_weights_dir, tmp_path):
    import shutil

    video, gt, _ = joined
    shared, report = found
    out = tmp_path / "out"
    shutil.copytree(shared, out)  # resumed in a copy: the module's folder stays as the other tests read it
    proc = run_cli("segments", str(video.parent), "--out", str(out), "--ground-truth", str(gt), "--format", "json",
                   "--stride", "32", "--offline", "--no-charts", weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"]["ok"] == 1 and data["evaluation"]["map"] == report.evaluation.map
    assert data["segments"]["joined"] == [s.as_json() for s in report.segments["joined"]]
    proc = run_cli("segments", str(video), "--out", str(out), "--annotate", str(tmp_path / "a.mp4"), "--offline",
                   "--stride", "32", "--no-charts", weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    import av

    with av.open(str(tmp_path / "a.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == pytest.approx(report.spans["joined"][1] * 25, abs=2)
    proc = run_cli("segments", str(video.parent), "--out", str(out), "--annotate", str(tmp_path / "b.mp4"),
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 2 and "give a video as SOURCE" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"database": {"joined": {"annotations": [{"label": "x"}]}}}')
    proc = run_cli("segments", str(video), "--out", str(tmp_path / "o"), "--ground-truth", str(bad), "--offline",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 3 and "'segment' must be [start, end]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o" / "results").exists()
    proc = run_cli("segments", str(video), "--out", str(tmp_path / "o"), "--threshold", "1.5",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 2 and "--threshold is 1.5" in proc.stderr
