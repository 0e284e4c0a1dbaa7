"""``i3d explain VIDEO --out DIR``: where in space and time the network saw the evidence for its answer.

    i3d explain clip.mp4 --out why/                        # Grad-CAM at Mixed_5c for each window's top class
    i3d explain clip.mp4 --out why/ --class "juggling balls" --layer Mixed_4f
    i3d explain clip.mp4 --out why/ --method occlusion --patch 8,56,56 --budget 300

The command parses, calls :func:`i3d.tasks.explain.explain` and
:func:`i3d.tasks.explain.write_explanation`, and prints a line per map; see :mod:`i3d.commands.shell`
for exit codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d.commands.flags import (
    TYPES, add_engine_arguments, add_fusion_argument, add_preprocessing_arguments, add_pretrain_argument,
    check_pretrain_type, engine_options, refuse_unused_video_flags, video_options,
)
from i3d.commands.shell import Parser, UsageError, forbid_network, run_command, weight_store
from i3d.tasks.explain.options import DEFAULT_LAYER, DEFAULT_SCORE, METHODS, SCORES


def _patch(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not three whole numbers T,H,W (frames, height, width)")
    return values


def build_parser(prog: str = "i3d explain") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Heatmaps of where, in each window, the network found the evidence "
                                           "for a class: a video, a contact sheet, the maps and a JSON summary.",
                    epilog="Exit codes: 0 success, 2 usage (an unknown --class or --layer, a --budget too small), "
                           "3 bad input, 4 weights unavailable or corrupt.")
    parser.add_argument("video", nargs="?", type=Path, help="a video file (or give --frames, --rgb/--flow)")
    parser.add_argument("--frames", type=Path, metavar="DIR", help="a folder of numbered images taken at 25 fps")
    parser.add_argument("--rgb", type=Path, metavar="FILE.npy", help="an RGB clip (1,T,224,224,3) in [-1,1]")
    parser.add_argument("--flow", type=Path, metavar="FILE.npy", help="a flow clip (1,T,224,224,2) in [-1,1]")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for explain.mp4, sheet.png, maps.npz and explain.json (made if missing)")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb",
                        help="stream(s): both gives a map per stream, each on its own input (default: rgb)")
    add_pretrain_argument(parser)
    parser.add_argument("--head", type=Path, metavar="HEAD", help="a head made by `i3d train`: its own classes")
    method = parser.add_argument_group("what is explained, and how")
    method.add_argument("--method", choices=METHODS, default=METHODS[0],
                        help="gradcam: Grad-CAM at --layer, float32, one backward pass per class (default); "
                             "occlusion: hide each cell of a grid and measure the drop in probability, on the "
                             "engine and precision the answer comes from")
    method.add_argument("--layer", default=DEFAULT_LAYER, metavar="ENDPOINT",
                        help="gradcam: the layer (Mixed_5c: T/8 x 7 x 7, the default; Mixed_4f: T/4 x 14 x 14; "
                             "any endpoint)")
    method.add_argument("--score", choices=SCORES, default=DEFAULT_SCORE,
                        help="gradcam: the gradients of the class's logit (default: where its evidence is) or of "
                             "its log-probability (what sets it apart from the other likely classes)")
    method.add_argument("--class", dest="classes", action="append", default=[], metavar="LABEL",
                        help="explain this class (Kinetics' or the head's name; repeat for several)")
    method.add_argument("--top", type=int, default=1, metavar="K",
                        help="explain each window's K most likely classes (default 1)")
    method.add_argument("--patch", type=_patch, default=(16, 56, 56), metavar="T,H,W",
                        help="occlusion: the hidden block in frames and pixels (default 16,56,56)")
    method.add_argument("--budget", type=int, default=512, metavar="N",
                        help="occlusion: at most N forward passes per window and stream (default 512)")
    method.add_argument("--batch", type=int, default=4, metavar="N", help="occlusion: clips per engine call")
    add_preprocessing_arguments(parser)
    add_fusion_argument(parser)
    add_engine_arguments(parser)
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _source(parser: argparse.ArgumentParser, args: argparse.Namespace, streams: tuple[str, ...]):
    """(what to explain, the input paths): a video or frames folder, or .npy clips by stream."""
    videos = [path for path in (args.video, args.frames) if path is not None]
    clips = {"rgb": args.rgb, "flow": args.flow}
    for stream, path in clips.items():
        if path is not None and stream not in streams:
            raise UsageError(f"--{stream} was given but --type {args.type} does not run the {stream} stream")
    if len(videos) > 1:
        raise UsageError("give either VIDEO or --frames, not both")
    if videos:
        if args.rgb or args.flow:
            raise UsageError("give either VIDEO/--frames or --rgb/--flow, not both")
        return videos[0], [videos[0]]
    refuse_unused_video_flags(parser, args)
    missing = [stream for stream in streams if clips[stream] is None]
    if missing:
        raise UsageError(f"give VIDEO, --frames DIR or the clips ({', '.join('--' + s for s in missing)} missing)")
    return {stream: clips[stream] for stream in streams}, [clips[stream] for stream in streams]


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Explain as the flags say; returns the lines to print."""
    from i3d.files import refuse_output_over_input
    from i3d.tasks.explain import ExplainOptions, explain, write_explanation
    from i3d.tasks.explain.options import class_indices
    from i3d.tasks.explain.outputs import OUTPUTS
    from i3d.tasks.recognizer import Recognizer, choose_weight_sets
    from i3d.weights.loading import LoadOptions

    streams = TYPES[args.type]
    check_pretrain_type(args.pretrain, args.type)
    source, inputs = _source(parser, args, streams)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    for target in (args.out, *(args.out / name for name in OUTPUTS)):
        refuse_output_over_input({"out": target}, inputs + ([args.head] if args.head else []))
    options = ExplainOptions(method=args.method, layer=args.layer, classes=tuple(args.classes), top=args.top,
                             patch=args.patch, budget=args.budget, batch=args.batch, score=args.score)
    options.check()
    head = None
    if args.head is not None:
        from i3d.heads import Head

        head = Head.load(args.head)
    if options.classes:  # an unknown name is refused before any weights load
        sets = choose_weight_sets(streams, args.pretrain)
        class_indices(options.classes, head.classes if head else next(iter(sets.values())).categories)
    if args.offline:
        forbid_network()
    load = LoadOptions(download=not args.offline, progress=sys.stderr.isatty())
    recognizer = Recognizer.load(streams, args.pretrain, load=load, engine=engine_options(args), store=weight_store(),
                                 head=head)
    explanation = explain(recognizer, source, options, video=video_options(args), fusion=args.fusion, load=load)
    paths = write_explanation(explanation, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    lines = []
    for window in explanation.windows:
        for item in window.maps:
            hottest = max(range(len(item.curve)), key=item.curve.__getitem__)
            where = item.peaks[hottest]
            at = f" at ({where[0]:.0f}, {where[1]:.0f}) in the crop" if where else ""
            lines.append(f"{window.span.start:7.2f}-{window.span.end:7.2f} s  {item.stream:4s}  {item.label} "
                         f"{item.probability:.0%}  hottest frame {window.span.first_frame + hottest}{at}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "i3d explain") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    return run_command(lambda: print(run(parser, args)), args.debug)
