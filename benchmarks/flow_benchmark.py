#!/usr/bin/env python3
"""TV-L1 flow: OpenCV's DualTVL1OpticalFlow against the project's engine, per frame pair and end to end.

    .venv/bin/python benchmarks/flow_benchmark.py [--pairs N] [--skip-end-to-end] [--devset] [--json] [--save F]

On the same 256-short-side gray frame pairs (prepared exactly as the tool
prepares them), in one run, seconds per pair for: OpenCV on one thread; OpenCV
on all its threads (its default); the engine on one thread; the engine with one
pair's rows spread over every core; and the engine as the tool runs it, the
pairs of a clip side by side, one per core (wall time over the pairs). Every
engine result is compared with OpenCV's bit for bit (differing values must be
0). The pairs: ``--pairs`` consecutive pairs from arm_wrestling.mp4 and from
three devset clips chosen for high motion, a portrait frame and odd widths.

End to end: ``evaluate.py --video arm_wrestling.mp4 --type both`` wall seconds
with ``--flow-algorithm tvl1-opencv`` and ``tvl1``, flow cache off, using
DeepMind's flow weights when ``weights/flow_scratch/`` holds them, else a
stand-in checkpoint of the same shapes (same cost), said so in the output.

``--devset`` adds an identity sweep: two pairs from every devset clip, OpenCV
against the engine, also counting how often a float64 stopping sum alone would
have decided differently from OpenCV's serial float32 sum.

Timings are wall-clock: compare them only between runs on an otherwise idle
machine of the same kind; the 1-minute load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = SHARED / "samples" / "arm_wrestling.mp4"
CLIPS = SHARED / "devset" / "clips"
PAIR_SETS = [  # (video, first frame, what it stands for)
    (SAMPLE, 10, "sample, 340x256"),
    (CLIPS / "UCF101__v_Skijet_g13_c01.mp4", 30, "high motion, odd width 341"),
    (CLIPS / "other__skateboarding_dog__Video-LLaMA.mp4", 50, "portrait 256x455"),
    (CLIPS / "other__cricket__pipelinetask-HumanActivityRecognition.mp4", 10, "high motion, 455x256"),
]


def load() -> float:
    return os.getloadavg()[0]


def gray_pairs(path: Path, first: int, pairs: int) -> np.ndarray:
    from i3d.preprocess.flow import gray_frames
    from i3d.preprocess.windows import VideoOptions, iter_source_frames

    frames = [frame for frame, _, _ in iter_source_frames(path, VideoOptions(max_frames=first + pairs + 1))]
    return gray_frames(np.stack(frames[first:first + pairs + 1]))


def differing(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def per_pair(gray: np.ndarray, cores: int) -> dict:
    """Each method's seconds per pair on ``gray``'s consecutive pairs, and the engine's differing values."""
    import cv2

    from i3d.preprocess import tvl1

    opencv_threads = cv2.getNumThreads()
    n = len(gray) - 1
    seconds = {"opencv_1_thread": 0.0, "opencv_all_threads": 0.0, "engine_1_thread": 0.0,
               "engine_rows_over_threads": 0.0}
    diff = 0
    references = []
    iterations = 0
    for i in range(n):  # methods interleaved pair by pair, so a change in load hits them alike
        cv2.setNumThreads(1)
        reference, t = timed(lambda: cv2.optflow.DualTVL1OpticalFlow_create().calc(gray[i], gray[i + 1], None))
        seconds["opencv_1_thread"] += t
        cv2.setNumThreads(opencv_threads)
        again, t = timed(lambda: cv2.optflow.DualTVL1OpticalFlow_create().calc(gray[i], gray[i + 1], None))
        seconds["opencv_all_threads"] += t
        assert differing(again, reference) == 0, "OpenCV's TV-L1 is not deterministic across thread counts"
        stats = tvl1.SolveStats()
        ours, t = timed(lambda: tvl1.tvl1_flow(gray[i], gray[i + 1], threads=1, stats=stats))
        seconds["engine_1_thread"] += t
        diff += differing(ours, reference)
        iterations += stats.iterations
        ours, t = timed(lambda: tvl1.tvl1_flow(gray[i], gray[i + 1], threads=cores))
        seconds["engine_rows_over_threads"] += t
        diff += differing(ours, reference)
        references.append(reference)
    together, t = timed(lambda: tvl1.tvl1_flows(gray, threads=cores))
    seconds["engine_pairs_side_by_side"] = t
    diff += differing(together, np.stack(references))
    return {"pairs": n, "size": f"{gray.shape[2]}x{gray.shape[1]}", "iterations_per_pair": iterations / n,
            "seconds_per_pair": {k: v / n for k, v in seconds.items()}, "differing_values": diff,
            "values_compared": 4 * n * gray.shape[1] * gray.shape[2] * 2}


def devset_sweep() -> dict:
    """Two pairs from every devset clip: differing values and stopping-sum decisions against OpenCV."""
    import cv2

    from i3d.preprocess import tvl1

    pairs = diff = flips = serial_sums = iterations = 0
    for path in sorted(CLIPS.iterdir()):
        gray = gray_pairs(path, 0, 25)
        for i in (5, 20):
            if i + 1 >= len(gray):
                continue
            reference = cv2.optflow.DualTVL1OpticalFlow_create().calc(gray[i], gray[i + 1], None)
            exact, serial = tvl1.SolveStats(), tvl1.SolveStats()
            diff += differing(tvl1.tvl1_flow(gray[i], gray[i + 1], stats=exact), reference)
            diff += differing(tvl1.tvl1_flow(gray[i], gray[i + 1], stop="serial", stats=serial), reference)
            pairs += 1
            flips += serial.float64_flips
            serial_sums += exact.serial_sums
            iterations += exact.iterations
        print(f"  {path.name}: {pairs} pairs so far, differing values {diff}", file=sys.stderr, flush=True)
    return {"clips": len(list(CLIPS.iterdir())), "pairs": pairs, "differing_values": diff,
            "stopping_decisions": iterations, "float64_sum_flips": flips,
            "serial_sums_in_exact_mode": serial_sums}


_RUN = """
import dataclasses, json, sys
import i3d
from i3d.weights.sets import get_weight_set
sets = {}
if sys.argv[1] != "-":
    sets["flow"] = dataclasses.replace(get_weight_set("flow", "kinetics"), index_sha256=sys.argv[1])
result = i3d.classify(sys.argv[2], ("rgb", "flow"), weight_sets=sets,
                      video=i3d.VideoOptions(flow_algorithm=sys.argv[3], flow_cache=None))
print(json.dumps({"seconds": result.seconds, "label": result.label}))
"""


def end_to_end(video: Path) -> dict:
    """Wall seconds of a --type both classification with each TV-L1 engine, flow cache off."""
    real = (ROOT / "weights" / "flow_scratch" / "model.ckpt.index").exists()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        sha = "-"
        if not real:
            from video_pipeline import stand_in_flow_weights

            weights = Path(tmp) / "weights"
            weights.mkdir()
            for name in ("rgb_kinetics.weights.h5", "rgb_kinetics.weights.json"):
                if (ROOT / "weights" / name).exists():
                    (weights / name).write_bytes((ROOT / "weights" / name).read_bytes())
            sha = stand_in_flow_weights(weights / "flow_scratch")
            env["I3D_WEIGHTS_DIR"] = str(weights)
        runs = {}
        for algorithm in ("tvl1-opencv", "tvl1"):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _RUN, sha, str(video), algorithm], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(f"--type both with {algorithm} failed ({proc.returncode}): {proc.stderr.strip()}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[algorithm] = {"wall_seconds": round(wall, 2), "phases": result["seconds"], "top1": result["label"],
                               "load_average": load()}
    return {"video": str(video), "flow_weights": "DeepMind flow_scratch" if real else "stand-in (random values)",
            "flow_cache": "off", "runs": runs,
            "speedup": round(runs["tvl1-opencv"]["wall_seconds"] / runs["tvl1"]["wall_seconds"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="consecutive pairs per clip (default 4)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--devset", action="store_true", help="also compare two pairs of every devset clip")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON object to FILE")
    args = parser.parse_args()

    import cv2

    from i3d.preprocess import tvl1
    from i3d.processes import available_cores

    cores = available_cores()
    engine = tvl1.load_engine()
    report: dict = {"cpu": cpu_name(), "cores": cores, "opencv": cv2.__version__,
                    "opencv_threads": cv2.getNumThreads(), "load_average_start": load(),
                    "engine_load": {"compiled": engine.compiled, "seconds": round(engine.seconds, 2)}}
    clips = []
    for path, first, what in PAIR_SETS:
        if not path.exists():
            print(f"skipping {path.name}: not found", file=sys.stderr)
            continue
        row = per_pair(gray_pairs(path, first, args.pairs), cores)
        clips.append({"video": path.name, "first_frame": first, "what": what, **row, "load_average": load()})
        if not args.json:
            print(f"  {path.name}: done (load {load():.1f})", file=sys.stderr, flush=True)
    report["clips"] = clips
    total = sum(c["pairs"] for c in clips)
    methods = list(clips[0]["seconds_per_pair"]) if clips else []
    report["mean_seconds_per_pair"] = {m: sum(c["seconds_per_pair"][m] * c["pairs"] for c in clips) / total
                                       for m in methods}
    means = report["mean_seconds_per_pair"]
    if means:
        report["speedup_vs_opencv_all_threads"] = {m: means["opencv_all_threads"] / means[m] for m in methods}
    report["identity"] = {"pairs": total, "differing_values": sum(c["differing_values"] for c in clips),
                          "values_compared": sum(c["values_compared"] for c in clips)}
    if args.devset and CLIPS.is_dir():
        report["devset"] = devset_sweep()
    if not args.skip_end_to_end and SAMPLE.exists():
        report["end_to_end_both"] = end_to_end(SAMPLE)
    report["load_average_end"] = load()
    if args.save:
        args.save.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"CPU: {report['cpu']}, {cores} cores; OpenCV {report['opencv']} ({report['opencv_threads']} threads); "
          f"engine {'compiled' if engine.compiled else 'loaded from cache'} in {engine.seconds:.1f} s; "
          f"load average {report['load_average_start']:.1f} -> {report['load_average_end']:.1f}")
    names = {"opencv_1_thread": "OpenCV 1 thread", "opencv_all_threads": "OpenCV all threads",
             "engine_1_thread": "engine 1 thread", "engine_rows_over_threads": "engine rows/threads",
             "engine_pairs_side_by_side": "engine pairs/threads"}
    header = f"{'clip':34s} {'size':8s} {'pairs':>5s} {'iter':>5s} " + " ".join(f"{names[m]:>20s}" for m in methods)
    print(header + f" {'differing':>9s}")
    for c in clips:
        print(f"{c['video'][:34]:34s} {c['size']:8s} {c['pairs']:5d} {c['iterations_per_pair']:5.0f} "
              + " ".join(f"{c['seconds_per_pair'][m]:20.3f}" for m in methods) + f" {c['differing_values']:9d}")
    if means:
        print(f"{'mean s/pair':55s} " + " ".join(f"{means[m]:20.3f}" for m in methods))
        print(f"{'speed-up over OpenCV all threads':55s} "
              + " ".join(f"{report['speedup_vs_opencv_all_threads'][m]:19.1f}x" for m in methods))
    ident = report["identity"]
    print(f"identity: {ident['pairs']} pairs, {ident['values_compared']} engine values compared with OpenCV's, "
          f"differing values: {ident['differing_values']}")
    if "devset" in report:
        d = report["devset"]
        print(f"devset: {d['pairs']} pairs from {d['clips']} clips, differing values: {d['differing_values']}; "
              f"{d['stopping_decisions']} stopping decisions, float64-only flips: {d['float64_sum_flips']}, "
              f"serial sums taken by the exact mode: {d['serial_sums_in_exact_mode']}")
    if "end_to_end_both" in report:
        e = report["end_to_end_both"]
        for algorithm, run in e["runs"].items():
            print(f"--type both, {algorithm:12s}: {run['wall_seconds']:7.1f} s wall (phases {run['phases']}, "
                  f"load {run['load_average']:.1f})")
        print(f"  end-to-end speed-up {e['speedup']}x; flow weights: {e['flow_weights']}; flow cache off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
