"""Where weights live: one folder, its layout, its Keras cache, and the search order for a set.

A :class:`WeightStore` is a root folder handed to whoever needs weights (the
command line makes one from ``$I3D_WEIGHTS_DIR``, tests make their own). Inside:

- ``<deepmind_name>/model.ckpt.*``: DeepMind's checkpoint files, downloaded or put there;
- ``<set>.weights.h5`` + ``<set>.weights.json``: the Keras cache of an imported set and
  the sha256 it was written with;
- ``openvino/``: converted OpenVINO models (see :mod:`i3d.runtime.ir`).

Beside its root, a store looks in TF-Hub's module caches (``hub_dirs``): a
module folder there whose ``variables/variables.index`` is the one pinned for
a set (:class:`~i3d.weights.sets.HubSource`) holds that set's tensors.

Caches are best effort: whoever writes one catches any failure and warns in one line.
Temporaries a killed run left behind (``.*.tmp.weights.h5``, ``.*.tmp``, partial
downloads ``<checkpoint>/.*.tmp``, and hidden staging or discarded folders under
``openvino/``) are removed once they are an hour old, each time a Keras or OpenVINO
cache is written (:meth:`WeightStore.remove_stale_temporaries`).

:meth:`WeightStore.locate` is the one search order, used both to check that a
set is available and to load it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from i3d.files import STALE_AFTER_S, atomic_path, remove_older_than, sha256_file
from i3d.weights.checkpoint import DATA_SUFFIX, checkpoint_files, is_saved_model_folder
from i3d.weights.pypi import installed_path
from i3d.weights.sets import CHECKPOINT_FILES, WeightSet

WEIGHTS_DIR_ENV = "I3D_WEIGHTS_DIR"
TFHUB_CACHE_ENV = "TFHUB_CACHE_DIR"
PROJECT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
"""A source checkout's ``weights/`` (beside the ``i3d`` package and the project's pyproject.toml)."""
CACHE_HOME_ENV = "XDG_CACHE_HOME"
CACHE_FORMAT = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Location:
    """One place a set's weights can be read from: ``kind`` is cache, checkpoint, hub or pypi."""

    kind: str
    path: Path
    description: str


@dataclass(frozen=True)
class WeightStore:
    """A weights folder (it need not exist yet: it is made on the first write) and the TF-Hub caches read beside it."""

    root: Path
    hub_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_environment(cls) -> WeightStore:
        """The :func:`default_weights_dir`; TF-Hub's caches from ``$TFHUB_CACHE_DIR``, else
        ``~/.cache/tfhub_modules`` and TF-Hub's default under the temp folder."""
        return cls(default_weights_dir(), default_hub_dirs())

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
        """Save ``model``'s weights as the set's cache, with its sha256 recorded beside it.

        Keras writes the HDF5 file into memory and plain file writes put it on disk, so a
        full or failing disk is an ordinary OSError here and never an HDF5 file left open
        on a deleted temporary (which crashed the interpreter at exit).
        """
        self.remove_stale_temporaries()
        data = keras_weights_bytes(model)
        with atomic_path(self.keras_cache(ws), suffix=".weights.h5") as tmp:
            tmp.write_bytes(data)
            record = {"format": CACHE_FORMAT, "weight_set": ws.name, "deepmind_name": ws.deepmind_name,
                      "sha256": hashlib.sha256(data).hexdigest(), "source": source}
            with atomic_path(self.keras_record(ws)) as tmp_record:
                tmp_record.write_text(json.dumps(record, indent=2) + "\n")

    def stale_temporaries(self) -> list[Path]:
        """Candidates for :meth:`remove_stale_temporaries`, whatever their age."""
        # the Keras cache's and its record's temporaries, partial downloads into checkpoint folders,
        # IR staging folders and IR folders moved aside to be deleted
        found = []
        for pattern in (".*.tmp.weights.h5", ".*.tmp", "*/.*.tmp", "openvino/.*"):
            try:
                found += self.root.glob(pattern)
            except OSError:
                continue
        return found

    def remove_stale_temporaries(self, max_age_s: float = STALE_AFTER_S) -> list[Path]:
        """Remove temporaries older than ``max_age_s`` that killed runs left; best effort, never raises."""
        try:
            return remove_older_than(self.stale_temporaries(), max_age_s)
        except Exception:  # upkeep must never cost a run
            return []

    def hub_modules(self, ws: WeightSet) -> list[Path]:
        """Module folders in the TF-Hub caches whose variables index is the set's pinned one."""
        if ws.hub is None:
            return []
        found = []
        for cache in self.hub_dirs:
            try:
                folders = sorted(p for p in cache.iterdir() if is_saved_model_folder(p))
            except OSError:
                continue
            for folder in folders:
                variables = folder / "variables"
                try:
                    if ((variables / f"variables{DATA_SUFFIX}").is_file()
                            and sha256_file(variables / "variables.index") == ws.hub.index_sha256):
                        found.append(folder)
                except OSError:
                    continue
        return found

    def locate(self, ws: WeightSet, checkpoint: str | os.PathLike | None = None) -> list[Location]:
        """Every place the set can be read from now, in the order they are tried.

        A checkpoint the caller names is the only place (its files must exist);
        otherwise: the Keras cache, DeepMind's files in the store, a TF-Hub module
        in the hub caches, the PyPI package.
        """
        if checkpoint is not None:
            checkpoint_files(checkpoint)  # raises WeightsError naming the missing file
            if is_saved_model_folder(checkpoint):
                return [Location("hub", Path(checkpoint), f"TF-Hub module {checkpoint}")]
            return [Location("checkpoint", Path(checkpoint), f"checkpoint {checkpoint}")]
        found = []
        if self.recorded_sha256(ws) is not None:
            found.append(Location("cache", self.keras_cache(ws), f"cache {self.keras_cache(ws)}"))
        folder = self.checkpoint_dir(ws)
        if all((folder / name).is_file() for name in CHECKPOINT_FILES):
            found.append(Location("checkpoint", folder, f"checkpoint {folder}"))
        found += [Location("hub", module, f"TF-Hub module {module}") for module in self.hub_modules(ws)]
        pickle_path = installed_path(ws.pypi)
        if pickle_path is not None:
            found.append(Location("pypi", pickle_path, f"PyPI {ws.pypi.package}=={ws.pypi.version}"))
        return found


def default_weights_dir() -> Path:
    """Where weights live unless a store is given: ``$I3D_WEIGHTS_DIR``; else, run from a source checkout (the
    package beside the project's pyproject.toml), its ``weights/``; else, installed (a wheel in site-packages,
    which may be read-only and is no place for a folder named ``weights``), the user's cache:
    ``$XDG_CACHE_HOME/i3d/weights``, ``~/.cache/i3d/weights`` when that is unset or not absolute."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    if configured:
        return Path(configured)
    if (PROJECT_WEIGHTS_DIR.parent / "pyproject.toml").is_file():
        return PROJECT_WEIGHTS_DIR
    cache = os.environ.get(CACHE_HOME_ENV, "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"  # XDG: a relative value is ignored
    return base / "i3d" / "weights"


def default_hub_dirs() -> tuple[Path, ...]:
    """Where TF-Hub keeps downloaded modules: ``$TFHUB_CACHE_DIR`` when set, else the usual places."""
    configured = os.environ.get(TFHUB_CACHE_ENV)
    if configured:
        return (Path(configured).expanduser(),)
    try:
        home = (Path.home() / ".cache" / "tfhub_modules",)
    except RuntimeError:  # no home folder to speak of
        home = ()
    return home + (Path(tempfile.gettempdir()) / "tfhub_modules",)


class _InMemoryWeightsFile(io.BytesIO):
    """What ``save_weights`` writes into: Keras takes a BytesIO for its HDF5 store, and checks
    only that the name (``str``) ends in ``.weights.h5``."""

    def __str__(self) -> str:
        return "in-memory.weights.h5"


def keras_weights_bytes(model) -> bytes:
    """``model.save_weights``' ``.weights.h5`` file, made in memory."""
    buffer = _InMemoryWeightsFile()
    model.save_weights(buffer)
    data = buffer.getvalue()
    if not data.startswith(HDF5_SIGNATURE):
        raise ValueError("Keras wrote no HDF5 data")
    return data
