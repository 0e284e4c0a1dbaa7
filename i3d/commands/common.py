"""What every command shares: its error handling and exit codes, and the video flags.

Exit codes: 0 success, 1 unexpected (rerun with --debug), 2 usage (bad flags
or flag combinations), 3 bad input, 4 weights unavailable or corrupt, 130
interrupted, 141 standard output closed early (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..errors import I3DError, InputError, OptionError, WeightsError

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = ((OptionError, 2), (InputError, 3), (WeightsError, 4))
TYPES = {"rgb": ("rgb",), "optical_flow": ("flow",), "both": ("rgb", "flow")}
"""--type's values and the streams each runs."""


class UsageError(Exception):
    """Flags that contradict each other (exit code 2); the message speaks of flags."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: ... (see PROG --help)`` on stderr, exit code 2."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def flag(option: str) -> str:
    """The command-line flag of a library option name: ``max_frames`` -> ``--max-frames``."""
    return "--" + option.replace("_", "-")


def message(err: Exception) -> str:
    """The one-line message for ``err``, option names turned into flags."""
    if isinstance(err, OptionError):
        return f"{flag(err.option)} {err.detail}"
    return str(err)


def exit_code(err: Exception) -> int:
    if isinstance(err, UsageError):
        return 2
    for kind, code in EXIT_CODES:
        if isinstance(err, kind):
            return code
    return 1


def run_command(action: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``action()`` and turn failures into one stderr line and an exit code.

    Library errors and usage errors give their own codes; Ctrl-C gives 130;
    anything else gives 1. With ``debug`` the exception propagates, traceback and all.
    """
    try:
        code = action() or 0
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit has nowhere to fail
        return 141
    except (I3DError, UsageError) as err:
        if debug:
            raise
        print(f"error: {message(err)}", file=sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)", file=sys.stderr)
        return 1


def add_preprocessing_arguments(parser: argparse.ArgumentParser, windows: bool = True) -> None:
    """The video preprocessing flags, shared by classify and preprocess."""
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


VIDEO_FLAGS = ("start", "end", "max_frames", "crop", "flow_algorithm", "flow_workers", "no_flow_cache",
               "window", "stride")


def refuse_unused_video_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Video preprocessing flags given without a video would be silently ignored: refuse them."""
    given = [flag(name) for name in VIDEO_FLAGS if hasattr(args, name)
             and getattr(args, name) != parser.get_default(name)]
    if given:
        raise UsageError(f"{', '.join(given)} only apply to --video or --frames input")


def video_options(args: argparse.Namespace):
    """VideoOptions from the preprocessing flags (progress bars when stderr is a terminal)."""
    from ..preprocess.windows import DEFAULT_WINDOW, VideoOptions, default_cache_dir

    return VideoOptions(start=args.start, end=args.end, max_frames=args.max_frames, crop=args.crop,
                        flow_algorithm=args.flow_algorithm, flow_workers=args.flow_workers,
                        window=getattr(args, "window", DEFAULT_WINDOW), stride=getattr(args, "stride", None),
                        progress=sys.stderr.isatty(),
                        flow_cache=None if args.no_flow_cache else default_cache_dir() / "flow")


def weight_store():
    """The weights folder commands use: ``$I3D_WEIGHTS_DIR`` or the project's ``weights/``."""
    from ..weights.store import WeightStore

    return WeightStore.from_environment()
