"""i3d explain on ../shared/devset: how faithful its maps are, whether they point at the action, how fast.

    .venv/bin/python benchmarks/explain_benchmark.py [--clips 4] [--composites 8] [--frames 32] [--fill mean blur]
        [--methods Mixed_5c Mixed_5c:probability Mixed_4f occlusion] [--parts faithfulness pointing speed]
        [--save FILE.json]

The rgb stream with DeepMind's rgb kinetics weights; every forward pass of the curves and of
occlusion runs on OpenVINO fp32 in batches, Grad-CAM on the Keras network in float32.

1. **Faithfulness** on the first ``--clips`` labelled clips (one per class before any class twice),
   ``--frames`` frames each, explaining the network's top-1 class: deletion and insertion curves
   (:mod:`i3d.tasks.explain.faithfulness`, cells of ``--cell``: 4 frames x 16 x 16 pixels, a point every 10%)
   for Grad-CAM at Mixed_5c (of the logit, the default, and of the log-probability) and Mixed_4f and for
   occlusion (its default patch), against a random
   order and a centre-first order; mean areas, and per method the clips on which it beats each baseline.
   Blanked cells hold the clip's mean colour, or (``--fill blur``, or both side by side) a blurred copy of
   the clip. Grad-CAM's cells are ranked by its map before the ReLU (the ReLU ties every place without
   evidence at 0; the values below 0 still order them), occlusion's by its drops.
   Goal: every method's mean deletion area below both baselines', its insertion area above. The random
   order scatters blank cells over the whole clip, a sight no network was trained on, so its deletion curve
   falls at once: a hard baseline for deletion, an easy one for insertion; ``--cell`` makes the cells coarser.
2. **Pointing game** on ``--composites`` composites (:mod:`i3d.tasks.explain.pointing`): a labelled clip
   shrunk into one quadrant of another clip's frozen middle frame, explaining the pasted clip's label;
   per method and layer the share of maps whose peak (with Wilson's 95% interval), and whose most heat, is in
   that quadrant (chance 25%), and per composite where each peak lies. Goal: at least 80% of peaks for the
   default (Grad-CAM at Mixed_5c). At most one composite per labelled clip: 32 of the devset's are long enough.
3. **Speed**: Grad-CAM of a 64-frame window (one forward pass of the clip and its blank reference together,
   one backward pass) against the fp32 forward
   pass, on TensorFlow (the same engine) and on OpenVINO (what classify runs), median of ``--runs``;
   occlusion's seconds per forward pass and for one sweep of its default patch over a ``--frames`` clip.

``--methods`` and ``--parts`` measure less (the speed part times the default's Grad-CAM, or the first one asked
for). Prints the CPU and the load first, a table at the end, and writes every figure to ``--save``
(default /tmp/i3d-explain-benchmark.json). Each clip takes 33 forward passes of ``--frames`` frames for
occlusion and 110 per fill for the curves (6 orders x 2 curves x 9 inner points, and the 2 ends), each
composite 34: about 25 minutes for ``--clips 6 --composites 10`` with one fill on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

from i3d.tasks.explain.faithfulness import FILLS
from i3d.tasks.explain.options import DEFAULT_LAYER, DEFAULT_SCORE

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"
LAYERS = (("Mixed_5c", "logit"), ("Mixed_5c", "probability"), ("Mixed_4f", "logit"))  # Grad-CAM's layer and score
METHODS = tuple(f"{layer}{'' if score == 'logit' else ':' + score}" for layer, score in LAYERS) + ("occlusion",)
"""What ``--methods`` chooses from: Grad-CAM's LAYER[:SCORE], and occlusion."""
PARTS = ("faithfulness", "pointing", "speed")
PATCH = (16, 56, 56)  # occlusion's default patch (frames, rows, columns)
CELL = (4, 16, 16)  # the curves' cells: Mixed_4f's resolution, the finest map's
BASELINES = ("random", "centre")


def labelled_clips(devset: Path) -> list[tuple[str, int, Path]]:
    """(label, Kinetics index, path) of the clips with a Kinetics class: one per class first, then the rest."""
    rows = [line.split("\t") for line in (devset / "labels.tsv").read_text().splitlines()[1:]]
    rows = [(row[1], int(row[2]), devset / "clips" / row[0]) for row in rows if row[1].strip()]
    seen: set[str] = set()
    first, rest = [], []
    for row in rows:
        (rest if row[0] in seen else first).append(row)
        seen.add(row[0])
    return first + rest


def read_clip(path: Path, frames: int) -> np.ndarray | None:
    """The video's first ``frames`` model-ready rgb frames (1, T, 224, 224, 3), or None when it is shorter."""
    from i3d.preprocess.windows import VideoOptions, read_clips
    from i3d.streams import RGB

    clip = read_clips(path, (RGB,), VideoOptions(max_frames=frames))["rgb"]
    return clip if clip.shape[1] == frames else None


def timed(call, runs: int) -> tuple[float, object]:
    """The median seconds of ``runs`` calls after one warm-up call, and the last call's value."""
    value = call()
    marks = []
    for _ in range(runs):
        mark = time.perf_counter()
        value = call()
        marks.append(time.perf_counter() - mark)
    return statistics.median(marks), value


def method_maps(cams: dict, probabilities, clip: np.ndarray, index: int, seconds: dict[str, list[float]],
                occlusion: bool = True) -> dict:
    """Each method's map of class ``index`` for ``clip`` at its own resolution (Grad-CAM's before its ReLU), the
    seconds each took added up; occlusion's only when ``occlusion``."""
    from i3d.tasks.explain.occlusion import occlusion_map

    maps = {}
    for layer, cam in cams.items():
        mark = time.perf_counter()
        maps[f"gradcam {layer}"] = cam.signed_map(clip, index)
        seconds.setdefault(f"gradcam {layer}", []).append(time.perf_counter() - mark)
    if occlusion:
        mark = time.perf_counter()
        maps["occlusion"] = occlusion_map(probabilities, clip, index, patch=PATCH, batch=4)
        seconds.setdefault("occlusion", []).append(time.perf_counter() - mark)
    return maps


def faithfulness(clips: list[tuple[str, int, Path, np.ndarray]], cams: dict, probabilities, steps: int,
                 cell: tuple[int, int, int], seconds: dict[str, list[float]], categories: tuple[str, ...],
                 fills: tuple[str, ...], occlusion: bool = True) -> dict:
    """Per fill: per clip and order, the deletion and insertion areas; their means; each method's wins over each
    baseline. The maps are made once per clip, whatever the fills."""
    from i3d.tasks.explain.faithfulness import (CurveOptions, cell_grid, centre_order, curves, random_order,
                                                saliency_order)

    per_fill: dict[str, list[dict]] = {fill: [] for fill in fills}
    for n, (label, _, path, clip) in enumerate(clips):
        mark = time.perf_counter()
        index = int(np.argmax(probabilities(clip)[0]))
        maps = method_maps(cams, probabilities, clip, index, seconds, occlusion)
        shape = clip.shape[1:4]
        grid = cell_grid(shape, cell)
        orders = {name: saliency_order(heat, shape, cell) for name, heat in maps.items()}
        orders |= {"random": random_order(grid, seed=n), "centre": centre_order(grid)}
        for fill in fills:
            result = curves(probabilities, clip, orders, index, CurveOptions(steps=steps, cell=cell, batch=4,
                                                                             fill=fill))
            per_fill[fill].append({
                "clip": path.name, "label": label, "class_index": index, "class": categories[index],
                "deletion": {name: c.deletion.auc for name, c in result.items()},
                "insertion": {name: c.insertion.auc for name, c in result.items()},
                "deletion_curve": {name: c.deletion.probabilities.round(4).tolist() for name, c in result.items()},
                "insertion_curve": {name: c.insertion.probabilities.round(4).tolist() for name, c in result.items()}})
            print(f"  faithfulness {n + 1}/{len(clips)} {path.name}, {fill} fill: deletion "
                  + ", ".join(f"{k} {v:.3f}" for k, v in per_fill[fill][-1]["deletion"].items())
                  + f" ({time.perf_counter() - mark:.0f} s)", flush=True)
    return {fill: {"clips": len(per_clip), "steps": steps, "cell": list(cell), "fill": fill,
                   "summary": summarise(per_clip), "per_clip": per_clip} for fill, per_clip in per_fill.items()}


def summarise(per_clip: list[dict]) -> dict:
    """Per order the mean deletion and insertion areas; per method its wins over each baseline, clip by clip,
    and whether its means beat both baselines' on both curves."""
    names = list(per_clip[0]["deletion"]) if per_clip else []
    summary = {}
    for name in names:
        deletion = [c["deletion"][name] for c in per_clip]
        insertion = [c["insertion"][name] for c in per_clip]
        summary[name] = {"deletion_auc": float(np.mean(deletion)), "insertion_auc": float(np.mean(insertion))}
        if name not in BASELINES:
            for base in BASELINES:
                summary[name][f"deletion_wins_vs_{base}"] = sum(c["deletion"][name] < c["deletion"][base]
                                                                for c in per_clip)
                summary[name][f"insertion_wins_vs_{base}"] = sum(c["insertion"][name] > c["insertion"][base]
                                                                 for c in per_clip)
            summary[name]["beats_both"] = all(
                summary[name]["deletion_auc"] < np.mean([c["deletion"][b] for c in per_clip])
                and summary[name]["insertion_auc"] > np.mean([c["insertion"][b] for c in per_clip])
                for b in BASELINES)
    return summary


def peak_place(heat: np.ndarray) -> str:
    """Where a map's (first) peak lies: the quadrant holding most of its cell, or "middle" for a cell the middle
    line halves, with its (t, row, column) in the map."""
    from i3d.tasks.explain.pointing import QUADRANTS, quadrant_weights

    heat = np.asarray(heat)
    place = np.unravel_index(int(np.argmax(heat)), heat.shape)
    shares = quadrant_weights(*heat.shape[1:])[:, place[1], place[2]]
    where = QUADRANTS[int(np.argmax(shares))] if shares.max() > 0.5 else "middle"
    return f"{where} {tuple(int(i) for i in place)}"


def pointing_game(pool: list[tuple[str, int, Path, np.ndarray]], count: int, cams: dict, probabilities,
                  seconds: dict[str, list[float]], categories: tuple[str, ...], occlusion: bool = True) -> dict:
    """Per method, the pointing rates over ``count`` composites of clips from ``pool``, each with the share of
    its maps that hit and a binomial 95% interval (Wilson's)."""
    from i3d.tasks.explain.pointing import QUADRANTS, composite, pairings, point, rates

    points: dict[str, list] = {}
    rows = []
    for n, (inner, background, quadrant) in enumerate(pairings(count, seed=0)):
        label, index, path, clip = pool[inner]
        made = composite(clip[0], pool[background][3][0], quadrant)[np.newaxis]
        answer = probabilities(made)[0]
        top1 = int(np.argmax(answer))
        maps = method_maps(cams, probabilities, made, index, seconds, occlusion)
        row = {"inner": path.name, "background": pool[background][2].name, "quadrant": QUADRANTS[quadrant],
               "label": label, "label_probability": round(float(answer[index]), 4), "top1": categories[top1],
               "top1_probability": round(float(answer[top1]), 4), "top1_is_label": top1 == index}
        for name, heat in maps.items():
            scored = point(heat, quadrant)
            points.setdefault(name, []).append(scored)
            row[name] = {"peak": scored.peak, "mass": round(scored.mass, 4), "peak_at": peak_place(heat)}
        rows.append(row)
        print(f"  pointing {n + 1}/{count} {path.name} in the {QUADRANTS[quadrant]}: "
              + ", ".join(f"{k} {'hit' if v['peak'] else 'miss'} {v['mass']:.2f}"
                          for k, v in row.items() if isinstance(v, dict)), flush=True)
    rated = {name: rates(p) | {"peak_interval_95": wilson(sum(x.peak for x in p), len(p))}
             for name, p in points.items()}
    return {"composites": count, "rates": rated, "per_composite": rows}


def wilson(hits: int, count: int) -> list[float]:
    """Wilson's 95% interval for a rate of ``hits`` in ``count`` trials (SciPy's)."""
    from scipy.stats import binomtest  # SciPy comes with scikit-learn

    if count == 0:
        return [float("nan"), float("nan")]
    interval = binomtest(hits, count).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 3), round(float(interval.high), 3)]


def speed(model, cam, runner, probabilities, clip64: np.ndarray, runs: int, frames: int,
          occlusion_seconds: list[float]) -> dict:
    """Grad-CAM at 64 frames against the fp32 forward pass (TensorFlow and OpenVINO); occlusion per pass, from
    the sweeps the other parts timed over ``frames``-frame clips (their median)."""
    import tensorflow as tf

    from i3d.tasks.explain.options import occlusion_passes

    forward = tf.function(lambda x: model(x, training=False))
    index = int(np.argmax(probabilities(clip64)[0]))
    tf_forward, _ = timed(lambda: forward(tf.constant(clip64)), runs)
    ov_forward, _ = timed(lambda: runner.logits_batch(clip64), runs)
    gradcam, _ = timed(lambda: cam.map(clip64, index), runs)
    passes = occlusion_passes(frames, PATCH)
    occlusion = statistics.median(occlusion_seconds) if occlusion_seconds else None
    return {"frames": int(clip64.shape[1]), "runs": runs, "gradcam": cam.layer + " " + cam.score,
            "gradcam_seconds": gradcam,
            "tensorflow_forward_seconds": tf_forward, "openvino_fp32_forward_seconds": ov_forward,
            "gradcam_vs_tensorflow_forward": gradcam / tf_forward, "gradcam_vs_openvino_forward": gradcam / ov_forward,
            "occlusion": None if occlusion is None else {
                "frames": frames, "sweeps": len(occlusion_seconds), "patch": list(PATCH), "passes": passes, "batch": 4,
                "seconds": occlusion, "seconds_per_pass": occlusion / passes,
                "seconds_for_budget_512": 512 * occlusion / passes}}


def table(report: dict) -> str:
    """The figures as a few aligned tables (the parts that ran)."""
    lines = [f"CPU {report['machine']['cpu']}, {report['machine']['usable_cpus']} usable cores, load "
             f"{report['machine']['loadavg_1m']} -> {report['machine']['loadavg_1m_end']}"]
    for fill, faith in report.get("faithfulness", {}).items():
        lines += ["", f"Faithfulness on {faith['clips']} clips ({report['frames']} frames, cells "
                      f"{'x'.join(map(str, faith['cell']))}, {fill} fill; deletion lower is better, insertion higher)",
                  f"{'order':<30}{'deletion AUC':>14}{'insertion AUC':>15}{'del wins r/c':>14}{'ins wins r/c':>14}"]
        for name, s in faith["summary"].items():
            wins = ("" if name in BASELINES else
                    f"{s['deletion_wins_vs_random']}/{s['deletion_wins_vs_centre']}".rjust(14)
                    + f"{s['insertion_wins_vs_random']}/{s['insertion_wins_vs_centre']}".rjust(14))
            lines.append(f"{name:<30}{s['deletion_auc']:>14.3f}{s['insertion_auc']:>15.3f}{wins}")
    if "pointing" in report:
        point = report["pointing"]
        lines += ["", f"Pointing game on {point['composites']} composites (chance 25%)",
                  f"{'method':<30}{'peak in quadrant':>18}{'95% interval':>16}{'most heat there':>17}"]
        for name, r in point["rates"].items():
            low, high = r["peak_interval_95"]
            lines.append(f"{name:<30}{r['peak']:>18.0%}{f'{low:.0%}-{high:.0%}':>16}{r['mass']:>17.0%}")
    if "speed" in report:
        s = report["speed"]
        lines += ["", f"Speed, {s['frames']} frames, median of {s['runs']}: Grad-CAM {s['gradcam_seconds']:.2f} s; "
                      f"fp32 forward TensorFlow {s['tensorflow_forward_seconds']:.2f} s (ratio "
                      f"{s['gradcam_vs_tensorflow_forward']:.2f}), OpenVINO {s['openvino_fp32_forward_seconds']:.2f} s "
                      f"(ratio {s['gradcam_vs_openvino_forward']:.2f})"]
        o = s["occlusion"]
        if o is not None:
            lines.append(f"Occlusion, {o['frames']} frames, patch {'x'.join(map(str, o['patch']))}: {o['passes']} "
                         f"passes in {o['seconds']:.1f} s (median of {o['sweeps']} sweeps) = "
                         f"{o['seconds_per_pass']:.3f} s per pass ({o['seconds_for_budget_512']:.0f} s for a budget "
                         "of 512)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="clips for the faithfulness curves (default 4)")
    parser.add_argument("--cell", type=int, nargs=3, default=CELL, metavar=("T", "H", "W"),
                        help="frames and pixels of the cells the curves blank (default 4 16 16)")
    parser.add_argument("--composites", type=int, default=8, help="composites for the pointing game (default 8)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--fill", nargs="+", choices=FILLS, default=["mean"],
                        help="what blanked cells hold: the clip's mean colour, a blurred copy, or both side by side "
                             "(default mean)")
    parser.add_argument("--steps", type=int, default=10, help="points on each curve past its start (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs for the speed figures (default 3)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="the maps to measure: Grad-CAM's LAYER[:SCORE], occlusion (default: all)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default: all three)")
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--save", type=Path, default=Path("/tmp/i3d-explain-benchmark.json"), metavar="FILE.json")
    args = parser.parse_args()
    started = time.perf_counter()

    from i3d.runtime.base import EngineOptions
    from i3d.tasks.explain.gradcam import GradCAM
    from i3d.tasks.explain.occlusion import runner_probabilities
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions, build_pretrained

    machine = {"cpu": cpu_name(), "usable_cpus": len(os.sched_getaffinity(0)),
               "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(f"CPU: {machine['cpu']}, {machine['usable_cpus']} usable cores, 1-min load {machine['loadavg_1m']}",
          flush=True)
    recognizer = Recognizer.load("rgb", load=LoadOptions(download=False), engine=EngineOptions(backend="openvino"))
    runner = recognizer.runners["rgb"]
    probabilities = runner_probabilities(runner)
    model = build_pretrained(recognizer.weight_sets["rgb"], recognizer.store, LoadOptions(download=False))
    cams = {f"{layer}{'' if score == 'logit' else ' ' + score}": GradCAM(model, layer, score=score)
            for (layer, score), name in zip(LAYERS, METHODS) if name in args.methods}
    occlusion = "occlusion" in args.methods

    pool, clip64 = [], None
    wanted = max(args.clips if "faithfulness" in args.parts else 0,
                 args.composites if "pointing" in args.parts else 0)
    for label, index, path in labelled_clips(args.devset):
        if len(pool) == wanted and (clip64 is not None or "speed" not in args.parts):
            break
        if clip64 is None and "speed" in args.parts:
            clip64 = read_clip(path, 64)
        if len(pool) < wanted and (clip := read_clip(path, args.frames)) is not None:
            pool.append((label, index, path, clip))
    print(f"{len(pool)} clips of {args.frames} frames read ({time.perf_counter() - started:.0f} s)", flush=True)

    seconds: dict[str, list[float]] = {}
    report = {"frames": args.frames, "machine": machine, "methods": args.methods}
    if "faithfulness" in args.parts:
        report["faithfulness"] = faithfulness(pool[:args.clips], cams, probabilities, args.steps, tuple(args.cell),
                                             seconds, recognizer.categories, tuple(dict.fromkeys(args.fill)),
                                             occlusion)
    if "pointing" in args.parts:
        report["pointing"] = pointing_game(pool[:args.composites], min(args.composites, len(pool)), cams,
                                           probabilities, seconds, recognizer.categories, occlusion)
    if "speed" in args.parts and cams:
        default = next((cam for cam in cams.values() if (cam.layer, cam.score) == (DEFAULT_LAYER, DEFAULT_SCORE)),
                       next(iter(cams.values())))
        report["speed"] = speed(model, default, runner, probabilities, clip64, args.runs, args.frames,
                                seconds.get("occlusion", []))
    report["map_seconds_mean"] = {name: float(np.mean(v)) for name, v in seconds.items()}
    machine["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    report["seconds_total"] = time.perf_counter() - started
    args.save.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(table(report))
    print(f"\n{report['seconds_total']:.0f} s in all; figures in {args.save}")


if __name__ == "__main__":
    main()
