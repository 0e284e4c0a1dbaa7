"""``i3d preprocess``: write a video's model-ready arrays to .npy, exactly as classify prepares them.

    python -m i3d preprocess VIDEO --type both --out DIR

writes DIR/<name>_rgb.npy, float32 (1, T, 224, 224, 3), and DIR/<name>_flow.npy,
float32 (1, T-1, 224, 224, 2), for the whole video (within --start/--end/--max-frames).
``evaluate.py --rgb/--flow`` on them gives the same logits as ``--video`` whenever
the video fits in one window (250 frames by default). Frames are written as they
are prepared, so memory does not grow with the video; disk needs about 1 MB per
frame for both streams.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from i3d.commands.flags import TYPES, add_preprocessing_arguments, video_options
from i3d.commands.shell import Parser, UsageError, run_command


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


def _check_outputs(out: Path, preview: Path | None) -> None:
    """Refuse an output folder or preview file that cannot be written, before any work is done."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: the folder is not writable; choose another")
    if preview is not None:
        from i3d.quiet import quiet_opencv

        quiet_opencv()
        import cv2

        if not preview.suffix or not cv2.haveImageWriter(str(preview)):
            raise UsageError(f"--preview {preview}: unknown image type {preview.suffix!r}; use .png or .jpg")
        if preview.exists() and preview.is_dir():
            raise UsageError(f"--preview {preview} is a folder; give an image file name")
        try:
            preview.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--preview {preview}: cannot create its folder ({err.strerror or err})") from None


def main(argv: list[str] | None = None, prog: str = "i3d preprocess") -> int:
    args = build_parser(prog).parse_args(argv)

    def write() -> None:
        from i3d.report.npy import save_clips
        from i3d.streams import streams_named

        from i3d.files import refuse_output_over_input

        streams = streams_named(TYPES[args.type])
        name = args.source.stem if args.source.is_file() else args.source.name
        paths = {stream.name: args.out / f"{name}_{stream.name}.npy" for stream in streams}
        for path in paths.values():  # before anything is made: a clip written over (or among) the video's files
            refuse_output_over_input({"out": path, "preview": args.preview}, [args.source])
        _check_outputs(args.out, args.preview)
        try:
            shapes = save_clips(args.source, streams, video_options(args), paths)
        except OSError as err:
            where = err.filename or args.out
            raise UsageError(f"cannot write {where}: {err.strerror or err}; free space or choose another --out") \
                from None
        for stream, path in paths.items():
            print(f"wrote {path} {shapes[stream]}")
        if args.preview:
            from i3d.report.preview import save_preview

            clips = {stream: np.load(path, mmap_mode="r") for stream, path in paths.items()}
            try:
                save_preview(args.preview, clips)
            except OSError as err:
                raise UsageError(f"--preview {args.preview}: {err.strerror or err}") from None
            print(f"wrote {args.preview}")

    return run_command(write, args.debug)
