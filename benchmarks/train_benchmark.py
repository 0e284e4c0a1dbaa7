"""i3d train on ../shared/fewshot: accuracy of the default head against plain baselines, and its times.

    .venv/bin/python benchmarks/train_benchmark.py [--window N] [--max-frames N] [--out DIR]

Prints the CPU, the feature extraction time, the time to train again on the kept features
(the C search included), the validation accuracy of the default head, of scikit-learn's
plain logistic regression on one mean feature per video and of the nearest class mean, and
the training time on 300 videos' worth of features (the 50 training videos' features with
noise, six times over), per ``--precisions``, the head (trained on fp32 features) scored
on the validation videos' features computed in that precision, and with ``--fine-tune`` the
validation accuracy and times of ``--fine-tune mixed_5c`` against the linear head.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
FEWSHOT = ROOT.parent / "shared" / "fewshot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--out", type=Path, default=Path("/tmp/i3d-train-benchmark"))
    parser.add_argument("--precisions", nargs="*", default=["bf16", "int8"],
                        help="score the fp32-trained head on features computed in these precisions")
    parser.add_argument("--fine-tune", action="store_true",
                        help="also train with --fine-tune mixed_5c (reusing the features) and compare")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.preprocess.windows import VideoOptions
    from i3d.tasks.recognizer import Recognizer
    from i3d.tasks.training.features import Sample
    from i3d.tasks.training.linear import fit_stream
    from i3d.tasks.training.options import TrainOptions
    from i3d.tasks.training.splits import split_by_column
    from i3d.tasks.training.train import train
    from i3d.weights.loading import LoadOptions

    video = VideoOptions(window=args.window, max_frames=args.max_frames)
    listing = ListOptions(root=FEWSHOT / "clips", group_column="group", split_column="split")
    train_set, val_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", listing))
    recognizer = Recognizer.load("rgb", load=LoadOptions(download=False))
    print(f"CPU: {cpu_name()}; backend {recognizer.backend}; window {args.window}, max frames {args.max_frames}")

    mark = time.perf_counter()
    head, report = train(train_set, args.out, recognizer, video=video, val_set=val_set)
    first = time.perf_counter() - mark
    mark = time.perf_counter()
    head, report = train(train_set, args.out, recognizer, video=video, val_set=val_set)
    again = time.perf_counter() - mark
    print(f"first run (features of 74 videos + training): {first:.1f} s; again on kept features: {again:.1f} s")

    rows = {side: [v for v in report["videos"] if v["side"] == side] for side in ("train", "validation")}

    def per_video(side: str) -> tuple[np.ndarray, list[str]]:
        feats = [np.load(args.out / "features" / "features" / f"{v['key']}.rgb.npy").reshape(-1, 1024).mean(0)
                 for v in rows[side]]
        return np.stack(feats), [v["label"] for v in rows[side]]

    x, y = per_video("train")
    xv, yv = per_video("validation")
    plain = float(np.mean(LogisticRegression(max_iter=5000).fit(x, y).predict(xv) == np.array(yv)))
    classes = sorted(set(y))
    means = np.stack([x[np.array(y) == c].mean(0) for c in classes])
    nearest = [classes[i] for i in np.argmin(((xv[:, None] - means[None]) ** 2).sum(-1), axis=1)]
    nearest_acc = float(np.mean(np.array(nearest) == np.array(yv)))
    v = report["validation"]
    n = v["videos"]
    print(f"validation ({n} videos): default head top-1 {v['top1']:.1%} ({round(v['top1'] * n)}/{n}), mean class "
          f"accuracy {v['mean_class_accuracy']:.1%}; plain logistic regression on mean features {plain:.1%} "
          f"({round(plain * n)}/{n}); nearest class mean {nearest_acc:.1%} ({round(nearest_acc * n)}/{n})")
    print(f"chosen C {head.record['search']['rgb']['C']:g}; windows {head.record['windows']}")

    rng = np.random.default_rng(0)
    samples = []
    for copy in range(6):
        for row in rows["train"]:
            feats = np.load(args.out / "features" / "features" / f"{row['key']}.rgb.npy").reshape(-1, 1024)
            noisy = feats + rng.normal(0, 0.02 * feats.std(), feats.shape).astype(np.float32)
            item = replace(train_set.items[0], key=f"{copy}/{row['key']}", label=row["label"], group=f"{copy}")
            samples.append(Sample(item, {"rgb": noisy}))
    labels = np.array([classes.index(s.item.label) for s in samples])
    mark = time.perf_counter()
    fit_stream(samples, "rgb", labels, TrainOptions())
    print(f"training on {len(samples)} videos' features ({sum(len(s.features['rgb']) for s in samples)} windows), "
          f"C search included: {time.perf_counter() - mark:.1f} s")

    from i3d.runtime.base import EngineOptions
    from i3d.tasks.training.linear import scores

    fp32 = {v["key"]: int(np.argmax(v["logits"])) for v in rows["validation"]}
    for precision in args.precisions:
        other = Recognizer.load("rgb", load=LoadOptions(download=False), engine=EngineOptions(precision=precision))
        val_samples = [Sample(item, {"rgb": other.features(item.path, video=video).features["rgb"].reshape(-1, 1024)})
                       for item in val_set.items]
        got = scores(head, val_samples, "mean")
        changed = sum(int(p != fp32[s.item.key]) for p, s in zip(got["predicted"], val_samples))
        print(f"{precision} features ({other.precision['rgb']}), fp32 head: top-1 {got['top1']:.1%} "
              f"({round(got['top1'] * n)}/{n}) against fp32 {v['top1']:.1%}; {changed} of {n} answers changed")

    if args.fine_tune:
        from i3d.tasks.training.options import FineTuneOptions

        mark = time.perf_counter()
        tuned, tuned_report = train(train_set, args.out.with_name(args.out.name + "-fine-tuned"), recognizer,
                                    video=video, val_set=val_set, options=TrainOptions(fine_tune=FineTuneOptions()),
                                    features_dir=args.out / "features")
        spent = time.perf_counter() - mark
        t = tuned_report["validation"]
        record = tuned.record["fine_tune"]["streams"]["rgb"]
        print(f"fine-tuned mixed_5c: top-1 {t['top1']:.1%} ({round(t['top1'] * n)}/{n}), mean class accuracy "
              f"{t['mean_class_accuracy']:.1%} against the linear head's {v['top1']:.1%} / "
              f"{v['mean_class_accuracy']:.1%}; best epoch {record['best_epoch']} of {record['epochs_run']}; "
              f"{spent:.1f} s in all (Mixed_5b activations of 74 videos and the epochs)")
        print("  history: " + "; ".join(f"{h['epoch']}: val acc {h['val_accuracy']:.3f} loglik "
                                         f"{h['val_log_likelihood']:.3f}" for h in record["history"]))
        mark = time.perf_counter()
        train(train_set, args.out.with_name(args.out.name + "-fine-tuned"), recognizer, video=video,
              val_set=val_set, options=TrainOptions(fine_tune=FineTuneOptions()), features_dir=args.out / "features")
        print(f"fine-tuned again on kept activations: {time.perf_counter() - mark:.1f} s")


if __name__ == "__main__":
    main()
