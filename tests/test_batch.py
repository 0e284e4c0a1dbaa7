"""Dataset runs: records, failures, resume, settings, shards, features, workers, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from support import ROOT, run_cli, write_labelled_videos

from i3d.errors import OptionError
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.run import BatchOptions, run_batch
from i3d.inputs.dataset_items import ListOptions
from i3d.inputs.datasets import load_dataset


@pytest.fixture()
def dataset_dir(tmp_path):
    """Class folders with Kinetics names: 4 good videos, a corrupt one and one too short."""
    return write_labelled_videos(tmp_path / "videos")


def load(root):
    return load_dataset(root, ListOptions(labels_from_folders=True))


def records(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_batch_records_every_video_and_failures(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    report = run_batch(load(dataset_dir), out, recognizer)
    assert (report.processed, report.skipped, report.failed) == (6, 0, 2)
    rows = {row["key"]: row for row in records(out)}
    assert sorted(rows) == ["abseiling/clip2.avi", "abseiling/short.avi", "archery/broken.avi",
                            "archery/clip0.avi", "archery/clip1.avi", "juggling balls/clip3.avi"]
    assert rows["archery/broken.avi"]["status"] == "failed"
    assert "cannot open as a video" in rows["archery/broken.avi"]["error"]
    assert "video has 4 frames" in rows["abseiling/short.avi"]["error"]
    ok = rows["archery/clip0.avi"]
    assert ok["status"] == "ok" and ok["label_index"] == 5 and len(ok["logits"]) == 400 and len(ok["top"]) == 5
    assert ok["frames"] == {"rgb": 14}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["videos"], summary["ok"], summary["failed"], summary["labelled"]) == (6, 4, 2, 4)
    assert summary["top1"] == sum(r["top"][0]["index"] == r["label_index"] for r in rows.values()
                                  if r["status"] == "ok") / 4
    assert (out / "per_class.csv").read_text().splitlines()[0] == "class_index,class,videos,top1,top5"
    from PIL import Image

    with Image.open(out / "confusion.png") as confusion, Image.open(out / "per_class_accuracy.png") as accuracy:
        assert (confusion.format, confusion.size) == ("PNG", (700, 500))  # 3 true classes: the smallest size
        assert (accuracy.format, accuracy.size) == ("PNG", (1000, 120 + 3 * 22))


def test_rerun_skips_finished_videos_and_runs_only_what_is_missing(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    run_batch(load(dataset_dir), out, recognizer)
    before = (out / "predictions.jsonl").read_text()
    again = run_batch(load(dataset_dir), out, recognizer)
    assert (again.processed, again.skipped) == (0, 6)
    assert (out / "predictions.jsonl").read_text() == before
    (out / "results" / "archery" / "clip1.avi.json").unlink()
    once_more = run_batch(load(dataset_dir), out, recognizer)
    assert (once_more.processed, once_more.skipped) == (1, 5)
    assert len(records(out)) == 6
    retried = run_batch(load(dataset_dir), out, recognizer, options=BatchOptions(retry_failed=True))
    assert (retried.processed, retried.skipped, retried.failed) == (2, 4, 2)


BROKEN_RECORDS = [
    {"key": "archery/clip1.avi"},  # valid JSON, not a record: no status, no path
    {"key": "archery/clip1.avi", "status": "ok", "path": "x", "label": "archery", "label_index": 9999, "top": []},
    {"key": "archery/clip1.avi", "status": "ok", "path": "x", "label": None, "label_index": None,
     "top": [{"index": "5", "label": "archery"}], "logits": []},
    {"key": "archery/clip1.avi", "status": "ok", "path": "x", "label": None, "label_index": None,
     "top": [{"index": 5, "label": "archery"}], "logits": [], "features": {"rgb": "../../../etc/passwd"}},
    {"key": "archery/clip1.avi", "status": "failed", "path": "x", "label": None, "label_index": None, "top": []},
    "[" * 100000 + "]" * 100000,  # nested past Python's recursion limit
]


def test_a_broken_record_is_run_again_with_a_warning_naming_it(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    run_batch(load(dataset_dir), out, recognizer)

    def timeless():
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records(out)]

    before = timeless()
    path = out / "results" / "archery" / "clip1.avi.json"
    for broken in BROKEN_RECORDS:
        path.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        with pytest.warns(UserWarning, match=r"clip1\.avi\.json: .*; running the video again") as caught:
            again = run_batch(load(dataset_dir), out, recognizer)
        assert len(caught) == 1 and (again.processed, again.skipped) == (1, 5), broken
        assert timeless() == before

def test_runs_with_other_settings_started_together_never_share_a_folder(tmp_path):
    """The settings check and claim are one step: of 8 runs with 8 settings racing on a fresh folder, exactly
    one is accepted, and settings.json is its settings."""
    import threading

    from i3d.tasks.batch.folder import prepare_folder

    for round_ in range(10):
        out = tmp_path / f"out{round_}"
        start, accepted, refused = threading.Barrier(8), [], []

        def claim(n):
            start.wait()
            try:
                prepare_folder(out, {"window": n, "i3d_version": "x"}, overwrite=False)
                accepted.append(n)
            except OptionError:
                refused.append(n)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(accepted) == 1 and len(refused) == 7
        assert json.loads((out / "settings.json").read_text())["window"] == accepted[0]


def test_an_out_that_cannot_be_written_is_one_line(tmp_path):
    from i3d.tasks.batch.folder import prepare_folder

    (tmp_path / "file").write_text("x")
    with pytest.raises(OptionError, match=r"file/out: cannot write there \(.*\); give a folder you can write"):
        prepare_folder(tmp_path / "file" / "out", {}, overwrite=False)
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "locked").mkdir(mode=0o500)
        with pytest.raises(OptionError, match="cannot write there"):
            prepare_folder(tmp_path / "locked", {}, overwrite=False)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_tail_is_used_with_a_warning_recorded_and_refused_with_strict(tmp_path, recognizer, workers):
    """A video whose container lists more frames than decode (real datasets hold such files): its decoded
    frames are classified, the warning is shown once and kept in the record, also from a worker process."""
    from support import write_video

    whole = write_video(tmp_path / "whole.avi", 60).read_bytes()
    (tmp_path / "videos" / "archery").mkdir(parents=True)
    (tmp_path / "videos" / "archery" / "cut.avi").write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning, match=r"cut\.avi: only \d+ of the 60 frames the container lists decode") as got:
        run_batch(load(tmp_path / "videos"), tmp_path / "out", recognizer, options=BatchOptions(workers=workers))
    assert len([w for w in got if "frames the container lists" in str(w.message)]) == 1
    [row] = records(tmp_path / "out")
    assert row["status"] == "ok" and len(row["warnings"]) == 1 and "lost from frame" in row["warnings"][0]
    assert 9 <= row["frames"]["rgb"] < 55
    run_batch(load(tmp_path / "videos"), tmp_path / "strict", recognizer, video=VideoOptions(strict=True),
              options=BatchOptions(workers=workers))
    [row] = records(tmp_path / "strict")
    assert row["status"] == "failed" and "truncated or unreadable frame at" in row["error"]


def test_engine_and_ray_sizes_are_checked_before_ray_starts(dataset_dir, tmp_path, recognizer):
    """An unknown engine and Ray sizes no cluster could use are refused before any cluster is looked for."""
    from i3d.tasks.batch.ray_cluster import RayOptions  # (test_ray.py runs Ray itself: slow)

    with pytest.raises(OptionError, match="engine is 'spark'; choose from local, ray"):
        run_batch(load(dataset_dir), tmp_path / "a", recognizer, options=BatchOptions(engine="spark"))
    with pytest.raises(OptionError, match="ray_actors must be between 1 and 1024, not 0"):
        run_batch(load(dataset_dir), tmp_path / "b", recognizer,
                  options=BatchOptions(engine="ray", ray=RayOptions(actors=0)))
    for changed, words in ((dict(actor_cpus=0.001), "ray_actor_cpus must be between 0.01 and 256, not 0.001"),
                           (dict(task_cpus=300), "ray_task_cpus must be between 0.01 and 256, not 300"),
                           (dict(cpus=0), "ray_cpus must be at least 1, not 0")):
        with pytest.raises(OptionError, match=words):
            RayOptions(**changed).check()
    assert RayOptions().check() is None
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_other_settings_in_the_same_folder_are_refused(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    run_batch(load(dataset_dir), out, recognizer)
    with pytest.raises(OptionError, match="other settings .*video"):
        run_batch(load(dataset_dir), out, recognizer, video=VideoOptions(crop="full"))
    report = run_batch(load(dataset_dir), out, recognizer, video=VideoOptions(crop="full"),
                       options=BatchOptions(overwrite=True))
    assert report.processed == 6


def test_shards_share_one_folder_and_cover_every_video_once(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    first = run_batch(load(dataset_dir), out, recognizer, options=BatchOptions(shard=(1, 2)))
    second = run_batch(load(dataset_dir), out, recognizer, options=BatchOptions(shard=(2, 2)))
    assert first.processed + second.processed == 6 and min(first.processed, second.processed) > 0
    assert first.pending_elsewhere == 6 - first.processed and second.pending_elsewhere == 0
    final = run_batch(load(dataset_dir), out, recognizer)
    assert (final.processed, final.skipped) == (0, 6)
    assert len({row["key"] for row in records(out)}) == 6


def test_features_match_the_library_and_carry_their_settings(dataset_dir, tmp_path, recognizer):
    out = tmp_path / "out"
    video = VideoOptions(window=10, stride=5)
    run_batch(load(dataset_dir), out, recognizer, video=video, options=BatchOptions(features=True))
    item = dataset_dir / "juggling balls" / "clip3.avi"  # 17 frames: windows at 0, 5 and one aligned to the end
    features = np.load(out / "features" / "juggling balls" / "clip3.avi.rgb.npy")
    expected = recognizer.features(item, video=video, logits=True)
    assert features.shape == (3, 1024) and features.dtype == np.float32
    np.testing.assert_array_equal(features, expected.features["rgb"])
    np.testing.assert_array_equal(np.load(out / "features" / "juggling balls" / "clip3.avi.rgb.logits.npy"),
                                  expected.logits["rgb"])
    sidecar = json.loads((out / "features" / "juggling balls" / "clip3.avi.json").read_text())
    assert (sidecar["fps"], sidecar["window"], sidecar["stride"], sidecar["crop"]) == (25.0, 10, 5, "center")
    assert [(w["first_frame"], w["frames"]) for w in sidecar["windows"]] == [(0, 10), (5, 10), (7, 10)]
    assert sidecar["weights"]["rgb"]["deepmind_name"] == "rgb_scratch"
    row = {r["key"]: r for r in records(out)}["juggling balls/clip3.avi"]
    classified = recognizer.classify(item, video=video)
    np.testing.assert_allclose(row["logits"], classified.logits, atol=1e-5)


def test_the_features_command_writes_what_the_library_gives(dataset_dir, tmp_path, shared_weights_dir, recognizer):
    out = tmp_path / "out"
    proc = run_cli("features", str(dataset_dir), "--labels-from-folders", "--out", str(out), "--window", "10",
                   "--stride", "5", "--workers", "0", "--format", "json", "--offline", weights_dir=shared_weights_dir,
                   module="i3d")
    assert proc.returncode == 5, proc.stderr  # the set's broken and too-short videos fail; the rest are written
    assert (json.loads(proc.stdout)["ok"], json.loads(proc.stdout)["failed"]) == (4, 2)
    item = dataset_dir / "juggling balls" / "clip3.avi"
    expected = recognizer.features(item, video=VideoOptions(window=10, stride=5), logits=True)
    np.testing.assert_allclose(np.load(out / "features" / "juggling balls" / "clip3.avi.rgb.npy"),
                               expected.features["rgb"], atol=1e-5)


def test_worker_processes_give_the_same_records(dataset_dir, tmp_path, recognizer):
    inline, pooled = tmp_path / "inline", tmp_path / "pooled"
    run_batch(load(dataset_dir), inline, recognizer)
    run_batch(load(dataset_dir), pooled, recognizer, options=BatchOptions(workers=2))

    def comparable(out):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in records(out)]

    assert comparable(inline) == comparable(pooled)


@pytest.mark.slow
def test_cli_exit_code_5_when_some_fail_and_kill_9_loses_nothing(dataset_dir, tmp_path, shared_weights_dir):
    out = tmp_path / "out"
    env = {**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)}
    command = [sys.executable, "-m", "i3d", "batch", str(dataset_dir), "--labels-from-folders", "--out", str(out),
               "--workers", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((out / "results").rglob("*.json")):  # the first record is written
        assert time.monotonic() < deadline and proc.poll() is None, "the batch wrote no record"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # wherever it is: mid-video, mid-write, or (a fast machine) done
    proc.wait(timeout=30)
    done = len(list((out / "results").rglob("*.json")))
    print(f"{done} of 6 records written before kill -9")
    assert 1 <= done <= 6  # how many depends on the machine; what follows holds for any of them
    finished = subprocess.run(command + ["--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 5, finished.stderr
    summary = json.loads(finished.stdout)
    assert (summary["evaluated"], summary["ok"], summary["failed"]) == (6, 4, 2)
    assert len({row["key"] for row in records(out)}) == len(records(out)) == 6


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_stopping_a_batch_with_worker_processes_is_one_line(tmp_path, shared_weights_dir, sig, code, word):
    """No leaked-semaphore warning from the workers' ends (tqdm's lock in a worker is a thread lock)."""
    from support import write_video

    (tmp_path / "videos" / "archery").mkdir(parents=True)
    for i in range(12):
        write_video(tmp_path / "videos" / "archery" / f"v{i}.avi", 40, seed=i)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "i3d", "batch", str(tmp_path / "videos"), "--labels-from-folders", "--out",
               str(out), "--workers", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    deadline = time.monotonic() + 180
    while not list((out / "results").rglob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "videos/s" not in line]
    assert proc.returncode == code and lines == [word], stderr
