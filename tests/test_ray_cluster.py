"""engine="ray" on a cluster of several nodes (a head and two workers, all on this machine, made by Ray's own
``ray.cluster_utils.Cluster``): a worker node removed mid-batch, and a driver killed mid-batch and resumed
against the same cluster, each leave every video recorded exactly once with the local engine's values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import threading
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, built_once, write_labelled_videos, write_video

from i3d.inputs.dataset_items import ListOptions
from i3d.inputs.datasets import load_dataset
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.run import BatchOptions, run_batch

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')

from i3d.tasks.batch.ray_cluster import RayOptions  # noqa: E402
from i3d.tasks.batch.ray_executor import ACTOR_PREFIX  # noqa: E402

VIDEO = VideoOptions(window=10, stride=5)
KEYS = ["abseiling/clip2.avi", "abseiling/short.avi", "archery/broken.avi", "archery/clip0.avi",
        "archery/clip1.avi", "juggling balls/clip3.avi"]


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_modules_take_turns")]  # see conftest


@pytest.fixture(scope="module")
def nodes():
    """A head with no CPU for work (so every task and actor runs on a worker node) and two workers of 2 CPUs:
    either one alone can hold the model actor and a decoding task, so the run can go on when the other goes."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """test_ray's labelled videos, made once per run."""
    return built_once(tmp_path_factory, "ray-videos", write_labelled_videos)


@pytest.fixture(scope="module")
def local_records(dataset_dir, tmp_path_factory, recognizer):
    """The local engine's records: test_ray's reference run, made once per run for both modules."""
    def build(folder):
        run_batch(load(dataset_dir), folder / "out", recognizer, video=VIDEO, options=BatchOptions(features=True))

    return records(built_once(tmp_path_factory, "ray-local-run", build) / "out")


def load(root):
    return load_dataset(root, ListOptions(labels_from_folders=True))


def records(out) -> dict[str, dict]:
    return {row["key"]: row for row in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}


def assert_local_values(out, want):
    got = records(out)
    assert sorted(got) == sorted(want) == KEYS
    for key, row in want.items():
        assert got[key]["status"] == row["status"], key
        assert [p["index"] for p in got[key]["top"]] == [p["index"] for p in row["top"]], key
        if row["logits"] is not None:
            assert got[key]["logits"] == pytest.approx(row["logits"], abs=1e-5), key


def test_a_worker_node_removed_mid_batch(nodes, dataset_dir, tmp_path, recognizer, local_records,
                                         shared_weights_dir):
    cluster, workers = nodes
    seen, removed = [], []

    def remove_after_first(record):
        seen.append(record["key"])
        if not removed:  # the node holding the model actor (as the README says): the call it was running is lost
            [name] = [n for n in ray.util.list_named_actors() if n.startswith(ACTOR_PREFIX)]
            actor = ray._private.state.actors(ray.get_actor(name)._actor_id.hex())
            victim = next(w for w in workers if w.node_id == actor["Address"]["NodeID"])
            cluster.remove_node(victim, allow_graceful=False)
            removed.append(victim)

    options = BatchOptions(features=True, engine="ray",
                           ray=RayOptions(address=cluster.address, weights_dir=str(shared_weights_dir)))
    report = run_batch(load(dataset_dir), tmp_path / "out", recognizer, video=VIDEO, options=options,
                       on_record=remove_after_first)
    assert len(removed) == 1
    assert sorted(seen) == KEYS and Counter(seen).most_common(1)[0][1] == 1  # every video once, none twice
    assert (report.processed, report.failed) == (6, 2)  # the two broken videos of the set, as locally
    assert_local_values(tmp_path / "out", local_records)
    workers.remove(removed[0])
    workers.append(cluster.add_node(num_cpus=2))  # the next test has two workers again
    cluster.wait_for_nodes()


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _remove_the_decoding_node(cluster, workers: list, stop: threading.Event, removed: list) -> None:
    """Once a decoding task runs (a Ray worker titled ``ray::prepare_video``), remove the node it runs on (its
    worker's parent is that node's raylet). (Ray starts a node only from the main thread: none is added here.)"""
    while not stop.is_set() and not removed:
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if title == b"ray::prepare_video":
                [victim] = [w for w in workers if _raylet_pid(w) == parent]
                [name] = [n for n in ray.util.list_named_actors() if n.startswith(ACTOR_PREFIX)]
                actor = ray._private.state.actors(ray.get_actor(name)._actor_id.hex())
                cluster.remove_node(victim, allow_graceful=False)
                removed.append((victim, actor["Address"]["NodeID"]))
                workers.remove(victim)
                return
        time.sleep(0.005)


def test_the_node_running_a_decoding_task_removed_mid_task(nodes, tmp_path, recognizer, shared_weights_dir):
    """README: a worker node that goes away takes its decoding task with it; the task runs again on another node,
    and the video is recorded once, as locally.

    By construction the task runs on a node without the model actor: it asks for 2 CPUs, and the actor's node
    has 1 left; a third worker node of 2 CPUs is there for it to run again on (the module has two again after).
    A few seconds of decoding (about 1,500 frames a second here) let the poller, which looks every 5 ms, find it
    running."""
    cluster, workers = nodes
    workers.append(cluster.add_node(num_cpus=2))
    cluster.wait_for_nodes()
    root = tmp_path / "videos" / "archery"
    root.mkdir(parents=True)
    video = write_video(root / "long.avi", 6000)
    settings = VideoOptions(window=10, stride=2800)
    stop, removed, seen = threading.Event(), [], []
    remover = threading.Thread(target=_remove_the_decoding_node, args=(cluster, workers, stop, removed))
    remover.start()
    try:
        options = BatchOptions(features=True, executor="ray",
                               ray=RayOptions(address=cluster.address, weights_dir=str(shared_weights_dir),
                                              task_cpus=2))
        report = run_batch(load(root.parent), tmp_path / "out", recognizer, video=settings, options=options,
                           on_record=seen.append)
    finally:
        stop.set()
        remover.join()
    [(victim, actor_node)] = removed
    assert victim.node_id != actor_node  # the decoding node, not the model actor's
    assert [r["key"] for r in seen] == ["archery/long.avi"] and (report.processed, report.failed) == (1, 0)
    want = recognizer.classify(video, video=settings)
    assert seen[0]["status"] == "ok" and len(seen[0]["windows"]) == len(want.windows)
    np.testing.assert_allclose(seen[0]["logits"], want.logits, atol=1e-5)


def test_a_driver_killed_mid_batch_resumes_against_the_same_cluster(nodes, dataset_dir, tmp_path, local_records,
                                                                    shared_weights_dir):
    cluster, _ = nodes
    out = tmp_path / "out"
    command = [sys.executable, "-m", "i3d", "features", str(dataset_dir), "--out", str(out), "--labels-from-folders",
               "--window", "10", "--stride", "5", "--engine", "ray", "--ray-address", cluster.address,
               "--format", "json"]
    env = {**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)}
    driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if (out / "results").is_dir() and any((out / "results").rglob("*.json")):
            break
        time.sleep(0.05)
    assert driver.poll() is None, driver.stderr.read().decode()
    driver.send_signal(signal.SIGKILL)  # no chance to clean up: its actors die with its job
    driver.wait()
    driver.stderr.close()
    done = {p: p.stat().st_mtime_ns for p in (out / "results").rglob("*.json")}
    assert 1 <= len(done) < len(KEYS)
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 5, again.stderr  # the set's two broken videos are failures, as locally
    summary = json.loads(again.stdout)
    assert summary["evaluated"] == len(KEYS) and summary["failed"] == 2
    assert_local_values(out, local_records)
    assert {p: p.stat().st_mtime_ns for p in done} == done  # what was recorded before the kill was kept, not redone
