"""ONNX parity: the exported model in onnxruntime against the network (TensorFlow) on the sample and the devset.

    .venv/bin/python benchmarks/export_parity.py [--format onnx] [--clips N]

Exports rgb_kinetics (the export checks itself on the cricket sample), then runs every devset clip's
windows (default settings) through both and prints, per clip and overall, the largest absolute logit
difference and whether the top-1 class is the same, with the seconds each runtime took.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("onnx", "saved_model", "openvino", "keras"), default="onnx")
    parser.add_argument("--clips", type=int, default=0, help="devset clips to run (default: all)")
    args = parser.parse_args()

    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.runtime.export import ExportOptions, export_model, runtime_runner
    from i3d.streams import RGB
    from i3d.weights.loading import LoadOptions, build_pretrained
    from i3d.weights.sets import weight_set_by_name
    from i3d.weights.store import WeightStore

    print(f"cpu {cpu_name()} x{os.cpu_count()}; format {args.format}")
    ws = weight_set_by_name("rgb_kinetics")
    store = WeightStore.from_environment()
    model = build_pretrained(ws, store, LoadOptions(download=False))
    dataset = load_dataset(DEVSET / "labels.tsv", ListOptions(root=DEVSET / "clips", path_column="file",
                                                              label_column="kinetics_label"))
    items = dataset.items[:args.clips] if args.clips else dataset.items
    with tempfile.TemporaryDirectory() as folder:
        exported = export_model(ws, folder, ExportOptions(args.format), store=store)
        for run in exported.check["runs"]:
            print(f"sample, {run['frames']} frames: max |difference| {run['max_abs_difference']:.3g}, "
                  f"top-1 {run['top1']['ours']} / {run['top1']['export']}")
        run = runtime_runner(args.format, exported.files[0])
        worst, differing, windows, ours_s, theirs_s = 0.0, 0, 0, 0.0, 0.0
        for item in items:
            clip_worst, clip_same = 0.0, True
            for window in iter_windows(item.path, (RGB,), VideoOptions()):
                clip = np.ascontiguousarray(window.clips["rgb"], np.float32)
                mark = time.perf_counter()
                want = model(clip, training=False).numpy()
                ours_s += time.perf_counter() - mark
                mark = time.perf_counter()
                got = np.asarray(run(clip))
                theirs_s += time.perf_counter() - mark
                clip_worst = max(clip_worst, float(np.max(np.abs(got - want))))
                clip_same &= int(got.argmax()) == int(want.argmax())
                windows += 1
            worst = max(worst, clip_worst)
            differing += not clip_same
            print(f"{item.key:60s} max |difference| {clip_worst:.3g}  top-1 {'same' if clip_same else 'DIFFERS'}")
    print(f"devset: {len(items)} clips, {windows} windows: max |difference| {worst:.3g}; top-1 differs in "
          f"{differing}; seconds TensorFlow {ours_s:.1f}, {args.format} {theirs_s:.1f}")


if __name__ == "__main__":
    main()
