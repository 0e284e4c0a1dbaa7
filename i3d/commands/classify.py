"""``evaluate.py`` / ``i3d classify``: classify clips with pretrained I3D streams.

The command only parses flags, calls :func:`i3d.classify` and prints; see
:mod:`i3d.commands.common` for exit codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    TYPES,
    Parser,
    UsageError,
    add_precision_arguments,
    add_preprocessing_arguments,
    engine_options,
    forbid_network,
    precision_line,
    refuse_unused_video_flags,
    run_command,
    video_options,
    weight_store,
)


def build_parser(prog: str = "evaluate.py") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Classify the action in a clip with DeepMind's I3D (Kinetics-400).",
        epilog="Exit codes: 0 success, 2 usage, 3 bad input, 4 weights unavailable or corrupt.")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb",
                        help="which stream(s) to run; 'both' fuses their logits (default: rgb)")
    parser.add_argument("--pretrain", choices=("kinetics", "bothsets"), default="kinetics",
                        help="kinetics: Kinetics-400 only; bothsets: ImageNet + Kinetics-400 (default: kinetics)")
    parser.add_argument("--rgb", type=Path, metavar="FILE.npy",
                        help="RGB clip (1,T,224,224,3) or (T,224,224,3) float32 in [-1,1] (default: the sample)")
    parser.add_argument("--flow", type=Path, metavar="FILE.npy",
                        help="flow clip (1,T,224,224,2) or (T,224,224,2) float32 in [-1,1] (default: the sample)")
    parser.add_argument("--video", type=Path, metavar="PATH",
                        help="a video file (mp4, avi, mkv, webm, mov, gif...): decoded, resampled and preprocessed")
    parser.add_argument("--frames", type=Path, metavar="DIR", help="a folder of numbered images taken at 25 fps")
    add_preprocessing_arguments(parser)
    parser.add_argument("--top-k", type=int, default=20, metavar="N", help="classes to show (default: 20)")
    parser.add_argument("--fusion", choices=("mean", "sum"), default="mean",
                        help="mean averages the streams' logits; sum reproduces DeepMind's printed sample")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    parser.add_argument("--checkpoint", type=Path, metavar="PREFIX",
                        help="DeepMind checkpoint (model.ckpt prefix or its folder) for a single-stream run")
    parser.add_argument("--backend", choices=("auto", "openvino", "tensorflow"), default="auto",
                        help="inference engine: auto picks OpenVINO on a CPU, TensorFlow on a GPU (default: auto)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="TensorFlow backend: float16 compute on a GPU (faster, changes logits slightly)")
    add_precision_arguments(parser)
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _source(parser: argparse.ArgumentParser, args: argparse.Namespace, streams: tuple[str, ...]):
    """(what to classify, how the JSON names it): a video or frames folder, or the .npy clips (or the sample)."""
    from ..inputs.samples import sample_path

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
            from ..errors import InputError

            raise InputError(f"{path}: sample clip missing; run `python -m i3d samples` "
                             "(or `--from DIR` with the GIF previews) first")
        paths[stream] = str(path)
    return paths, {"inputs": paths}


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Classify as the flags say; returns the text to print."""
    from ..report.tables import format_json, format_table, result_dict
    from ..tasks.recognizer import classify
    from ..weights.loading import LoadOptions

    streams = TYPES[args.type]
    if args.checkpoint is not None and len(streams) != 1:
        raise UsageError("--checkpoint names one stream's weights; use it with --type rgb or optical_flow")
    source, described = _source(parser, args, streams)
    if args.offline:
        forbid_network()
    load = LoadOptions(download=not args.offline, progress=sys.stderr.isatty(), checkpoint=args.checkpoint)
    result = classify(source, streams, args.pretrain, top_k=args.top_k, fusion=args.fusion,
                      video=video_options(args), load=load,
                      engine=engine_options(args), store=weight_store())
    if args.format == "table":
        line = precision_line(result.precision, args.precision)
        return (f"{line}\n" if line else "") + format_table(result, timeline="video" in described)
    meta = {"type": args.type, "pretrain": args.pretrain, "fusion": args.fusion, "backend": result.backend,
            "precision": {"asked": args.precision, "used": result.precision}, "weights": result.weights,
            **described}
    return format_json(result_dict(result, meta, timeline="video" in described))


def main(argv: list[str] | None = None, prog: str = "evaluate.py") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    return run_command(lambda: print(run(parser, args)), args.debug)
