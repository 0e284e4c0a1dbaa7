"""I3D in the ops LiteRT runs as built-ins: its 3D convolutions and pools rewritten as 2D ones, exactly.

LiteRT's converter has no built-in for ``MaxPool3D`` or ``AvgPool3D``, and its ``CONV_3D`` runs in
float only (an int8 model would leave it float between a dequantise and a quantise). Each is separable
over time, so :func:`litert_network` clones a built Keras I3D with a fixed clip shape, swapping:

- a ``Conv3D`` (with the batch norm after it folded into its kernel and bias) for one 2D convolution
  over the frames the time kernel spans, stacked on the channel axis: an output frame of a
  ``kt x kh x kw`` kernel is the 2D ``kh x kw`` convolution of the ``kt`` input frames it covers side
  by side, with the kernel's time slices side by side too. TensorFlow's SAME padding in time (zeros,
  the extra one at the end) is an explicit pad.
- a 3D pool for a 2D pool over space (frames folded into the batch), then one over time (space
  flattened to one axis, a ``kt x 1`` 2D pool). A max or mean over a box is the max or mean over
  time of the max or mean over space; with SAME padding a max never takes a padded value and a mean
  divides by the number of real elements, and the valid part of a box is a time range times a space
  range, so the two stages give the 3D pool exactly.

Every other layer (ReLU, concatenation, the means, the squeeze, a head's dense layer) is kept, shared
with the network it came from. The clone equals the network within float rounding (the sums run in
another order); :mod:`i3d.model` and everything else keep the network as it is.
"""

from __future__ import annotations

import math

import numpy as np

from i3d.quiet import silence_tensorflow

silence_tensorflow()  # Keras imports TensorFlow: keep its start-up lines off the user's terminal
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


def _same_or_valid(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of one axis, as TensorFlow pads it."""
    if padding == "valid":
        return (size - kernel) // stride + 1, 0, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _static(x, layer: str) -> tuple[int, ...]:
    shape = tuple(x.shape)
    if any(d is None for d in shape[1:]):
        raise ValueError(f"{layer} needs a fixed clip shape (frames, height, width), not {shape[1:]}")
    return shape


class FrameStackConv(layers.Layer):
    """A 3D convolution (with bias) computed as one 2D convolution of its time window's frames stacked on
    the channel axis. ``kernel`` is the 3D kernel (kt, kh, kw, C, F); ``bias`` (F,). Made for a
    conversion, not saved: it holds its weights as given."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, strides=(1, 1, 1), padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        kernel = np.asarray(kernel, np.float32)
        self.time_kernel, height, width, channels, filters = kernel.shape
        self.strides, self.padding = tuple(strides), padding
        stacked = np.transpose(kernel, (1, 2, 0, 3, 4)).reshape(height, width, self.time_kernel * channels, filters)
        self.kernel = self.add_weight(shape=stacked.shape, initializer=keras.initializers.Constant(stacked),
                                      trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(filters,), initializer=keras.initializers.Constant(
            np.asarray(bias, np.float32)), trainable=False, name="bias")

    def call(self, x):
        _, frames, height, width, channels = _static(x, self.name)
        kt, (st, sh, sw) = self.time_kernel, self.strides
        out, before, after = _same_or_valid(frames, kt, st, self.padding)
        if before or after:
            x = ops.pad(x, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]])
        if kt > 1 or st > 1:
            span = (out - 1) * st + 1
            x = ops.concatenate([x[:, d:d + span:st] for d in range(kt)], axis=-1) if kt > 1 else x[:, :span:st]
        y = ops.conv(ops.reshape(x, (-1, height, width, kt * channels)), self.kernel, strides=(sh, sw),
                     padding=self.padding) + self.bias
        return ops.reshape(y, (-1, out) + tuple(y.shape[1:]))

    def compute_output_shape(self, input_shape):
        sizes = [_same_or_valid(size, k, s, self.padding)[0] for size, k, s in
                 zip(input_shape[1:4], (self.time_kernel,) + tuple(self.kernel.shape[:2]), self.strides)]
        return (input_shape[0], *sizes, self.kernel.shape[-1])


@keras.saving.register_keras_serializable(package="i3d")
class SeparablePool3D(layers.Layer):
    """A 3D max or average pool as a 2D pool over space, then a (kt x 1) 2D pool over time."""

    def __init__(self, kind: str, pool_size, strides, padding: str, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "average"):
            raise ValueError(f"kind must be max or average, not {kind!r}")
        self.kind, self.pool_size, self.strides, self.padding = kind, tuple(pool_size), tuple(strides), padding

    def call(self, x):
        _, frames, height, width, channels = _static(x, self.name)
        pool = ops.max_pool if self.kind == "max" else ops.average_pool
        (pt, ph, pw), (st, sh, sw) = self.pool_size, self.strides
        if (ph, pw, sh, sw) != (1, 1, 1, 1):
            x = pool(ops.reshape(x, (-1, height, width, channels)), (ph, pw), (sh, sw), self.padding)
            height, width = x.shape[1:3]
        if (pt, st) != (1, 1):
            x = pool(ops.reshape(x, (-1, frames, height * width, channels)), (pt, 1), (st, 1), self.padding)
            frames = x.shape[1]
        return ops.reshape(x, (-1, frames, height, width, channels))

    def compute_output_shape(self, input_shape):
        sizes = [_same_or_valid(size, k, s, self.padding)[0] for size, k, s in
                 zip(input_shape[1:4], self.pool_size, self.strides)]
        return (input_shape[0], *sizes, input_shape[4])

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class FoldedAway(layers.Layer):
    """Where a batch norm was, now folded into the convolution before it: passes its input on."""

    def call(self, x, training=None, mask=None):  # the batch norm's own call signature
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def _array(variable) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def _folded(conv: layers.Conv3D, norm: layers.BatchNormalization | None) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of ``conv`` followed by ``norm`` in inference (batch norm folded in)."""
    kernel = _array(conv.kernel)
    bias = _array(conv.bias) if conv.use_bias else np.zeros(kernel.shape[-1])
    if norm is None:
        return kernel.astype(np.float32), bias.astype(np.float32)
    scale = 1.0 / np.sqrt(_array(norm.moving_variance) + norm.epsilon)
    if norm.scale:
        scale = scale * _array(norm.gamma)
    shift = _array(norm.beta) if norm.center else 0.0
    shift = shift - _array(norm.moving_mean) * scale
    return (kernel * scale).astype(np.float32), (bias * scale + shift).astype(np.float32)


def _norm_after(model: keras.Model, conv: layers.Conv3D) -> layers.BatchNormalization | None:
    """The batch norm fed by ``conv`` alone (DeepMind's Unit3D: ``<scope>.conv_3d`` -> ``<scope>.batch_norm``)."""
    scope, _, last = conv.name.rpartition(".")
    name = f"{scope}.batch_norm"
    if last != "conv_3d" or name not in {layer.name for layer in model.layers}:
        return None
    norm = model.get_layer(name)
    return norm if isinstance(norm, layers.BatchNormalization) else None


def litert_network(model: keras.Model, frames: int, batch: int = 1) -> keras.Model:
    """``model`` (an I3D built by :func:`i3d.model.build_network`, weights loaded) for clips of exactly
    (batch, frames, height, width, channels), in 2D convolutions and pools: see the module's docstring."""
    [clip] = model.inputs
    _, _, height, width, channels = clip.shape
    folded, norms = {}, set()  # each convolution's batch norm (or None); the batch norms so folded
    for layer in model.layers:
        if isinstance(layer, layers.Conv3D):
            if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1, 1) \
                    or layer.groups != 1 or layer.activation is not keras.activations.linear:
                raise ValueError(f"{layer.name}: only plain channels-last 3D convolutions are rewritten")
            norm = _norm_after(model, layer)
            folded[layer.name] = norm
            if norm is not None:
                norms.add(norm.name)

    def clone(layer):
        if isinstance(layer, layers.Conv3D):
            kernel, bias = _folded(layer, folded[layer.name])
            return FrameStackConv(kernel, bias, layer.strides, layer.padding, name=layer.name)
        if layer.name in norms:  # a batch norm now inside its convolution
            return FoldedAway(name=layer.name)
        if isinstance(layer, (layers.MaxPooling3D, layers.AveragePooling3D)):
            kind = "max" if isinstance(layer, layers.MaxPooling3D) else "average"
            return SeparablePool3D(kind, layer.pool_size, layer.strides, layer.padding, name=layer.name)
        return layer

    inputs = keras.Input(shape=(frames, height, width, channels), batch_size=batch, name="clip")
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
