"""Write a weight set's network out for other runtimes: ONNX, a TensorFlow SavedModel, OpenVINO IR, Keras,
LiteRT (TFLite).

Every model takes ``clip``, float32 ``(batch, frames, 224, 224, channels)`` in [-1, 1], with the batch
and time axes dynamic (any ``frames`` >= 9), and gives one output: ``logits`` (the set's classes, or a
head's own), or ``features`` (the 1024-d input of the logits layer). A head made by ``i3d train`` is
appended as one dense layer: its standardisation folded into the weights. LiteRT's file is the
exception to the dynamic axes: one clip of a fixed ``frames`` (see :mod:`i3d.runtime.litert`), in
float32, float16 weights or full-integer int8, with a ``model.json`` saying so beside it.

Each export checks itself as it is written: the exported file, loaded in its own runtime, runs the
sample clip (all of it, and its first 9 frames; LiteRT's its first ``frames``) and is compared with the
network the tool runs; the largest absolute difference and both top-1 classes go into
``<file>.check.json`` beside it. Files are written in a staging folder inside the target and moved
into it only when the check passes (a failed export stays in the staging folder the error names), and
are never replaced unless ``overwrite``. ONNX comes from tf2onnx, the IR from OpenVINO's converter,
LiteRT's file from TensorFlow's converter: maintained converters, not hand-written graphs.
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
from i3d.runtime.litert import DEFAULT_FRAMES, PRECISIONS, TOLERANCES
from i3d.weights.loading import LoadOptions, pretrained_network
from i3d.weights.sets import WeightSet, weight_set_by_name
from i3d.weights.store import WeightStore

MODEL_FORMATS = ("onnx", "saved_model", "openvino", "keras")
"""The runnable models with dynamic batch and time axes :func:`export_model` writes (``deepmind`` weights
come from :mod:`i3d.weights.checkpoint_writer`)."""
FIXED_FORMATS = ("tflite",)
"""The runnable models of one fixed clip shape (``frames`` in :class:`ExportOptions`)."""
TARGETS = {"onnx": ("model.onnx",), "saved_model": ("saved_model",), "openvino": ("model.xml", "model.bin"),
           "keras": ("model.keras",), "tflite": ("model.tflite", "model.json")}
"""What each format writes into the export folder (``saved_model`` is a folder), besides its check file."""
ENDPOINTS = ("logits", "features")
TOLERANCE = 1e-4
"""The largest absolute difference from the tool's own network an export may show on the sample."""
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    """What to export: the format (:data:`MODEL_FORMATS`, :data:`FIXED_FORMATS`), the output
    (:data:`ENDPOINTS`), and whether files already in the folder may be replaced. For ``tflite`` only:
    the clip's ``frames`` (None: 64), the ``precision`` and, for int8, a ``calibration`` folder of videos
    (None: the sample clip's windows)."""

    file_format: str = "onnx"
    endpoint: str = "logits"
    overwrite: bool = False
    frames: int | None = None
    precision: str = "fp32"
    calibration: Path | None = None

    def check(self) -> None:
        formats = MODEL_FORMATS + FIXED_FORMATS
        if self.file_format not in formats:
            raise OptionError("format", f"is {self.file_format!r}; choose from {', '.join(formats)}")
        if self.endpoint not in ENDPOINTS:
            raise OptionError("endpoint", f"is {self.endpoint!r}; choose from {', '.join(ENDPOINTS)}")
        if self.precision not in PRECISIONS:
            raise OptionError("precision", f"is {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.file_format not in FIXED_FORMATS:
            given = [name for name, value in (("frames", self.frames), ("calibration", self.calibration))
                     if value is not None] + (["precision"] if self.precision != "fp32" else [])
            if given:
                raise OptionError(given[0], f"applies to --format {', '.join(FIXED_FORMATS)} only; the "
                                            f"{self.file_format} model takes any number of frames, in float32")
        if self.frames is not None and self.frames < MIN_FRAMES:
            raise OptionError("frames", f"is {self.frames}; I3D needs at least {MIN_FRAMES}")
        if self.calibration is not None and self.precision != "int8":
            raise OptionError("calibration", "applies to --precision int8 only")

    @property
    def clip_frames(self) -> int | None:
        """The fixed clip length of a fixed-shape format (None: the time axis is dynamic)."""
        if self.file_format not in FIXED_FORMATS:
            return None
        return DEFAULT_FRAMES if self.frames is None else self.frames

    @property
    def tolerance(self) -> float:
        """The largest absolute difference from the network the export may show on the sample."""
        return TOLERANCES[self.precision] if self.file_format in FIXED_FORMATS else TOLERANCE


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


def _write_tflite(model, options: ExportOptions, stream, folder: Path, about: dict) -> None:
    """``model.tflite`` (converted at the options' frames and precision) and ``model.json`` describing it."""
    from i3d.preprocess.windows import VideoOptions
    from i3d.runtime.litert import calibration_clips, convert, litert_details

    frames, video = options.clip_frames, VideoOptions()
    calibration = calibration_clips(stream, frames, options.calibration) if options.precision == "int8" else ()
    (folder / "model.tflite").write_bytes(convert(model, frames, options.precision, calibration))
    details = litert_details(folder / "model.tflite")
    description = {"file": "model.tflite", **about, "precision": options.precision, "frames": frames,
                   "window": {"frames": frames, "fps": video.fps, "seconds": frames / video.fps, "crop": video.crop,
                              "made_by": "i3d.preprocess.windows.iter_windows (as i3d classify prepares a video)"},
                   "input": {"name": "clip", "value_range": [-1.0, 1.0], **details["input"]},
                   "output": {"name": options.endpoint, **details["output"]},
                   "calibration": (str(options.calibration) if options.calibration is not None else
                                   "the sample clip's windows") if options.precision == "int8" else None}
    (folder / "model.json").write_text(json.dumps(description, indent=2) + "\n")


def runtime_runner(file_format: str, path: str | os.PathLike):
    """A function running an exported model in its own runtime: clip (batch, T, 224, 224, C) -> output
    (LiteRT's: the one clip shape it was made for)."""
    path = str(path)
    if file_format == "tflite":
        from i3d.runtime.litert import litert_runner

        return litert_runner(path, threads=os.cpu_count())
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


def _self_check(file_format: str, path: Path, ours, sample: np.ndarray, endpoint: str, labels,
                clip_frames: int | None = None) -> dict:
    """Run the exported file on the sample and on its first frames (a fixed-shape file: its first
    ``clip_frames``); compare with the tool's network."""
    run = runtime_runner(file_format, path)
    runs = []
    for frames in (sample.shape[1], MIN_FRAMES) if clip_frames is None else (clip_frames,):
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
    if options.clip_frames is not None and options.clip_frames > sample.shape[1]:
        raise OptionError("frames", f"is {options.clip_frames}, more than the {sample.shape[1]} frames of "
                                    f"{sample_name} the export checks itself on; choose {sample.shape[1]} or fewer")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".i3d-export-", dir=folder))
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write there ({reason(err)}); choose another folder") from None
    bad = []
    try:
        model, ours = _keras_model(ws, store or WeightStore.from_environment(), load, options.endpoint, head)
        labels = head.classes if head is not None else ws.categories
        about = {"set": ws.name, "index_sha256": ws.index_sha256, "endpoint": options.endpoint,
                 "head": str(head.path) if head is not None else None,
                 "head_sha256": head.fingerprint() if head is not None else None}
        if options.file_format == "tflite":
            _write_tflite(model, options, ws.stream, staging, {**about, "stream": ws.stream.name, "classes": (
                list(labels) if options.endpoint == "logits" else None)})
        else:
            writer = {"onnx": _write_onnx, "saved_model": _write_saved_model, "openvino": _write_openvino,
                      "keras": _write_keras}[options.file_format]
            writer(model, ws.stream.channels, options.endpoint, staging)
        staged = staging / TARGETS[options.file_format][0]
        frames = options.clip_frames
        shape = [1 if frames else "batch", frames or "frames", 224, 224, ws.stream.channels]
        check = {"format": options.file_format, **about,
                 "input": {"name": "clip", "shape": shape, "min_frames": frames or MIN_FRAMES},
                 "output": options.endpoint, "sample": sample_name, "tolerance": options.tolerance,
                 **({"precision": options.precision} if frames else {}),
                 **_self_check(options.file_format, staged, ours, sample, options.endpoint, labels, frames)}
        bad = [run for run in check["runs"] if run["max_abs_difference"] > options.tolerance
               or ("top1" in run and run["top1"]["ours"] != run["top1"]["export"])]
        check["passed"] = not bad
        (staging / targets[-1].name).write_text(json.dumps(check, indent=2) + "\n")
        if not bad:  # only a checked export is installed: a failed one stays in the staging folder
            for target in targets:
                if os.path.lexists(target):
                    shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
                os.replace(staging / target.name, target)
    except OSError as err:
        raise OptionError("folder", f"{folder}: cannot write the export ({reason(err)}); choose another "
                                    "folder") from None
    finally:
        if not bad:
            shutil.rmtree(staging, ignore_errors=True)
    exported = ExportedModel(files=targets, check=check)
    if bad:
        raise WeightsError(f"{staged}: differs from the network by {exported.max_abs_difference:.3g} on "
                           f"{sample_name} (more than {options.tolerance:g}, or another top-1), so it was not "
                           f"installed in {folder}; it stays in {staging}, see {staging / targets[-1].name}")
    return exported
