"""The OpenVINO backend: the Keras network converted to OpenVINO's IR, compiled for the CPU.

Converting costs a TensorFlow import and a trace, so the IR is cached under the
store's ``openvino/`` folder, in a folder named by the weight set, the pinned
sha256 its weights are verified against, the sha256 of the files that define
the network, and the OpenVINO version. A manifest records each file's sha256;
an IR that does not verify is removed and rebuilt, never used. A cached IR is
loaded without importing TensorFlow at all, which is most of a cold start's cost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..files import sha256_file, usual_mode
from ..quiet import no_openvino_telemetry
from ..weights.loading import LoadOptions
from ..weights.sets import WeightSet
from ..weights.store import WeightStore
from .base import TwoHeadRunner

no_openvino_telemetry()  # before any `import openvino` below

IR_FORMAT = 2
PACKAGE = Path(__file__).resolve().parents[1]
NETWORK_FILES = ("model.py", "limits.py")
"""The files, under the ``i3d`` package, that define the network an IR is converted from."""


@lru_cache(maxsize=1)
def network_sha256() -> str:
    """sha256 over the files that define the network, so an IR made before a change to them is never reused."""
    digest = hashlib.sha256()
    for name in NETWORK_FILES:
        digest.update(f"{name}:{sha256_file(PACKAGE / name)}\n".encode())
    return digest.hexdigest()


def compile_config(hint: str = "LATENCY") -> dict[str, str]:
    """OpenVINO CPU settings: the performance hint (LATENCY or THROUGHPUT), float32 inference."""
    return {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}


def ir_dir(ws: WeightSet, store: WeightStore) -> Path:
    """The IR folder of ``ws`` for this network and this OpenVINO version."""
    import openvino

    version = openvino.get_version().split("-")[0]
    return store.openvino_dir / f"{ws.name}-{ws.index_sha256[:16]}-{network_sha256()[:12]}-ov{version}"


def valid_ir(ws: WeightSet, store: WeightStore) -> Path | None:
    """The cached IR's model.xml when it exists and verifies; a folder that does not is removed."""
    folder = ir_dir(ws, store)
    if not folder.exists():
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        intact = (manifest.get("format") == IR_FORMAT and manifest.get("weights_index_sha256") == ws.index_sha256
                  and manifest.get("network_sha256") == network_sha256()
                  and all(sha256_file(folder / name) == manifest["files"][name] for name in ("model.xml", "model.bin")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        intact = False
    if not intact:
        shutil.rmtree(folder, ignore_errors=True)  # stale or corrupt: rebuilt by the caller
        return None
    return folder / "model.xml"


def convert(keras_model, channels: int):
    """Convert a Keras I3D (weights included) to an OpenVINO model with dynamic batch and frames."""
    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about the input structure tracing uses
        return ov.convert_model(keras_model, input=[(-1, -1, 224, 224, channels)])


def save_ir(ov_model, ws: WeightSet, store: WeightStore) -> None:
    """Write the IR with its manifest into a staging folder, then move it into place; failures only warn."""
    import openvino as ov

    target = ir_dir(ws, store)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        print(f"warning: could not cache the OpenVINO model in {target}: {err}", file=sys.stderr)
        return
    try:
        os.chmod(staging, usual_mode(0o777))  # mkdtemp makes 0700; a shared weights folder needs the usual mode
        ov.save_model(ov_model, staging / "model.xml", compress_to_fp16=False)  # keep float32 weights
        manifest = {"format": IR_FORMAT, "weight_set": ws.name, "weights_index_sha256": ws.index_sha256,
                    "network_sha256": network_sha256(), "openvino": ov.get_version(),
                    "files": {name: sha256_file(staging / name) for name in ("model.xml", "model.bin")}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError as err:
        print(f"warning: could not cache the OpenVINO model in {target}: {err}", file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OpenVINORunner(TwoHeadRunner):
    """One stream compiled by OpenVINO for the CPU in float32, logits and features from one request."""

    backend = "openvino"

    def __init__(self, ov_model, source: str = "in memory", hint: str = "LATENCY") -> None:
        import openvino as ov

        self.source = source
        try:
            self.compiled = ov.Core().compile_model(ov_model, "CPU", compile_config(hint))
        except RuntimeError as err:
            raise WeightsError(f"OpenVINO could not compile the network: {err}") from None

    @classmethod
    def load(cls, ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
             hint: str = "LATENCY") -> OpenVINORunner:
        """The set's network from the IR cache, or converted from Keras (and cached) on the first run.

        A checkpoint named in ``load`` is always read, converted and not cached.
        """
        import openvino as ov

        xml = None if load.checkpoint is not None else valid_ir(ws, store)
        if xml is not None:
            return cls(ov.Core().read_model(xml), source=f"OpenVINO IR {xml.parent}", hint=hint)
        if load.progress:
            print(f"preparing {ws.name} for OpenVINO (once; cached in {store.openvino_dir})", file=sys.stderr)
        from ..model import with_features
        from .tensorflow import keras_model

        model, _ = keras_model(ws, store, load)
        ov_model = convert(with_features(model), ws.stream.channels)
        if load.checkpoint is None:
            save_ir(ov_model, ws, store)
        return cls(ov_model, source="converted from Keras", hint=hint)

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.compiled(clips)
        return np.asarray(result[0], dtype=np.float32), np.asarray(result[1], dtype=np.float32)
