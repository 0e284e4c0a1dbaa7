"""The old name of :mod:`i3d.weights.checkpoint_writer` (it writes weight files, not runnable models: those
are :mod:`i3d.runtime.export`'s). Kept for one release; import from the new module."""

from __future__ import annotations

import warnings

from i3d.weights.checkpoint_writer import (FORMATS, Exported, export_targets, export_weights, rebuilt_data_file,
                                           write_checkpoint, write_keras)

__all__ = ["FORMATS", "Exported", "export_targets", "export_weights", "rebuilt_data_file", "write_checkpoint",
           "write_keras"]

warnings.warn("i3d.weights.export is now i3d.weights.checkpoint_writer; the old name goes in the next release",
              DeprecationWarning, stacklevel=2)
