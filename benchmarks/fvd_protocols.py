"""How far the FVD protocols differ on the same videos: the devset clips against degraded copies of themselves.

Usage: .venv/bin/python benchmarks/fvd_protocols.py [--clips ../shared/devset/clips [--clips DIR ...]]
       [--frames 32] [--videos N] [--protocols tfhub,styleganv,videogpt,cdfvd] [--degradations blur,noise,drops]
       [--sizes 8,16,24,32] [--bootstrap N] [--cache DIR] [--out fvd_protocols.json]

Each clip's first ``--frames`` decoded frames, short side scaled to 256 (so every side
holds the same content at the same size), are the REAL side, written as PNG frame
folders (lossless). Three GENERATED sides are degraded copies: ``blur`` (Gaussian,
sigma 3 px), ``noise`` (Gaussian, sigma 25 grey levels, clipped), ``drops`` (every
other frame of the first 2 x ``--frames``: motion twice as fast). Under each protocol
the script embeds every side once (``i3d.fvd_embeddings`` with the protocol's clip rule
for each side; a per-run embedding cache is shared where inputs are the same bytes),
then reports FVD on all videos (with the protocol's covariance normalisation) and
FVD_N for N = ``--sizes`` (below the video count) and all, each the mean over 5 draws
of N-video subsets, with FVD_inf from :mod:`i3d.tasks.fvd.unbiased` fitted over the
same sizes, and with ``--bootstrap N`` the 95% bootstrap interval of FVD on all videos
(:mod:`i3d.tasks.fvd.bootstrap`). ``--clips`` may be given several times (the clips of
every folder, in order); ``--cache DIR`` keeps the embeddings (keyed by content, so
the rebuilt sides hit it) and makes a rerun cheap.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

import i3d
from i3d.inputs.video import VIDEO_EXTENSIONS, first_video_frames
from i3d.tasks.fvd.bootstrap import bootstrap_fvd
from i3d.tasks.fvd.frechet import frechet_distance, moments
from i3d.tasks.fvd.protocols import get_protocol

ROOT = Path(__file__).resolve().parents[1]

SIZES = (8, 16, 24, 32)
DEGRADATIONS = ("blur", "noise", "drops")


def short_side_256(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = 256 / min(height, width)
    return cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def write_folder(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index + 1:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def build_sides(folders: list[Path], frames: int, root: Path, count: int | None,
                degradations: tuple[str, ...] = DEGRADATIONS) -> dict[str, Path]:
    """REAL and the degraded sides as folders of PNG frame folders, one per clip."""
    rng = np.random.default_rng(0)
    sides = {name: root / name for name in ("real", *degradations)}
    videos = [p for folder in folders for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS][:count]
    for number, path in enumerate(videos):
        try:
            decoded = first_video_frames(path, 2 * frames if "drops" in degradations else frames)
        except i3d.InputError:  # shorter than 2 x frames: every other frame of what there is
            decoded = first_video_frames(path, frames)
        clip = np.stack([short_side_256(frame) for frame in decoded])
        real = clip[:frames]
        name = f"{number:03d}"
        noise = rng.normal(0, 25, real.shape)  # drawn for every clip: the noise side is the same whatever is built
        write_folder(sides["real"] / name, real)
        if "blur" in sides:
            write_folder(sides["blur"] / name, np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in real]))
        if "noise" in sides:
            write_folder(sides["noise"] / name, np.clip(real + noise, 0, 255).astype(np.uint8))
        if "drops" in sides:
            write_folder(sides["drops"] / name, clip[::2][:frames])
    return sides


def fvd_at(real: np.ndarray, generated: np.ndarray, covariance: str) -> float:
    def stats(x: np.ndarray):
        mean, cov = moments(x)
        return mean, cov * ((len(x) - 1) / len(x)) if covariance == "N" else cov

    return frechet_distance(*stats(real), *stats(generated))


def fvd_curve(real: np.ndarray, generated: np.ndarray, sizes: tuple[int, ...] = SIZES) -> dict:
    """FVD_N (mean of 5 draws of N-video subsets, N-1 covariances) and FVD_inf where available."""
    rng = np.random.default_rng(0)
    count = min(len(real), len(generated))
    sizes = tuple(n for n in sizes if n < count) + (count,)
    curve = {}
    for size in sizes:
        values = [fvd_at(real[rng.choice(len(real), size, replace=False)],
                         generated[rng.choice(len(generated), size, replace=False)], "N-1") for _ in range(5)]
        curve[str(size)] = round(float(np.mean(values)), 2)
    try:
        from i3d.tasks.fvd.unbiased import unbiased_fvd
    except ImportError:
        return {"fvd_n": curve, "fvd_inf": None}
    fit = unbiased_fvd(real, generated, sizes, np.random.default_rng(0), draws=5)
    return {"fvd_n": curve, "fvd_inf": round(fit.value, 2), "slope": round(fit.slope, 1), "r2": round(fit.r2, 4)}


def interval(real: np.ndarray, generated: np.ndarray, replicates: int) -> dict:
    """The 95% bootstrap interval of FVD on all videos (N-1 covariances; seed 0), empty without replicates."""
    if replicates < 2:
        return {}
    b = bootstrap_fvd(real, generated, replicates, np.random.default_rng(0))
    return {"bootstrap": {"low": round(b.low, 2), "high": round(b.high, 2), "replicates": b.replicates,
                          "percentile_low": round(b.percentile_low, 2), "percentile_high": round(b.percentile_high, 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, action="append",
                        help="a folder of clips; again for more (default ../shared/devset/clips)")
    parser.add_argument("--frames", type=int, default=32, help="frames kept per clip (16 are embedded)")
    parser.add_argument("--protocols", default="tfhub,styleganv,videogpt,cdfvd")
    parser.add_argument("--videos", type=int, help="only the first N clips (name order; default all)")
    parser.add_argument("--degradations", default=",".join(DEGRADATIONS), help="generated sides to build")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="subset sizes N of FVD_N and the fit")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples (0: none)")
    parser.add_argument("--cache", type=Path, help="embedding cache folder kept between runs (default: none kept)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    folders = args.clips or [ROOT.parent / "shared" / "devset" / "clips"]
    degradations = tuple(args.degradations.split(","))
    sizes = tuple(int(n) for n in args.sizes.split(","))
    warnings.simplefilter("ignore")  # the protocols' "fewer videos than N" warnings: 41 clips, known
    report = {"machine": platform.processor() or platform.machine(), "protocols": {}}
    with tempfile.TemporaryDirectory() as tmp:
        mark = time.perf_counter()
        sides = build_sides(folders, args.frames, Path(tmp), args.videos, degradations)
        report["build_seconds"] = round(time.perf_counter() - mark, 1)
        recognizer = i3d.Recognizer.load("rgb", "kinetics", load=i3d.LoadOptions(download=False))
        for name in args.protocols.split(","):
            protocol = get_protocol(name)
            options = i3d.FVDOptions(protocol=name, batch_size=4, cache_dir=args.cache or Path(tmp) / "cache")
            mark = time.perf_counter()
            embedded = {side: i3d.fvd_embeddings(path, options, recognizer=recognizer,
                                                 side="real" if side == "real" else "generated")
                        for side, path in sides.items()}
            rows = {}
            for side in degradations:
                rows[side] = {"fvd": round(fvd_at(embedded["real"], embedded[side], protocol.covariance), 2),
                              **fvd_curve(embedded["real"], embedded[side], sizes),
                              **interval(embedded["real"], embedded[side], args.bootstrap)}
            seconds = round(time.perf_counter() - mark, 1)
            report["protocols"][name] = {"videos": len(embedded["real"]), "seconds": seconds, **rows}
            print(name, json.dumps(report["protocols"][name]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
