"""The OpenVINO IR cache: the Keras network converted to OpenVINO's IR once, kept verified on disk.

Converting costs a TensorFlow import and a trace, so the IR is cached under the
store's ``openvino/`` folder, in a folder named by the weight set, the pinned
sha256 its weights are verified against, the sha256 of the files that define
the network, and the OpenVINO version. A manifest records each file's sha256;
an IR that does not verify is discarded and rebuilt, never used. A cached IR is
loaded without importing TensorFlow at all, which is most of a cold start's cost.

Several processes may share the folder, so an IR folder is never changed in place:

- it is written into a hidden staging folder, then renamed onto its name only if no
  folder is there (a process that lost the race keeps the other's and drops its own);
- a stale or corrupt one is renamed to a hidden name first, then deleted there;
- a reader opens the folder once and reads model.xml and model.bin into memory, checks
  those very bytes against the manifest, and hands them to OpenVINO, so what it checked
  is what it runs even if the folder is replaced meanwhile.

The cache is best effort: a folder that cannot be written (full, read-only, any error
from OpenVINO) costs one warning line and the run goes on with the model in memory.

Models derived from the float32 IR (the int8 one of :mod:`i3d.runtime.quantize`) are cached
the same way, as a :class:`Variant`: its folder has its own name, and its manifest records the
variant's fields (calibration checksum, NNCF version...), which must match for it to be used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.files import sha256_file, usual_mode, warn_not_written
from i3d.interrupts import keep_interrupts
from i3d.network import network_sha256
from i3d.quiet import no_openvino_telemetry
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore

no_openvino_telemetry()  # before any `import openvino` below

IR_FORMAT = 2
IR_FILES = ("model.xml", "model.bin")
READ_ATTEMPTS = 10
"""How often a reader starts again on an IR folder that was moved while it read it."""
DIRECTORY_HANDLES = hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd
"""Whether files can be opened relative to an open folder (not on Windows)."""


@dataclass(frozen=True)
class Variant:
    """A model derived from the float32 IR: ``tag`` goes into its folder's name, ``fields`` into its
    manifest, and a folder whose manifest does not hold the same fields is never used."""

    tag: str
    fields: tuple[tuple[str, str], ...] = ()


def ir_dir(ws: WeightSet, store: WeightStore, variant: Variant | None = None) -> Path:
    """The IR folder of ``ws`` (or of its ``variant``) for this network and this OpenVINO version."""
    import openvino

    version = openvino.get_version().split("-")[0]
    tag = "" if variant is None else f"-{variant.tag}"
    return store.openvino_dir / f"{ws.name}-{ws.index_sha256[:16]}-{network_sha256()[:12]}{tag}-ov{version}"


class _Moved(Exception):
    """The IR folder was moved or deleted while it was being read: read it again."""


def _identity(path: Path | int) -> tuple[int, int, int] | None:
    """Which folder ``path`` (or an open descriptor) is now, or None when there is none.

    Device and inode, and the modification time too: an inode freed by a deleted folder can
    be reused at once by a new one, never with the same time. (An installed IR folder is never
    modified, so its time does not change.)
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mtime_ns


def _intact(manifest, blobs: dict[str, bytes], ws: WeightSet, variant: Variant | None = None) -> bool:
    """Whether ``blobs`` are the IR files ``manifest`` records, for this weight set, network and variant."""
    try:
        return (manifest.get("format") == IR_FORMAT and manifest.get("weights_index_sha256") == ws.index_sha256
                and manifest.get("network_sha256") == network_sha256()
                and manifest.get("variant") == (None if variant is None else dict(variant.fields))
                and all(hashlib.sha256(blobs[name]).hexdigest() == manifest["files"][name] for name in IR_FILES))
    except (KeyError, TypeError, AttributeError):
        return False


def _read_folder(folder: Path, ws: WeightSet, variant: Variant | None = None
                 ) -> tuple[tuple[int, int, int] | None, dict[str, bytes] | None]:
    """(the folder's identity, its model.xml and model.bin if they verify against its manifest, else None).

    Every file is opened through one handle on the folder, so all of them come from the
    same folder even if it is renamed meanwhile. OSError when the folder cannot be opened;
    :class:`_Moved` when a file is missing because the folder was moved while it was read.
    """
    if not DIRECTORY_HANDLES:  # Windows: by path, still verified, but a folder replaced meanwhile reads as corrupt
        os.listdir(folder)  # OSError when there is none
        dir_fd = None
    else:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        identity = _identity(folder if dir_fd is None else dir_fd)

        def read(name: str) -> bytes:
            if dir_fd is None:
                return (folder / name).read_bytes()
            with open(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb") as handle:
                return handle.read()

        try:
            manifest = json.loads(read("manifest.json"))
            blobs = {name: read(name) for name in IR_FILES}
        except FileNotFoundError:
            if _identity(folder) != identity:
                raise _Moved from None
            return identity, None  # incomplete
        except ValueError:  # a manifest that is not JSON
            return identity, None
        return identity, blobs if _intact(manifest, blobs, ws, variant) else None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _discard(folder: Path, identity: tuple[int, int, int] | None = None) -> bool:
    """Move ``folder`` aside to a unique hidden name with one rename, then delete it there; best effort.

    Never deleted in place, so no reader sees it half gone. With ``identity``, only that very
    folder goes: one another process has put in its place meanwhile stays. False when
    nothing was discarded (a read-only weights folder, say): the caller treats it as absent.
    """
    if identity is not None and _identity(folder) != identity:
        return False
    trash = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.discarded")
    try:
        os.rename(folder, trash)
    except OSError:
        return False
    moved = _identity(trash)  # (some file systems may touch a renamed folder's time: device and inode only)
    if identity is not None and (moved is None or moved[:2] != identity[:2]):  # replaced since the check
        try:
            os.rename(trash, folder)  # put it back, unless yet another folder is there now
            return False
        except OSError:
            pass
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
    return True


def read_ir(ws: WeightSet, store: WeightStore, variant: Variant | None = None) -> tuple[Path, bytes, bytes] | None:
    """(folder, model.xml, model.bin) of the set's cached IR (or its variant's), read once and verified, or None.

    A folder that does not verify is discarded (when it can be: in a read-only weights
    folder it is only passed over); one this process cannot read is treated as absent.
    """
    folder = ir_dir(ws, store, variant)
    for _ in range(READ_ATTEMPTS):
        try:
            identity, blobs = _read_folder(folder, ws, variant)
        except _Moved:
            continue
        except NotADirectoryError:  # a stray file where the folder belongs
            _discard(folder)
            return None
        except OSError:  # no folder, or an unreadable one: absent
            return None
        if blobs is None:  # stale or corrupt: rebuilt by the caller
            _discard(folder, identity)
            return None
        return folder, blobs["model.xml"], blobs["model.bin"]
    return None


def valid_ir(ws: WeightSet, store: WeightStore) -> Path | None:
    """The cached IR's model.xml when it exists and verifies; a folder that does not is discarded.

    To run the IR, use :func:`read_ir` (what :meth:`OpenVINORunner.load` does): it gives the
    bytes that were verified, where reading model.xml again could meet a folder replaced since.
    """
    found = read_ir(ws, store)
    return None if found is None else found[0] / "model.xml"


def ir_model(xml: bytes, weights: bytes):
    """An OpenVINO model from the IR's bytes in memory (OpenVINO copies the weights)."""
    import openvino as ov

    from i3d.runtime.ov_core import ov_core

    return ov_core().read_model(model=xml, weights=ov.Tensor(np.frombuffer(weights, np.uint8)))


OUTPUT_NAMES = ("logits", "features")
"""The names a converted two-output network's outputs carry: its :data:`i3d.model.OUTPUTS`, in this order."""


def convert(keras_model, channels: int):
    """Convert a Keras I3D (weights included) to an OpenVINO model with dynamic batch and frames."""
    import openvino as ov

    with warnings.catch_warnings(), keep_interrupts():
        warnings.simplefilter("ignore")  # Keras warns about the input structure tracing uses
        model = ov.convert_model(keras_model, input=[(-1, -1, 224, 224, channels)])
    if len(model.outputs) == 2:  # OpenVINO lists outputs by their Keras names' text order, not the model's
        for tensor, name in zip(keras_model.outputs, OUTPUT_NAMES):
            [port] = [port for port in model.outputs if tensor.name in port.get_names()]
            port.get_tensor().set_names({name})
    return model


def _install(staging: Path, target: Path) -> bool:
    """Rename the complete ``staging`` folder to ``target`` unless a folder is there already; True if it was."""
    try:
        os.rename(staging, target)  # refused when target is a non-empty folder
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def _disk_full_error(err: Exception, folder: Path) -> Exception:
    """``err``, or ENOSPC in its stead when the disk is full: OpenVINO says "basic_ios::clear: iostream error"."""
    try:
        full = not isinstance(err, OSError) and shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else err


def save_ir(ov_model, ws: WeightSet, store: WeightStore, variant: Variant | None = None) -> Path | None:
    """Write the IR with its manifest into a staging folder, then move it into place; returns its folder.

    If another process installed the IR meanwhile, that one stays and this one is dropped. Any
    failure is one warning line and None: the caller goes on with ``ov_model`` in memory. No
    staging folder is left behind, whatever happens (Ctrl-C included, which is not caught).
    """
    import openvino as ov

    target = ir_dir(ws, store, variant)
    staging = None
    try:
        with keep_interrupts():
            store.remove_stale_temporaries()
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            os.chmod(staging, usual_mode(0o777))  # mkdtemp makes 0700; a shared weights folder needs the usual mode
            ov.save_model(ov_model, staging / "model.xml", compress_to_fp16=False)  # keep float32 weights
            manifest = {"format": IR_FORMAT, "weight_set": ws.name, "weights_index_sha256": ws.index_sha256,
                        "network_sha256": network_sha256(), "openvino": ov.get_version(),
                        "variant": None if variant is None else dict(variant.fields),
                        "files": {name: sha256_file(staging / name) for name in IR_FILES}}
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if not _install(staging, target):
                # a folder is there: another process's IR (kept, ours is dropped), or a stale one that
                # read_ir discards, making room for ours
                if read_ir(ws, store, variant) is not None:
                    return target
                if not _install(staging, target):
                    raise FileExistsError(errno.EEXIST, "another folder is in the way", str(target))
            staging = None
            return target
    except Exception as err:  # best effort: the run goes on with the model in memory
        warn_not_written(f"OpenVINO model cache {target}", _disk_full_error(err, target.parent))
        return None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def float_model(ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions()) -> tuple[object, str]:
    """(the set's float32 OpenVINO model, where it came from): the IR cache, or converted from Keras
    (and cached) on the first run. A checkpoint named in ``load`` is always read, converted and not cached."""
    found = None if load.checkpoint is not None else read_ir(ws, store)
    if found is not None:
        folder, xml, weights = found
        return ir_model(xml, weights), f"OpenVINO IR {folder}"
    if load.progress:
        print(f"preparing {ws.name} for OpenVINO (once; cached in {store.openvino_dir})", file=sys.stderr)
    from i3d.model import Network  # Keras, and so TensorFlow: only when there is no IR to read
    from i3d.runtime.tensorflow import keras_model

    with keep_interrupts():  # TensorFlow and OpenVINO may turn Ctrl-C into another exception
        model, _ = keras_model(ws, store, load, Network(outputs=OUTPUT_NAMES))
        ov_model = convert(model, ws.stream.channels)
    if load.checkpoint is None:
        save_ir(ov_model, ws, store)
    return ov_model, "converted from Keras"
