"""DeepMind's Inflated Inception-v1 (I3D) as a Keras 3 functional model.

The graph follows DeepMind's ``kinetics-i3d/i3d.py`` exactly: TF 'SAME'
padding (the extra pad goes at the end), batch norm with epsilon 1e-3 and a
learned offset but no scale, and a logits head of a 2x7x7 VALID average pool,
a 1x1x1 convolution with bias, a spatial squeeze and a mean over time.

Layer names mirror DeepMind's variable scopes with ``/`` written as ``.``
(Keras forbids ``/`` in names), so every weight maps to exactly one
checkpoint key by name: see :func:`checkpoint_key`.

:func:`build_network` builds every variant the tool runs (logits, features,
per-step outputs, a linear head, a trunk endpoint, the top fine-tuning trains
or replaces, float16 compute) from one description, :class:`Network`; a weight
set loads into the whole network it builds, and each variant shares those layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from i3d.quiet import silence_tensorflow

silence_tensorflow()  # Keras imports TensorFlow: keep its start-up lines off the user's terminal
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from i3d.limits import HEAD_GRID, MIN_FRAMES, check_clip_shape  # noqa: E402

# (Branch_0 1x1, Branch_1 1x1 -> 3x3, Branch_2 1x1 -> 3x3, Branch_3 pool -> 1x1)
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# The network as a table, in order: (endpoint, kind, arguments).
_LAYERS = (
    ("Conv3d_1a_7x7", "unit", dict(filters=64, kernel=(7, 7, 7), strides=(2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", dict(pool=(1, 3, 3), strides=(1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", dict(filters=64, kernel=(1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", dict(filters=192, kernel=(3, 3, 3))),
    ("MaxPool3d_3a_3x3", "pool", dict(pool=(1, 3, 3), strides=(1, 2, 2))),
    ("Mixed_3b", "mixed", {}),
    ("Mixed_3c", "mixed", {}),
    ("MaxPool3d_4a_3x3", "pool", dict(pool=(3, 3, 3), strides=(2, 2, 2))),
    ("Mixed_4b", "mixed", {}),
    ("Mixed_4c", "mixed", {}),
    ("Mixed_4d", "mixed", {}),
    ("Mixed_4e", "mixed", {}),
    ("Mixed_4f", "mixed", {}),
    ("MaxPool3d_5a_2x2", "pool", dict(pool=(2, 2, 2), strides=(2, 2, 2))),
    ("Mixed_5b", "mixed", {}),
    ("Mixed_5c", "mixed", {}),
)

ENDPOINTS: tuple[str, ...] = tuple(name for name, _, _ in _LAYERS) + ("Logits", "Predictions")

_KERAS_TO_CKPT = {"kernel": "w", "bias": "b", "beta": "beta",
                  "moving_mean": "moving_mean", "moving_variance": "moving_variance"}


def layer_name(scope: str) -> str:
    """Keras layer name for a DeepMind variable scope ('a/b/c' -> 'a.b.c')."""
    return scope.replace("/", ".")


def checkpoint_key(variable_path: str, stream: str) -> str:
    """DeepMind checkpoint key of a Keras variable path.

    ``Mixed_5b.Branch_2.Conv3d_0a_3x3.conv_3d/kernel`` with stream ``RGB``
    becomes ``RGB/inception_i3d/Mixed_5b/Branch_2/Conv3d_0a_3x3/conv_3d/w``.
    """
    layer, _, variable = variable_path.rpartition("/")
    if not layer or variable not in _KERAS_TO_CKPT:
        raise ValueError(f"not an I3D variable path: {variable_path!r}")
    return f"{stream}/inception_i3d/{layer.replace('.', '/')}/{_KERAS_TO_CKPT[variable]}"


def _unit(x, scope: str, filters: int, kernel, strides=(1, 1, 1)):
    """Conv3D (no bias) + BatchNorm (offset only, eps 1e-3) + ReLU, DeepMind's Unit3D."""
    name = layer_name(scope)
    x = layers.Conv3D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=f"{name}.conv_3d")(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.999, center=True, scale=False,
                                  name=f"{name}.batch_norm")(x)
    return layers.ReLU(name=name)(x)  # the unit's output carries its scope name (an endpoint)


def _pool(x, name: str, pool, strides):
    return layers.MaxPooling3D(pool, strides=strides, padding="same", name=name)(x)


def _mixed(x, block: str):
    b0, b1a, b1b, b2a, b2b, b3 = _MIXED[block]
    # DeepMind's quirk: Mixed_5b's branch-2 3x3 unit is scoped Conv3d_0a_3x3.
    b2_name = "Conv3d_0a_3x3" if block == "Mixed_5b" else "Conv3d_0b_3x3"
    branch_0 = _unit(x, f"{block}/Branch_0/Conv3d_0a_1x1", b0, (1, 1, 1))
    branch_1 = _unit(x, f"{block}/Branch_1/Conv3d_0a_1x1", b1a, (1, 1, 1))
    branch_1 = _unit(branch_1, f"{block}/Branch_1/Conv3d_0b_3x3", b1b, (3, 3, 3))
    branch_2 = _unit(x, f"{block}/Branch_2/Conv3d_0a_1x1", b2a, (1, 1, 1))
    branch_2 = _unit(branch_2, f"{block}/Branch_2/{b2_name}", b2b, (3, 3, 3))
    branch_3 = _pool(x, layer_name(f"{block}/Branch_3/MaxPool3d_0a_3x3"), (3, 3, 3), (1, 1, 1))
    branch_3 = _unit(branch_3, f"{block}/Branch_3/Conv3d_0b_1x1", b3, (1, 1, 1))
    return layers.Concatenate(axis=-1, name=block)([branch_0, branch_1, branch_2, branch_3])


@keras.saving.register_keras_serializable(package="i3d")
class ClipShapeCheck(layers.Layer):
    """Identity that refuses, with a ValueError naming the limit, a clip the network cannot take.

    Checks whatever sizes are known when the model is called (all of them in
    eager calls), so a too-short clip fails here and not deep inside TensorFlow.
    """

    def __init__(self, final_endpoint: str = "Logits", **kwargs):
        super().__init__(**kwargs)
        self.final_endpoint = final_endpoint

    def call(self, x):
        frames, height, width = (d if isinstance(d, int) else None for d in tuple(x.shape)[1:4])
        if None not in (frames, height, width):
            check_clip_shape(frames, height, width, self.final_endpoint)
        return x

    def get_config(self):
        return {**super().get_config(), "final_endpoint": self.final_endpoint}


@keras.saving.register_keras_serializable(package="i3d")
class SpatialSqueeze(layers.Layer):
    """Drop the 1x1 spatial axes of (batch, time, 1, 1, classes), as DeepMind's tf.squeeze."""

    def call(self, x):
        return ops.squeeze(x, axis=(2, 3))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[4])


@keras.saving.register_keras_serializable(package="i3d")
class MeanOverAxes(layers.Layer):
    """Mean over fixed axes (time for the logits; time and space for features)."""

    def __init__(self, axes, **kwargs):
        super().__init__(**kwargs)
        self.axes = tuple(axes)

    def call(self, x):
        return ops.mean(x, axis=self.axes)

    def compute_output_shape(self, input_shape):
        return tuple(d for i, d in enumerate(input_shape) if i not in self.axes)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes}


OUTPUTS = ("logits", "features", "step_logits", "step_features", "predictions", "head")
"""What a network built by :func:`build_network` can give besides an endpoint of the trunk (any of
:data:`ENDPOINTS` before ``Logits``): the logits (batch, classes); the features (batch, 1024), the head's
2x7x7-pooled Mixed_5c averaged over time and space (the input of the logits layer); per time step, the
logits layer's scores (batch, steps, classes) and the pooled Mixed_5c (batch, steps, 1, 1, 1024), whose
means over the steps are the logits and the features; the softmax of the logits; and ``head``, a linear
layer on the features (its weights given to :func:`build_network`)."""

TOP_INPUT = "Mixed_5b"
"""Where a fine-tuned top starts: the trunk's Mixed_5b output, (T/8, 7, 7, 832) for a T-frame clip."""
TOP_INPUT_CHANNELS = sum(_MIXED[TOP_INPUT][i] for i in (0, 2, 4, 5))
_TRUNK = tuple(endpoint for endpoint, _, _ in _LAYERS)


@dataclass(frozen=True)
class Network:
    """Which I3D :func:`build_network` builds.

    ``channels`` 3 (RGB) or 2 (optical flow); ``num_classes`` those of the weights loaded into it;
    ``outputs`` in order, from :data:`OUTPUTS` or trunk endpoints; ``frames=None`` leaves the time axis
    dynamic. ``top_classes``: Mixed_5c is followed by a new logits layer over these classes instead of
    the weights' own (a fine-tuned network: its top's weights are set by the caller); with ``top_only``
    the network starts at :data:`TOP_INPUT` activations instead of a clip (the top fine-tuning trains).
    ``dropout_keep_prob`` is DeepMind's keep probability before the logits layer (it acts in training
    only); ``mixed_precision`` computes in float16 (Keras' ``mixed_float16`` policy).
    """

    channels: int = 3
    num_classes: int = 400
    outputs: tuple[str, ...] = ("logits",)
    frames: int | None = None
    height: int = 224
    width: int = 224
    top_classes: int | None = None
    top_only: bool = False
    dropout_keep_prob: float = 1.0
    mixed_precision: bool = False
    name: str | None = None

    def check(self) -> None:
        """Raise ValueError naming the field that cannot describe a network."""
        unknown = [o for o in self.outputs if o not in OUTPUTS + _TRUNK]
        if not self.outputs or unknown:
            raise ValueError(f"unknown output {unknown[0] if unknown else None!r}; choose from "
                             f"{', '.join(OUTPUTS + _TRUNK)}")
        if self.channels not in (2, 3):
            raise ValueError(f"channels must be 3 (RGB) or 2 (optical flow), not {self.channels}")
        if not 0.0 < self.dropout_keep_prob <= 1.0:
            raise ValueError(f"dropout_keep_prob must be in (0, 1], not {self.dropout_keep_prob}")
        if self.top_only and self.top_classes is None:
            raise ValueError("top_only needs top_classes: the top has its own logits layer")
        if self.top_classes is not None and any(o in _TRUNK for o in self.outputs):
            raise ValueError("a network with a new top gives the top's outputs, not trunk endpoints")

    @property
    def final_endpoint(self) -> str:
        """The deepest layer the outputs need, by :data:`ENDPOINTS` (``Features`` for features alone)."""
        trunk = [_TRUNK.index(o) for o in self.outputs if o in _TRUNK]
        if len(trunk) == len(self.outputs):
            return _TRUNK[max(trunk)]
        return "Features" if set(self.outputs) <= {"features", *_TRUNK} else "Logits"


def build_network(network: Network = Network(), *, weights: Callable[[keras.Model], object] | None = None,
                  linear_head: tuple[np.ndarray, np.ndarray] | None = None,
                  base: keras.Model | None = None) -> keras.Model:
    """Build the I3D that ``network`` describes: every variant of the network is made here.

    ``weights`` loads a weight set into the whole network (to the logits layer, as the weight sets hold
    it) before the asked outputs are taken from it, so the model returned shares those layers and
    weights: nothing is copied. ``base`` is such a whole network already built (and loaded): the
    outputs are taken from its layers instead. ``linear_head`` is (weight (classes, 1024), bias
    (classes,)) of the ``head`` output. Layer names follow DeepMind's scopes (:func:`layer_name`),
    whichever the variant, so weights map to the same checkpoint keys in all of them.
    """
    network.check()
    if "head" in network.outputs and linear_head is None:
        raise ValueError("the head output needs linear_head (its weight and bias)")
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if network.mixed_precision else "float32")
    try:
        whole = network.final_endpoint if weights is None and network.top_classes is None else "Logits"
        if base is None:
            base = _trunk_and_logits(network, whole)
            if weights is not None:
                weights(base)
        return _outputs(base, network, linear_head)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _trunk_and_logits(network: Network, final_endpoint: str) -> keras.Model:
    """DeepMind's network from the clip to ``final_endpoint`` (the logits, or the layer an output needs)."""
    check_clip_shape(network.frames or MIN_FRAMES, network.height, network.width, final_endpoint)
    inputs = keras.Input(shape=(network.frames, network.height, network.width, network.channels), name="clip")
    x = ClipShapeCheck(final_endpoint, name="clip_shape_check")(inputs)
    for endpoint, kind, args in _LAYERS:
        if kind == "unit":
            x = _unit(x, endpoint, args["filters"], args["kernel"], args.get("strides", (1, 1, 1)))
        elif kind == "pool":
            x = _pool(x, endpoint, args["pool"], args["strides"])
        else:
            x = _mixed(x, endpoint)
        if endpoint == final_endpoint:
            return keras.Model(inputs, x, name="i3d")
    pooled = _pooled(x)
    if final_endpoint == "Features":
        return keras.Model(inputs, pooled, name="i3d")
    return keras.Model(inputs, _logits(pooled, network.num_classes, network.dropout_keep_prob), name="i3d")


def _pooled(x):
    """The head's 2x7x7 VALID average pool of Mixed_5c: (batch, steps, 1, 1, 1024)."""
    return layers.AveragePooling3D((2, HEAD_GRID, HEAD_GRID), strides=(1, 1, 1), padding="valid",
                                   name="Logits.AvgPool3D")(x)


def _logits(pooled, num_classes: int, dropout_keep_prob: float):
    """DeepMind's logits on the pooled Mixed_5c: dropout, a 1x1x1 convolution with bias and the spatial
    squeeze give each step's scores; their mean over time is the logits. Returns (step scores, logits)."""
    x = layers.Dropout(1.0 - dropout_keep_prob, name="Logits.Dropout")(pooled)
    x = layers.Conv3D(num_classes, (1, 1, 1), padding="same", use_bias=True,
                      name="Logits.Conv3d_0c_1x1.conv_3d")(x)
    steps = SpatialSqueeze(name="Logits.SpatialSqueeze")(x)
    return steps, MeanOverAxes((1,), name="Logits")(steps)


def _outputs(base: keras.Model, network: Network, linear_head) -> keras.Model:
    """The model giving ``network``'s outputs from ``base``'s layers (and, for a new top, its new logits)."""
    [inputs] = base.inputs  # one tensor, not a list of one: callers pass the clip alone
    names = {layer.name for layer in base.layers}
    pooled = step_logits = logits = features = None
    if network.top_classes is not None:
        mixed_5c = base.get_layer("Mixed_5c").output
        if network.top_only:  # Mixed_5c's layers on an input of their own (Keras makes it), the top built on that
            block = keras.Model(base.get_layer(TOP_INPUT).output, mixed_5c)
            [inputs], mixed_5c = block.inputs, block.outputs[0]
        pooled = _pooled(mixed_5c)
        step_logits, logits = _logits(pooled, network.top_classes, network.dropout_keep_prob)
    elif "Logits.AvgPool3D" in names:
        pooled = base.get_layer("Logits.AvgPool3D").output
        if "Logits" in names:
            step_logits, logits = base.get_layer("Logits.SpatialSqueeze").output, base.get_layer("Logits").output
    tensors = []
    for output in network.outputs:
        if output in _TRUNK:
            tensors.append(base.get_layer(output).output)
        elif output in ("logits", "step_logits", "step_features"):
            tensors.append({"logits": logits, "step_logits": step_logits, "step_features": pooled}[output])
        elif output == "predictions":
            tensors.append(layers.Softmax(name="Predictions")(logits))
        else:
            if features is None:
                features = MeanOverAxes((1, 2, 3), name="Features")(pooled)
            if output == "features":
                tensors.append(features)
                continue
            weight, bias = linear_head
            dense = layers.Dense(len(bias), name="head")
            tensors.append(dense(features))
            dense.set_weights([np.asarray(weight).T, np.asarray(bias)])
    default = "i3d_features" if network.outputs == ("features",) else "i3d"
    return keras.Model(inputs, tensors[0] if len(tensors) == 1 else tensors, name=network.name or default)


def build_i3d(
    channels: int = 3,
    num_classes: int = 400,
    frames: int | None = None,
    height: int = 224,
    width: int = 224,
    final_endpoint: str = "Logits",
    dropout_keep_prob: float = 1.0,
    name: str | None = None,
) -> keras.Model:
    """Build I3D up to ``final_endpoint`` (one of :data:`ENDPOINTS`, or ``"Features"``), without weights.

    ``channels`` is 3 for RGB and 2 for optical flow. ``frames=None`` leaves the
    time axis dynamic. ``"Features"`` gives the 1024-d Mixed_5c output after the
    head's 2x7x7 average pool, averaged over time and space (the input of the
    logits layer). ``dropout_keep_prob`` is DeepMind's keep probability; dropout
    only acts in training. The one-output form of :func:`build_network`.
    """
    if final_endpoint not in ENDPOINTS + ("Features",):
        raise ValueError(f"unknown final_endpoint {final_endpoint!r}; choose from {', '.join(ENDPOINTS)}, Features")
    output = final_endpoint if final_endpoint in _TRUNK else final_endpoint.lower()
    return build_network(Network(channels, num_classes, (output,), frames, height, width,
                                 dropout_keep_prob=dropout_keep_prob, name=name))


def with_features(model: keras.Model) -> keras.Model:
    """The logits model with a second output: its 1024-d features, shared weights and all.

    The features are the head's 2x7x7-pooled Mixed_5c averaged over time and
    space, the input of the logits layer (what ``final_endpoint="Features"``
    gives); one forward pass yields both.
    """
    return build_network(Network(outputs=("logits", "features"), name=model.name), base=model)
