"""How a published checkpoint names and shapes the network's tensors, and the mapping to the model's.

Inside the tool every tensor goes by the name :func:`i3d.model.checkpoint_key`
gives it (``RGB/inception_i3d/Mixed_5b/.../conv_3d/w``) with the model's shape
(batch-norm statistics as ``(C,)``). DeepMind's files differ in ways a
:class:`CheckpointLayout` records: Kinetics-400 checkpoints use exactly those
names; the TF-Hub module stores batch-norm statistics as ``(1, 1, 1, 1, C)``;
the Kinetics-600 checkpoint drops the ``RGB/inception_i3d`` scope, stores the
statistics as ``(1, 1, 1, 1, C)`` and keeps the optimizer's ``Momentum`` slot
beside every trained variable. Reading maps a file's tensors to the model's
names; exporting maps them back, so a file written in a layout reads as that
layout again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from i3d.errors import WeightsError

STATISTICS = ("batch_norm/beta", "batch_norm/moving_mean", "batch_norm/moving_variance")
"""The per-channel batch-norm tensors (the model holds them as ``(C,)``)."""


@dataclass(frozen=True)
class CheckpointLayout:
    """One file layout of I3D's tensors.

    ``scoped``: names start with the stream's scope (``RGB/inception_i3d/``).
    ``statistics_5d``: batch-norm beta, mean and variance are ``(1, 1, 1, 1, C)``.
    ``slots``: optimizer slot suffixes stored beside trained variables (``Momentum``),
    read past and never written.
    """

    scoped: bool = True
    statistics_5d: bool = False
    slots: tuple[str, ...] = ()

    def prefix(self, scope: str) -> str:
        return f"{scope}/inception_i3d/" if self.scoped else ""

    def is_slot(self, name: str) -> bool:
        """Whether ``name`` is an optimizer slot (not a weight of the network)."""
        return any(name.endswith(f"/{slot}") for slot in self.slots)

    def to_model(self, tensors: Mapping[str, np.ndarray], scope: str) -> dict[str, np.ndarray]:
        """A file's tensors under the model's names and shapes (optimizer slots dropped)."""
        prefix, model_prefix = self.prefix(scope), f"{scope}/inception_i3d/"
        out: dict[str, np.ndarray] = {}
        for name, array in tensors.items():
            if self.is_slot(name):
                continue
            if not name.startswith(prefix):
                raise WeightsError(f"checkpoint tensor {name} is outside the {prefix.rstrip('/') or 'top'} scope "
                                   "this weight set's files use")
            if self.statistics_5d and name.endswith(STATISTICS):
                if array.ndim != 5 or array.shape[:4] != (1, 1, 1, 1):
                    raise WeightsError(f"checkpoint tensor {name} has shape {array.shape}; expected (1, 1, 1, 1, C)")
                array = array.reshape(-1)
            out[model_prefix + name[len(prefix):]] = array
        return out

    def from_model(self, tensors: Mapping[str, np.ndarray], scope: str) -> dict[str, np.ndarray]:
        """The model's tensors under this layout's names and shapes (no optimizer slots)."""
        prefix, model_prefix = self.prefix(scope), f"{scope}/inception_i3d/"
        out: dict[str, np.ndarray] = {}
        for key, array in tensors.items():
            if not key.startswith(model_prefix):
                raise ValueError(f"not a {scope} model tensor name: {key!r}")
            array = np.ascontiguousarray(array, dtype=np.float32)
            if self.statistics_5d and key.endswith(STATISTICS):
                array = array.reshape(1, 1, 1, 1, -1)
            out[prefix + key[len(model_prefix):]] = array
        return out


KINETICS_400 = CheckpointLayout()
"""DeepMind's four Kinetics-400 checkpoints: scoped names, model shapes."""

TFHUB_MODULE = CheckpointLayout(statistics_5d=True)
"""The TF-Hub module's ``variables/``: scoped names, statistics as ``(1, 1, 1, 1, C)``."""

KINETICS_600 = CheckpointLayout(scoped=False, statistics_5d=True, slots=("Momentum",))
"""DeepMind's Kinetics-600 checkpoint: no top scope, statistics as ``(1, 1, 1, 1, C)``, Momentum slots."""
