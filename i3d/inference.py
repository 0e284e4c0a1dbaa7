"""Run a pretrained I3D stream on clips and return its logits."""

from __future__ import annotations

import numpy as np

from .weight_sets import WeightSet


class TensorFlowStream:
    """One stream's Keras model, called through a traced ``tf.function`` (graph mode)."""

    backend = "tensorflow"

    def __init__(self, ws: WeightSet, **load_kwargs) -> None:
        import tensorflow as tf

        from .weights import build_pretrained

        self.weight_set = ws
        self.model = build_pretrained(ws, **load_kwargs)
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits (num_classes,) of a validated (1, T, 224, 224, C) float32 clip."""
        return np.asarray(self._forward(clip))[0]
