"""What a training asks: the linear head's fit, and (optionally) the fine-tuning of Mixed_5c on top of it."""

from __future__ import annotations

import warnings
from dataclasses import InitVar, dataclass

from i3d.errors import OptionError
from i3d.results import FUSIONS

CLASS_WEIGHTS = ("balanced", "none")
BLOCKS = ("mixed_5c",)
"""What ``--fine-tune`` can train below the logits layer."""


@dataclass(frozen=True)
class FineTuneOptions:
    """How the top block is trained.

    ``windows_per_step`` was ``batch_size``: in this package a batch is a dataset run (:mod:`i3d.tasks.batch`)
    and ``batch_size`` is FVD's videos per forward pass, so the training step's count has its own name.
    ``seed`` None is the training's (:attr:`TrainOptions.seed`), which the training passes down: one run, one
    seed, unless this one is set apart.
    """

    block: str = "mixed_5c"
    epochs: int = 30  # at most
    patience: int = 5  # epochs without a better validation score before stopping
    learning_rate: float = 1e-4
    windows_per_step: int = 8
    dropout_keep_prob: float = 0.5  # DeepMind's, before the logits layer
    seed: int | None = None  # None: TrainOptions.seed
    batch_size: InitVar[int | None] = None  # the old name of windows_per_step, for one release

    def __post_init__(self, batch_size: int | None) -> None:
        if batch_size is not None:
            warnings.warn("FineTuneOptions(batch_size=...) is now FineTuneOptions(windows_per_step=...)",
                          DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "windows_per_step", batch_size)

    def check(self) -> None:
        """Refuse a block, epoch count, rate, batch or dropout no training could use (OptionError)."""
        if self.block not in BLOCKS:
            raise OptionError("fine_tune", f"is {self.block!r}; choose from {', '.join(BLOCKS)}")
        if not 1 <= self.epochs <= 1000 or not 1 <= self.patience <= 1000:
            raise OptionError("epochs", "and patience must be between 1 and 1000")
        if not 0 < self.learning_rate < 1 or not 1 <= self.windows_per_step <= 256:
            raise OptionError("learning_rate", "must be in (0, 1) and windows_per_step in 1..256")
        if not 0 < self.dropout_keep_prob <= 1:
            raise OptionError("dropout_keep_prob", f"must be in (0, 1], not {self.dropout_keep_prob}")


@dataclass(frozen=True)
class TrainOptions:
    """How the head is fitted."""

    class_weight: str = "balanced"  # balanced: classes weigh alike whatever their video counts; none
    val_fraction: float | None = None  # hold out this share of the groups for a validation score
    folds: int = 5  # cross-validation folds for choosing C (fewer when a class has fewer groups)
    fusion: str = "mean"  # this use's own: how a video's windows are scored (a batch run and a server have theirs)
    seed: int = 0  # the run's: splits, folds, the fit, and the fine-tuning unless FineTuneOptions.seed is set
    fine_tune: FineTuneOptions | None = None  # also train Mixed_5c below the logits (see i3d.tasks.training.fine_tune)

    def check(self) -> None:
        """Refuse a class weighting, validation share, fold count or fusion no fit could use (OptionError)."""
        if self.class_weight not in CLASS_WEIGHTS:
            raise OptionError("class_weight", f"is {self.class_weight!r}; choose from {', '.join(CLASS_WEIGHTS)}")
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise OptionError("val_fraction", f"must be between 0 and 1, not {self.val_fraction}")
        if not 2 <= self.folds <= 20:
            raise OptionError("folds", f"must be between 2 and 20, not {self.folds}")
        if self.fusion not in FUSIONS:
            raise OptionError("fusion", f"is {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        if self.fine_tune is not None:
            self.fine_tune.check()
