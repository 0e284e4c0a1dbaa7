"""Write a weight set's network out for other runtimes: ONNX, a TensorFlow SavedModel, OpenVINO IR, Keras.

Every model takes ``clip``, float32 ``(batch, frames, 224, 224, channels)`` in [-1, 1], with the batch
and time axes dynamic (any ``frames`` >= 9), and gives one output: ``logits`` (the set's classes, or a
head's own), or ``features`` (the 1024-d input of the logits layer). A head made by ``i3d train`` is
appended as one dense layer: its standardisation folded into the weights.

Each export checks itself as it is written: the exported file, loaded in its own runtime, runs the
sample clip (all of it, and its first 9 frames) and is compared with the network the tool runs; the
largest absolute difference and both top-1 classes go into ``<file>.check.json`` beside it. Files
land whole (written in a hidden folder inside the target, then renamed) and are never replaced unless
``overwrite``. ONNX comes from tf2onnx, the IR from OpenVINO's converter: maintained converters, not
hand-written graphs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import OptionError, WeightsError
from i3d.files import reason
from i3d.heads import Head
from i3d.interrupts import keep_interrupts
from i3d.limits import MIN_FRAMES
from i3d.weights.loading import LoadOptions, pretrained_network
from i3d.weights.sets import WeightSet, weight_set_by_name
from i3d.weights.store import WeightStore

MODEL_FORMATS = ("onnx", "saved_model", "openvino", "keras")
"""The runnable models :func:`export_model` writes (``deepmind`` weights come from
:mod:`i3d.weights.checkpoint_writer`)."""
TARGETS = {"onnx": ("model.onnx",), "saved_model": ("saved_model",), "openvino": ("model.xml", "model.bin"),
           "keras": ("model.keras",)}
"""What each format writes into the export folder (``saved_model`` is a folder), besides its check file."""
ENDPOINTS = ("logits", "features")
TOLERANCE = 1e-4
"""The largest absolute difference from the tool's own network an export may show on the sample."""
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    """What to export: the format (:data:`MODEL_FORMATS`), the output (:data:`ENDPOINTS`), and whether
    files already in the folder may be replaced."""

    file_format: str = "onnx"
    endpoint: str = "logits"
    overwrite: bool = False

    def check(self) -> None:
        if self.file_format not in MODEL_FORMATS:
            raise OptionError("format", f"is {self.file_format!r}; choose from {', '.join(MODEL_FORMATS)}")
        if self.endpoint not in ENDPOINTS:
            raise OptionError("endpoint", f"is {self.endpoint!r}; choose from {', '.join(ENDPOINTS)}")


@dataclass(frozen=True)
class ExportedModel:
    """What an export wrote (the model's files, then its check file) and how it compared on the sample."""

    files: tuple[Path, ...]
    check: dict

    @property
    def max_abs_difference(self) -> float:
        return max(run["max_abs_difference"] for run in self.check["runs"])


def export_targets(folder: str | os.PathLike, file_format: str) -> tuple[Path, ...]:
    """The paths an export in ``file_format`` writes into ``folder``: the model's, then its check file."""
    names = TARGETS[file_format]
    return tuple(Path(folder) / name for name in names) + (Path(folder) / f"{names[0]}.check.json",)


def check_head_for(head: Head, ws: WeightSet) -> None:
    """Refuse a head that has no part for ``ws``'s stream, was trained on other weights, or is fine-tuned."""
    stream, where = ws.stream.name, head.path or "the head"
    if stream not in head.streams:
        raise OptionError("head", f"{where} was trained on {'+'.join(head.streams)} features, not {stream}; "
                                  "export a set of a stream it has")
    head.check_weight_set(stream, ws.name, ws.index_sha256)
    if head.tops:
        raise OptionError("head", f"{where} is fine-tuned (its own Mixed_5c): exports take linear heads only; "
                                  "train one without --fine-tune")


def _keras_model(ws: WeightSet, store: WeightStore, load: LoadOptions, endpoint: str, head: Head | None):
    """The Keras model to export and a function giving the tool's own answer for a clip to compare with."""
    from i3d.model import Network, build_network  # Keras, and so TensorFlow: only when exporting

    if head is None:
        model, _ = pretrained_network(ws, store, load, Network(outputs=(endpoint,), name=(
            ws.name if endpoint == "logits" else f"{ws.name}_features")))
        return model, lambda clip: model(clip, training=False).numpy()
    part = head.streams[ws.stream.name]
    weight = (part.weight / part.scale).astype(np.float32)  # (classes, 1024): standardising folded in
    bias = (part.bias - weight @ part.mean).astype(np.float32)
    model, _ = pretrained_network(ws, store, load, Network(outputs=("head",), name=f"{ws.name}_head"),
                                  linear_head=(weight, bias))
    features = build_network(Network(outputs=("features",)), base=model)
    return model, lambda clip: part.logits(features(clip, training=False).numpy())


def _write_onnx(model, channels: int, endpoint: str, folder: Path) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, None, 224, 224, channels), tf.float32, name="clip"),)

    @tf.function(input_signature=spec)
    def forward(clip):
        return {endpoint: model(clip, training=False)}

    with keep_interrupts():
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=ONNX_OPSET)
    for value in list(proto.graph.input) + list(proto.graph.output):  # name the dynamic axes
        dims = value.type.tensor_type.shape.dim
        for dim, name in zip(dims, ("batch", "frames") if value in proto.graph.input else ("batch",)):
            dim.dim_param = name
    onnx.checker.check_model(proto)
    (folder / "model.onnx").write_bytes(proto.SerializeToString())


def _write_saved_model(model, channels: int, endpoint: str, folder: Path) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda clip: {endpoint: model(clip, training=False)},
                         input_signature=[tf.TensorSpec((None, None, 224, 224, channels), tf.float32, name="clip")])
    with keep_interrupts():
        archive.write_out(str(folder / "saved_model"), verbose=False)


def _write_openvino(model, channels: int, endpoint: str, folder: Path) -> None:
    import openvino as ov

    from i3d.runtime.ir import convert

    converted = convert(model, channels)
    converted.outputs[0].get_tensor().set_names({endpoint})
    converted.inputs[0].get_tensor().set_names({"clip"})
    ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)


def _write_keras(model, channels: int, endpoint: str, folder: Path) -> None:
    model.save(str(folder / "model.keras"))


def runtime_runner(file_format: str, path: str | os.PathLike):
    """A function running an exported model in its own runtime: clip (batch, T, 224, 224, C) -> output."""
    path = str(path)
    if file_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda clip: session.run(None, {"clip": clip})[0]
    if file_format == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_default"]
        return lambda clip: next(iter(serve(clip=tf.constant(clip)).values())).numpy()
    if file_format == "openvino":
        from i3d.runtime.ov_core import ov_core

        compiled = ov_core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return lambda clip: compiled(clip)[0]
    import keras

    import i3d.model  # noqa: F401  (registers the network's own layers for deserialising)

    loaded = keras.saving.load_model(path)
    return lambda clip: np.asarray(loaded(clip, training=False))


def _self_check(file_format: str, path: Path, ours, sample: np.ndarray, endpoint: str, labels) -> dict:
    """Run the exported file on the sample and on its first frames; compare with the tool's network."""
    run = runtime_runner(file_format, path)
    runs = []
    for frames in (sample.shape[1], MIN_FRAMES):
        clip = np.ascontiguousarray(sample[:, :frames])
        want, got = ours(clip), np.asarray(run(clip))
        if got.shape != want.shape:
            raise WeightsError(f"{path}: gives an output of shape {got.shape}, not {want.shape}; export it again")
        entry = {"frames": frames, "max_abs_difference": float(np.max(np.abs(got - want)))}
        if endpoint == "logits":
            entry["top1"] = {"ours": labels[int(want[0].argmax())], "export": labels[int(got[0].argmax())]}
        runs.append(entry)
    return {"runs": runs}


def export_model(ws: WeightSet | str, folder: str | os.PathLike, options: ExportOptions = ExportOptions(), *,
                 head: Head | None = None, store: WeightStore | None = None, load: LoadOptions = LoadOptions(),
                 sample: np.ndarray | None = None, sample_name: str = "the cricket sample") -> ExportedModel:
    """Export ``ws``'s network (with ``head`` on top, if given) into ``folder`` and check it on ``sample``
    (default: DeepMind's cricket clip of the set's stream). Raises WeightsError when the export differs
    from the network by more than :data:`TOLERANCE` or gives another top-1 class."""
    from i3d.inputs.samples import sample_path

    options.check()
    ws = weight_set_by_name(ws) if isinstance(ws, str) else ws
    if head is not None:
        if options.endpoint == "features":
            raise OptionError("head", "gives logits; drop --head to export features, or use --endpoint logits")
        check_head_for(head, ws)
    folder = Path(folder)
    targets = export_targets(folder, options.file_format)
    existing = [path for path in targets if os.path.lexists(path)]
    if existing and not options.overwrite:
        raise OptionError("overwrite", f"was not given and {existing[0]} exists; add --overwrite to replace it, "
                                       "or choose another folder")
    if sample is None:
        path = sample_path(ws.stream.name)
        if not path.is_file():
            raise OptionError("sample", f"{path} is missing: run `python -m i3d samples` first (the export checks "
                                        "itself on it)")
        sample = np.load(path, allow_pickle=False)
    sample = np.asarray(sample, np.float32).reshape((1,) + np.shape(sample)[-4:])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".i3d-export-", dir=folder))
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write there ({reason(err)}); choose another folder") from None
    try:
        model, ours = _keras_model(ws, store or WeightStore.from_environment(), load, options.endpoint, head)
        writer = {"onnx": _write_onnx, "saved_model": _write_saved_model, "openvino": _write_openvino,
                  "keras": _write_keras}[options.file_format]
        writer(model, ws.stream.channels, options.endpoint, staging)
        labels = head.classes if head is not None else ws.categories
        staged = staging / TARGETS[options.file_format][0]
        check = {"format": options.file_format, "set": ws.name, "index_sha256": ws.index_sha256,
                 "endpoint": options.endpoint, "head": str(head.path) if head is not None else None,
                 "head_sha256": head.fingerprint() if head is not None else None,
                 "input": {"name": "clip", "shape": ["batch", "frames", 224, 224, ws.stream.channels],
                           "min_frames": MIN_FRAMES},
                 "output": options.endpoint, "sample": sample_name, "tolerance": TOLERANCE,
                 **_self_check(options.file_format, staged, ours, sample, options.endpoint, labels)}
        bad = [run for run in check["runs"] if run["max_abs_difference"] > TOLERANCE
               or ("top1" in run and run["top1"]["ours"] != run["top1"]["export"])]
        check["passed"] = not bad
        (staging / targets[-1].name).write_text(json.dumps(check, indent=2) + "\n")
        for target in targets:
            if os.path.lexists(target):
                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
            os.replace(staging / target.name, target)
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write the export ({reason(err)}); choose another "
                                    "folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    exported = ExportedModel(files=targets, check=check)
    if bad:
        raise WeightsError(f"{targets[0]}: differs from the network by {exported.max_abs_difference:.3g} on "
                           f"{sample_name} (more than {TOLERANCE:g}, or another top-1); see {targets[-1]}")
    return exported
