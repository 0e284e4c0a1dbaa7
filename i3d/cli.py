"""The ``evaluate.py`` command line: classify clips with pretrained I3D streams.

Exit codes: 0 success, 2 usage, 3 bad input, 4 weights unavailable or corrupt,
1 anything unexpected (rerun with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import I3DError, UsageError

TYPES = {"rgb": ("rgb",), "optical_flow": ("flow",), "both": ("rgb", "flow")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
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
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Validate inputs, load weights, classify; returns the result dict (with phase timings)."""
    started = time.perf_counter()
    from .clips import load_clip
    from .labels import kinetics_400_labels
    from .report import fuse_logits, result_dict
    from .samples import sample_path
    from .weight_sets import get_weight_set

    streams = TYPES[args.type]
    if not 1 <= args.top_k <= 400:
        raise UsageError(f"--top-k must be between 1 and 400, not {args.top_k}")
    if args.checkpoint is not None and len(streams) != 1:
        raise UsageError("--checkpoint names one stream's weights; use it with --type rgb or optical_flow")
    given = {"rgb": args.rgb, "flow": args.flow}
    for stream, path in given.items():
        if path is not None and stream not in streams:
            raise UsageError(f"--{stream} was given but --type {args.type} does not run the {stream} stream")

    clips, sources = {}, {}
    for stream in streams:  # every input is checked before any weights are touched
        path = given[stream] or sample_path(stream)
        if given[stream] is None and not path.is_file():
            from .errors import InputError
            raise InputError(f"{path}: sample clip missing; run `python -m i3d.samples` "
                             "(or `--from DIR` with the GIF previews) first")
        clips[stream] = load_clip(path, stream)
        sources[stream] = str(path)
    labels = kinetics_400_labels()

    from .inference import open_stream, resolve_backend

    backend = resolve_backend(args.backend)
    logits, weights = [], {}
    seconds = {"inputs": time.perf_counter() - started, "load": 0.0, "inference": 0.0}
    for stream in streams:
        ws = get_weight_set(stream, args.pretrain)
        mark = time.perf_counter()
        runner = open_stream(ws, backend, checkpoint=args.checkpoint, download=not args.offline,
                             progress=sys.stderr.isatty(), mixed_precision=args.mixed_precision)
        seconds["load"] += time.perf_counter() - mark
        mark = time.perf_counter()
        logits.append(runner.logits(clips[stream]))
        seconds["inference"] += time.perf_counter() - mark
        weights[stream] = ws.deepmind_name
    fused = fuse_logits(logits, args.fusion)
    return result_dict(fused, labels, args.top_k, type=args.type, pretrain=args.pretrain,
                       fusion=args.fusion, backend=backend, weights=weights, inputs=sources,
                       frames={s: int(c.shape[1]) for s, c in clips.items()}, seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .report import format_json, format_table

        result = run(args)
        print(format_json(result) if args.format == "json" else format_table(result))
        return 0
    except I3DError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)", file=sys.stderr)
        return 1
