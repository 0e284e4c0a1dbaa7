"""The networks behind ``--fine-tune mixed_5c``: the frozen trunk up to Mixed_5b, and I3D with a trained top.

Training needs the trunk's Mixed_5b activations once per window (:class:`TrunkRunner`);
using the trained head needs the whole network with the head's Mixed_5c and logits layer
in place of Kinetics' (:func:`open_fine_tuned_runner`). Both are built from the set's
pretrained Keras network (:func:`i3d.model.build_network`, sharing its layers), and run on
the engine's backend: OpenVINO converts them when they are opened (they are not cached,
as a head can change at any time), TensorFlow traces them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from i3d.errors import OptionError, WeightsError
from i3d.runtime.base import EngineOptions, Runner
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore


def check_fine_tune_precision(engine: EngineOptions) -> None:
    """Refuse int8 for a fine-tuned network: its calibration is Kinetics' (OptionError)."""
    if engine.precision == "int8":
        raise OptionError("precision", "int8 is calibrated for Kinetics' network, not a fine-tuned one; "
                                       "use fp32 or bf16 with a --fine-tune head")


def trunk_model(ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions()):
    """The set's pretrained network up to Mixed_5b (Keras)."""
    from i3d.model import TOP_INPUT, Network
    from i3d.runtime.tensorflow import keras_model

    return keras_model(ws, store, load, Network(outputs=(TOP_INPUT,), name=f"{ws.name}_trunk"))[0]


def top_arrays(top) -> dict[str, np.ndarray]:
    """A Keras top's (see :func:`pretrained_top`) weights as named float32 arrays: ``<layer>.<i>``."""
    return {f"{layer.name}.{i}": np.asarray(w, np.float32)
            for layer in top.layers for i, w in enumerate(layer.get_weights())}


def set_top_arrays(model, arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Put named top arrays into ``model``'s layers of the same names (a top, or the whole network)."""
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key, array in arrays.items():
        name, _, index = key.rpartition(".")
        by_layer.setdefault(name, {})[int(index)] = array
    for name, weights in by_layer.items():
        try:
            layer = model.get_layer(name)
            layer.set_weights([weights[i] for i in range(len(weights))])
        except (ValueError, KeyError) as err:
            raise WeightsError(f"{where}: its fine-tuned layer {name} does not fit the network ({err}); "
                               "train the head again") from None


class TrunkRunner:
    """Mixed_5b activations (views, T/8, 7, 7, 832) of a window's clips, on the engine's backend."""

    def __init__(self, ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
                 engine: EngineOptions = EngineOptions()) -> None:
        engine.check()
        engine = engine.resolved()
        check_fine_tune_precision(engine)
        model = trunk_model(ws, store, load)
        self.backend = engine.backend
        if self.backend == "openvino":
            from i3d.runtime.ir import convert
            from i3d.runtime.openvino import compile_config
            from i3d.runtime.ov_core import ov_core

            self._compiled = ov_core().compile_model(convert(model, ws.stream.channels), "CPU",
                                                     compile_config("LATENCY", engine.precision))
            self._run = lambda clips: np.asarray(self._compiled(clips)[0], np.float32)
        else:
            import tensorflow as tf

            forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            self._run = lambda clips: np.asarray(forward(clips), np.float32)

    def activations(self, clips: np.ndarray) -> np.ndarray:
        return self._run(clips)


def fine_tuned_model(ws: WeightSet, store: WeightStore, load: LoadOptions, arrays: Mapping[str, np.ndarray],
                     classes: int, where: str, outputs: tuple[str, ...] = ("logits",)):
    """The whole Keras network with the head's Mixed_5c and logits layer: Kinetics' weights below them."""
    from i3d.model import Network
    from i3d.runtime.tensorflow import keras_model

    model, _ = keras_model(ws, store, load, Network(outputs=outputs, top_classes=classes,
                                                    name=f"{ws.name}_fine_tuned"))
    set_top_arrays(model, arrays, where)
    return model


def open_fine_tuned_runner(ws: WeightSet, store: WeightStore, load: LoadOptions, engine: EngineOptions,
                           arrays: Mapping[str, np.ndarray], classes: int, fingerprint: str,
                           where: str = "the head") -> Runner:
    """A runner whose logits are the head's classes and whose features are its fine-tuned Mixed_5c's.

    ``fingerprint`` (the head's) is the runner's :attr:`~i3d.runtime.base.Runner.head_fingerprint`, so a
    recognizer can check it runs this head.
    """
    engine.check()
    engine = engine.resolved()
    check_fine_tune_precision(engine)
    source = f"{where} (fine-tuned)"
    if engine.backend == "openvino":
        from i3d.runtime.ir import OUTPUT_NAMES, convert
        from i3d.runtime.openvino import OpenVINORunner

        model = fine_tuned_model(ws, store, load, arrays, classes, where, OUTPUT_NAMES)
        return OpenVINORunner(convert(model, ws.stream.channels), source=source, precision=engine.precision,
                              head_fingerprint=fingerprint)
    from i3d.runtime.tensorflow import RUNNER_OUTPUTS, TensorFlowRunner

    model = fine_tuned_model(ws, store, load, arrays, classes, where, RUNNER_OUTPUTS)
    return TensorFlowRunner(model, source=source, head_fingerprint=fingerprint)


def pretrained_top(ws: WeightSet, store: WeightStore, load: LoadOptions, classes: int,
                   dropout_keep_prob: float = 1.0):
    """The Keras top fine-tuning trains for ``classes``: from Mixed_5b activations, Kinetics' Mixed_5c and a
    new logits layer (see :class:`i3d.model.Network`'s ``top_only``), which is left for the caller to set."""
    from i3d.model import Network
    from i3d.runtime.tensorflow import keras_model

    network = Network(top_classes=classes, top_only=True, dropout_keep_prob=dropout_keep_prob,
                      name=f"{ws.name}_top")
    return keras_model(ws, store, load, network)[0]
