"""``i3d fvd REAL GENERATED``: the Fréchet Video Distance, exactly as the reference implementation computes it.

The command only parses flags, calls :func:`i3d.fvd` and prints; see
:mod:`i3d.commands.shell` for exit codes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from i3d.commands.flags import add_engine_arguments, engine_options
from i3d.commands.fvd_analysis import (add_analysis_arguments, analysis_json, analysis_lines, analysis_options,
                                       draw_curve)
from i3d.commands.fvd_protocol import (add_protocol_arguments, frame_lengths, protocol_json, protocol_lines,
                                       protocol_options)
from i3d.commands.shell import Parser, UsageError, forbid_network, run_command, weight_store
from i3d.errors import OptionError


def build_parser(prog: str = "i3d fvd") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Fréchet Video Distance between two sets of videos, as the reference (google-research "
                    "frechet_video_distance) computes it: each video's first --frames frames, TF1 bilinear resize "
                    "to 224x224, DeepMind's rgb_scratch I3D (= TF-Hub's i3d-kinetics-400), tf-gan's distance.",
        epilog="Each side: a folder of videos and/or frame folders, a .npy/.npz of uint8 (N, T, H, W, 3) videos, "
               "or a .npz of statistics from --save-stats. Exit codes: 0 success, 2 usage, 3 bad input, "
               "4 weights unavailable or corrupt.")
    parser.add_argument("real", type=Path, metavar="REAL", help="the real videos (or their saved statistics)")
    parser.add_argument("generated", type=Path, metavar="GENERATED",
                        help="the generated videos (or their saved statistics)")
    parser.add_argument("--frames", type=frame_lengths, default=(16,), metavar="N",
                        help="frames per video, the first N of each (default 16: FVD-16; 128 for FVD-128); "
                             "16,32,64: FVD of each prefix of the same clips, decoded once")
    add_protocol_arguments(parser)
    parser.add_argument("--save-stats", type=Path, metavar="FILE.npz",
                        help="write the REAL side's statistics (mean, covariance, count, settings) to FILE.npz; "
                             "give it as REAL in later runs")
    parser.add_argument("--save-generated-stats", type=Path, metavar="FILE.npz",
                        help="write the GENERATED side's statistics to FILE.npz")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="videos per forward pass (default 8)")
    add_analysis_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the per-video embedding cache ($I3D_CACHE_DIR/fvd, "
                             "default ~/.cache/i3d/fvd)")
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, a statistics file that cannot be written or that would replace an input."""
    from i3d.files import check_output_file, refuse_output_over_input

    if args.save_stats is not None and args.save_stats == args.save_generated_stats:
        raise UsageError("--save-stats and --save-generated-stats name the same file")
    outputs = {"save_stats": args.save_stats, "save_generated_stats": args.save_generated_stats}
    for option, path in outputs.items():
        if path is not None:
            check_output_file(path, option, (".npz",))
    if args.curve is not None:
        check_output_file(args.curve, "curve", (".png",))
        outputs["curve"] = args.curve
    refuse_output_over_input(outputs, [args.real, args.generated])


def _save(stats, path: Path | None, name: str) -> None:
    if path is None:
        return
    try:
        stats.save(path)
    except OSError as err:
        raise UsageError(f"{name} {path}: cannot write ({err.strerror or err})") from None
    print(f"wrote {path} ({stats.count} videos)", file=sys.stderr)


def _side(summary) -> dict:
    return {"source": summary.source, "videos": summary.videos, "embedded": summary.embedded,
            "cached": summary.cached, "statistics": summary.from_stats}


def run(args: argparse.Namespace) -> str:
    """Compute FVD as the flags say; returns the text to print."""
    from i3d.caches import default_cache_dir
    from i3d.tasks.fvd.measure import FVDOptions, fvd
    from i3d.weights.loading import LoadOptions

    _check_outputs(args)
    if args.offline:
        forbid_network()
    progress = sys.stderr.isatty()
    options = FVDOptions(batch_size=args.batch_size, engine=engine_options(args),
                         cache_dir=None if args.no_cache else default_cache_dir() / "fvd", progress=progress,
                         **protocol_options(args))
    try:
        result = fvd(args.real, args.generated, options,
                     load=LoadOptions(download=not args.offline, progress=progress), store=weight_store(),
                     analysis=analysis_options(args))
    except OptionError as err:
        if err.option != "unbiased" or args.unbiased or args.curve is None:
            raise
        raise UsageError(f"--curve {err.detail}") from None  # --curve asked for FVD_inf, not --unbiased
    _save(result.real_stats, args.save_stats, "--save-stats")
    _save(result.generated_stats, args.save_generated_stats, "--save-generated-stats")
    try:
        draw_curve(result.analysis, args.curve, result.frames)
    except OSError as err:
        raise UsageError(f"--curve {args.curve}: cannot write ({err.strerror or err})") from None
    with_fvd = args.metric != "kvd"
    if args.format == "json":
        return json.dumps({"fvd": result.distance if with_fvd else None, "frames": result.frames,
                           "real": _side(result.real), "generated": _side(result.generated),
                           "settings": result.settings, "backend": result.backend, "weights": result.weights,
                           "metric": args.metric, **analysis_json(result.analysis), **protocol_json(result),
                           "seconds": {k: round(v, 3) for k, v in result.seconds.items()}}, indent=2)
    lines = [f"FVD-{result.frames}: {result.distance:.4f}"] if with_fvd else []
    lines += protocol_lines(result) + analysis_lines(result.analysis)
    for label, side in (("real", result.real), ("generated", result.generated)):
        how = "statistics" if side.from_stats else f"{side.embedded} embedded, {side.cached} from the cache"
        lines.append(f"  {label}: {side.videos} videos ({how}) from {side.source}")
    if result.protocol.get("name", "tfhub") == "tfhub":
        lines.append(f"  {result.weights['rgb']} on {result.backend}; first {result.frames} frames, TF1 bilinear "
                     "224x224, 2x/255-1, logits averaged over time")
    else:
        lines.append(f"  {result.weights['rgb']} on {result.backend}; logits averaged over time")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "i3d fvd") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(lambda: print(run(args)), args.debug)
