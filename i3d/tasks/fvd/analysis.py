"""What FVD's embeddings can say beyond one number: a bootstrap interval, FVD at infinite N, and KVD.

:class:`AnalysisOptions` says which (``metric``: FVD, KVD or both; ``bootstrap``
replicates; ``unbiased``: FVD_inf over ``subset_sizes``) and is checked twice: on
its own (:meth:`~AnalysisOptions.check`) and against the two sides once their
counts are known (:meth:`~AnalysisOptions.check_sides`), before anything is
embedded. :func:`analyse` runs the numpy math of :mod:`i3d.tasks.fvd.bootstrap`,
:mod:`i3d.tasks.fvd.unbiased` and :mod:`i3d.tasks.fvd.kernel` on the two sides'
(N, D) embeddings. Each part draws from its own stream of ``resample_seed``
(``numpy.random.SeedSequence(seed).spawn``), so turning one on or off does not change
another's numbers, and a run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from i3d.errors import OptionError
from i3d.tasks.fvd.bootstrap import BootstrapInterval, bootstrap_fvd
from i3d.tasks.fvd.kernel import SUBSET_SIZE, KernelDistance, kernel_distance
from i3d.tasks.fvd.unbiased import SMALLEST_SIZE, UnbiasedFVD, default_sizes, unbiased_fvd

METRICS = ("fvd", "kvd", "both")


@dataclass(frozen=True)
class AnalysisOptions:
    """``metric`` (fvd, kvd or both), ``bootstrap`` replicates (0: none) at ``confidence``, ``unbiased`` (FVD_inf
    over ``subset_sizes``, default :func:`~i3d.tasks.fvd.unbiased.default_sizes`, ``draws`` subsets per size),
    KVD's ``kvd_subsets`` of ``kvd_subset_size`` videos (default 1000 or the smaller side's count), and the seed."""

    metric: str = "fvd"
    bootstrap: int = 0
    confidence: float = 0.95
    unbiased: bool = False
    subset_sizes: tuple[int, ...] | None = None
    draws: int = 3
    kvd_subsets: int = 100
    kvd_subset_size: int | None = None
    resample_seed: int = 0

    @property
    def fvd(self) -> bool:
        return self.metric in ("fvd", "both")

    @property
    def kvd(self) -> bool:
        return self.metric in ("kvd", "both")

    @property
    def needs_embeddings(self) -> bool:
        """Whether anything here needs each video's embedding (saved statistics hold only mean and covariance)."""
        return self.kvd or self.bootstrap > 0 or self.unbiased

    def check(self) -> None:
        if self.metric not in METRICS:
            raise OptionError("metric", f"must be one of {', '.join(METRICS)}, not {self.metric!r}")
        if not isinstance(self.bootstrap, int) or self.bootstrap == 1 or self.bootstrap < 0:
            raise OptionError("bootstrap", f"must be 0 (none) or at least 2 replicates (1000 is usual), "
                                           f"not {self.bootstrap}")
        if not 0 < self.confidence < 1:
            raise OptionError("confidence", f"must lie between 0 and 1 (0.95: a 95% interval), not {self.confidence}")
        if not isinstance(self.draws, int) or self.draws < 1:
            raise OptionError("draws", f"must be at least 1, not {self.draws}")
        if not isinstance(self.kvd_subsets, int) or self.kvd_subsets < 1:
            raise OptionError("kvd_subsets", f"must be at least 1, not {self.kvd_subsets}")
        if self.kvd_subset_size is not None and self.kvd_subset_size < SMALLEST_SIZE:
            raise OptionError("kvd_subset_size", f"must be at least {SMALLEST_SIZE}, not {self.kvd_subset_size}")
        if not self.fvd and (self.bootstrap or self.unbiased):
            raise OptionError("metric", f"{self.metric} reports no FVD, so neither a bootstrap nor FVD_inf; "
                                        "use --metric both")
        if self.subset_sizes is not None:
            if len(set(self.subset_sizes)) < 2:
                raise OptionError("subset_sizes", f"needs two different sizes or more to fit a line, not "
                                                  f"{list(self.subset_sizes)}")
            if min(self.subset_sizes) < SMALLEST_SIZE:
                raise OptionError("subset_sizes", f"must each be at least {SMALLEST_SIZE} (a covariance needs two "
                                                  f"videos), not {min(self.subset_sizes)}")

    def check_sides(self, real: int, generated: int, real_from_stats: bool, generated_from_stats: bool) -> None:
        """Refuse what the two sides (``real`` and ``generated`` videos, or saved statistics) cannot give."""
        if self.needs_embeddings and (real_from_stats or generated_from_stats):
            option = "bootstrap" if self.bootstrap else "unbiased" if self.unbiased else "metric"
            side = "real" if real_from_stats else "generated"
            what = f"{self.metric} " if option == "metric" else ""
            raise OptionError(option, f"{what}needs each video's embedding, and the {side} side is saved statistics "
                                      "(mean and covariance only): give that side's videos")
        most = min(real, generated)
        if self.unbiased and self.subset_sizes is not None and max(self.subset_sizes) > most:
            raise OptionError("subset_sizes", f"may be at most {most} (the smaller side's videos), not "
                                              f"{max(self.subset_sizes)}")
        if self.unbiased and self.subset_sizes is None and len(default_sizes(most)) < 2:
            raise OptionError("unbiased", f"needs at least {SMALLEST_SIZE + 1} videos per side to fit a line, "
                                          f"and a side has {most}")
        if self.kvd and self.kvd_subset_size is not None and self.kvd_subset_size > most:
            raise OptionError("kvd_subset_size", f"may be at most {most} (the smaller side's videos), not "
                                                 f"{self.kvd_subset_size}")

    def sizes(self, real: int, generated: int) -> tuple[int, ...]:
        """The subset sizes FVD_inf is fitted over for sides of ``real`` and ``generated`` videos."""
        return tuple(sorted(set(self.subset_sizes))) if self.subset_sizes else default_sizes(min(real, generated))


@dataclass(frozen=True)
class Analysis:
    """What was asked for (None otherwise), and the seed that drew it."""

    bootstrap: BootstrapInterval | None
    unbiased: UnbiasedFVD | None
    kvd: KernelDistance | None
    resample_seed: int


def analyse(real: np.ndarray, generated: np.ndarray, options: AnalysisOptions, ddof: int = 1) -> Analysis:
    """The bootstrap interval, FVD_inf and KVD that ``options`` ask for, from (N, D) and (M, D) embeddings
    (FVD's covariances normalised by N - ``ddof``, as the protocol does)."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(options.resample_seed).spawn(3)]
    bootstrap = (bootstrap_fvd(real, generated, options.bootstrap, streams[0], options.confidence, ddof)
                 if options.fvd and options.bootstrap else None)
    unbiased = (unbiased_fvd(real, generated, options.sizes(len(real), len(generated)), streams[1], options.draws,
                             ddof) if options.fvd and options.unbiased else None)
    size = options.kvd_subset_size or min(SUBSET_SIZE, len(real), len(generated))
    kvd = kernel_distance(real, generated, streams[2], options.kvd_subsets, size) if options.kvd else None
    return Analysis(bootstrap, unbiased, kvd, options.resample_seed)
