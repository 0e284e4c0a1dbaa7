"""``i3d train SOURCE --out HEAD``: a head for your own classes (see :mod:`i3d.tasks.training.train`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d.commands.flags import (
    TYPES, add_engine_arguments, add_fusion_argument, add_preprocessing_arguments, add_pretrain_argument,
    add_ray_arguments, check_pretrain_type, engine_options, ray_options, video_options,
)
from i3d.commands.shell import Parser, UsageError, forbid_network, run_command


def build_parser(prog: str) -> argparse.ArgumentParser:
    from i3d.tasks.training.options import BLOCKS, CLASS_WEIGHTS, FineTuneOptions

    parser = Parser(prog=prog, description="fit a head for your own classes on frozen I3D features of your "
                                           "labelled videos; use it with --head on classify, batch and features.",
                    epilog="Exit codes: 0 done, 2 usage, 3 bad training data, 4 weights, 130 interrupted.")
    parser.add_argument("source", type=Path, help="labelled videos: a folder per class (--labels-from-folders), "
                                                  "a list file (.csv .tsv .txt .jsonl) or a UCF101/HMDB51 root "
                                                  "(with --split)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the head's folder: head.npz, head.json, train_report.json, charts and the features "
                             "(kept, so training again costs seconds)")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb", help="stream(s) to train on (default: rgb)")
    add_pretrain_argument(parser)
    add_fusion_argument(parser, help="how the streams' logits are fused (--type both)")
    listing = parser.add_argument_group("the list")
    listing.add_argument("--labels-from-folders", action="store_true",
                         help="folder SOURCE: one sub-folder per class, named by its label")
    listing.add_argument("--split", type=Path, metavar="FILE", help="UCF101/HMDB51 split file; SOURCE is the root")
    listing.add_argument("--root", type=Path, metavar="DIR", help="where a list's relative paths live")
    listing.add_argument("--path-column", metavar="NAME", help="list column holding paths (default: path)")
    listing.add_argument("--label-column", metavar="NAME", help="list column holding labels (default: label)")
    listing.add_argument("--group-column", metavar="NAME",
                         help="list column naming each video's group (subject, session): a group is never "
                              "split between training and validation folds")
    listing.add_argument("--split-column", metavar="NAME",
                         help="list column saying train or test/val for each video: test/val videos are scored, "
                              "never trained on")
    parser.add_argument("--features", type=Path, metavar="DIR",
                        help="an i3d features folder of these videos (same settings) to reuse and complete, "
                             "instead of keeping the features in --out")
    head = parser.add_argument_group("the head")
    head.add_argument("--val", type=Path, metavar="SOURCE", help="labelled videos to score the head on")
    head.add_argument("--val-fraction", type=float, metavar="F", help="hold out this share of the groups to score on")
    head.add_argument("--class-weight", choices=CLASS_WEIGHTS, default="balanced",
                      help="balanced (default): every class weighs alike whatever its video count; none")
    head.add_argument("--fine-tune", choices=BLOCKS, metavar="BLOCK",
                      help="also train this block below the logits (mixed_5c) on cached Mixed_5b activations, "
                           "starting from the linear head, with early stopping on the validation side (a second "
                           "pass of the trunk over the videos; not with int8)")
    head.add_argument("--epochs", type=int, metavar="N",
                      help=f"--fine-tune: at most N epochs (default: {FineTuneOptions.epochs})")
    head.add_argument("--workers", type=int, default=0, metavar="N",
                      help="processes decoding videos ahead of the network (default: 0, inline)")
    add_preprocessing_arguments(parser)
    add_engine_arguments(parser)
    add_ray_arguments(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the report")
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def format_report(report: dict, out: Path) -> str:
    from prettytable import PrettyTable

    table = PrettyTable(["class", "train videos", "validation top-1"])
    validation = report.get("validation", {}).get("per_class", {})
    for label in report["classes"]:
        row = validation.get(label)
        table.add_row([label, report["training"]["videos"].get(label, 0),
                       "-" if row is None else f"{row['top1']:.1%} of {row['videos']}"])
    lines = [table.get_string()]
    for stream, search in report["training"]["search"].items():
        best = search["cv"][f"{search['C']:g}"]
        calibrated = search["cv_calibration"]["after_temperature"]
        lines.append(f"{stream}: C {search['C']:g} by {search['folds']}-fold grouped cross-validation "
                     f"(video accuracy {best['accuracy']:.1%}, log-likelihood {best['log_likelihood']:.3f}), "
                     f"temperature {search['temperature']:.3g} (cross-validated ECE {calibrated['ece']:.3f})")
    for stream, tuning in report["training"].get("fine_tune", {}).get("streams", {}).items():
        lines.append(f"{stream}: {tuning['block']} fine-tuned, best epoch {tuning['best_epoch']} of "
                     f"{tuning['epochs_run']} by log-likelihood on {tuning['stopped_on']}"
                     + (" (the linear head's weights: no epoch beat it)" if tuning["best_epoch"] == 0 else ""))
    linear = report["training"].get("fine_tune", {}).get("linear_validation")
    if linear:
        lines.append(f"Validation of the linear head alone: top-1 {linear['top1']:.1%}, mean class accuracy "
                     f"{linear['mean_class_accuracy']:.1%}")
    if "validation" in report:
        v = report["validation"]
        lines.append(f"Validation: top-1 {v['top1']:.1%}, top-5 {v['top5']:.1%}, mean class accuracy "
                     f"{v['mean_class_accuracy']:.1%} ({v['videos']} videos); ECE {v['calibration']['ece']:.3f}, "
                     f"right answers under probability 0.5: {v['calibration']['right_under_0.5'] or 0:.0%}")
    lines.append(f"Head: {out} (use it with --head {out})")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "i3d train") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)

    def work() -> int:
        import dataclasses
        import json

        from i3d.files import refuse_output_over_input
        from i3d.inputs.dataset_items import ListOptions
        from i3d.inputs.datasets import load_dataset
        from i3d.streams import streams_named
        from i3d.tasks.batch.run import BatchOptions
        from i3d.tasks.training.options import FineTuneOptions
        from i3d.tasks.recognizer import Recognizer
        from i3d.tasks.training.options import TrainOptions
        from i3d.tasks.training.splits import split_by_column
        from i3d.tasks.training.train import train
        from i3d.weights.loading import LoadOptions

        check_pretrain_type(args.pretrain, args.type)
        ray = ray_options(args)
        if sum(x is not None for x in (args.val, args.val_fraction, args.split_column)) > 1:
            raise UsageError("--val, --val-fraction and --split-column each choose the validation side; give one")
        if args.offline:
            forbid_network()
        inputs = [args.source] + ([args.val] if args.val else [])
        refuse_output_over_input({"out": args.out}, inputs + ([args.features] if args.features else []))
        if args.epochs is not None and args.fine_tune is None:
            raise UsageError("--epochs counts --fine-tune's epochs; give --fine-tune mixed_5c too")
        fine_tune = None if args.fine_tune is None else FineTuneOptions(
            block=args.fine_tune, epochs=FineTuneOptions.epochs if args.epochs is None else args.epochs)
        options = TrainOptions(class_weight=args.class_weight, val_fraction=args.val_fraction, fusion=args.fusion,
                               fine_tune=fine_tune)
        options.check()
        listing = ListOptions(labels_from_folders=args.labels_from_folders, root=args.root,
                              path_column=args.path_column, label_column=args.label_column, split_file=args.split,
                              group_column=args.group_column, split_column=args.split_column)
        dataset = load_dataset(args.source, listing)
        val = None
        if args.split_column:
            dataset, val = split_by_column(dataset)
        elif args.val is not None:
            val = load_dataset(args.val, dataclasses.replace(listing, root=None, split_file=None))
        video = dataclasses.replace(video_options(args), progress=False)
        video.check(streams_named(TYPES[args.type]))
        recognizer = Recognizer.load(TYPES[args.type], args.pretrain,
                                     load=LoadOptions(download=not args.offline, progress=sys.stderr.isatty()),
                                     engine=engine_options(args))
        batch = BatchOptions(workers=args.workers, progress=True, overwrite=True, executor=args.engine,
                             ray=ray)
        _, report = train(dataset, args.out, recognizer, video=video, options=options, batch=batch, val_set=val,
                          features_dir=args.features)
        if args.format == "json":
            brief = {key: value for key, value in report.items() if key != "videos"}
            for side in ("train", "validation"):
                if side in brief:
                    brief[side] = {k: v for k, v in brief[side].items() if k not in ("truth", "predicted")}
            print(json.dumps(brief, indent=2))
        else:
            print(format_report(report, args.out))
        return 0

    return run_command(work, args.debug)
