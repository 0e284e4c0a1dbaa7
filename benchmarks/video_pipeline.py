#!/usr/bin/env python3
"""Time the video pipeline: decoding, optical flow per frame pair, and evaluate.py --video end to end.

    .venv/bin/python benchmarks/video_pipeline.py [--video PATH] [--pairs N] [--json]

Flow is timed on the video's own 256-short-side frames: the tool's TV-L1
engine (the default, pairs side by side on every core), OpenCV's TV-L1 inline
with its threads, inline on one thread, on a 2-process pool, and DIS
(``benchmarks/flow_benchmark.py`` compares the two TV-L1 engines in depth).
DIS is compared with TV-L1 field by field (mean absolute difference,
correlation, share of agreeing signs), since the flow stream's weights are
needed to compare logits.

The end-to-end ``--type both`` runs use DeepMind's flow weights when
``weights/flow_scratch/`` holds them; otherwise a stand-in checkpoint with
random values (same shapes, so the same cost), said so in the output. The
first run computes flow into an empty cache, the second finds it cached.
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

from i3d.inputs.video import read_video
from i3d.preprocess.flow import compute_flow

ROOT = Path(__file__).resolve().parent.parent


def seconds_per_pair(frames: np.ndarray, **kwargs) -> float:
    start = time.perf_counter()
    compute_flow(frames, **kwargs)
    return (time.perf_counter() - start) / (len(frames) - 1)


def single_thread_tvl1(frames: np.ndarray) -> float:
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return seconds_per_pair(frames, algorithm="tvl1-opencv", workers=1)
    finally:
        cv2.setNumThreads(threads)


def compare_dis_with_tvl1(frames: np.ndarray) -> dict:
    tvl1 = compute_flow(frames, algorithm="tvl1")
    dis = compute_flow(frames, algorithm="dis")
    moving = np.abs(tvl1) > 0.05  # more than 1 px of motion
    return {"pairs": len(tvl1),
            "mean_abs_difference": float(np.abs(dis - tvl1).mean()),
            "mean_abs_tvl1": float(np.abs(tvl1).mean()), "mean_abs_dis": float(np.abs(dis).mean()),
            "correlation": float(np.corrcoef(dis.ravel(), tvl1.ravel())[0, 1]),
            "sign_agreement_where_moving": float((np.sign(dis[moving]) == np.sign(tvl1[moving])).mean())
            if moving.any() else None}


def stand_in_flow_weights(folder: Path) -> str:
    """A flow checkpoint with random values in DeepMind's layout; returns its index sha256."""
    from i3d.quiet import silence_tensorflow

    silence_tensorflow()
    import tensorflow as tf

    from i3d.files import sha256_file
    from i3d.model import build_i3d, checkpoint_key
    from i3d.streams import FLOW

    rng = np.random.default_rng(0)
    tensors = {checkpoint_key(v.path, FLOW.scope): rng.normal(0, 0.01, v.shape).astype(np.float32)
               for v in build_i3d(channels=FLOW.channels).weights}
    names = sorted(tensors)
    folder.mkdir(parents=True, exist_ok=True)
    tf.raw_ops.SaveV2(prefix=str(folder / "model.ckpt"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    return sha256_file(folder / "model.ckpt.index")


_RUN_WITH_STAND_IN = """
import dataclasses, json, sys
import i3d
from i3d.caches import default_cache_dir
from i3d.weights.sets import get_weight_set
flow = dataclasses.replace(get_weight_set("flow", "kinetics"), index_sha256=sys.argv[1])
result = i3d.classify(sys.argv[2], ("rgb", "flow"), weight_sets={"flow": flow},
                      video=i3d.VideoOptions(flow_cache=default_cache_dir() / "flow"))
print(json.dumps({"seconds": result.seconds, "top": [{"label": result.label}]}))
"""


def end_to_end(video: Path, real_flow_weights: bool) -> dict:
    """Wall seconds of evaluate.py --video --type both, first (empty flow cache) and second run."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "I3D_CACHE_DIR": str(Path(tmp) / "cache")}
        args = ["--video", str(video), "--type", "both", "--format", "json", "--top-k", "5"]
        if real_flow_weights:
            command = [sys.executable, str(ROOT / "evaluate.py"), *args]
        else:
            weights = Path(tmp) / "weights"
            weights.mkdir()
            for name in ("rgb_kinetics.weights.h5", "rgb_kinetics.weights.json"):
                source = ROOT / "weights" / name
                if source.exists():
                    (weights / name).write_bytes(source.read_bytes())
            sha = stand_in_flow_weights(weights / "flow_scratch")
            env["I3D_WEIGHTS_DIR"] = str(weights)
            command = [sys.executable, "-c", _RUN_WITH_STAND_IN, sha, str(video)]
        runs = []
        for label in ("first run (flow computed)", "second run (flow cached)", "third run (flow cached)"):
            start = time.perf_counter()
            proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(f"evaluate.py failed ({proc.returncode}): {proc.stderr.strip()}")
            result = json.loads(proc.stdout)
            runs.append({"run": label, "wall_seconds": round(wall, 2), "phases": result["seconds"],
                         "top1": result["top"][0]["label"]})
        return {"flow_weights": "DeepMind flow_scratch" if real_flow_weights else "stand-in (random values)",
                "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "samples" / "arm_wrestling.mp4")
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs per flow timing (default 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    video = read_video(args.video)
    decode = time.perf_counter() - start
    frames = video.frames[: args.pairs + 1]
    compute_flow(frames[:2])  # warm OpenCV up
    report = {
        "video": str(args.video), "frames_25fps": int(len(video.frames)), "frame_size": list(video.frames.shape[1:3]),
        "decode_seconds": round(decode, 3),
        "flow_seconds_per_pair": {
            "tvl1_engine_inline (default)": seconds_per_pair(frames, algorithm="tvl1", workers=1),
            "tvl1_opencv_inline_opencv_threads": seconds_per_pair(frames, algorithm="tvl1-opencv", workers=1),
            "tvl1_opencv_inline_one_thread": single_thread_tvl1(frames),
            "tvl1_opencv_two_processes": seconds_per_pair(frames, algorithm="tvl1-opencv", workers=2),
            "dis_inline": seconds_per_pair(frames, algorithm="dis", workers=1),
        },
        "dis_vs_tvl1": compare_dis_with_tvl1(video.frames[: min(len(video.frames), 4 * args.pairs + 1)]),
    }
    if not args.skip_end_to_end:
        real = (ROOT / "weights" / "flow_scratch" / "model.ckpt.index").exists()
        report["end_to_end_both"] = end_to_end(args.video, real)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['video']}: {report['frames_25fps']} frames at 25 fps, {report['frame_size']} px, "
          f"decoded in {report['decode_seconds']} s")
    for name, value in report["flow_seconds_per_pair"].items():
        print(f"  flow {name:40s} {value:.4f} s/pair")
    print("  DIS against TV-L1:", json.dumps(report["dis_vs_tvl1"]))
    for run in report.get("end_to_end_both", {}).get("runs", []):
        print(f"  --type both, {run['run']}: {run['wall_seconds']} s wall, phases {run['phases']}")
    if "end_to_end_both" in report:
        print(f"  (flow weights: {report['end_to_end_both']['flow_weights']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
