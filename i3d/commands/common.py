"""What every command shares: its error handling and exit codes, and the video flags.

Exit codes: 0 success, 1 unexpected (rerun with --debug), 2 usage (bad flags
or flag combinations, an output that cannot be written), 3 bad input, 4
weights unavailable or corrupt, 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM), 141 standard output closed early (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from i3d.errors import I3DError, InputError, OptionError, WeightsError

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = ((OptionError, 2), (InputError, 3), (WeightsError, 4))
TYPES = {"rgb": ("rgb",), "optical_flow": ("flow",), "both": ("rgb", "flow")}
"""--type's values and the streams each runs."""


class UsageError(Exception):
    """Flags that contradict each other (exit code 2); the message speaks of flags."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` (temporary files, worker processes) runs."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: ... (see PROG --help)`` on stderr, exit code 2."""

    def error(self, message: str):
        print(f"error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def flag(option: str) -> str:
    """The command-line flag of a library option name: ``max_frames`` -> ``--max-frames``."""
    return "--" + option.replace("_", "-")


def one_line(text: str) -> str:
    """``text`` on one line: any line breaks (from a file name, a library's message) become spaces."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text).strip())


def message(err: Exception) -> str:
    """The one-line message for ``err``, option names turned into flags."""
    if isinstance(err, OptionError):
        return one_line(f"{flag(err.option)} {err.detail}")
    return one_line(str(err))


def _show_warning(text, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``warning: ...`` on one line, without the source line Python adds."""
    print(f"warning: {one_line(str(text))}", file=sys.stderr)


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _command_environment() -> Iterator[None]:
    """One-line warnings, SIGTERM as an exception, and file names printed as their raw bytes."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (a library caller running a command): leave signals alone
        previous = None
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                # a file name that is not valid UTF-8 prints as its own bytes, as `ls` would
                stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def exit_code(err: Exception) -> int:
    if isinstance(err, UsageError):
        return 2
    for kind, code in EXIT_CODES:
        if isinstance(err, kind):
            return code
    return 1


def run_command(action: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``action()`` and turn failures into one stderr line and an exit code.

    Library errors and usage errors give their own codes; Ctrl-C gives 130 and
    SIGTERM 143 (each one line, after every cleanup has run); anything else
    gives 1. With ``debug`` the exception propagates, traceback and all.
    """
    try:
        with _command_environment():
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
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {one_line(str(err))} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


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


def add_preprocessing_arguments(parser: argparse.ArgumentParser, windows: bool = True) -> None:
    """The video preprocessing flags, shared by classify and preprocess."""
    video = parser.add_argument_group("video preprocessing (with --video or --frames)")
    video.add_argument("--start", type=float, metavar="SECONDS", help="skip the video before this time")
    video.add_argument("--end", type=float, metavar="SECONDS", help="stop reading at this time")
    video.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames (at 25 fps)")
    video.add_argument("--crop", choices=("center", "full", "ten"), default="center",
                       help="center: DeepMind's 224x224 centre crop of the 256-short-side frame (default); "
                            "full: the whole frame squashed to 224x224, as MediaPipe does; ten: the four "
                            "corners, the centre and their mirror images (logits averaged, features kept per "
                            "crop; ten times the work)")
    video.add_argument("--flow-algorithm", choices=("tvl1", "tvl1-opencv", "dis"), default="tvl1",
                       help="tvl1: DeepMind's TV-L1 (default), OpenCV's result bit for bit from the tool's own "
                            "faster engine; tvl1-opencv: the same flow from OpenCV itself (reference, fallback); "
                            "dis: much faster, a different flow distribution (see README for how much it "
                            "changes results)")
    video.add_argument("--flow-workers", type=int, default=1, metavar="N",
                       help="processes for flow (default 1: each frame pair already uses every core)")
    video.add_argument("--no-flow-cache", action="store_true",
                       help="neither read nor write the flow cache ($I3D_CACHE_DIR, default ~/.cache/i3d)")
    if windows:
        video.add_argument("--window", type=int, default=250, metavar="FRAMES",
                           help="frames per window for long videos (default 250: 10 s); logits are averaged")
        video.add_argument("--stride", type=int, metavar="FRAMES",
                           help="frames between window starts (default: --window)")


VIDEO_FLAGS = ("start", "end", "max_frames", "crop", "flow_algorithm", "flow_workers", "no_flow_cache",
               "window", "stride")


PRECISION_HELP = ("OpenVINO backend: fp32 (default, the reference), bf16 (faster on CPUs with AVX512_BF16 or AMX; "
                  "elsewhere it runs fp32, with a warning) or int8 (NNCF-quantised once per weight set and "
                  "cached; fastest); logits differ slightly from fp32. The TensorFlow backend runs fp32 only "
                  "(its GPU option is --mixed-precision)")


def add_engine_arguments(parser: argparse.ArgumentParser, mixed_precision: bool = False) -> None:
    """--backend, --precision and --calibration (and --mixed-precision where asked): what engine_options reads."""
    parser.add_argument("--backend", choices=("auto", "openvino", "tensorflow"), default="auto",
                        help="inference engine: auto picks OpenVINO on a CPU, TensorFlow on a GPU (default: auto)")
    if mixed_precision:
        parser.add_argument("--mixed-precision", action="store_true",
                            help="TensorFlow backend: float16 compute on a GPU (faster, changes logits slightly)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32", help=PRECISION_HELP)
    parser.add_argument("--calibration", type=Path, metavar="DIR",
                        help="with --precision int8: calibrate on the videos in DIR (prepared as any video) "
                             "instead of the sample clips; cached per calibration set")


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
                        progress=sys.stderr.isatty(),
                        flow_cache=None if args.no_flow_cache else default_cache_dir() / "flow")


def forbid_network() -> None:
    """``--offline``: make every socket connection and name lookup in this process fail at once.

    Downloads are already off with ``--offline``; this makes the promise hold for
    anything else a library might try (telemetry, update checks) as well.
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access is off (--offline)")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse


def weight_store():
    """The weights folder commands use: ``$I3D_WEIGHTS_DIR`` or the project's ``weights/``."""
    from i3d.weights.store import WeightStore

    return WeightStore.from_environment()
