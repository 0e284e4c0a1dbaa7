"""``evaluate.py`` / ``i3d classify``: classify clips with pretrained I3D streams.

The command only parses flags, calls :func:`i3d.classify` and prints; see
:mod:`i3d.commands.shell` for exit codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d.commands.flags import (
    TYPES, add_fusion_argument, add_engine_arguments, add_preprocessing_arguments, add_pretrain_argument,
    check_pretrain_type, engine_options, precision_line, refuse_unused_video_flags, video_options,
)
from i3d.commands.shell import Parser, UsageError, forbid_network, run_command, weight_store


def build_parser(prog: str = "evaluate.py") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Classify the action in a clip with DeepMind's I3D (Kinetics-400, or Kinetics-600 for RGB).",
        epilog="Exit codes: 0 success, 2 usage, 3 bad input, 4 weights unavailable or corrupt.")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb",
                        help="which stream(s) to run; 'both' fuses their logits (default: rgb)")
    add_pretrain_argument(parser)
    parser.add_argument("--rgb", type=Path, metavar="FILE.npy",
                        help="RGB clip (1,T,224,224,3) or (T,224,224,3) float32 in [-1,1] (default: the sample)")
    parser.add_argument("--flow", type=Path, metavar="FILE.npy",
                        help="flow clip (1,T,224,224,2) or (T,224,224,2) float32 in [-1,1] (default: the sample)")
    parser.add_argument("--video", type=Path, metavar="PATH",
                        help="a video file (mp4, avi, mkv, webm, mov, gif...): decoded, resampled and preprocessed")
    parser.add_argument("--frames", type=Path, metavar="DIR", help="a folder of numbered images taken at 25 fps")
    add_preprocessing_arguments(parser)
    parser.add_argument("--top-k", type=int, default=20, metavar="N",
                        help="classes to show (default: 20, or every class of a smaller --head)")
    parser.add_argument("--head", type=Path, metavar="HEAD",
                        help="a head made by `i3d train`: answer over its own classes instead of Kinetics'")
    add_fusion_argument(parser, help="mean averages the streams' logits; sum reproduces DeepMind's printed sample")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    pictures = parser.add_argument_group("pictures")
    pictures.add_argument("--annotate", type=Path, metavar="OUT",
                          help="write the input video with each moment's top 3 classes drawn on it, at its own "
                               "size and frame rate: .mp4 (H.264), .webm (VP9) or .gif; needs --video or --frames")
    pictures.add_argument("--heat", action="store_true",
                          help="with --annotate: lay the Grad-CAM heat (Mixed_5c, float32) of each window's top "
                               "class under its labels: where the network found the evidence")
    pictures.add_argument("--plot", type=Path, metavar="OUT.png",
                          help="write a bar chart of the top classes, with their probabilities over time under it "
                               "when the video has several windows (1000 px wide)")
    parser.add_argument("--checkpoint", type=Path, metavar="PREFIX",
                        help="DeepMind checkpoint (model.ckpt prefix or its folder), or a TF-Hub module folder, "
                             "for a single-stream run")
    add_engine_arguments(parser, mixed_precision=True)
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _source(parser: argparse.ArgumentParser, args: argparse.Namespace, streams: tuple[str, ...]):
    """(what to classify, how the JSON names it): a video or frames folder, or the .npy clips (or the sample)."""
    from i3d.inputs.samples import sample_path

    given = {"rgb": args.rgb, "flow": args.flow}
    for stream, path in given.items():
        if path is not None and stream not in streams:
            raise UsageError(f"--{stream} was given but --type {args.type} does not run the {stream} stream")
    video = args.video or args.frames
    if video is not None:
        if args.rgb or args.flow:
            raise UsageError("give either --video/--frames or --rgb/--flow, not both")
        if args.video and args.frames:
            raise UsageError("give either --video or --frames, not both")
        return video, {"video": str(video)}
    refuse_unused_video_flags(parser, args)
    paths = {}
    for stream in streams:
        path = given[stream] or sample_path(stream)
        if given[stream] is None and not path.is_file():
            from i3d.errors import InputError

            raise InputError(f"{path}: sample clip missing; run `python -m i3d samples` "
                             "(or `--from DIR` with the GIF previews) first")
        paths[stream] = str(path)
    return paths, {"inputs": paths}


def _check_pictures(args: argparse.Namespace, described: dict) -> None:
    """Refuse --annotate without a video and picture names no run could write, before any work is done."""
    from i3d.report.charts import check_chart_path
    from i3d.report.video_writer import check_video_path

    if args.heat and args.annotate is None:
        raise UsageError("--heat draws under --annotate's labels; give --annotate OUT too")
    if args.annotate is not None:
        if "video" not in described:
            raise UsageError("--annotate draws on the input video; give --video or --frames")
        check_video_path(args.annotate, "annotate")
    if args.plot is not None:
        check_chart_path(args.plot, "plot")
    from i3d.files import refuse_output_over_input

    inputs = [described["video"]] if "video" in described else list(described["inputs"].values())
    refuse_output_over_input({"annotate": args.annotate, "plot": args.plot},
                             inputs + ([args.head] if args.head else []))


def _write_pictures(args: argparse.Namespace, result, source, heat=None) -> None:
    """Write --annotate (over ``heat``, if given) and --plot; each says what it wrote on stderr (stdout keeps
    the table or JSON)."""
    from i3d.files import reason

    if args.annotate is not None:
        from i3d.report.annotate import annotate_video

        try:
            video = annotate_video(result, source, args.annotate, progress=sys.stderr.isatty(), heat=heat)
        except OSError as err:
            raise UsageError(f"--annotate {args.annotate}: cannot write ({reason(err)})") from None
        print(f"wrote {video.path}: {video.frames} frames, {video.width}x{video.height} at {video.fps:g} fps, "
              f"{video.codec}", file=sys.stderr)
    if args.plot is not None:
        from i3d.report.charts import plot_result, result_chart_size

        try:
            plot_result(result, args.plot)
        except OSError as err:
            raise UsageError(f"--plot {args.plot}: cannot write ({reason(err)})") from None
        width, height = result_chart_size(result)
        print(f"wrote {args.plot}: {width}x{height} PNG", file=sys.stderr)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Classify as the flags say; returns the text to print."""
    from i3d.report.tables import classify_dict, format_json, format_table
    from i3d.tasks.recognizer import classify
    from i3d.weights.loading import LoadOptions

    streams = TYPES[args.type]
    check_pretrain_type(args.pretrain, args.type)
    if args.checkpoint is not None and len(streams) != 1:
        raise UsageError("--checkpoint names one stream's weights; use it with --type rgb or optical_flow")
    source, described = _source(parser, args, streams)
    _check_pictures(args, described)
    if args.offline:
        forbid_network()
    load = LoadOptions(download=not args.offline, progress=sys.stderr.isatty(), checkpoint=args.checkpoint)
    head, top_k = None, args.top_k
    if args.head is not None:
        from i3d.heads import Head

        head = Head.load(args.head)
        if top_k == parser.get_default("top_k"):
            top_k = min(top_k, len(head.classes))
    result = classify(source, streams, args.pretrain, top_k=top_k, fusion=args.fusion,
                      video=video_options(args), load=load,
                      engine=engine_options(args), store=weight_store(), head=head)
    heat = None
    if args.heat:
        from i3d.tasks.explain.heat_track import result_heat
        from i3d.tasks.recognizer import choose_weight_sets

        heat = result_heat(source, result, choose_weight_sets(streams, args.pretrain), weight_store(),
                           video=video_options(args), head=head, load=load)
    _write_pictures(args, result, source, heat)
    if args.format == "table":
        line = precision_line(result.precision, args.precision)
        return (f"{line}\n" if line else "") + format_table(result, timeline="video" in described)
    return format_json(classify_dict(result, type_name=args.type, pretrain=args.pretrain, fusion=args.fusion,
                                     precision_asked=args.precision, described=described,
                                     head_path=str(args.head) if head else None))


def main(argv: list[str] | None = None, prog: str = "evaluate.py") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    return run_command(lambda: print(run(parser, args)), args.debug)
