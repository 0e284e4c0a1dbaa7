"""``i3d live SOURCE``: recognise actions on a camera, a network stream, stdin or a file as it plays.

    i3d live 0                                   # the first camera
    i3d live rtsp://camera.local/stream --events # print only when the action changes
    ffmpeg -i in.mp4 -f mpegts - | i3d live -    # a stream on stdin
    i3d live clip.mp4 --realtime --format jsonl  # a file played at its own rate

The command parses, calls :func:`i3d.tasks.live.live` and prints; a summary line
(windows, skipped, latency) goes to stderr at the end, on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d.commands.flags import TYPES, add_engine_arguments, add_fusion_argument, add_pretrain_argument, \
    check_pretrain_type, engine_options
from i3d.commands.shell import Parser, forbid_network, run_command


def build_parser(prog: str) -> argparse.ArgumentParser:
    from i3d.inputs.live import LiveOptions
    from i3d.preprocess.windows import SHORT_STRIDE, SHORT_WINDOW
    from i3d.streams import FLOW_ALGORITHMS
    from i3d.transforms import CROPS

    defaults = LiveOptions()
    parser = Parser(prog=prog, description="recognise actions on a live source as it plays",
                    epilog="Exit codes: 0 the stream ended, 2 usage, 3 the source cannot be opened or dropped "
                           "for good, 4 weights, 130 Ctrl-C, 143 SIGTERM.")
    parser.add_argument("source", help="a camera index (0) or /dev/videoN, a URL (rtsp:// rtmp:// http(s):// "
                                       "tcp:// udp:// srt://), - for stdin, or a video file")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb", help="stream(s) to run (default: rgb)")
    add_pretrain_argument(parser)
    parser.add_argument("--head", type=Path, metavar="HEAD", help="a head made by `i3d train`: its own classes")
    add_engine_arguments(parser)
    add_fusion_argument(parser)
    parser.add_argument("--window", type=int, default=SHORT_WINDOW, metavar="FRAMES",
                        help=f"frames per window (default {SHORT_WINDOW}: {SHORT_WINDOW / 25:g} s at 25 fps)")
    parser.add_argument("--stride", type=int, default=SHORT_STRIDE, metavar="FRAMES",
                        help=f"frames between window starts (default {SHORT_STRIDE})")
    parser.add_argument("--crop", choices=CROPS, default="center", help="as classify's --crop")
    parser.add_argument("--flow-algorithm", choices=FLOW_ALGORITHMS, default="tvl1",
                        help="with --type both or optical_flow: as classify's (tvl1, DeepMind's, by default; "
                             "dis is far cheaper, a different flow)")
    parser.add_argument("--top-k", type=int, default=3, metavar="N", help="classes per window (default 3)")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text",
                        help="text: a line per window; jsonl: a JSON object per window")
    parser.add_argument("--events", action="store_true",
                        help="print only when the smoothed top class changes (for alerting)")
    parser.add_argument("--smooth", type=int, default=3, metavar="K",
                        help="with --events: average the last K windows' probabilities (default 3)")
    parser.add_argument("--threshold", type=float, default=0.5, metavar="P",
                        help="with --events: a class needs a smoothed probability of at least P (default 0.5)")
    parser.add_argument("--annotate", type=Path, metavar="OUT.mp4",
                        help="record the stream (25 fps, short side 256) with the newest answer drawn on it; "
                             ".mp4, .webm or .gif; kept when the run is stopped")
    parser.add_argument("--realtime", action="store_true", help="a file: play it at its own rate, as if live")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of stream")
    parser.add_argument("--open-timeout", type=float, default=defaults.open_timeout, metavar="S",
                        help=f"give up opening the source after S seconds (default {defaults.open_timeout:g})")
    parser.add_argument("--reconnect", type=int, default=defaults.reconnect, metavar="N",
                        help=f"open a dropped stream again up to N times, with backoff (default {defaults.reconnect})")
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _line(result) -> str:
    tops = ", ".join(f"{p.label} {p.probability:.0%}" for p in result.top)
    return f"{result.start:8.2f}-{result.end:8.2f} s  {tops}  (latency {result.latency:.2f} s)"


class Events:
    """The smoothed top class over the last K windows; a line when it changes."""

    def __init__(self, smooth: int, threshold: float) -> None:
        from collections import deque

        self.recent: deque = deque(maxlen=smooth)
        self.threshold = threshold
        self.current: str | None = None

    def update(self, result, categories) -> str | None:
        import numpy as np

        from i3d.results import softmax

        self.recent.append(softmax(result.logits))
        mean = np.mean(self.recent, axis=0)
        best = int(np.argmax(mean))
        label = categories[best] if mean[best] >= self.threshold else None
        if label == self.current:
            return None
        self.current = label
        what = f"{label} ({mean[best]:.0%})" if label is not None else "no action above the threshold"
        return f"{result.end:8.2f} s  {what}"


def main(argv: list[str] | None = None, prog: str = "i3d live") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)

    def work() -> int:
        import json

        from i3d.commands.shell import UsageError
        from i3d.errors import I3DError
        from i3d.inputs.live import LiveOptions, parse_source
        from i3d.preprocess.windows import VideoOptions
        from i3d.streams import streams_named
        from i3d.tasks.live import LiveSummary, live
        from i3d.tasks.recognizer import Recognizer
        from i3d.weights.loading import LoadOptions

        check_pretrain_type(args.pretrain, args.type)
        if args.offline:
            forbid_network()
        if not 1 <= args.smooth <= 1000:
            raise UsageError(f"--smooth must be between 1 and 1000 windows, not {args.smooth}")
        if args.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
        if not 0 < args.threshold <= 1:
            raise UsageError(f"--threshold must be a probability in (0, 1], not {args.threshold}")
        options = LiveOptions(open_timeout=args.open_timeout, reconnect=args.reconnect, realtime=args.realtime,
                              duration=args.duration)
        options.check()
        video = VideoOptions(window=args.window, stride=args.stride, crop=args.crop,
                             flow_algorithm=args.flow_algorithm)
        video.check(streams_named(TYPES[args.type]))
        source = parse_source(args.source)  # a missing file is refused before any weights load
        if args.annotate is not None:
            from i3d.files import refuse_output_over_input
            from i3d.report.video_writer import check_video_path

            check_video_path(args.annotate, "annotate")
            refuse_output_over_input({"annotate": args.annotate}, [source.target if source.kind == "file" else None,
                                                                   args.head])
        head = None
        if args.head is not None:
            from i3d.heads import Head

            head = Head.load(args.head)
        recognizer = Recognizer.load(TYPES[args.type], args.pretrain,
                                     load=LoadOptions(download=not args.offline, progress=sys.stderr.isatty()),
                                     engine=engine_options(args), head=head)
        top_k = min(args.top_k, len(recognizer.categories))
        summary, events = LiveSummary(), Events(args.smooth, args.threshold) if args.events else None
        completed = False
        try:
            for result in live(recognizer, args.source, video=video, options=options, top_k=top_k,
                               fusion=args.fusion, summary=summary, annotate=args.annotate):
                if events is not None:
                    line = events.update(result, recognizer.categories)
                    if line is not None:
                        print(json.dumps({"event": events.current, **result.as_json()})
                              if args.format == "jsonl" else line, flush=True)
                else:
                    print(json.dumps(result.as_json()) if args.format == "jsonl" else _line(result), flush=True)
            completed = True
        finally:
            # A run that never started (the source could not be opened, a late usage error) has no summary:
            # its one line is the error. A run that ended, was stopped or dropped after a window has one.
            if completed or summary.windows or summary.skipped or not isinstance(sys.exc_info()[1], I3DError):
                print(f"summary: {summary.line()}", file=sys.stderr)
        return 0

    return run_command(work, args.debug)
