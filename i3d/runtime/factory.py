"""Opening a runner: a weight set's network on the chosen backend."""

from __future__ import annotations

from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore
from i3d.runtime.base import EngineOptions, Runner


def open_runner(ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
                engine: EngineOptions = EngineOptions()) -> Runner:
    """A runner for ``ws`` on the engine's backend (``auto`` resolved here if the caller has not)."""
    engine.check()
    engine = engine.resolved()
    backend = engine.backend
    if backend == "openvino":
        from i3d.runtime.openvino import OpenVINORunner

        return OpenVINORunner.load(ws, store, load, precision=engine.precision, calibration=engine.calibration)
    from i3d.runtime.tensorflow import TensorFlowRunner

    return TensorFlowRunner.load(ws, store, load, mixed_precision=engine.mixed_precision)
