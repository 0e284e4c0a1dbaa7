"""``i3d preprocess``: write a video's model-ready arrays to .npy, exactly as classify prepares them.

    python -m i3d preprocess VIDEO --type both --out DIR

writes DIR/<name>_rgb.npy, float32 (1, T, 224, 224, 3), and DIR/<name>_flow.npy,
float32 (1, T-1, 224, 224, 2), for the whole video (within --start/--end/--max-frames).
``evaluate.py --rgb/--flow`` on them gives the same logits as ``--video`` whenever
the video fits in one window (250 frames by default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..files import atomic_path
from .common import TYPES, Parser, add_preprocessing_arguments, run_command, video_options


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a video file or a folder of numbered frames")
    parser.add_argument("--type", choices=tuple(TYPES), default="both", help="which arrays to write (default: both)")
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder (default: here)")
    parser.add_argument("--preview", type=Path, metavar="FILE.png",
                        help="also write a contact sheet of the RGB crops and flow fields the network sees")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    add_preprocessing_arguments(parser, windows=False)
    return parser


def main(argv: list[str] | None = None, prog: str = "i3d preprocess") -> int:
    args = build_parser(prog).parse_args(argv)

    def write() -> None:
        from ..preprocess.windows import read_clips
        from ..streams import streams_named

        clips = read_clips(args.source, streams_named(TYPES[args.type]), video_options(args))
        name = args.source.stem if args.source.is_file() else args.source.name
        for stream, clip in clips.items():
            path = args.out / f"{name}_{stream}.npy"
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, clip)
            print(f"wrote {path} {tuple(clip.shape)}")
        if args.preview:
            from ..report.preview import save_preview

            save_preview(args.preview, clips)
            print(f"wrote {args.preview}")

    return run_command(write, args.debug)
