"""engine="ray": the same records and features as the local engine, on a real local Ray cluster, even when
the model actor or a decoding worker is killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from support import built_once, write_labelled_videos, write_video

from i3d.errors import OptionError
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.run import BatchOptions, run_batch
from i3d.inputs.dataset_items import ListOptions
from i3d.inputs.datasets import load_dataset

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')

from i3d.tasks.batch.ray_cluster import RayOptions  # noqa: E402
from i3d.tasks.batch.ray_executor import ACTOR_PREFIX  # noqa: E402


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_modules_take_turns")]  # see conftest


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU cluster for the module (one model actor and one decoding task at a time)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """The labelled videos test_batch uses, made once per run (test_ray_cluster reads the same)."""
    return built_once(tmp_path_factory, "ray-videos", write_labelled_videos)


@pytest.fixture(scope="module")
def local_run(dataset_dir, tmp_path_factory, recognizer):
    """The local engine's folder: what every Ray run is compared with (made once per run, for both Ray modules)."""
    def build(folder):
        run_batch(load(dataset_dir), folder / "out", recognizer, video=VIDEO, options=BatchOptions(features=True))

    return built_once(tmp_path_factory, "ray-local-run", build) / "out"


VIDEO = VideoOptions(window=10, stride=5)
KEYS = ["abseiling/clip2.avi", "abseiling/short.avi", "archery/broken.avi", "archery/clip0.avi",
        "archery/clip1.avi", "juggling balls/clip3.avi"]


def load(root):
    return load_dataset(root, ListOptions(labels_from_folders=True))


def records(out) -> dict[str, dict]:
    return {row["key"]: row for row in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}


def ray_options(shared_weights_dir, **changes) -> BatchOptions:
    return BatchOptions(features=True, engine="ray", ray=RayOptions(weights_dir=str(shared_weights_dir), **changes))


def assert_same_records(ray_out, local_out):
    """Every field but ``seconds`` equal; logits and probabilities to 1e-5."""
    got, want = records(ray_out), records(local_out)
    assert sorted(got) == sorted(want) == KEYS
    for key, row in want.items():
        other = got[key]
        assert [p["index"] for p in other["top"]] == [p["index"] for p in row["top"]], key
        for mine, theirs in zip(other["top"], row["top"]):
            assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-5)
        if row["logits"] is None:
            assert other["logits"] is None
        else:
            np.testing.assert_allclose(other["logits"], row["logits"], atol=1e-5)
        for name in ("path", "label", "label_index", "status", "error", "frames", "features"):
            assert other.get(name) == row.get(name), (key, name)
        assert [(w["index"], w["frames"], [p["index"] for p in w["top"]]) for w in other["windows"]] == \
               [(w["index"], w["frames"], [p["index"] for p in w["top"]]) for w in row["windows"]]


def test_an_unreachable_cluster_is_one_line_and_sigterm_stops_a_ray_run_at_once(tmp_path, shared_weights_dir):
    """Commands in their own processes (each starts or joins its own cluster): an address nothing answers
    on, or 'auto' with no cluster, exit 2 in one line; SIGTERM mid-run exits 143 in one line, without
    Ray's stack dump, and the records written stay."""
    import subprocess
    import sys

    from support import ROOT, run_cli

    assert not ray.is_initialized()  # runs before the module's cluster: 'auto' must find no cluster
    videos = tmp_path / "videos"
    (videos / "archery").mkdir(parents=True)
    for i in range(20):
        write_video(videos / "archery" / f"v{i}.avi", 40, seed=i)
    base = ["batch", str(videos), "--labels-from-folders", "--engine", "ray"]
    for address, text in (("127.0.0.1:1", "--ray-address 127.0.0.1:1: no Ray cluster answers there within 1 s"),
                          ("auto", "--ray-address auto: no Ray cluster runs on this machine")):
        proc = run_cli(*base, "--out", str(tmp_path / address.replace(":", "_")), "--ray-address", address,
                       "--ray-connect-timeout", "1", weights_dir=shared_weights_dir, module="i3d",
                       env={"RAY_ADDRESS": ""})
        lines = [line for line in proc.stderr.splitlines() if "authentication" not in line]
        assert proc.returncode == 2 and len(lines) == 1 and text in lines[0], proc.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "i3d", *base, "--out", str(out)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)})
    deadline = time.monotonic() + 240
    while not list((out / "results").rglob("*.json")) if (out / "results").is_dir() else True:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "terminated" and "SIGTERM received" not in stderr, stderr
    assert 1 <= len(list((out / "results").rglob("*.json"))) < 20


def test_ray_gives_the_local_records_and_features(cluster, dataset_dir, tmp_path, recognizer, local_run,
                                                  shared_weights_dir):
    out = tmp_path / "out"
    report = run_batch(load(dataset_dir), out, recognizer, video=VIDEO, options=ray_options(shared_weights_dir))
    assert (report.processed, report.skipped, report.failed) == (6, 0, 2)
    assert_same_records(out, local_run)
    rows = records(out)
    assert "cannot open as a video" in rows["archery/broken.avi"]["error"]
    assert "video has 4 frames" in rows["abseiling/short.avi"]["error"]
    assert rows["archery/clip0.avi"]["label_index"] == 5 and len(rows["archery/clip0.avi"]["logits"]) == 400
    for key in ("abseiling/clip2.avi", "archery/clip0.avi", "archery/clip1.avi", "juggling balls/clip3.avi"):
        for suffix in (".rgb.npy", ".rgb.logits.npy"):
            mine = np.load(out / "features" / f"{key}{suffix}")
            theirs = np.load(local_run / "features" / f"{key}{suffix}")
            assert mine.dtype == np.float32 and mine.shape == theirs.shape
            np.testing.assert_allclose(mine, theirs, atol=1e-5)
        sidecar = json.loads((out / "features" / f"{key}.json").read_text())
        assert sidecar == json.loads((local_run / "features" / f"{key}.json").read_text())
    assert json.loads((out / "summary.json").read_text())["top1"] == \
        json.loads((local_run / "summary.json").read_text())["top1"]
    assert not [name for name in ray.util.list_named_actors() if name.startswith(ACTOR_PREFIX)]  # actors removed
    again = run_batch(load(dataset_dir), out, recognizer, video=VIDEO, options=ray_options(shared_weights_dir))
    assert (again.processed, again.skipped) == (0, 6)


def test_killing_the_model_actor_mid_run_loses_and_repeats_nothing(cluster, dataset_dir, tmp_path, recognizer,
                                                                   local_run, shared_weights_dir):
    out = tmp_path / "out"
    seen, killed = [], []

    def kill_after_first(record):
        seen.append(record["key"])
        if not killed:
            [name] = [n for n in ray.util.list_named_actors() if n.startswith(ACTOR_PREFIX)]
            actor = ray.get_actor(name)
            ray.kill(actor, no_restart=False)  # its running call (and the queued one) are retried on the new actor
            killed.append(actor)

    report = run_batch(load(dataset_dir), out, recognizer, video=VIDEO, options=ray_options(shared_weights_dir),
                       on_record=kill_after_first)
    assert len(killed) == 1
    assert ray._private.state.actors(killed[0]._actor_id.hex())["NumRestarts"] == 1
    assert sorted(seen) == KEYS and Counter(seen).most_common(1)[0][1] == 1  # every video once, none twice
    assert (report.processed, report.failed) == (6, 2)
    assert sorted(p.relative_to(out / "results").as_posix() for p in (out / "results").rglob("*.json")) == \
        [f"{key}.json" for key in KEYS]
    assert_same_records(out, local_run)


def _kill_first_decoding_worker(stop: threading.Event, killed: list) -> None:
    """SIGKILL the first Ray worker seen running a decoding task (its title is ``ray::prepare_video``)."""
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title == b"ray::prepare_video":
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.005)


def test_a_decoding_task_killed_mid_run_is_retried_once(cluster, tmp_path, recognizer, shared_weights_dir):
    root = tmp_path / "videos" / "archery"
    root.mkdir(parents=True)
    # a few seconds of decoding (about 1,500 frames a second here): the poller, which looks every 5 ms, finds the
    # task running long before it could end, however loaded the machine (a loaded machine decodes slower still)
    write_video(root / "long.avi", 6000)
    video = VideoOptions(window=10, stride=2800)
    local = run_batch(load(root.parent), tmp_path / "local", recognizer, video=video)
    stop, killed, seen = threading.Event(), [], []
    killer = threading.Thread(target=_kill_first_decoding_worker, args=(stop, killed))
    killer.start()
    try:
        report = run_batch(load(root.parent), tmp_path / "out", recognizer, video=video,
                           options=ray_options(shared_weights_dir), on_record=lambda record: seen.append(record))
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1  # a decoding worker died mid-task...
    assert [r["key"] for r in seen] == ["archery/long.avi"] and (report.processed, report.failed) == (1, 0)
    [want] = records(tmp_path / "local").values()  # ...and its video was decoded again, recorded once
    assert (local.failed, seen[0]["status"], len(seen[0]["windows"])) == (0, "ok", len(want["windows"]))
    np.testing.assert_allclose(seen[0]["logits"], want["logits"], atol=1e-5)


def test_ray_options_are_checked_before_anything_runs(cluster, dataset_dir, tmp_path, recognizer):
    # (sizes no cluster could use are refused before Ray starts: test_batch checks those, fast)
    with pytest.raises(OptionError, match=r"ray_actors 4 \(of 1 CPU each\) and a decoding task \(1 CPU\) need 5 "
                                          r"CPUs; the cluster has 2"):  # the module's cluster
        run_batch(load(dataset_dir), tmp_path / "c", recognizer,
                  options=BatchOptions(engine="ray", ray=RayOptions(actors=4)))
    assert not [path for path in tmp_path.iterdir() if path.name in ("a", "b", "c")]



def test_train_with_engine_ray_fits_on_the_features_a_local_run_gives(cluster, tmp_path, recognizer,
                                                                      shared_weights_dir, monkeypatch, capsys):
    """README: `i3d train --engine ray` computes the features on a Ray cluster as `i3d batch` does (here the
    module's, joined by the command run in this process): the features kept are the local engine's, and the head
    is fitted on every window of them."""
    from i3d.commands.train import main
    from i3d.heads import Head

    videos = tmp_path / "videos"
    for i, label in enumerate(("archery", "archery", "juggling balls", "juggling balls")):
        (videos / label).mkdir(parents=True, exist_ok=True)
        write_video(videos / label / f"v{i}.avi", 15, seed=10 + i)
    import i3d.tasks.batch.run as batch_run

    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
    sent = []  # the videos handed to the Ray executor: all of them, not a local run's
    real = batch_run.ray_outcomes

    def watched(todo, *args, **kwargs):
        sent.extend(item.key for item in todo)
        return real(todo, *args, **kwargs)

    monkeypatch.setattr(batch_run, "ray_outcomes", watched)
    out = tmp_path / "head"
    code = main([str(videos), "--labels-from-folders", "--engine", "ray", "--window", "10", "--stride", "5",
                 "--out", str(out), "--format", "json", "--offline"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(printed)
    assert sorted(sent) == sorted(p.relative_to(videos).as_posix() for p in videos.rglob("*.avi"))
    local = {}
    for path in sorted(videos.rglob("*.avi")):
        local[path.name] = recognizer.features(path, video=VIDEO).features["rgb"]
        kept = np.load(out / "features" / "features" / path.parent.name / f"{path.name}.rgb.npy")
        np.testing.assert_allclose(kept, local[path.name], atol=1e-5)
    every = np.concatenate(list(local.values())).astype(np.float64)
    assert report["training"]["windows"] == {"rgb": len(every)} and report["train"]["videos"] == 4
    np.testing.assert_allclose(Head.load(out).streams["rgb"].mean, every.mean(axis=0), rtol=1e-5, atol=1e-5)
