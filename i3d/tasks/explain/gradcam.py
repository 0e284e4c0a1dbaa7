"""Grad-CAM (Selvaraju et al. 2017) for video: where in space and time a layer holds a class's evidence.

For a class score y and a layer's activations A (time, height, width, channels), each channel's
weight is the mean over time and space of dy/dA, and the map is ReLU(sum_k weight_k * A_k): one
value per position of the layer (T/8 x 7 x 7 at Mixed_5c, T/4 x 14 x 14 at Mixed_4f). The score
is the class's logit before the softmax: Kinetics' logits layer, or a head's linear layer on the
1024-d features, through which the gradients flow the same way. Computed on the Keras network in
the model's own dtype (float32 for I3D), whatever precision the answers come from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from i3d.heads import StreamHead
from i3d.weights.loading import LoadOptions, build_pretrained


def cam_from_gradients(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM from a layer's activations and the score's gradients there, both (T, H, W, C):
    ReLU of the channels summed with their mean gradients as weights, (T, H, W)."""
    weights = np.mean(gradients, axis=(0, 1, 2))
    return np.maximum(np.tensordot(activations, weights, axes=([3], [0])), 0.0)


class GradCAM:
    """A Keras network prepared for Grad-CAM at one layer: one traced forward and backward pass per call.

    ``model`` is a Keras model whose first output is the logits (I3D's logits model, or any network of
    3D layers); with ``head``, the score is the head's linear layer on I3D's 1024-d features instead.
    """

    def __init__(self, model, layer: str, head: StreamHead | None = None) -> None:
        import keras
        import tensorflow as tf

        self.layer = layer
        self.dtype = str(model.inputs[0].dtype)
        activation = model.get_layer(layer).output
        if head is None:
            network = keras.Model(model.inputs[0], [activation, model.outputs[0]])

            def score(output, index):
                return tf.gather(output[0], index)
        else:  # the features: the head's 2x7x7-pooled Mixed_5c averaged over time and space
            network = keras.Model(model.inputs[0], [activation, model.get_layer("Logits.AvgPool3D").output])
            weight, bias = tf.constant(head.weight), tf.constant(head.bias)
            mean, scale = tf.constant(head.mean), tf.constant(head.scale)

            def score(output, index):
                features = (tf.reduce_mean(output[0], axis=(0, 1, 2)) - mean) / scale
                return tf.tensordot(features, tf.gather(weight, index), 1) + tf.gather(bias, index)

        def step(clip, index):
            with tf.GradientTape() as tape:
                activations, output = network(clip, training=False)
                tape.watch(activations)
                value = score(output, index)
            return activations, tape.gradient(value, activations), value

        self._step = tf.function(step, reduce_retracing=True)

    @classmethod
    def for_stream(cls, weight_set, store, layer: str, head=None, stream: str | None = None,
                   load: LoadOptions = LoadOptions(download=False)) -> GradCAM:
        """The weight set's pretrained float32 network (a fine-tuned head's top in place, when ``head`` has
        one for ``stream``) with ``head``'s linear layer for ``stream`` as the score, if given."""
        if head is not None and stream in head.tops:
            from i3d.runtime.fine_tuned import fine_tuned_model

            model = fine_tuned_model(weight_set, store, load, head.tops[stream], len(head.classes),
                                     str(head.path or "the head"))
        else:
            model = build_pretrained(weight_set, store, load)
        return cls(model, layer, None if head is None else head.streams[stream])

    def gradients(self, clip: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(activations, the class score's gradients there, both (T, H, W, C); the score) for one clip
        (1, T, H, W, C)."""
        activations, gradients, score = self._step(np.asarray(clip, self.dtype), np.int32(index))
        return np.asarray(activations)[0], np.asarray(gradients)[0], float(score)

    def map(self, clip: np.ndarray, index: int) -> np.ndarray:
        """Grad-CAM of class ``index`` for one clip (1, T, H, W, C): float32 (T', H', W') at the layer."""
        activations, gradients, _ = self.gradients(clip, index)
        return cam_from_gradients(activations, gradients).astype(np.float32)


def gradcam_map(model, clip: np.ndarray, index: int, layer: str = "Mixed_5c",
                head: StreamHead | None = None) -> np.ndarray:
    """Grad-CAM of class ``index`` for one clip (1, T, H, W, C) at ``layer`` of a Keras ``model`` (its first
    output the logits; with ``head``, the head's class on I3D's features): float32 (T', H', W').

    Builds the traced pass each call; to explain many clips, make one :class:`GradCAM` and call its ``map``.
    """
    return GradCAM(model, layer, head).map(clip, index)


def gradcam_networks(weight_sets: Mapping, store, layer: str, head=None,
                     load: LoadOptions = LoadOptions(download=False)) -> dict[str, GradCAM]:
    """One :class:`GradCAM` per stream, from each stream's weight set (and ``head``'s layer, if given)."""
    return {stream: GradCAM.for_stream(ws, store, layer, head, stream, load) for stream, ws in weight_sets.items()}
