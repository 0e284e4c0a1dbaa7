"""Run a pretrained I3D stream on clips: TensorFlow or OpenVINO, one interface.

The Keras model in :mod:`i3d.model` is the one definition of the network. The
OpenVINO backend converts it, with its verified weights, to OpenVINO's IR and
caches the IR under ``weights/openvino/``, keyed by weight set, the sha256 of
the weights it was made from and the OpenVINO version, and checked against the
sha256 of ``model.py`` so a change to the network never meets an old IR. A
cached IR is loaded without importing TensorFlow at all, which is most of a
cold start's cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import UsageError, WeightsError
from .files import sha256_file
from .weight_sets import WeightSet, weights_dir
from .weights import recorded_weights_sha256

BACKENDS = ("auto", "openvino", "tensorflow")
IR_FORMAT = 1


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, judged without importing TensorFlow."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def resolve_backend(name: str = "auto") -> str:
    """``auto`` is TensorFlow when a GPU is present, else OpenVINO when installed, else TensorFlow."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    openvino_installed = importlib.util.find_spec("openvino") is not None
    if name == "openvino" and not openvino_installed:
        raise UsageError("the openvino backend needs `pip install openvino`")
    if name != "auto":
        return name
    return "openvino" if openvino_installed and not gpu_present() else "tensorflow"


def _keras_model(ws: WeightSet, mixed_precision: bool = False, **load_kwargs):
    from .quiet import silence_tensorflow

    silence_tensorflow()
    import keras
    import tensorflow as tf

    from .weights import build_pretrained

    if mixed_precision and not tf.config.list_physical_devices("GPU"):
        raise UsageError("--mixed-precision needs a GPU: TensorFlow has no float16 3D pooling on the CPU")
    tf.config.experimental.enable_tensor_float_32_execution(mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        return build_pretrained(ws, **load_kwargs)
    finally:
        keras.mixed_precision.set_global_policy("float32")


class TensorFlowStream:
    """One stream's Keras model, called through a traced ``tf.function`` (graph mode).

    TF32 is off unless ``mixed_precision`` is asked for (float16 compute on GPUs;
    it changes logits, so it is off by default).
    """

    backend = "tensorflow"

    def __init__(self, ws: WeightSet, mixed_precision: bool = False, **load_kwargs) -> None:
        self.weight_set = ws
        self.model = _keras_model(ws, mixed_precision, **load_kwargs)
        import tensorflow as tf

        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits (num_classes,) of a validated (1, T, 224, 224, C) float32 clip."""
        return self.logits_batch(clip)[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(clips), dtype=np.float32)


def ir_cache_dir(ws: WeightSet, weights_sha256: str) -> Path:
    import openvino

    version = openvino.get_version().split("-")[0]
    return weights_dir() / "openvino" / f"{ws.name}-{weights_sha256[:16]}-ov{version}"


def model_source_sha256() -> str:
    """sha256 of the network's definition, so an IR made before a change to it is never reused."""
    return sha256_file(Path(__file__).with_name("model.py"))


def valid_ir(ws: WeightSet) -> Path | None:
    """The cached IR's model.xml when it exists, is intact and was made from the current weights."""
    weights_sha = recorded_weights_sha256(ws)
    if weights_sha is None:
        return None
    folder = ir_cache_dir(ws, weights_sha)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        intact = (manifest.get("format") == IR_FORMAT and manifest.get("weights_sha256") == weights_sha
                  and manifest.get("model_source_sha256") == model_source_sha256()
                  and all(sha256_file(folder / name) == manifest["files"][name] for name in ("model.xml", "model.bin")))
    except (OSError, ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        shutil.rmtree(folder, ignore_errors=True)  # stale or corrupt: rebuilt by the caller
        return None
    return folder / "model.xml"


def convert_to_openvino(keras_model, channels: int):
    """Convert the Keras model (weights included) to an OpenVINO model with dynamic batch and frames."""
    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about the input structure tracing uses
        return ov.convert_model(keras_model, input=[(-1, -1, 224, 224, channels)])


def _save_ir(ov_model, ws: WeightSet) -> None:
    import openvino as ov

    weights_sha = recorded_weights_sha256(ws)
    if weights_sha is None:
        return
    target = ir_cache_dir(ws, weights_sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        ov.save_model(ov_model, staging / "model.xml", compress_to_fp16=False)  # keep float32 weights
        manifest = {"format": IR_FORMAT, "weight_set": ws.name, "weights_sha256": weights_sha,
                    "model_source_sha256": model_source_sha256(),
                    "openvino": ov.get_version(),
                    "files": {name: sha256_file(staging / name) for name in ("model.xml", "model.bin")}}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError as err:
        print(f"warning: could not cache the OpenVINO model in {target}: {err}", file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OpenVINOStream:
    """One stream compiled by OpenVINO for the CPU, in float32 (``hint``: LATENCY or THROUGHPUT)."""

    backend = "openvino"

    def __init__(self, ws: WeightSet, hint: str = "LATENCY", checkpoint=None, **load_kwargs) -> None:
        import openvino as ov

        self.weight_set = ws
        self.core = ov.Core()
        xml = None if checkpoint is not None else valid_ir(ws)
        if xml is not None:
            self.source = f"OpenVINO IR {xml.parent}"
            model = self.core.read_model(xml)
        else:
            if load_kwargs.get("progress"):
                print(f"preparing {ws.name} for OpenVINO (once; cached in {weights_dir() / 'openvino'})",
                      file=sys.stderr)
            keras_model = _keras_model(ws, checkpoint=checkpoint, **load_kwargs)
            model = convert_to_openvino(keras_model, ws.channels)
            self.source = "converted from Keras"
            if checkpoint is None:
                _save_ir(model, ws)
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
        try:
            self.compiled = self.core.compile_model(model, "CPU", config)
        except RuntimeError as err:
            raise WeightsError(f"OpenVINO could not compile {ws.name}: {err}") from None

    def logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits (num_classes,) of a validated (1, T, 224, 224, C) float32 clip."""
        return self.logits_batch(clip)[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(clips)[0], dtype=np.float32)


def open_stream(ws: WeightSet, backend: str = "auto", **kwargs):
    """A runner for ``ws`` on the chosen backend; kwargs go to the runner and the weight loader."""
    chosen = resolve_backend(backend)
    if chosen == "openvino":
        kwargs.pop("mixed_precision", None)
        return OpenVINOStream(ws, **kwargs)
    kwargs.pop("hint", None)
    return TensorFlowStream(ws, **kwargs)
