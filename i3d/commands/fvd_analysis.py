"""``i3d fvd``'s statistics flags: --metric, --bootstrap, --unbiased, --curve and KVD's, and how they print.

Parsing and printing only: the numbers come from :mod:`i3d.tasks.fvd.analysis`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from i3d.tasks.fvd.analysis import Analysis, AnalysisOptions


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 64,128,256") from None


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """The statistics flags, in their own group of ``parser``'s help."""
    group = parser.add_argument_group("statistics", "an interval for FVD, FVD at infinite N, and KVD; each needs "
                                                    "the videos' embeddings, so neither side may be saved statistics")
    group.add_argument("--metric", choices=("fvd", "kvd", "both"), default="fvd",  # the task's METRICS
                       help="fvd (default), kvd (the unbiased MMD^2 with the cubic polynomial kernel, as KID), "
                            "or both")
    group.add_argument("--bootstrap", type=int, default=0, metavar="N",
                       help="a confidence interval for FVD from N resamples of each side's videos (1000 is usual)")
    group.add_argument("--confidence", type=float, default=0.95, metavar="P",
                       help="the bootstrap interval's confidence (default 0.95)")
    group.add_argument("--unbiased", action="store_true",
                       help="FVD_inf: FVD over subsets of several sizes N, fitted as a line in 1/N and read at "
                            "1/N = 0 (Chong and Forsyth 2020); reports the fit")
    group.add_argument("--subset-sizes", type=_sizes, metavar="N,N,...",
                       help="the subset sizes of --unbiased (default: 8 sizes from a fifth of the smaller side's "
                            "videos to all of them)")
    group.add_argument("--draws", type=int, default=3, metavar="N",
                       help="random subsets per size for --unbiased, averaged (default 3)")
    group.add_argument("--curve", type=Path, metavar="OUT.png",
                       help="draw FVD against 1/N with the fit and, with --bootstrap, its band (implies --unbiased)")
    group.add_argument("--kvd-subsets", type=int, default=100, metavar="N",
                       help="KVD's random subsets, averaged (default 100)")
    group.add_argument("--kvd-subset-size", type=int, metavar="N",
                       help="videos per side in each KVD subset (default 1000, or the smaller side's count)")
    group.add_argument("--resample-seed", type=int, default=0, metavar="N",
                       help="seed of the bootstrap's resamples and of the subsets (default 0: a run repeats exactly)")


def analysis_options(args: argparse.Namespace) -> AnalysisOptions | None:
    """The :class:`~i3d.tasks.fvd.analysis.AnalysisOptions` the flags ask for, or None when they ask for none."""
    from i3d.tasks.fvd.analysis import AnalysisOptions  # numpy and the task: not for --help or a usage error

    unbiased = args.unbiased or args.curve is not None
    if args.metric == "fvd" and not args.bootstrap and not unbiased:
        return None
    return AnalysisOptions(metric=args.metric, bootstrap=args.bootstrap, confidence=args.confidence,
                           unbiased=unbiased, subset_sizes=args.subset_sizes, draws=args.draws,
                           kvd_subsets=args.kvd_subsets, kvd_subset_size=args.kvd_subset_size,
                           resample_seed=args.resample_seed)


def analysis_json(analysis: Analysis | None) -> dict:
    """The JSON fields of an :class:`~i3d.tasks.fvd.analysis.Analysis` (only those asked for)."""
    if analysis is None:
        return {}
    fields: dict = {"resample_seed": analysis.resample_seed}
    if (b := analysis.bootstrap) is not None:
        fields["bootstrap"] = {"low": b.low, "high": b.high, "confidence": b.confidence, "replicates": b.replicates,
                               "interval": "basic (percentiles reflected about FVD)",
                               "percentile_low": b.percentile_low, "percentile_high": b.percentile_high,
                               "mean": b.mean, "std": b.std}
    if (u := analysis.unbiased) is not None:
        fields["unbiased"] = {"fvd_inf": u.value, "intercept": u.value, "slope": u.slope, "r2": u.r2,
                              "sizes": list(u.sizes), "fvd": list(u.distances), "std": list(u.spread),
                              "draws": u.draws}
    if (k := analysis.kvd) is not None:
        fields["kvd"] = {"mean": k.mean, "std": k.std, "subsets": k.subsets, "subset_size": k.subset_size,
                         "kernel": "(x.y/d + 1)^3"}
    return fields


def analysis_lines(analysis: Analysis | None) -> list[str]:
    """The text lines of an :class:`~i3d.tasks.fvd.analysis.Analysis`: under FVD's line, then KVD's."""
    if analysis is None:
        return []
    lines = []
    if (b := analysis.bootstrap) is not None:
        lines.append(f"  {b.confidence:.0%} interval: {b.low:.4f} to {b.high:.4f} ({b.replicates} bootstrap resamples "
                     f"of each side's videos, seed {analysis.resample_seed}; plain percentiles {b.percentile_low:.4f} "
                     f"to {b.percentile_high:.4f}, resamples' mean {b.mean:.4f})")
    if (u := analysis.unbiased) is not None:
        lines.append(f"  FVD_inf: {u.value:.4f} (fit FVD_N = {u.value:.4f} + {u.slope:.4g} / N, R^2 {u.r2:.4f}, over "
                     f"N = {', '.join(map(str, u.sizes))}, {u.draws} subsets per size)")
    if (k := analysis.kvd) is not None:
        lines.append(f"KVD: {k.mean:.6g} ± {k.std:.3g} (sd over {k.subsets} subsets of {k.subset_size} videos per "
                     f"side, seed {analysis.resample_seed})")
    return lines


def draw_curve(analysis: Analysis | None, path: Path | None, frames: int) -> None:
    """Write the FVD-against-1/N chart to ``path`` (nothing when None)."""
    if path is None or analysis is None or analysis.unbiased is None:
        return
    from i3d.report.fvd_curve import plot_fvd_curve  # matplotlib: only when a curve is drawn

    u, b = analysis.unbiased, analysis.bootstrap
    interval = None if b is None else (b.distance, b.low, b.high, b.confidence)
    plot_fvd_curve(u.sizes, u.distances, u.spread, u.slope, u.value, u.r2, path, interval,
                   title=f"FVD-{frames} against 1/N: FVD_inf {u.value:.4g}")
