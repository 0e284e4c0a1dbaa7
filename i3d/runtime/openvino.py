"""The OpenVINO backend: one stream's network compiled by OpenVINO for the CPU.

The model comes from the IR cache of :mod:`i3d.runtime.ir` (float32), or from the int8
cache of :mod:`i3d.runtime.quantize`; this module compiles it and runs it.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from i3d.errors import WeightsError
from i3d.quiet import no_openvino_telemetry
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore
from i3d.runtime.base import TwoHeadRunner
from i3d.runtime.ir import OUTPUT_NAMES, float_model
from i3d.runtime.ov_core import ov_core

no_openvino_telemetry()  # before any `import openvino` below

INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""OpenVINO's inference-precision hint per precision; int8 layers come from the quantised model itself,
and what they do not cover (pooling, softmax) stays float32."""
RUNTIME_PRECISIONS = {"u8": "int8", "i8": "int8", "bf16": "bf16", "f32": "fp32", "f16": "fp16"}


def compile_config(hint: str = "LATENCY", precision: str = "fp32") -> dict[str, str]:
    """OpenVINO CPU settings: the performance hint (LATENCY or THROUGHPUT) and the inference precision
    (float32 unless ``precision`` is bf16: OpenVINO's own default on CPUs with bf16 is bf16, not float32)."""
    return {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS[precision]}


def native_bf16() -> bool:
    """Whether OpenVINO runs bf16 natively on this CPU (AVX512_BF16 or AMX); elsewhere it runs float32."""
    return "BF16" in ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def precision_used(compiled) -> str:
    """The precision the compiled model's convolutions (nearly all of I3D's work) run in, read from
    OpenVINO's runtime graph: fp32, bf16, int8, or ``mixed (...)`` when they differ."""
    counts = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if str(info["layerType"].astype(str)) == "Convolution":
            runtime = str(info["runtimePrecision"].astype(str)).lower()
            counts[RUNTIME_PRECISIONS.get(runtime, runtime)] += 1
    if len(counts) == 1:
        return next(iter(counts))
    return "mixed (" + ", ".join(f"{n} {name}" for name, n in counts.most_common()) + ")"


STEP_NAMES = ("i3d_step_logits", "i3d_step_features")
"""The names the per-step outputs get (added to the model before it is compiled)."""


def add_step_outputs(ov_model) -> tuple[int, int] | None:
    """Give ``ov_model`` (changed in place: pass a clone) two more outputs: what its logits and features are means over
    time of. Returns their time axes, or None when an output is not such a mean (then it is left as it is).

    Found by the graph's shape: each output is a ReduceMean whose first reduced axis is time (the
    converted network is channels-first inside, so the axes are read off the mean itself).
    """
    outputs = list(ov_model.outputs)
    if len(outputs) != 2:
        return None
    order = [next((i for i, port in enumerate(outputs) if name in port.get_names()), default)
             for name, default in zip(OUTPUT_NAMES, (0, 1))]  # IRs cached unnamed: as listed
    means = [outputs[i].get_node().input_value(0).get_node() for i in order]
    if any(mean.get_type_name() != "ReduceMean" for mean in means):
        return None
    axes = []
    for mean in means:
        rank = mean.input_value(0).get_partial_shape().rank.get_length()
        reduced = sorted(int(a) % rank for a in mean.input_value(1).get_node().get_data().reshape(-1))
        axes.append(reduced[0])
    for mean, name in zip(means, STEP_NAMES):
        [port] = ov_model.add_outputs(mean.input_value(0))
        port.get_tensor().add_names({name})
    return axes[0], axes[1]


def _steps_last(values: np.ndarray, time_axis: int) -> np.ndarray:
    """Per-step values as (N, S, channels): time second, the channels and 1x1 space flattened."""
    values = np.moveaxis(np.asarray(values, dtype=np.float32), time_axis, 1)
    return values.reshape(values.shape[0], values.shape[1], -1)


class OpenVINORunner(TwoHeadRunner):
    """One stream compiled by OpenVINO for the CPU, logits and features from one request.

    ``precision`` is what was asked for; :attr:`precision` afterwards is what the compiled
    model's convolutions run in, read from OpenVINO (a CPU without bf16 runs float32, with a warning).
    ``head_fingerprint`` names the fine-tuned head whose network this is (None: Kinetics').

    Threads may share the runner: calling a compiled model uses its one implicit infer request,
    which is not for concurrent threads, so the runner makes one call at a time.
    """

    backend = "openvino"

    def __init__(self, ov_model, source: str = "in memory", hint: str = "LATENCY", precision: str = "fp32",
                 calibration_sha256: str | None = None, head_fingerprint: str | None = None) -> None:
        self.source = source
        self.calibration_sha256 = calibration_sha256  # int8: what it was calibrated on
        self.head_fingerprint = head_fingerprint
        self._lock = threading.Lock()
        ov_model = ov_model.clone()  # the caller's model keeps its two outputs (2 ms; the weights are shared)
        self._step_axes = add_step_outputs(ov_model)
        try:
            self.compiled = ov_core().compile_model(ov_model, "CPU", compile_config(hint, precision))
        except RuntimeError as err:
            raise WeightsError(f"OpenVINO could not compile the network: {err}") from None
        self.precision = precision_used(self.compiled)
        names = [port.get_names() for port in self.compiled.outputs]
        self._order = tuple(next((i for i, n in enumerate(names) if name in n), default)
                            for name, default in zip(OUTPUT_NAMES, (0, 1)))  # IRs cached unnamed: as listed
        self._step_order = tuple(next(i for i, n in enumerate(names) if name in n) for name in STEP_NAMES
                                 ) if self._step_axes is not None else None
        if precision != "fp32" and self.precision != precision:
            why = (" (it has no AVX512_BF16 or AMX)" if precision == "bf16" and not native_bf16() else "")
            warnings.warn(f"precision {precision} was asked for, but this CPU{why} runs the network in "
                          f"{self.precision}", stacklevel=2)

    @classmethod
    def load(cls, ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(), hint: str = "LATENCY",
             precision: str = "fp32", calibration: Path | None = None) -> OpenVINORunner:
        """The set's network in ``precision``: float32 from the IR cache (converted from Keras and cached on
        the first run), or int8 from its own cache (quantised and cached on the first run, calibrated on
        the sample clips or on the videos in ``calibration``)."""
        if precision != "int8":
            model, source = float_model(ws, store, load)
            return cls(model, source=source, hint=hint, precision=precision)
        from i3d.runtime.quantize import int8_model

        model, source, calibration_sha256 = int8_model(ws, store, load, calibration)
        return cls(model, source=source, hint=hint, precision=precision, calibration_sha256=calibration_sha256)

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            result = self.compiled(clips)
        logits, features = self._order
        return np.asarray(result[logits], dtype=np.float32), np.asarray(result[features], dtype=np.float32)

    def step_outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The per-step logits and pooled features the two outputs are means of (one forward pass)."""
        if self._step_order is None:
            return super().step_outputs(clips)
        with self._lock:
            result = self.compiled(clips)
        return tuple(_steps_last(result[index], axis) for index, axis in zip(self._step_order, self._step_axes))
