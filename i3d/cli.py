"""The ``evaluate.py`` command line: classify clips with pretrained I3D streams.

Exit codes: 0 success, 2 usage, 3 bad input, 4 weights unavailable or corrupt,
1 anything unexpected (rerun with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from .errors import UsageError, report_errors

TYPES = {"rgb": ("rgb",), "optical_flow": ("flow",), "both": ("rgb", "flow")}


def add_preprocessing_arguments(parser: argparse.ArgumentParser, windows: bool = True) -> None:
    """The video preprocessing flags, shared by evaluate.py and ``python -m i3d.preprocess``."""
    video = parser.add_argument_group("video preprocessing (with --video or --frames)")
    video.add_argument("--start", type=float, metavar="SECONDS", help="skip the video before this time")
    video.add_argument("--end", type=float, metavar="SECONDS", help="stop reading at this time")
    video.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames (at 25 fps)")
    video.add_argument("--crop", choices=("center", "full"), default="center",
                       help="center: DeepMind's 224x224 centre crop of the 256-short-side frame (default); "
                            "full: the whole frame squashed to 224x224, as MediaPipe does")
    video.add_argument("--flow-algorithm", choices=("tvl1", "dis"), default="tvl1",
                       help="tvl1: DeepMind's TV-L1 (default); dis: about 90x faster, a different flow "
                            "distribution (see README for how much it changes results)")
    video.add_argument("--flow-workers", type=int, default=1, metavar="N",
                       help="processes for flow (default 1: OpenCV already uses every core per frame pair)")
    video.add_argument("--no-flow-cache", action="store_true",
                       help="neither read nor write the flow cache ($I3D_CACHE_DIR, default ~/.cache/i3d)")
    if windows:
        video.add_argument("--window", type=int, default=250, metavar="FRAMES",
                           help="frames per window for long videos (default 250: 10 s); logits are averaged")
        video.add_argument("--stride", type=int, metavar="FRAMES",
                           help="frames between window starts (default: --window)")


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
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _npy_clips(args: argparse.Namespace, streams: tuple[str, ...]) -> tuple[dict, dict]:
    """The --rgb/--flow (or sample) clips, validated; returns (clips, their paths)."""
    from .clips import load_clip
    from .errors import InputError
    from .samples import sample_path

    given = {"rgb": args.rgb, "flow": args.flow}
    for stream, path in given.items():
        if path is not None and stream not in streams:
            raise UsageError(f"--{stream} was given but --type {args.type} does not run the {stream} stream")
    clips, sources = {}, {}
    for stream in streams:
        path = given[stream] or sample_path(stream)
        if given[stream] is None and not path.is_file():
            raise InputError(f"{path}: sample clip missing; run `python -m i3d.samples` "
                             "(or `--from DIR` with the GIF previews) first")
        clips[stream] = load_clip(path, stream)
        sources[stream] = str(path)
    return clips, sources


def video_options(args: argparse.Namespace):
    """VideoOptions from the command line's preprocessing flags."""
    from .pipeline import VideoOptions, default_cache_dir

    windows = {"window": args.window, "stride": args.stride} if hasattr(args, "window") else {}
    return VideoOptions(start=args.start, end=args.end, max_frames=args.max_frames, crop=args.crop,
                        flow_algorithm=args.flow_algorithm, flow_workers=args.flow_workers,
                        progress=sys.stderr.isatty(), **windows,
                        flow_cache=None if args.no_flow_cache else default_cache_dir() / "flow")


def _windows(args: argparse.Namespace, streams: tuple[str, ...]):
    """(iterator of Window, description of the input) for any kind of input."""
    from .pipeline import Window, iter_windows

    source = args.video or args.frames
    if source is None:
        clips, sources = _npy_clips(args, streams)
        frames = min(c.shape[1] for c in clips.values())
        return iter([Window(0, 0, frames, 0.0, frames / 25.0, clips)]), {"inputs": sources}
    if args.rgb or args.flow:
        raise UsageError("give either --video/--frames or --rgb/--flow, not both")
    if args.video and args.frames:
        raise UsageError("give either --video or --frames, not both")
    return iter_windows(source, streams, video_options(args)), {"video": str(source)}


def run(args: argparse.Namespace) -> dict:
    """Check inputs, load weights, classify window by window; returns the result dict (with timings).

    The first window is prepared before any weights are touched, so bad input
    fails fast and writes nothing into weights/.
    """
    from .labels import kinetics_400_labels
    from .report import fuse_logits, result_dict, top_k
    from .weight_sets import get_weight_set

    streams = TYPES[args.type]
    if not 1 <= args.top_k <= 400:
        raise UsageError(f"--top-k must be between 1 and 400, not {args.top_k}")
    if args.checkpoint is not None and len(streams) != 1:
        raise UsageError("--checkpoint names one stream's weights; use it with --type rgb or optical_flow")
    labels = kinetics_400_labels()
    seconds = {"inputs": 0.0, "load": 0.0, "inference": 0.0}
    windows, described = _windows(args, streams)
    windows = _timed(windows, seconds, "inputs")
    first = next(windows)

    from .inference import open_stream, resolve_backend
    from .weights import ensure_available

    backend = resolve_backend(args.backend)
    weight_sets = {stream: get_weight_set(stream, args.pretrain) for stream in streams}
    mark = time.perf_counter()
    for ws in weight_sets.values():  # all weights, or none: nothing is imported for one stream if another is missing
        ensure_available(ws, args.checkpoint, download=not args.offline, progress=sys.stderr.isatty())
    runners = {stream: open_stream(ws, backend, checkpoint=args.checkpoint, download=not args.offline,
                                   progress=sys.stderr.isatty(), mixed_precision=args.mixed_precision)
               for stream, ws in weight_sets.items()}
    seconds["load"] = time.perf_counter() - mark

    from tqdm import tqdm

    timeline, window_logits, frames = [], [], {}
    with tqdm(desc="windows", unit="window", file=sys.stderr, disable=not sys.stderr.isatty() or
              described.get("video") is None, leave=False) as bar:
        for window in itertools.chain([first], windows):
            mark = time.perf_counter()
            fused = fuse_logits([runners[s].logits(window.clips[s]) for s in streams], args.fusion)
            seconds["inference"] += time.perf_counter() - mark
            window_logits.append(fused)
            for stream, clip in window.clips.items():
                frames[stream] = frames.get(stream, 0) + int(clip.shape[1])
            timeline.append({"index": window.index, "start": round(window.start, 3), "end": round(window.end, 3),
                             "frames": window.frames, "top": top_k(fused, labels, min(3, args.top_k))})
            bar.update(1)
    weights = {stream: ws.deepmind_name for stream, ws in weight_sets.items()}
    result = result_dict(sum(window_logits) / len(window_logits), labels, args.top_k, type=args.type,
                         pretrain=args.pretrain, fusion=args.fusion, backend=backend, weights=weights,
                         **described, frames=frames, seconds=seconds)
    if "video" in described:
        result["windows"] = timeline
    return result


def _timed(items, seconds: dict, key: str):
    """Iterate ``items``, adding the time spent producing them to ``seconds[key]``."""
    while True:
        mark = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            seconds[key] += time.perf_counter() - mark
        yield item


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def classify() -> int:
        from .report import format_json, format_table

        result = run(args)
        print(format_json(result) if args.format == "json" else format_table(result))
        return 0

    return report_errors(classify, args.debug)
