"""How far a head's probabilities can be trusted, before and after choosing C by log-likelihood and temperature.

    .venv/bin/python benchmarks/head_calibration.py --features DIR

DIR is the ``features/`` folder of an ``i3d train`` run on ../shared/fewshot (``i3d train
../shared/fewshot/labels.tsv --root ../shared/fewshot/clips --path-column file --group-column group
--split-column split --out HEAD`` makes ``HEAD/features``; default settings, RGB). On the same
features it fits the head two ways: the previous rule (C by cross-validated video accuracy, the
log-likelihood only breaking ties, no temperature) and today's :func:`i3d.tasks.training.linear.fit_stream`
(C by cross-validated log-likelihood, then the temperature fitted on that C's held-out videos), and
prints, on the 24 test videos and on the training videos' cross-validation: accuracy, mean top-1
probability when right, the share of right answers under 0.5 and the top-1 ECE (15 bins).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
FEWSHOT = ROOT.parent / "shared" / "fewshot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="the features/ folder of an i3d train run")
    args = parser.parse_args()

    from i3d.heads import StreamHead
    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.tasks.batch.records import read_record
    from i3d.tasks.training.calibration import confidence, softmax
    from i3d.tasks.training.features import Sample
    from i3d.tasks.training.linear import _fit, fit_stream
    from i3d.tasks.training.options import TrainOptions
    from i3d.tasks.training.splits import split_by_column

    listing = ListOptions(root=FEWSHOT / "clips", group_column="group", split_column="split")
    train_set, test_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", listing))

    def samples(items) -> list[Sample]:
        out = []
        for item in items:
            relative = read_record(args.features, item.key)["features"]["rgb"]
            out.append(Sample(item, {"rgb": np.load(args.features / relative).reshape(-1, 1024)}))
        return out

    train, test = samples(train_set.items), samples(test_set.items)
    classes = sorted({s.item.label for s in train})
    labels = np.array([classes.index(s.item.label) for s in train])
    truth = np.array([classes.index(s.item.label) for s in test])
    options = TrainOptions()
    print(f"CPU: {cpu_name()}; {len(train)} training videos, {len(test)} test videos, {len(classes)} classes")

    new, record = fit_stream(train, "rgb", labels, options)
    cv = {float(c): (row["accuracy"], row["log_likelihood"]) for c, row in record["cv"].items()}
    old_c = max(cv, key=lambda c: cv[c])  # the previous rule: accuracy, the log-likelihood on a tie
    x = np.concatenate([s.features["rgb"] for s in train]).astype(np.float64)
    owner = np.repeat(np.arange(len(train)), [len(s.features["rgb"]) for s in train])
    standard = ((x - new.mean) / new.scale).astype(np.float32)
    weight, bias = _fit(standard, labels[owner], old_c, options.class_weight, len(classes), options.seed)
    old = StreamHead(weight, bias, new.mean, new.scale)

    def measured(head: StreamHead) -> dict:
        logits = np.stack([head.logits(s.features["rgb"]).mean(axis=0) for s in test])
        return confidence(softmax(logits), truth)

    print("cross-validated (C: accuracy, log-likelihood): "
          + "; ".join(f"{c:g}: {a:.4f}, {ll:.4f}" for c, (a, ll) in sorted(cv.items())))
    before_cv = record["cv_calibration"]["before_temperature"]
    after_cv = record["cv_calibration"]["after_temperature"]
    print(f"training videos, cross-validated at C {record['C']:g}: ECE {before_cv['ece']:.3f} before the "
          f"temperature, {after_cv['ece']:.3f} after (T {record['temperature']:.3f})")
    print("| head | C | T | test top-1 | mean top-1 p when right | right with p < 0.5 | ECE (15 bins) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, head, c, t in (("before: C by accuracy", old, old_c, 1.0),
                             ("after: C by log-likelihood, temperature", new, record["C"], record["temperature"])):
        m = measured(head)
        print(f"| {name} | {c:g} | {t:.3f} | {m['accuracy']:.1%} ({round(m['accuracy'] * len(test))}/{len(test)}) "
              f"| {m['mean_top1_probability_when_right']:.3f} | {m['right_under_0.5']:.1%} | {m['ece']:.3f} |")


if __name__ == "__main__":
    main()
