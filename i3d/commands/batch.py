"""``i3d batch`` / ``i3d features``: run I3D over a dataset into a folder, resumably.

    i3d batch SOURCE --out DIR              # classify every video; accuracy when labelled
    i3d features SOURCE --out DIR           # the same, plus per-window 1024-d features per stream

SOURCE is a folder of videos, a list file (.csv/.tsv/.txt/.jsonl), a UCF101/HMDB51
root with --split, or a Kinetics CSV. See :mod:`i3d.tasks.batch.folder` for the folder's layout.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from i3d.processes import available_cores
from i3d.commands.flags import (
    TYPES, add_fusion_argument, add_engine_arguments, add_ray_arguments, ray_options, add_preprocessing_arguments, add_pretrain_argument,
    check_pretrain_type, engine_options, video_options,
)
from i3d.commands.shell import FAILED_EXIT, Parser, forbid_network, run_command

PRESETS = {"video-features": (64, 64)}
"""--preset NAME: (window, stride) conventions other feature extractors use."""


def build_parser(prog: str, features: bool, window: int = 250, stride: int | None = None,
                 description: str | None = None) -> argparse.ArgumentParser:
    what = "extract per-window I3D features (and predictions)" if features else "classify every video"
    parser = Parser(prog=prog, description=description or f"{what} of a dataset into --out, resumably.",
                    epilog="Exit codes: 0 every video done, 2 usage, 3 bad list, 4 weights, "
                           "5 some videos failed or are missing (each recorded), 130 interrupted.")
    parser.add_argument("source", type=Path, help="a folder of videos, a list file (.csv .tsv .txt .jsonl), "
                                                  "a UCF101/HMDB51 root (with --split) or a Kinetics CSV")
    parser.add_argument("--out", type=Path, required=True, help="output folder (reused: finished videos are skipped)")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb", help="stream(s) to run (default: rgb)")
    add_pretrain_argument(parser)
    parser.add_argument("--top-k", type=int, default=5, metavar="N", help="classes kept per video (default: 5)")
    add_fusion_argument(parser)
    parser.add_argument("--head", type=Path, metavar="HEAD",
                        help="a head made by `i3d train`: classify (and score labels) over its own classes")
    add_engine_arguments(parser)
    listing = parser.add_argument_group("the list")
    listing.add_argument("--labels-from-folders", action="store_true",
                         help="folder SOURCE: one sub-folder per class, named by its label")
    listing.add_argument("--split", type=Path, metavar="FILE",
                         help="UCF101 testlistNN.txt / HMDB51 split file(s); SOURCE is the dataset root")
    listing.add_argument("--root", type=Path, metavar="DIR", help="where a list's relative paths live "
                                                                  "(default: the list's folder)")
    listing.add_argument("--path-column", metavar="NAME", help="list column holding paths (default: path)")
    listing.add_argument("--label-column", metavar="NAME", help="list column holding labels (default: label)")
    listing.add_argument("--label-map", type=Path, metavar="FILE.tsv",
                         help="dataset label <TAB> Kinetics class, for labels whose names differ")
    run = parser.add_argument_group("the run")
    run.add_argument("--shard", metavar="K/N", help="take shard K of N (processes sharing one list and --out)")
    run.add_argument("--overwrite", action="store_true", help="start over when --out holds other settings' results")
    run.add_argument("--retry-failed", action="store_true", help="run videos recorded as failed again")
    run.add_argument("--workers", type=int, default=available_cores(), metavar="N",
                     help=f"processes decoding and preprocessing ahead of the network (default: {available_cores()}, "
                          "the cores; 0: inline)")
    add_ray_arguments(parser)
    run.add_argument("--format", choices=("table", "json"), default="table", help="how to print the summary")
    run.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    if features:
        run.add_argument("--preset", choices=tuple(PRESETS),
                         help="video-features: windows of 64 frames every 64 (overrides --window/--stride)")
    add_preprocessing_arguments(parser, window=window, stride=stride)
    return parser


def format_summary(report) -> str:
    """The summary as two prettytables: counts and accuracy, then the most confused pairs."""
    from prettytable import PrettyTable

    summary = report.summary
    table = PrettyTable(["", "value"])
    table.align[""] = "l"
    table.align["value"] = "r"

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f}%"

    rows = [("videos listed", summary["videos"]), ("evaluated", summary["evaluated"]), ("ok", summary["ok"]),
            ("failed", summary["failed"]), ("missing on disk", summary["missing"]),
            ("not run yet (other shards)", summary["not_run"]), ("labelled (scored)", summary["labelled"]),
            ("top-1", percent(summary["top1"])), ("top-5", percent(summary["top5"])),
            ("mean class accuracy", percent(summary["mean_class_accuracy"])),
            ("precision", _precision_text(summary["settings"].get("precision"))),
            ("this run: processed / skipped", f"{report.processed} / {report.skipped}"),
            ("this run: seconds", f"{report.seconds:.1f}")]
    for name, value in rows:
        table.add_row([name, value])
    text = table.get_string()
    if summary["most_confused"]:
        pairs = PrettyTable(["label", "predicted", "videos"])
        pairs.align["label"] = pairs.align["predicted"] = "l"
        for row in summary["most_confused"]:
            pairs.add_row([row["label"], row["predicted"], row["videos"]])
        text += "\nmost confused\n" + pairs.get_string()
    if summary["unmapped_labels"]:
        text += (f"\n{len(summary['unmapped_labels'])} label(s) match no class (not scored; map them with "
                 f"--label-map): {', '.join(summary['unmapped_labels'][:10])}")
    return text


def prepare_run(args: argparse.Namespace, features: bool, dataset=None):
    """What a dataset command's flags ask for: (dataset, video options, batch options, label map, recognizer).

    Everything is checked before any weights load; ``dataset`` (one already read) replaces reading SOURCE.
    """
    import dataclasses

    from i3d.files import refuse_output_over_input
    from i3d.inputs.dataset_items import ListOptions, parse_shard
    from i3d.inputs.datasets import load_dataset
    from i3d.inputs.labels import read_label_map
    from i3d.streams import streams_named
    from i3d.tasks.batch.run import BatchOptions
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions

    check_pretrain_type(args.pretrain, args.type)
    if args.offline:
        forbid_network()
    video = video_options(args)
    if getattr(args, "preset", None):
        window, stride = PRESETS[args.preset]
        video = dataclasses.replace(video, window=window, stride=stride)
    video = dataclasses.replace(video, progress=False)
    options = BatchOptions(top_k=args.top_k, fusion=args.fusion, features=features, overwrite=args.overwrite,
                           retry_failed=args.retry_failed,
                           shard=parse_shard(args.shard) if args.shard is not None else None,
                           workers=args.workers, progress=True, executor=args.engine, ray=ray_options(args))
    if dataset is None:
        dataset = load_dataset(args.source, ListOptions(labels_from_folders=args.labels_from_folders,
                                                        root=args.root, path_column=args.path_column,
                                                        label_column=args.label_column, split_file=args.split))
    options.check()  # before any weights load; run_batch checks again
    refuse_output_over_input({"out": args.out}, [args.head, args.source, args.label_map, args.split])
    label_map = read_label_map(args.label_map) if args.label_map else None
    head = None
    if args.head is not None:
        from i3d.heads import Head

        head = Head.load(args.head)
        options = dataclasses.replace(options, top_k=min(options.top_k, len(head.classes)))
    video.check(streams_named(TYPES[args.type]))  # before any weights load; run_batch checks again
    recognizer = Recognizer.load(TYPES[args.type], args.pretrain,
                                 load=LoadOptions(download=not args.offline, progress=sys.stderr.isatty()),
                                 engine=engine_options(args), head=head)
    return dataset, video, options, label_map, recognizer


def main(argv: list[str] | None = None, prog: str = "i3d batch", features: bool = False) -> int:
    parser = build_parser(prog, features)
    args = parser.parse_args(argv)

    def work() -> int:
        import json

        from i3d.tasks.batch.run import run_batch

        out = sys.stdout
        # stdout carries the summary alone (JSON a program reads): whatever a library prints there while the
        # run goes (Ray's messages about its nodes) goes to stderr instead
        with contextlib.redirect_stdout(sys.stderr):
            dataset, video, options, label_map, recognizer = prepare_run(args, features)
            report = run_batch(dataset, args.out, recognizer, video=video, options=options, label_map=label_map)
        print(json.dumps(report.summary, indent=2) if args.format == "json" else format_summary(report), file=out)
        summary = report.summary
        return FAILED_EXIT if summary["failed"] or summary["missing"] else 0

    return run_command(work, args.debug)


def _precision_text(record: dict | None) -> str:
    if not record:
        return "fp32"
    used = ", ".join(sorted(set(record["used"].values())))
    return used if used == record["asked"] else f"{used} (asked {record['asked']})"
