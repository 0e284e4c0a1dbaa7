"""LiteRT files (fp32, fp16, int8): size, time per 64-frame window beside OpenVINO, top-1 agreement on the devset.

    .venv/bin/python benchmarks/litert_benchmark.py [--clips 12] [--repeats 3] [--out DIR]

Exports rgb_kinetics with ``i3d export --format tflite`` at each precision (each export checks itself on
the cricket sample; ``--out`` keeps the files, and a later run reuses those whose check passed), then:
the file's size; the median seconds of one 64-frame window (the sample's first) in LiteRT with 1 and 2
threads, beside OpenVINO with as many threads at the same precision (float32 for fp32; OpenVINO has no
float16 on a CPU without AVX512-FP16, so fp16 stands beside its float32; NNCF's int8 for int8); and, on
the first 64-frame window of each of the first ``--clips`` devset clips, how often each file's top-1
is the float32 network's (OpenVINO f32, within 3e-5 of TensorFlow: see the README's Exports), with the
largest logit difference. OpenVINO's int8 is scored the same way, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"
FRAMES = 64
PRECISIONS = ("fp32", "fp16", "int8")


def _median_seconds(runs: list, clip: np.ndarray, repeats: int) -> list[float]:
    """The median seconds of each of ``runs`` on ``clip``, timed in interleaved rounds (one call of each per
    round), so load from other work weighs on all alike. The first call of each is not counted."""
    times: list[list[float]] = [[] for _ in runs]
    for run in runs:
        run(clip)  # allocates and packs the weights
    for _ in range(repeats):
        for run, taken in zip(runs, times):
            mark = time.perf_counter()
            run(clip)
            taken.append(time.perf_counter() - mark)
    return [statistics.median(taken) for taken in times]


def _exported(ws, store, folder: Path, precision: str) -> tuple[Path, dict]:
    """The checked tflite file of ``precision`` in ``folder/precision`` (reused when its check passed)."""
    from i3d.runtime.export import ExportOptions, export_model

    target = folder / precision
    check = target / "model.tflite.check.json"
    if check.is_file() and json.loads(check.read_text()).get("passed"):
        return target / "model.tflite", json.loads(check.read_text())
    mark = time.perf_counter()
    exported = export_model(ws, target, ExportOptions("tflite", frames=FRAMES, precision=precision, overwrite=True),
                            store=store)
    print(f"{precision}: exported in {time.perf_counter() - mark:.0f} s", flush=True)
    return exported.files[0], exported.check


def _openvino(ov_model, threads: int):
    from i3d.runtime.ov_core import ov_core

    compiled = ov_core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT":
                                                         "LATENCY", "INFERENCE_NUM_THREADS": threads})
    output = compiled.output("logits")
    return lambda clip: np.asarray(compiled(clip)[output])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=12, help="devset clips, one 64-frame window each (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is printed)")
    parser.add_argument("--out", type=Path, help="keep the exported files here (default: a temporary folder)")
    args = parser.parse_args()

    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.inputs.samples import sample_path
    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.runtime.ir import float_model
    from i3d.runtime.litert import litert_runner
    from i3d.runtime.quantize import int8_model
    from i3d.streams import RGB
    from i3d.weights.loading import LoadOptions
    from i3d.weights.sets import weight_set_by_name
    from i3d.weights.store import WeightStore

    print(f"cpu {cpu_name()} x{os.cpu_count()}; {FRAMES}-frame windows", flush=True)
    ws, store = weight_set_by_name("rgb_kinetics"), WeightStore.from_environment()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        files = {}
        for precision in PRECISIONS:
            files[precision], check = _exported(ws, store, folder, precision)
            [run] = check["runs"]
            print(f"{precision}: {files[precision].stat().st_size / 2**20:.1f} MiB; sample check: max |difference| "
                  f"{run['max_abs_difference']:.3g} (tolerance {check['tolerance']:g}), top-1 "
                  f"{run['top1']['export']}", flush=True)
        load = LoadOptions(download=False)
        openvino = {"fp32": float_model(ws, store, load)[0], "int8": int8_model(ws, store, load)[0]}
        window = np.ascontiguousarray(np.load(sample_path("rgb"))[:, :FRAMES], np.float32)
        print(f"\nseconds per {FRAMES}-frame window (median of {args.repeats}, interleaved): LiteRT / OpenVINO")
        for precision in PRECISIONS:
            figures = []
            for threads in (1, 2):
                ours, theirs = _median_seconds([litert_runner(files[precision], threads), _openvino(
                    openvino[precision if precision != "fp16" else "fp32"], threads)], window, args.repeats)
                figures.append(f"{threads} thread{'s' * (threads > 1)}: {ours:.2f} / {theirs:.2f}")
            print(f"{precision}: " + "; ".join(figures), flush=True)

        dataset = load_dataset(DEVSET / "labels.tsv", ListOptions(root=DEVSET / "clips", path_column="file",
                                                                  label_column="kinetics_label"))
        runners = {precision: litert_runner(files[precision], 2) for precision in PRECISIONS}
        runners["openvino int8"] = _openvino(openvino["int8"], 2)
        reference = _openvino(openvino["fp32"], 2)
        same = dict.fromkeys(runners, 0)
        worst = dict.fromkeys(runners, 0.0)
        windows = 0
        for item in dataset.items[:args.clips]:
            clip = next(iter_windows(item.path, (RGB,), VideoOptions(window=FRAMES))).clips["rgb"]
            if clip.shape[1] != FRAMES:
                continue
            want = reference(clip)
            windows += 1
            for name, run in runners.items():
                got = run(clip)
                same[name] += int(got.argmax()) == int(want.argmax())
                worst[name] = max(worst[name], float(np.max(np.abs(got - want))))
        print(f"\ndevset, first {FRAMES}-frame window of {windows} clips: top-1 as the float32 network's")
        for name in runners:
            print(f"{name}: {same[name]}/{windows} ({100 * same[name] / max(windows, 1):.0f}%), "
                  f"max |logit difference| {worst[name]:.3g}")


if __name__ == "__main__":
    main()
