"""Flag groups the commands share, their choices taken from the library, and what they turn into."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d.commands.shell import UsageError, flag

TYPES = {"rgb": ("rgb",), "optical_flow": ("flow",), "both": ("rgb", "flow")}
"""--type's values and the streams each runs."""


def add_fusion_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """--fusion: how two streams' logits are combined (:data:`i3d.results.FUSIONS`)."""
    from i3d.results import FUSIONS

    parser.add_argument("--fusion", choices=FUSIONS, default=FUSIONS[0], help=help)


def add_pretrain_argument(parser: argparse.ArgumentParser) -> None:
    """--pretrain: which training the weights come from (one of the weight sets' pretrainings)."""
    from i3d.weights.sets import PRETRAINS

    parser.add_argument("--pretrain", choices=PRETRAINS, default="kinetics",
                        help="kinetics: Kinetics-400 only (default); bothsets: ImageNet + Kinetics-400; "
                             "kinetics600: Kinetics-600, 600 classes, RGB only")


def check_pretrain_type(pretrain: str, kind: str) -> None:
    """A --type that runs a stream DeepMind published no weights for under --pretrain is a usage error."""
    from i3d.weights.sets import TRAINED_ON, pretrain_streams

    published = pretrain_streams(pretrain)
    missing = [stream for stream in TYPES[kind] if stream not in published]
    if missing:
        names = {"rgb": "RGB", "flow": "optical-flow"}
        kinds = [kind for kind, streams in TYPES.items() if set(streams) <= set(published)]
        raise UsageError(f"--pretrain {pretrain} has {' and '.join(names[s] for s in published)} weights only: "
                         f"DeepMind published no {' or '.join(names[s] for s in missing)} stream for "
                         f"{TRAINED_ON[pretrain]}; use --type {' or '.join(kinds)}")


def add_preprocessing_arguments(parser: argparse.ArgumentParser, windows: bool = True, window: int = 250,
                                stride: int | None = None) -> None:
    """The video preprocessing flags, shared by classify and preprocess."""
    from i3d.streams import FLOW_ALGORITHMS
    from i3d.transforms import CROPS

    video = parser.add_argument_group("video preprocessing (with --video or --frames)")
    video.add_argument("--start", type=float, metavar="SECONDS", help="skip the video before this time")
    video.add_argument("--end", type=float, metavar="SECONDS", help="stop reading at this time")
    video.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames (at 25 fps)")
    video.add_argument("--crop", choices=CROPS, default="center",
                       help="center: DeepMind's 224x224 centre crop of the 256-short-side frame (default); "
                            "full: the whole frame squashed to 224x224, as MediaPipe does; ten: the four "
                            "corners, the centre and their mirror images (logits averaged, features kept per "
                            "crop; ten times the work)")
    video.add_argument("--flow-algorithm", choices=FLOW_ALGORITHMS, default="tvl1",
                       help="tvl1: DeepMind's TV-L1 (default), OpenCV's result bit for bit from the tool's own "
                            "faster engine; tvl1-opencv: the same flow from OpenCV itself (reference, fallback); "
                            "dis: much faster, a different flow distribution (see README for how much it "
                            "changes results)")
    video.add_argument("--flow-workers", type=int, default=1, metavar="N",
                       help="processes for flow (default 1: each frame pair already uses every core)")
    video.add_argument("--strict", action="store_true",
                       help="refuse a video whose last frames do not decode (a damaged tail), instead of using "
                            "the frames that do with a warning")
    video.add_argument("--no-flow-cache", action="store_true",
                       help="neither read nor write the flow cache ($I3D_CACHE_DIR, default ~/.cache/i3d)")
    if windows:
        video.add_argument("--window", type=int, default=window, metavar="FRAMES",
                           help=f"frames per window for long videos (default {window}: {window / 25:g} s); "
                                "logits are averaged")
        video.add_argument("--stride", type=int, default=stride, metavar="FRAMES",
                           help=f"frames between window starts (default: {stride or '--window'})")


VIDEO_FLAGS = ("start", "end", "max_frames", "crop", "flow_algorithm", "flow_workers", "no_flow_cache",
               "window", "stride", "strict")


PRECISION_HELP = ("OpenVINO backend: fp32 (default, the reference), bf16 (faster on CPUs with AVX512_BF16 or AMX; "
                  "elsewhere it runs fp32, with a warning) or int8 (NNCF-quantised once per weight set and "
                  "cached; fastest); logits differ slightly from fp32. The TensorFlow backend runs fp32 only "
                  "(its GPU option is --mixed-precision)")


def add_engine_arguments(parser: argparse.ArgumentParser, mixed_precision: bool = False) -> None:
    """--backend, --precision and --calibration (and --mixed-precision where asked): what engine_options reads."""
    from i3d.runtime.base import BACKENDS, PRECISIONS

    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="inference engine: auto picks OpenVINO on a CPU, TensorFlow on a GPU (default: auto)")
    if mixed_precision:
        parser.add_argument("--mixed-precision", action="store_true",
                            help="TensorFlow backend: float16 compute on a GPU (faster, changes logits slightly)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    parser.add_argument("--calibration", type=Path, metavar="DIR",
                        help="with --precision int8: calibrate on the videos in DIR (prepared as any video) "
                             "instead of the sample clips; cached per calibration set")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine and the --ray-* flags: where a dataset's videos are worked on (what ray_options reads)."""
    from i3d.tasks.batch.run import EXECUTORS

    cluster = parser.add_argument_group("on a Ray cluster (pip install -e \".[ray]\")")
    cluster.add_argument("--engine", choices=EXECUTORS, default="local",
                         help="local: this machine (default); ray: decoding tasks and model actors on Ray")
    cluster.add_argument("--ray-address", metavar="ADDR",
                         help="cluster to join (auto, HOST:PORT, ray://HOST:PORT; default: start a local one)")
    cluster.add_argument("--ray-actors", type=int, metavar="N",
                         help="model actors, each holding the network (default: 1)")
    cluster.add_argument("--ray-actor-cpus", type=float, metavar="N",
                         help="CPUs per model actor (default: 1)")
    cluster.add_argument("--ray-task-cpus", type=float, metavar="N",
                         help="CPUs per decoding task (default: 1)")
    cluster.add_argument("--ray-connect-timeout", type=float, metavar="S",
                         help="seconds to wait for --ray-address to answer before giving up (default: 10)")


RAY_FLAGS = {"ray_address": "address", "ray_actors": "actors", "ray_actor_cpus": "actor_cpus",
             "ray_task_cpus": "task_cpus", "ray_connect_timeout": "connect_timeout"}
"""Each --ray-* flag's RayOptions field."""


def ray_options(args: argparse.Namespace):
    """RayOptions from the --ray-* flags with --engine ray; None otherwise (UsageError if any was given)."""
    given = {field: getattr(args, name) for name, field in RAY_FLAGS.items() if getattr(args, name) is not None}
    if args.engine != "ray":
        if given:
            names = ", ".join(flag(name) for name in RAY_FLAGS if getattr(args, name) is not None)
            raise UsageError(f"{names} only apply with --engine ray")
        return None
    if getattr(args, "offline", False) and args.ray_address not in (None, "auto"):
        raise UsageError(f"--offline forbids the network that --ray-address {args.ray_address} is reached by; "
                         "drop one of the two")
    from i3d.tasks.batch.ray_cluster import RayOptions
    from i3d.weights.store import WeightStore

    return RayOptions(**given, weights_dir=str(WeightStore.from_environment().root.resolve()))


def engine_options(args: argparse.Namespace):
    """EngineOptions from --backend, --mixed-precision, --precision and --calibration."""
    from i3d.runtime.base import EngineOptions

    return EngineOptions(args.backend, getattr(args, "mixed_precision", False), args.precision, args.calibration)


def precision_line(precision: dict[str, str], asked: str) -> str | None:
    """A line saying which precision ran, for table output when it is not the fp32 reference; else None."""
    used = sorted(set(precision.values()))
    if asked == "fp32" and used == ["fp32"]:
        return None
    return f"Precision: {', '.join(used)} (asked {asked}; logits differ slightly from fp32)"


def refuse_unused_video_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Video preprocessing flags given without a video would be silently ignored: refuse them."""
    given = [flag(name) for name in VIDEO_FLAGS if hasattr(args, name)
             and getattr(args, name) != parser.get_default(name)]
    if given:
        raise UsageError(f"{', '.join(given)} only apply to --video or --frames input")


def video_options(args: argparse.Namespace):
    """VideoOptions from the preprocessing flags (progress bars when stderr is a terminal)."""
    from i3d.caches import default_cache_dir
    from i3d.preprocess.windows import DEFAULT_WINDOW, VideoOptions

    return VideoOptions(start=args.start, end=args.end, max_frames=args.max_frames, crop=args.crop,
                        flow_algorithm=args.flow_algorithm, flow_workers=args.flow_workers,
                        window=getattr(args, "window", DEFAULT_WINDOW), stride=getattr(args, "stride", None),
                        progress=sys.stderr.isatty(), strict=args.strict,
                        flow_cache=None if args.no_flow_cache else default_cache_dir() / "flow")
