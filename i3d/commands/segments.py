"""``i3d segments``: where each action starts and ends in a video or every video of a dataset.

    i3d segments long.mp4 --out DIR                      # DIR/segments.json, subtitles, timeline
    i3d segments videos/ --out DIR --ground-truth gt.json  # ... and mAP at tIoU 0.3-0.7

SOURCE is a video, or a dataset as ``i3d batch`` takes it (resumable the same way).
See :mod:`i3d.tasks.segments.run` for what DIR holds and :mod:`i3d.tasks.segments.cut` for how segments are cut.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from i3d.commands.batch import build_parser as batch_parser
from i3d.commands.batch import prepare_run
from i3d.commands.shell import FAILED_EXIT, UsageError, run_command


def build_parser(prog: str) -> argparse.ArgumentParser:
    from i3d.preprocess.windows import SHORT_STRIDE, SHORT_WINDOW
    from i3d.tasks.segments.cut import SegmentOptions

    parser = batch_parser(prog, features=False, window=SHORT_WINDOW, stride=SHORT_STRIDE,
                          description="find where each action starts and ends in a video, or in every video of "
                                      "a dataset, into --out (resumable); with --ground-truth, score them (mAP)")
    defaults = SegmentOptions()
    cut = parser.add_argument_group("segments")
    cut.add_argument("--dense", action="store_true",
                     help="run the network once over 256-frame chunks and read every window off its steps "
                          "(about half the work of --stride 16; --window and --stride in multiples of 8)")
    cut.add_argument("--threshold", type=float, default=defaults.threshold, metavar="P",
                     help=f"a segment needs a moment whose smoothed class probability reaches P "
                          f"(default {defaults.threshold})")
    cut.add_argument("--release", type=float, metavar="P",
                     help="... and lasts while it stays at least P (default: half the threshold)")
    cut.add_argument("--min-duration", type=float, default=defaults.min_duration, metavar="S",
                     help=f"drop segments shorter than S seconds (default {defaults.min_duration:g})")
    cut.add_argument("--merge-gap", type=float, default=defaults.merge_gap, metavar="S",
                     help=f"join a class's segments less than S seconds apart (default {defaults.merge_gap:g})")
    cut.add_argument("--smooth", type=float, default=defaults.smooth, metavar="S",
                     help=f"moving average of the frame scores, S seconds wide (default {defaults.smooth:g}; 0: none)")
    cut.add_argument("--classes", metavar="A,B",
                     help="only these classes get segments (comma-separated class names)")
    cut.add_argument("--ground-truth", type=Path, metavar="GT",
                     help="ActivityNet ground-truth JSON, or THUMOS-14 annotation files (a folder or one "
                          "<Class>_test.txt): AP per class and mAP, printed and written to DIR/evaluation.json")
    cut.add_argument("--no-charts", action="store_true", help="skip the timeline PNGs")
    cut.add_argument("--annotate", type=Path, metavar="OUT.mp4",
                     help="a single video: write it with the segment under way drawn on each moment "
                          "(.mp4, .webm or .gif)")
    cut.add_argument("--heat", action="store_true",
                     help="with --annotate: lay the Grad-CAM heat (Mixed_5c, float32) of the segment's class "
                          "under its label: where the network found the evidence")
    return parser


def _classes(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UsageError("--classes names no class; give comma-separated class names")
    return names


def format_report(report) -> str:
    from prettytable import PrettyTable

    lines = []
    for video, segments in report.segments.items():
        table = PrettyTable(["start", "end", "label", "score"])
        table.align["label"] = "l"
        for s in segments:
            table.add_row([f"{s.start:.2f}", f"{s.end:.2f}", s.label, f"{s.score:.1%}"])
        lines.append(f"{video}: {len(segments)} segment(s)" + ("\n" + table.get_string() if segments else ""))
    evaluation = report.evaluation
    if evaluation is not None:
        table = PrettyTable(["tIoU", *evaluation.map])
        table.add_row(["mAP", *("-" if v is None else f"{v:.1%}" for v in evaluation.map.values())])
        lines.append(f"evaluation over {evaluation.videos} video(s), {evaluation.ground_truth_segments} true "
                     f"segment(s)\n{table.get_string()}")
        lines.extend(f"left out: {line}" for line in evaluation.left_out)
    failed = report.batch.summary["failed"]
    if failed:
        lines.append(f"{failed} video(s) failed; see {report.files['segments'].rsplit('/', 1)[0]}/summary.json")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "i3d segments") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)

    def work() -> int:
        import json

        from i3d.inputs.video import VIDEO_EXTENSIONS
        from i3d.tasks.segments.run import run_segments, single_video
        from i3d.tasks.segments.cut import SegmentOptions

        dataset = None
        if args.source.is_file() and args.source.suffix.lower() in VIDEO_EXTENSIONS:
            dataset = single_video(args.source)
        if args.heat and args.annotate is None:
            raise UsageError("--heat draws under --annotate's labels; give --annotate OUT.mp4 too")
        if args.annotate is not None:
            from i3d.report.video_writer import check_video_path

            if dataset is None:
                raise UsageError("--annotate draws on one video; give a video as SOURCE, not a dataset")
            check_video_path(args.annotate, "annotate")
        segment = SegmentOptions(threshold=args.threshold, release=args.release, min_duration=args.min_duration,
                                 merge_gap=args.merge_gap, smooth=args.smooth, classes=_classes(args.classes))
        segment.check()
        from i3d.files import refuse_output_over_input

        refuse_output_over_input({"out": args.out, "annotate": args.annotate}, [args.ground_truth, args.source])
        if args.ground_truth is not None:
            from i3d.tasks.segments.evaluation import read_truth

            read_truth(args.ground_truth)  # a bad ground truth is refused before any weights load
        dataset, video, options, label_map, recognizer = prepare_run(args, False, dataset)
        if args.dense:
            from dataclasses import replace

            video = replace(video, dense=True)
        report = run_segments(dataset, args.out, recognizer, video=video, options=options, segment=segment,
                              label_map=label_map, ground_truth=args.ground_truth, charts=not args.no_charts)
        if args.annotate is not None and report.segments:
            from i3d.report.annotate import annotate_segments

            (only, segments), = report.segments.items()
            heat = None
            if args.heat:
                from i3d.tasks.explain.heat_track import segments_heat

                heat = segments_heat(args.source, segments, recognizer.weight_sets, recognizer.store, video=video,
                                     head=recognizer.head)
            annotate_segments(segments, args.source, args.annotate, *report.spans[only], heat=heat)
            report.files["annotated"] = str(args.annotate)
        if args.format == "json":
            data = {"segments": {v: [s.as_json() for s in rows] for v, rows in report.segments.items()},
                    "evaluation": report.evaluation.as_json() if report.evaluation else None,
                    "files": report.files, "summary": report.batch.summary}
            print(json.dumps(data, indent=2))
        else:
            print(format_report(report))
        summary = report.batch.summary
        return FAILED_EXIT if summary["failed"] or summary["missing"] else 0

    return run_command(work, args.debug)
