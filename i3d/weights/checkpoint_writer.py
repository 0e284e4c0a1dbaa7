"""Write a weight set out again: as DeepMind's checkpoint files, or as a Keras ``.weights.h5``.

A DeepMind export writes ``model.ckpt.index`` and ``model.ckpt.data-00000-of-00001``
with TensorFlow's own checkpoint writer, in the set's layout (names, shapes;
optimizer slots are not part of the network and are not written). The writer
puts tensors in the data file in the order it is given them, one after the
other, and DeepMind's files hold them in name order, so tensors are handed
over sorted by name: for the four Kinetics-400 sets the files come out as
DeepMind published them, and for rgb_kinetics the data file's git blob id is
the one pinned in :mod:`i3d.weights.sets` -- the network the tool runs carries
DeepMind's published file, byte for byte.

Files land whole: they are written into a hidden folder inside the target and
renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import OptionError
from i3d.files import atomic_path, git_blob_id, reason, sha256_file, usual_mode
from i3d.weights.checkpoint import DATA_SUFFIX
from i3d.weights.loading import LoadOptions, build_pretrained, model_tensors
from i3d.weights.sets import CHECKPOINT_FILES, WeightSet, weight_set_by_name
from i3d.weights.store import WeightStore, keras_weights_bytes

FORMATS = ("deepmind", "keras")
"""What :func:`export_weights` writes: DeepMind's checkpoint files, or the Keras weights file."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and for a checkpoint how its data file compares with DeepMind's.

    ``published`` is True when the data file's git blob id is the set's pinned one,
    False when it differs, and None when no comparison applies: a Keras file, or a
    set whose published data file also holds optimizer slots (Kinetics-600).
    """

    files: tuple[Path, ...]
    data_sha256: str | None = None
    data_git_blob: str | None = None
    published: bool | None = None


def _prepare(folder: Path) -> Path:
    """The target folder, made when missing; OptionError in one line when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write there ({reason(err)}); choose another folder") from None
    return folder


def write_checkpoint(tensors: Mapping[str, np.ndarray], ws: WeightSet, folder: str | os.PathLike) -> Exported:
    """Write the model's ``tensors`` (keyed by :func:`i3d.model.checkpoint_key`) as ``folder/model.ckpt.*``
    in the set's DeepMind layout.

    Returns the files with the data file's sha256, git blob id, and whether that
    is DeepMind's published file.
    """
    from i3d.quiet import silence_tensorflow

    silence_tensorflow()
    import tensorflow as tf

    folder = _prepare(Path(folder))
    named = ws.layout.from_model(tensors, ws.stream.scope)
    names = sorted(named)  # the writer stores tensors in the order given; DeepMind's files are in name order
    try:
        staging = Path(tempfile.mkdtemp(prefix=".export-", suffix=".tmp", dir=folder))
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write there ({reason(err)}); choose another folder") from None
    try:
        try:
            tf.raw_ops.SaveV2(prefix=str(staging / "model.ckpt"), tensor_names=names,
                              shape_and_slices=[""] * len(names), tensors=[named[n] for n in names])
        except Exception as err:  # TensorFlow reports a full disk or a vanished folder as its own errors
            raise OptionError("folder", f"{folder}: cannot write the checkpoint ({reason(err)})") from None
        written = []
        for filename in (CHECKPOINT_FILES[1], CHECKPOINT_FILES[0]):  # the index last: it names the data
            os.chmod(staging / filename, usual_mode())
            os.replace(staging / filename, folder / filename)
            written.append(folder / filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    data = folder / f"model.ckpt{DATA_SUFFIX}"
    blob = git_blob_id(data)
    comparable = ws.data_git_blob is not None and not ws.layout.slots
    return Exported(files=tuple(reversed(written)), data_sha256=sha256_file(data), data_git_blob=blob,
                    published=(blob == ws.data_git_blob) if comparable else None)


def write_keras(model, ws: WeightSet, folder: str | os.PathLike) -> Exported:
    """Write ``model``'s weights as ``folder/<set>.weights.h5`` (what ``model.load_weights`` reads)."""
    folder = _prepare(Path(folder))
    target = folder / f"{ws.name}.weights.h5"
    data = keras_weights_bytes(model)
    try:
        with atomic_path(target, suffix=".weights.h5") as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise OptionError("folder", f"{target}: cannot write it ({reason(err)}); choose another folder") from None
    return Exported(files=(target,), data_sha256=hashlib.sha256(data).hexdigest())


def rebuilt_data_file(model, ws: WeightSet) -> Exported:
    """The data file ``model``'s weights make in the set's DeepMind layout, written to a temporary folder
    and measured (sha256, git blob id, whether it is DeepMind's published file); the folder is removed."""
    with tempfile.TemporaryDirectory(prefix="i3d-rebuild-") as tmp:
        return write_checkpoint(model_tensors(model, ws.stream.scope), ws, tmp)


def export_targets(ws: WeightSet, folder: str | os.PathLike, file_format: str = "deepmind") -> tuple[Path, ...]:
    """The files an export of ``ws`` in ``file_format`` writes into ``folder``."""
    folder = Path(folder)
    if file_format == "keras":
        return (folder / f"{ws.name}.weights.h5",)
    return tuple(folder / name for name in CHECKPOINT_FILES)


def export_weights(ws: WeightSet | str, folder: str | os.PathLike, file_format: str = "deepmind", *,
                   store: WeightStore | None = None, load: LoadOptions = LoadOptions(),
                   overwrite: bool = False) -> Exported:
    """Load the set ``ws`` (a WeightSet, or a name such as ``rgb_kinetics`` or ``rgb_scratch``) verified, from
    wherever ``store`` finds it, and write it into ``folder`` in ``file_format`` (:data:`FORMATS`).

    ``deepmind`` writes ``model.ckpt.index`` and ``model.ckpt.data-00000-of-00001``, a
    checkpoint any TensorFlow code reading DeepMind's files can read; ``keras`` writes
    ``<set>.weights.h5``. ``store`` defaults to ``$I3D_WEIGHTS_DIR`` or the project's
    ``weights/``. Files already in ``folder`` are never replaced unless ``overwrite``.
    """
    if file_format not in FORMATS:
        raise OptionError("format", f"is {file_format!r}; choose from {', '.join(FORMATS)}")
    ws = weight_set_by_name(ws) if isinstance(ws, str) else ws
    existing = [path for path in export_targets(ws, folder, file_format) if os.path.lexists(path)]
    if existing and not overwrite:
        raise OptionError("overwrite", f"was not given and {existing[0]} exists; add --overwrite to replace it, "
                                       "or choose another folder")
    _prepare(Path(folder))  # before seconds of loading
    store = store or WeightStore.from_environment()
    model = build_pretrained(ws, store, load)
    if file_format == "keras":
        return write_keras(model, ws, folder)
    return write_checkpoint(model_tensors(model, ws.stream.scope), ws, folder)
