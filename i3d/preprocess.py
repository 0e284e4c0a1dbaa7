"""Write a video's model-ready arrays to .npy, exactly as evaluate.py --video prepares them.

    python -m i3d.preprocess VIDEO --type both --out DIR

writes DIR/<name>_rgb.npy, float32 (1, T, 224, 224, 3), and DIR/<name>_flow.npy,
float32 (1, T-1, 224, 224, 2), for the whole video (within --start/--end/--max-frames).
``evaluate.py --rgb/--flow`` on them gives the same logits as ``--video`` whenever
the video fits in one window (250 frames by default).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .cli import TYPES, add_preprocessing_arguments, video_options
from .errors import report_errors
from .files import atomic_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i3d.preprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a video file or a folder of numbered frames")
    parser.add_argument("--type", choices=tuple(TYPES), default="both", help="which arrays to write (default: both)")
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder (default: here)")
    parser.add_argument("--preview", type=Path, metavar="FILE.png",
                        help="also write a contact sheet of the RGB crops and flow fields the network sees")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    add_preprocessing_arguments(parser, windows=False)
    args = parser.parse_args(argv)

    def write() -> int:
        from .pipeline import read_clips

        clips = read_clips(args.source, TYPES[args.type], video_options(args))
        name = args.source.stem if args.source.is_file() else args.source.name
        for stream, clip in clips.items():
            path = args.out / f"{name}_{stream}.npy"
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, clip)
            print(f"wrote {path} {tuple(clip.shape)}")
        if args.preview:
            from .preview import save_preview

            save_preview(args.preview, clips)
            print(f"wrote {args.preview}")
        return 0

    return report_errors(write, args.debug)


if __name__ == "__main__":
    sys.exit(main())
