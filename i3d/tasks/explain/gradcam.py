"""Grad-CAM (Selvaraju et al. 2017) for video: where in space and time a layer holds a class's evidence.

For a class score y and a layer's activations A (time, height, width, channels), the weight of
channel k at time step t is the mean over space of dy/dA[t, :, :, k], and the map is

    ReLU(sum_k weight[t, k] * (A[t, h, w, k] - R[t, h, w, k]))

one value per position of the layer (T/8 x 7 x 7 at Mixed_5c, T/4 x 14 x 14 at Mixed_4f). Two
departures from the image recipe (one weight per channel, the mean over all positions, and A
itself), both for video:

- one weight per time step: I3D's head averages Mixed_5c over 2 x 7 x 7 windows, so the first and
  last time steps reach the logit through one window and the others through two; a single weight
  per channel would count them alike. With a weight per step, at Mixed_5c the map's values before
  the ReLU add up to y(clip) - y(reference) exactly (the head is linear there).
- R, the layer's activations on a reference clip: every pixel the clip's mean colour (the fill that
  occlusion and the deletion curves use). The convolutions pad with zeros, unevenly (TensorFlow's
  "same" puts the extra row, column and frame at the end), so even a blank clip lights up the last
  time step's bottom-right corner; that light says nothing about the clip and is subtracted.

The score y is the class's logit before the softmax (``score="logit"``, the default): Kinetics'
logits layer, or a head's linear layer on the 1024-d features, through which the gradients flow the
same way. It says where the evidence for the class lies, whatever else is in the clip. With
``score="probability"`` y is the class's log-probability instead, the logit less the log of the
softmax's sum: the gradient becomes the class's evidence less the other classes', each weighted by
its probability, which is what the class's probability moves with when a place is blanked (what the
deletion curves measure); but a place that holds evidence for the class and for its likely rivals
alike counts for little. Computed on the Keras network in the model's own dtype (float32 for I3D),
whatever precision the answers come from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np

from i3d.errors import WeightsError
from i3d.heads import StreamHead
from i3d.tasks.explain.options import SCORES
from i3d.weights.loading import LoadOptions, build_pretrained


def cam_from_gradients(activations: np.ndarray, gradients: np.ndarray,
                       reference: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM from a layer's activations, the score's gradients there and (optionally) the activations on
    the reference clip, all (T, H, W, C): ReLU of the channels' change from the reference summed with each
    time step's mean gradients as weights, (T, H, W)."""
    return np.maximum(signed_cam(activations, gradients, reference), 0.0)


def signed_cam(activations: np.ndarray, gradients: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM before its ReLU, (T, H, W): evidence for the class (positive) and against it (negative)."""
    weights = np.mean(gradients, axis=(1, 2))  # (T, C): one weight per channel and time step
    change = activations if reference is None else activations - reference
    return np.einsum("thwc,tc->thw", change, weights)


class GradCAM:
    """A Keras network prepared for Grad-CAM at one layer: one traced call per map, a forward pass of the clip
    and its blank reference as one batch of two, and a backward pass from the score to the layer.

    ``model`` is a Keras model whose first output is the logits (I3D's logits model, or any network of
    3D layers); with ``head``, the score is the head's linear layer on I3D's 1024-d features instead;
    ``score`` is ``"logit"`` or ``"probability"`` (the log-probability, see the module's notes).
    """

    def __init__(self, model, layer: str, head: StreamHead | None = None, score: str = "logit") -> None:
        import keras
        import tensorflow as tf

        if score not in SCORES:
            raise ValueError(f"score is {score!r}; choose from {', '.join(SCORES)}")
        self.layer, self.score = layer, score
        contrast = score == "probability"  # the log-probability: the logit less the log-sum-exp of all
        self.dtype = str(model.inputs[0].dtype)
        activation = model.get_layer(layer).output
        if head is None:
            network = keras.Model(model.inputs[0], [activation, model.outputs[0]])

            def value_of(output, index):
                logits = output[0]
                return tf.gather(tf.nn.log_softmax(logits) if contrast else logits, index)
        else:  # the features: the head's 2x7x7-pooled Mixed_5c averaged over time and space
            network = keras.Model(model.inputs[0], [activation, model.get_layer("Logits.AvgPool3D").output])
            weight, bias = tf.constant(head.weight), tf.constant(head.bias)
            mean, scale = tf.constant(head.mean), tf.constant(head.scale)

            def value_of(output, index):
                features = (tf.reduce_mean(output[0], axis=(0, 1, 2)) - mean) / scale
                logits = tf.linalg.matvec(weight, features) + bias
                return tf.gather(tf.nn.log_softmax(logits) if contrast else logits, index)

        def step(clip, index):
            # the reference clip (the clip's mean colour everywhere) rides in the same batch
            blank = tf.broadcast_to(tf.reduce_mean(clip, axis=(1, 2, 3), keepdims=True), tf.shape(clip))
            with tf.GradientTape() as tape:
                activations, output = network(tf.concat([clip, blank], 0), training=False)
                tape.watch(activations)
                value = value_of(output, index)
            return activations[:1], activations[1:], tape.gradient(value, activations)[:1], value

        self._step = tf.function(step, reduce_retracing=True)

    @classmethod
    def for_stream(cls, weight_set, store, layer: str, head=None, stream: str | None = None,
                   load: LoadOptions = LoadOptions(download=False), score: str = "logit") -> GradCAM:
        """The weight set's pretrained float32 network (a fine-tuned head's top in place, when ``head`` has
        one for ``stream``) with ``head``'s linear layer for ``stream`` as the score, if given."""
        if head is not None and stream in head.tops:
            from i3d.runtime.fine_tuned import fine_tuned_model

            model = fine_tuned_model(weight_set, store, load, head.tops[stream], len(head.classes),
                                     str(head.path or "the head"))
        else:
            model = build_pretrained(weight_set, store, load)
        return cls(model, layer, None if head is None else head.streams[stream], score)

    def parts(self, clip: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(activations, activations on the reference clip, the class score's gradients, all (T, H, W, C) at the
        layer; the score) for one clip (1, T, H, W, C)."""
        activations, reference, gradients, score = self._step(np.asarray(clip, self.dtype), np.int32(index))
        parts = np.asarray(activations)[0], np.asarray(reference)[0], np.asarray(gradients)[0]
        if not (np.isfinite(score) and all(np.isfinite(part).all() for part in parts)):
            raise WeightsError(f"the network's activations or gradients at {self.layer} are not finite on this "
                               f"clip (its weights overflow {self.dtype}), so no map can be drawn; check the "
                               "weight set (i3d weights verify)")
        return (*parts, float(score))

    def gradients(self, clip: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(activations, the class score's gradients there, both (T, H, W, C); the score) for one clip
        (1, T, H, W, C)."""
        activations, _, gradients, score = self.parts(clip, index)
        return activations, gradients, score

    def signed_map(self, clip: np.ndarray, index: int) -> np.ndarray:
        """Grad-CAM of class ``index`` before its ReLU, float32 (T', H', W'): its negative values order the
        places with no evidence (the deletion curves' order), where the map itself ties them at 0."""
        activations, reference, gradients, _ = self.parts(clip, index)
        return signed_cam(activations, gradients, reference).astype(np.float32)

    def map(self, clip: np.ndarray, index: int) -> np.ndarray:
        """Grad-CAM of class ``index`` for one clip (1, T, H, W, C): float32 (T', H', W') at the layer."""
        return np.maximum(self.signed_map(clip, index), 0.0)


class SharedNetworks:
    """Grad-CAM networks kept between calls of :func:`i3d.tasks.explain.explain` (a server's requests): each
    built once, on first use, and used by one thread at a time (hold ``lock`` around its calls)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._networks: dict[tuple, GradCAM] = {}

    def get(self, key: tuple, build: Callable[[], GradCAM]) -> GradCAM:
        """The network kept under ``key``, made by ``build`` the first time (call with ``lock`` held)."""
        if key not in self._networks:
            self._networks[key] = build()
        return self._networks[key]


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
