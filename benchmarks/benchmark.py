#!/usr/bin/env python3
"""Benchmark I3D on this machine: MAC count, forward-pass speed per backend and precision, throughput, cold start,
peak RSS, and with --devset the accuracy of each precision on labelled real clips.

Run from anywhere: ``.venv/bin/python benchmarks/benchmark.py [--json] [--runs N] [--devset DIR]``.
Forward passes use randomly initialised weights (speed does not depend on the
weight values), so the flow stream is timed even without its weights; the
cold-start and memory runs call ``evaluate.py`` with its real cached weights, and
so does the devset part (the rgb/kinetics set, each precision as the tool makes it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from i3d.quiet import silence_tensorflow
from i3d.streams import STREAMS as _STREAMS

ROOT = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 79, 224
STREAMS = {name: stream.channels for name, stream in _STREAMS.items()}
NOTE = "forward passes use random weights: speed does not depend on weight values"
PRECISIONS = ("bf16", "int8")
"""Timed beside rgb_79_b1 (OpenVINO float32) as rgb_79_b1_bf16 and rgb_79_b1_int8."""


# ------------------------------------------------------------- machine ------

def machine() -> dict[str, Any]:
    """CPU model, core counts, load and library versions, so results can be compared across hosts."""
    import openvino
    import tensorflow as tf

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    models = [v.strip() for k, v in fields if k.strip() == "model name"]
    family = next((v.strip() for k, v in fields if k.strip() == "cpu family"), "?")
    model = next((v.strip() for k, v in fields if k.strip() == "model"), "?")
    flags = next((v.split() for k, v in fields if k.strip() == "flags"), [])
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for k, v in fields:
        if k.strip() == "physical id":
            phys = v.strip()
        elif k.strip() == "core id":
            core = v.strip()
            cores.add((phys, core))
    return {"cpu": models[0] if models else platform.processor(), "cpu_family_model": f"{family}/{model}",
            "physical_cores": len(cores) or None,
            "os_cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags],
            "loadavg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "openvino": openvino.get_version(), "tensorflow": tf.__version__}


# ---------------------------------------------------------------- MACs ------

def count_macs(channels: int, frames: int = FRAMES) -> dict[str, Any]:
    """Multiply-accumulates of every Conv3D at batch 1: output elements x kernel volume x C_in (pools free)."""
    import keras

    from i3d.model import build_i3d

    model = build_i3d(channels=channels, frames=frames)
    blocks: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv3D):
            out = int(np.prod(layer.output.shape[1:]))
            macs = out * int(np.prod(layer.kernel_size)) * int(layer.input.shape[-1])
            block = layer.name.split(".")[0]
            blocks[block] = blocks.get(block, 0) + macs
    total = sum(blocks.values())
    return {"frames": frames, "macs": total, "gmac": total / 1e9, "gflop": 2 * total / 1e9,
            "params": model.count_params(), "gmac_by_block": {k: v / 1e9 for k, v in blocks.items()}}


# ------------------------------------------------------------- timing -------

def clip(channels: int, frames: int = FRAMES, batch: int = 1, seed: int = 0) -> np.ndarray:
    """A deterministic random clip in [-1, 1], as the network expects."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, frames, SIZE, SIZE, channels)).astype(np.float32)


def time_calls(fn: Callable[[], Any], runs: int) -> dict[str, Any]:
    """One untimed warm-up call, then ``runs`` timed calls: median, min and max seconds."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"runs": runs, "seconds_median": statistics.median(times), "seconds_min": min(times),
            "seconds_max": max(times), "seconds_all": times}


class Runners:
    """Keras models (random weights) in the runners the tool uses: TensorFlow graph mode, or OpenVINO on CPU."""

    def __init__(self) -> None:
        import keras
        import tensorflow as tf

        from i3d.model import Network, build_i3d, build_network, with_features
        from i3d.runtime.ir import convert
        from i3d.runtime.tensorflow import RUNNER_OUTPUTS, TensorFlowRunner

        tf.config.experimental.enable_tensor_float_32_execution(False)
        keras.utils.set_random_seed(0)
        self.keras = {s: build_i3d(channels=c) for s, c in STREAMS.items()}  # dynamic frames, like the tool's
        self.tf = {s: TensorFlowRunner(build_network(Network(outputs=RUNNER_OUTPUTS), base=m))
                   for s, m in self.keras.items()}
        self.ov_models = {s: convert(with_features(self.keras[s]), c) for s, c in STREAMS.items()}
        self._quantized: dict[str, Any] = {}

    def openvino(self, stream: str, hint: str = "LATENCY", precision: str = "fp32"):
        """The stream's OpenVINO runner, compiled with the tool's settings, ``hint`` and ``precision`` (int8:
        the model quantised as the tool quantises it, calibrated on the sample windows or random clips)."""
        from i3d.runtime.openvino import OpenVINORunner

        model = self.ov_models[stream]
        if precision == "int8":
            model = self.quantized(stream)
        return OpenVINORunner(model, hint=hint, precision=precision)

    def quantized(self, stream: str):
        from i3d.runtime.quantize import calibration_for, quantize, sample_windows
        from i3d.streams import STREAMS as streams

        if stream not in self._quantized:
            try:
                windows = sample_windows(calibration_for(streams[stream]))
            except Exception:  # no sample clip: random clips calibrate a random network as well
                windows = [clip(STREAMS[stream], 64, seed=seed) for seed in range(4)]
            self._quantized[stream] = quantize(self.ov_models[stream], windows)
        return self._quantized[stream]


def forward(runners: Runners, stream: str, runs: int, macs: int, default: str) -> dict[str, Any]:
    """Batch-1 forward pass per backend at 79 frames, with GFLOP/s and speed-up over TensorFlow."""
    x = clip(STREAMS[stream])
    ov_runner, tf_runner = runners.openvino(stream, "LATENCY"), runners.tf[stream]
    backends = {"openvino": time_calls(lambda: ov_runner.logits_batch(x), runs),
                "tensorflow": time_calls(lambda: tf_runner.logits_batch(x), runs)}
    base = backends["tensorflow"]["seconds_median"]
    for name, result in backends.items():
        result.update(backend=name, clips_per_s=1 / result["seconds_median"],
                      gflops=2 * macs / result["seconds_median"] / 1e9,
                      speedup_vs_tensorflow=base / result["seconds_median"])
    entry = {k: v for k, v in backends[default].items() if k != "seconds_all"}
    return {**entry, "frames": FRAMES, "batch": 1, "backends": backends}


def precision_forward(runners: Runners, runs: int, macs: int) -> dict[str, dict[str, Any]]:
    """Batch-1 RGB forward passes at 79 frames: TensorFlow graph mode float32 and OpenVINO in each precision,
    timed in interleaved rounds (one call of each per round, after one warm-up each) so that other work on
    the machine weighs on all of them alike; speed-ups are over the TensorFlow of the same rounds."""
    x = clip(3)
    calls = {"tensorflow": runners.tf["rgb"].logits_batch}
    openvino = {p: runners.openvino("rgb", "LATENCY", p) for p in ("fp32", *PRECISIONS)}
    calls.update({p: runner.logits_batch for p, runner in openvino.items()})
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn(x)
    for _ in range(runs):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["tensorflow"])
    out = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        out[name] = {"backend": "tensorflow" if name == "tensorflow" else "openvino",
                     "precision": "fp32" if name == "tensorflow" else name,
                     "precision_used": "fp32" if name == "tensorflow" else openvino[name].precision,
                     "frames": FRAMES, "batch": 1, "runs": runs, "interleaved": True, "seconds_median": median,
                     "seconds_min": min(seconds), "seconds_max": max(seconds), "clips_per_s": 1 / median,
                     "gflops": 2 * macs / median / 1e9, "speedup_vs_tensorflow": base / median,
                     "tensorflow_seconds_median": base}
    return out


def devset_accuracy(folder: Path, precisions: tuple[str, ...] = ("fp32", *PRECISIONS)) -> dict[str, Any]:
    """Each precision on the devset (``labels.tsv`` + ``clips/``), rgb/kinetics, the tool's default video
    settings: top-1 agreement with fp32 over every clip, top-1/top-5 accuracy over the labelled ones."""
    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.runtime.base import EngineOptions
    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.inputs.labels import match_labels
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions

    dataset = load_dataset(folder / "labels.tsv", ListOptions(root=folder / "clips", path_column="file",
                                                               label_column="kinetics_label"))
    recognizers = {p: Recognizer.load(("rgb",), load=LoadOptions(download=False),
                                      engine=EngineOptions("openvino", precision=p)) for p in precisions}
    categories = recognizers["fp32"].categories
    labels = match_labels(sorted({i.label for i in dataset.items if i.label}), categories)
    video = VideoOptions()
    rows = []
    for number, item in enumerate(dataset.items, 1):
        print(f"devset {number}/{len(dataset.items)}: {item.path.name}", file=sys.stderr, flush=True)
        try:
            windows = list(iter_windows(item.path, recognizers["fp32"].streams, video))
        except Exception as err:  # a clip the tool cannot read counts for no precision
            rows.append({"clip": item.key, "error": str(err)})
            continue
        row = {"clip": item.key, "label_index": labels.get(item.label) if item.label else None}
        for p, recognizer in recognizers.items():
            result = recognizer.classify_windows(windows, top_k=5)
            row[p] = {"top5": [t.index for t in result.top], "logits": result.logits}
        rows.append(row)
    done = [r for r in rows if "error" not in r]
    labelled = [r for r in done if r["label_index"] is not None]
    out: dict[str, Any] = {"folder": str(folder), "clips": len(dataset.items), "classified": len(done),
                           "labelled": len(labelled), "failed": [r for r in rows if "error" in r],
                           "machine_isa": machine()["isa"], "precisions": {}}
    for p in precisions:
        agree = sum(r[p]["top5"][0] == r["fp32"]["top5"][0] for r in done)
        top1 = sum(r[p]["top5"][0] == r["label_index"] for r in labelled)
        top5 = sum(r["label_index"] in r[p]["top5"] for r in labelled)
        deviation = max((float(np.abs(r[p]["logits"] - r["fp32"]["logits"]).max()) for r in done), default=0.0)
        out["precisions"][p] = {"precision_used": recognizers[p].precision["rgb"],
                                "top1_agreement_with_fp32": agree / len(done) if done else None,
                                "agree": agree, "top1": top1 / len(labelled) if labelled else None,
                                "top1_hits": top1, "top5": top5 / len(labelled) if labelled else None,
                                "top5_hits": top5, "max_abs_logit_deviation_vs_fp32": deviation,
                                "disagreements": [r["clip"] for r in done if r[p]["top5"][0] != r["fp32"]["top5"][0]]}
    return out


def throughput(runners: Runners, clips: int, runs: int, latency: dict[str, Any]) -> dict[str, Any]:
    """Clips/s for OpenVINO THROUGHPUT + AsyncInferQueue and TensorFlow batch 2, against the batch-1 results."""
    import openvino as ov

    compiled = runners.openvino("rgb", "THROUGHPUT").compiled
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    x = clip(3)

    def round_trip(n: int) -> None:
        for _ in range(n):
            queue.start_async({0: x})
        queue.wait_all()

    round_trip(requests)  # warm-up: every request once
    rounds = max(1, min(3, runs))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        round_trip(clips)
        times.append(time.perf_counter() - start)
    ov_tp = {"hint": "THROUGHPUT", "infer_requests": requests, "clips": clips, "rounds": rounds,
             "seconds_median": statistics.median(times), "clips_per_s": clips / statistics.median(times)}
    tf_runner, x2 = runners.tf["rgb"], clip(3, batch=2)
    tf_b2 = time_calls(lambda: tf_runner.logits_batch(x2), max(1, min(3, runs)))
    tf_b2.update(batch=2, clips_per_s=2 / tf_b2["seconds_median"])
    settings = {"openvino_throughput_async": ov_tp,
                "openvino_latency_b1": {"clips_per_s": latency["openvino"]["clips_per_s"]},
                "tensorflow_b2": tf_b2,
                "tensorflow_b1": {"clips_per_s": latency["tensorflow"]["clips_per_s"]}}
    best = max(settings, key=lambda k: settings[k]["clips_per_s"])
    return {"frames": FRAMES, "settings": settings, "best": best,
            "best_clips_per_s": settings[best]["clips_per_s"]}


# ------------------------------------------------------- subprocesses -------

# Runs a command and writes its peak RSS (KiB) to argv[1]; a fresh, small process, so that the
# measured child does not inherit this benchmark's own high-water mark through fork/vfork.
_RSS_HELPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
               "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
               "sys.exit(rc)")


def run_evaluate(extra: list[str]) -> dict[str, Any]:
    """Run ``evaluate.py --format json --top-k 5 EXTRA`` cold; wall-clock phases and the child's peak RSS.

    The wall clock brackets the subprocess; the first stdout byte (unbuffered)
    marks the end of classification, so everything after it is output + exit.
    Peak RSS comes from ``/usr/bin/time -f %M`` (or a small Python wrapper).
    """
    cmd = [sys.executable, "evaluate.py", "--format", "json", "--top-k", "5", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as folder:
        rss_file = Path(folder) / "maxrss"
        wrapper = (["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if os.access("/usr/bin/time", os.X_OK)
                   else [sys.executable, "-c", _RSS_HELPER, str(rss_file)])
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(wrapper + cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, env=env)
            first = proc.stdout.read(1)
            printed = time.perf_counter()
            out = first + proc.stdout.read()
            proc.wait()
            wall = time.perf_counter() - start
            proc.stdout.close()
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err.read().decode()[-2000:]}")
        rss_kib = int(rss_file.read_text().split()[-1])
    result = json.loads(out)
    phases = result["seconds"]
    inside = phases["inputs"] + phases["load"] + phases["inference"]
    return {"backend": result["backend"], "wall": wall, "startup": (printed - start) - inside,
            "inputs": phases["inputs"], "load": phases["load"], "inference": phases["inference"],
            "output": wall - (printed - start), "peak_rss_mib": rss_kib / 1024}


def cold_start(runs: int) -> dict[str, Any]:
    """Cold ``evaluate.py`` on the sample: ``runs`` with the default backend and one with TensorFlow."""
    keys = ("wall", "startup", "inputs", "load", "inference", "output", "peak_rss_mib")
    result = {}
    for label, extra, n in (("default", [], runs), ("tensorflow", ["--backend", "tensorflow"], 1)):
        samples = [run_evaluate(extra) for _ in range(n)]
        median = {k: statistics.median(s[k] for s in samples) for k in keys}
        result[label] = {"backend": samples[0]["backend"], "runs": n, "median": median, "all": samples}
    return result


def peak_rss(frames_list: tuple[int, ...] = (79, 250)) -> dict[str, Any]:
    """Peak RSS (MiB) of a fresh ``evaluate.py --rgb FILE`` per random RGB clip length (default backend)."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for frames in frames_list:
            path = Path(folder) / f"rgb_{frames}.npy"
            np.save(path, clip(3, frames))
            run = run_evaluate(["--rgb", str(path)])
            result["backend"] = run["backend"]
            result[f"rgb_{frames}"] = run["peak_rss_mib"]
            path.unlink()
    return result


# ------------------------------------------------------------- output -------

def tables(r: dict[str, Any]) -> str:
    """The results as prettytable tables."""
    from prettytable import PrettyTable

    def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
        t = PrettyTable(header, title=title, float_format=".3")
        t.align = "r"
        t.align[header[0]] = "l"
        t.add_rows(rows)
        return t.get_string()

    m = r["machine"]
    out = [f"machine: {m['cpu']} (family/model {m['cpu_family_model']}), {m['physical_cores']} cores, "
           f"os.cpu_count {m['os_cpu_count']}, ISA {'/'.join(m['isa']) or '-'}, "
           f"1-min load {m['loadavg_1m']} at start, {m['loadavg_1m_end']} at end; "
           f"OpenVINO {m['openvino']}, TensorFlow {m['tensorflow']}", f"note: {NOTE}"]
    rgb, flow = r["macs"]["rgb_79"], r["macs"]["flow_79"]
    rows = [[b, rgb["gmac_by_block"][b], flow["gmac_by_block"][b]] for b in rgb["gmac_by_block"]]
    rows += [["total GMAC", rgb["gmac"], flow["gmac"]], ["total GFLOP (2 x MAC)", rgb["gflop"], flow["gflop"]]]
    out.append(table(f"Conv3D multiply-accumulates, {FRAMES} frames 224x224, batch 1",
                     ["block", "RGB GMAC", "flow GMAC"], rows))
    rows = []
    for key in ("rgb_79_b1", "flow_79_b1"):
        for name, b in r[key]["backends"].items():
            rows.append([key.split("_")[0], name + (" *" if name == r[key]["backend"] else ""),
                         b["seconds_median"], b["seconds_min"], b["seconds_max"], b["clips_per_s"],
                         f"{b['gflops']:.1f}", f"{b['speedup_vs_tensorflow']:.2f}x"])
    out.append(table(f"Forward pass, {FRAMES} frames, batch 1, {r['rgb_79_b1']['runs']} runs after 1 warm-up "
                     "(* default backend)", ["stream", "backend", "median s", "min s", "max s", "clips/s",
                                             "GFLOP/s", "vs TF"], rows))
    rows = []
    for name, e in r["rgb_79_b1_precisions"].items():
        what = ("tensorflow fp32 (graph mode)" if name == "tensorflow"
                else f"openvino {name} (ran {e['precision_used']})")
        rows.append([what, e["seconds_median"], e["seconds_min"], e["seconds_max"], e["clips_per_s"],
                     f"{e['gflops']:.1f}", f"{e['speedup_vs_tensorflow']:.2f}x"])
    out.append(table(f"RGB forward pass per precision, {FRAMES} frames, batch 1, {r['rgb_79_b1']['runs']} interleaved "
                     "rounds", ["engine", "median s", "min s", "max s", "clips/s", "GFLOP/s", "vs TF fp32"], rows))
    tp = r["throughput"]
    rows = [[k + (" (best)" if k == tp["best"] else ""), v["clips_per_s"]] for k, v in tp["settings"].items()]
    a = tp["settings"]["openvino_throughput_async"]
    out.append(table(f"RGB throughput, {FRAMES} frames (OpenVINO async: {a['clips']} clips over "
                     f"{a['infer_requests']} infer requests)", ["setting", "clips/s"], rows))
    rows = []
    for label, c in r["cold_start"].items():
        md = c["median"]
        how = "default backend" if label == "default" else "--backend tensorflow"
        runs = f"median of {c['runs']} runs" if c["runs"] > 1 else "1 run"
        rows.append([f"{c['backend']} ({how}), {runs}", *(md[k] for k in ("wall", "startup", "inputs", "load")),
                     md["inference"], md["output"], f"{md['peak_rss_mib']:.0f}"])
    out.append(table("Cold `evaluate.py --format json --top-k 5` on the sample (seconds)",
                     ["backend", "wall", "imports+start-up", "inputs", "load", "inference", "output+exit",
                      "peak RSS MiB"], rows))
    rss = r["peak_rss_mib"]
    out.append(table(f"Peak RSS of `evaluate.py --rgb FILE` ({rss['backend']})", ["clip", "peak RSS MiB"],
                     [[k, f"{v:.0f}"] for k, v in rss.items() if k != "backend"]))
    return "\n\n".join(out)


def devset_table(d: dict[str, Any]) -> str:
    """The devset part as one table: agreement with fp32 and accuracy per precision."""
    from prettytable import PrettyTable

    t = PrettyTable(["precision", "ran", "top-1 = fp32", "top-1", "top-5", "max |logit - fp32|"],
                    title=f"{d['folder']}: {d['classified']} clips classified, {d['labelled']} labelled (rgb)")
    for p, e in d["precisions"].items():
        t.add_row([p, e["precision_used"], f"{e['agree']}/{d['classified']}", f"{e['top1_hits']}/{d['labelled']}",
                   f"{e['top5_hits']}/{d['labelled']}", f"{e['max_abs_logit_deviation_vs_fp32']:.3f}"])
    return t.get_string()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--runs", type=int, default=5, help="timed forward passes per backend (default 5)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold evaluate.py runs (default 3)")
    parser.add_argument("--clips", type=int, default=4, help="clips per OpenVINO async round (default 4)")
    parser.add_argument("--save", type=Path, metavar="FILE.json", help="also write the JSON object to FILE.json")
    parser.add_argument("--devset", type=Path, metavar="DIR",
                        help="also measure each precision's accuracy on DIR (labels.tsv + clips/, "
                             "e.g. ../shared/devset)")
    parser.add_argument("--no-timing", action="store_true",
                        help="skip every timing part (with --devset: the accuracy part alone)")
    args = parser.parse_args(argv)

    silence_tensorflow()
    from i3d.runtime.base import resolve_backend

    default = resolve_backend("auto")
    r: dict[str, Any] = {"note": NOTE, "machine": machine()}
    if not args.no_timing:
        r["macs"] = {f"{s}_{FRAMES}": count_macs(c) for s, c in STREAMS.items()}
        runners = Runners()
        for s in STREAMS:
            r[f"{s}_{FRAMES}_b1"] = forward(runners, s, args.runs, r["macs"][f"{s}_{FRAMES}"]["macs"], default)
        rounds = precision_forward(runners, args.runs, r["macs"][f"rgb_{FRAMES}"]["macs"])
        r[f"rgb_{FRAMES}_b1_precisions"] = rounds  # tensorflow, fp32, bf16, int8 of the same rounds
        for p in PRECISIONS:
            r[f"rgb_{FRAMES}_b1_{p}"] = rounds[p]
        r["throughput"] = throughput(runners, args.clips, args.runs, r[f"rgb_{FRAMES}_b1"]["backends"])
        del runners
        r["cold_start"] = cold_start(args.cold_runs)
        r["peak_rss_mib"] = peak_rss()
    if args.devset:
        r["devset"] = devset_accuracy(args.devset)
    r["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.save:
        args.save.write_text(json.dumps(r, indent=2) + "\n")
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        parts = ([] if args.no_timing else [tables(r)]) + ([devset_table(r["devset"])] if args.devset else [])
        print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
