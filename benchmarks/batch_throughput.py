"""Dataset throughput on ../shared/devset: network alone, `i3d batch`, and a shell loop of evaluate.py.

    .venv/bin/python benchmarks/batch_throughput.py [--workers N] [--precision P] [--skip-loop] [--json]

Prints, from one run on one machine: the devset's top-1/top-5/mean class
accuracy; frames/s of the network alone (windows prepared beforehand), of
``i3d batch`` end to end (decoding in worker processes), and of a loop of
``evaluate.py --video`` per clip (all in ``--precision``, fp32 by default); the
ratios the README quotes; the batch's peak RSS (this process and its children) and
how busy it kept the cores (CPU seconds of this process and its workers over wall
seconds times cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process and its reaped children."""
    return sum(usage.ru_utime + usage.ru_stime
               for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                        help="OpenVINO precision for every part (default fp32)")
    parser.add_argument("--skip-loop", action="store_true", help="do not time the evaluate.py loop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.batch.run import BatchOptions, run_batch
    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.tasks.recognizer import Recognizer

    dataset = load_dataset(DEVSET / "labels.tsv", ListOptions(root=DEVSET / "clips", path_column="file",
                                                              label_column="kinetics_label"))
    recognizer = Recognizer.load("rgb", engine=EngineOptions(precision=args.precision))
    video = VideoOptions()
    cores = len(os.sched_getaffinity(0))
    figures: dict = {"cpu": f"{cpu_name()} x{os.cpu_count()}", "cores": cores, "clips": len(dataset.items), "workers": args.workers,
                     "precision": recognizer.precision_record()}

    with tempfile.TemporaryDirectory() as out:  # first, so the peak RSS below is the batch's own
        used = cpu_seconds()
        mark = time.perf_counter()
        report = run_batch(dataset, out, recognizer, video=video, options=BatchOptions(workers=args.workers))
        batch = time.perf_counter() - mark
        used = cpu_seconds() - used  # the workers are reaped when the pool shuts down, so they count
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    summary = report.summary

    frames, network = 0, 0.0
    for item in dataset.items:  # the network alone: each clip's windows prepared first, then timed
        windows = list(iter_windows(item.path, recognizer.streams, video))
        frames += sum(w.clips["rgb"].shape[1] for w in windows)
        mark = time.perf_counter()
        recognizer.classify_windows(windows)
        network += time.perf_counter() - mark
    figures.update(frames=frames, network_s=round(network, 2), network_fps=round(frames / network, 1),
                   batch_s=round(batch, 2), batch_fps=round(frames / batch, 1),
                   batch_vs_network=round(network / batch, 3), peak_rss_mib=round(peak / 1024),
                   batch_cores_busy=round(used / (batch * cores), 3),
                   top1=summary["top1"], top5=summary["top5"], mean_class_accuracy=summary["mean_class_accuracy"],
                   labelled=summary["labelled"], failed=summary["failed"])

    if not args.skip_loop:
        mark = time.perf_counter()
        for item in dataset.items:
            subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--video", str(item.path), "--format", "json",
                            "--precision", args.precision],
                           cwd=ROOT, capture_output=True, check=True)
        loop = time.perf_counter() - mark
        figures.update(loop_s=round(loop, 2), batch_vs_loop=round(loop / batch, 3))

    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        print(f"{key:22s} {value}")


if __name__ == "__main__":
    main()
