"""i3d segments on long videos made of ../shared/devset's labelled clips joined end to end: recall, mAP, speed.

    .venv/bin/python benchmarks/segments_benchmark.py [--videos 4] [--out DIR] [--runs fp32:16 int8:16 int8:8:dense]

The 33 clips with a Kinetics-400 class are shuffled (seed 0) into ``--videos`` long
videos, no class twice in one, each clip scaled to 320x240 at 25 fps. Each clip is also
classified alone (``i3d classify``'s defaults): the goal counts the true segments whose
clip alone is classified right, and the share of them found with the right label at
tIoU >= 0.5 (the recall). For each run (precision:stride, window 64; precision:stride:dense for
``--dense``) it prints the seconds
(decoding and network, the model loaded beforehand), the real-time factor (video seconds
per second of work) and the mAP at tIoU 0.3-0.7; then, on the first run's kept logits,
the recall and mAP for other thresholds and smoothing (cut again in seconds: how the
defaults were chosen); with ``--sweep-all``, for every run. Prints the CPU first.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"


def labelled_clips() -> list[tuple[str, Path]]:
    rows = [line.split("\t") for line in (DEVSET / "labels.tsv").read_text().splitlines()[1:]]
    return [(row[1], DEVSET / "clips" / row[0]) for row in rows if row[1].strip()]


def groups(clips: list[tuple[str, Path]], count: int) -> list[list[tuple[str, Path]]]:
    """``count`` lists with no class twice in one (seeded shuffle, then dealt round-robin)."""
    order = clips[:]
    random.Random(0).shuffle(order)
    order.sort(key=lambda c: c[0])  # dealing by class keeps a class's clips in different videos
    videos: list[list[tuple[str, Path]]] = [[] for _ in range(count)]
    for n, clip in enumerate(order):
        videos[n % count].append(clip)
    for video in videos:
        random.Random(len(video)).shuffle(video)
    return videos


def recall(segments: dict, truth: list, right: set) -> tuple[int, int]:
    """(found, wanted): true segments of clips classified right alone, found with their label at tIoU >= 0.5."""
    from i3d.tasks.segments.evaluation import tiou

    wanted = [t for t in truth if (t.video, t.label, t.start) in right]
    found = 0
    for t in wanted:
        mine = [s for s in segments.get(t.video, []) if s.label == t.label]
        if mine and tiou(t.start, t.end, np.array([s.start for s in mine]), np.array([s.end for s in mine])).max() >= 0.5:
            found += 1
    return found, len(wanted)


def _spans(group: list[tuple[str, Path]]) -> list[tuple[float, float]]:
    """Where each clip of an already joined video lies (its 25 fps frame counts, as join_videos counts them)."""
    from i3d.inputs.video import iter_video

    spans, at = [], 0
    for _, clip in group:
        count = sum(1 for _ in iter_video(clip, prepare=lambda f: f[:2, :2]))
        spans.append((at / 25.0, (at + count) / 25.0))
        at += count
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/i3d-segments-benchmark"))
    parser.add_argument("--runs", nargs="*", default=["fp32:16", "int8:16", "int8:8", "fp32:8:dense", "int8:8:dense"])
    parser.add_argument("--sweep-all", action="store_true", help="the threshold sweep for every run")
    args = parser.parse_args()

    from i3d.preprocess.windows import VideoOptions
    from i3d.report.joined import join_videos
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.batch.run import BatchOptions
    from i3d.tasks.segments.evaluation import Span, evaluate
    from i3d.tasks.recognizer import Recognizer
    from i3d.tasks.segments.run import cut_segments, run_segments
    from i3d.tasks.segments.cut import SegmentOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.weights.loading import LoadOptions

    print(f"CPU: {cpu_name()}", flush=True)
    videos_dir = args.out / "videos"
    truth, right, duration = [], set(), 0.0
    fp32 = Recognizer.load("rgb", load=LoadOptions(download=False))
    clip = np.random.default_rng(0).uniform(-1, 1, (1, 79, 224, 224, 3)).astype(np.float32)
    fp32.runners["rgb"].logits_batch(clip)
    marks = []
    for _ in range(3):
        mark = time.perf_counter()
        fp32.runners["rgb"].logits_batch(clip)
        marks.append(time.perf_counter() - mark)
    print(f"this machine now: RGB fp32 79 frames, batch 1: {np.median(marks):.2f} s (0.61 s on a quiet 2-core Zen 5)",
          flush=True)
    alone = {}
    for n, group in enumerate(groups(labelled_clips(), args.videos)):
        name = f"joined_{n}"
        path = videos_dir / f"{name}.mp4"
        videos_dir.mkdir(parents=True, exist_ok=True)
        spans = join_videos([clip for _, clip in group], path) if not path.exists() else _spans(group)
        duration += spans[-1][1]
        for (label, clip), (start, end) in zip(group, spans):
            truth.append(Span(name, label, start, end))
            if clip not in alone:
                alone[clip] = fp32.classify(clip).label
            if alone[clip] == label:
                right.add((name, label, start))
    (args.out / "gt.json").write_text(json.dumps({"database": {
        v: {"annotations": [{"label": t.label, "segment": [t.start, t.end]} for t in truth if t.video == v]}
        for v in sorted({t.video for t in truth})}}, indent=1))
    print(f"{args.videos} joined videos, {duration:.1f} s in all, {len(truth)} clips; {len(right)} classified "
          "right alone", flush=True)
    dataset = load_dataset(videos_dir)
    kept = []
    for run in args.runs:
        precision, stride, *mode = run.split(":")
        dense = mode == ["dense"]
        recognizer = fp32 if precision == "fp32" else Recognizer.load(
            "rgb", load=LoadOptions(download=False), engine=EngineOptions(precision=precision))
        out = args.out / f"run_{precision}_{stride}{'_dense' if dense else ''}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        mark = time.perf_counter()
        report = run_segments(dataset, out, recognizer, video=VideoOptions(window=64, stride=int(stride), dense=dense),
                              options=BatchOptions(workers=1), ground_truth=args.out / "gt.json", charts=False)
        seconds = time.perf_counter() - mark
        found, wanted = recall(report.segments, truth, right)
        print(f"{precision} stride {stride}{' dense' if dense else ''}: {seconds:.1f} s, {duration / seconds:.2f}x real time; recall "
              f"{found}/{wanted} = {found / max(wanted, 1):.1%}; mAP {json.dumps(report.evaluation.map)}", flush=True)
        kept.append((run, out, recognizer))
    for run, out, recognizer in kept if args.sweep_all else kept[:1]:
        print(f"{run}, cut again:")
        for threshold in (0.1, 0.2, 0.3, 0.4, 0.5):
            for smooth in (0.0, 1.0, 2.0):
                options = SegmentOptions(threshold=threshold, smooth=smooth)
                segments, _ = cut_segments(out, dataset, recognizer.categories, options, charts=False)
                predicted = [Span(v, s.label, s.start, s.end, s.score) for v, rows in segments.items() for s in rows]
                found, wanted = recall(segments, truth, right)
                result = evaluate(truth, predicted)
                print(f"  threshold {threshold} smooth {smooth:g}: recall {found / max(wanted, 1):.1%}, "
                      f"mAP@0.5 {result.map['0.5']:.3f}, mean {result.map['mean']:.3f}, {len(predicted)} segments")


if __name__ == "__main__":
    main()
