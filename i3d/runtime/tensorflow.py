"""The TensorFlow backend: the Keras model called through a traced ``tf.function`` (graph mode)."""

from __future__ import annotations

import numpy as np

from i3d.errors import OptionError
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore
from i3d.runtime.base import TwoHeadRunner


def keras_model(ws: WeightSet, store: WeightStore, load: LoadOptions, mixed_precision: bool = False):
    """(the set's pretrained Keras logits model, where its weights came from).

    Float16 compute when ``mixed_precision`` (it needs a GPU).

    TF32 is off unless mixed precision is asked for: it changes logits.
    """
    from i3d.quiet import silence_tensorflow

    silence_tensorflow()
    import keras
    import tensorflow as tf

    from i3d.model import build_i3d
    from i3d.weights.loading import load_weights

    if mixed_precision and not tf.config.list_physical_devices("GPU"):
        raise OptionError("mixed_precision", "needs a GPU: TensorFlow has no float16 3D pooling on the CPU")
    tf.config.experimental.enable_tensor_float_32_execution(mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        model = build_i3d(channels=ws.stream.channels, num_classes=ws.num_classes, name=ws.name)
        return model, load_weights(model, ws, store, load)
    finally:
        keras.mixed_precision.set_global_policy("float32")


class TensorFlowRunner(TwoHeadRunner):
    """One stream's Keras model with its features head, traced once per input shape."""

    backend = "tensorflow"

    def __init__(self, model, source: str = "in memory") -> None:
        import tensorflow as tf

        from i3d.model import with_features

        self.source = source
        self.precision = "fp16-mixed" if model.dtype_policy.name == "mixed_float16" else "fp32"
        self.model = with_features(model)
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self._steps = None  # traced on the first dense chunk

    @classmethod
    def load(cls, ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
             mixed_precision: bool = False) -> TensorFlowRunner:
        """The set's pretrained network, weights found by the store."""
        return cls(*keras_model(ws, store, load, mixed_precision))

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self._forward(clips)
        return np.asarray(logits, dtype=np.float32), np.asarray(features, dtype=np.float32)

    def step_outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logits layer's per-step scores and the pooled Mixed_5c steps, before their means over time."""
        if self._steps is None:
            import keras
            import tensorflow as tf

            steps = keras.Model(self.model.inputs, [self.model.get_layer("Logits.SpatialSqueeze").output,
                                                    self.model.get_layer("Logits.AvgPool3D").output])
            self._steps = tf.function(lambda x: steps(x, training=False), reduce_retracing=True)
        logits, pooled = self._steps(clips)
        pooled = np.asarray(pooled, dtype=np.float32)  # (N, S, 1, 1, 1024)
        return np.asarray(logits, dtype=np.float32), pooled.reshape(pooled.shape[0], pooled.shape[1], -1)
