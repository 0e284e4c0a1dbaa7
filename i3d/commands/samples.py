"""``i3d samples``: prepare DeepMind's cricket sample clip (v_CricketShot_g04_c01) in data/.

    python -m i3d samples                   # download DeepMind's .npy arrays
    python -m i3d samples --from DIR        # rebuild them from DIR/v_CricketShot_g04_c01_{rgb,flow}.gif
"""

from __future__ import annotations

from pathlib import Path

from i3d.commands.shell import Parser, run_command


def main(argv: list[str] | None = None, prog: str = "i3d samples") -> int:
    from i3d.inputs.samples import DATA_DIR

    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path,
                        help="folder with the GIF previews; without it the .npy files are downloaded")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: data/)")
    args = parser.parse_args(argv)

    def prepare() -> None:
        from i3d.inputs.samples import clips_from_gifs, download_clips, write_clips

        clips = clips_from_gifs(args.source) if args.source else download_clips()
        for path in write_clips(clips, args.out):
            print(f"wrote {path}")

    return run_command(prepare)
