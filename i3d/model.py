"""DeepMind's Inflated Inception-v1 (I3D) as a Keras 3 functional model.

The graph follows DeepMind's ``kinetics-i3d/i3d.py`` exactly: TF 'SAME'
padding (the extra pad goes at the end), batch norm with epsilon 1e-3 and a
learned offset but no scale, and a logits head of a 2x7x7 VALID average pool,
a 1x1x1 convolution with bias, a spatial squeeze and a mean over time.

Layer names mirror DeepMind's variable scopes with ``/`` written as ``.``
(Keras forbids ``/`` in names), so every weight maps to exactly one
checkpoint key by name: see :func:`checkpoint_key`.
"""

from __future__ import annotations

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
    """Build I3D up to ``final_endpoint`` (one of :data:`ENDPOINTS`, or ``"Features"``).

    ``channels`` is 3 for RGB and 2 for optical flow. ``frames=None`` leaves the
    time axis dynamic. ``"Features"`` gives the 1024-d Mixed_5c output after the
    head's 2x7x7 average pool, averaged over time and space (the input of the
    logits layer). ``dropout_keep_prob`` is DeepMind's keep probability; dropout
    only acts in training.
    """
    if final_endpoint not in ENDPOINTS + ("Features",):
        raise ValueError(f"unknown final_endpoint {final_endpoint!r}; choose from {', '.join(ENDPOINTS)}, Features")
    if channels not in (2, 3):
        raise ValueError(f"channels must be 3 (RGB) or 2 (optical flow), not {channels}")
    if not 0.0 < dropout_keep_prob <= 1.0:
        raise ValueError(f"dropout_keep_prob must be in (0, 1], not {dropout_keep_prob}")
    check_clip_shape(frames or MIN_FRAMES, height, width, final_endpoint)

    inputs = keras.Input(shape=(frames, height, width, channels), name="clip")
    x = ClipShapeCheck(final_endpoint, name="clip_shape_check")(inputs)
    for endpoint, kind, args in _LAYERS:
        if kind == "unit":
            x = _unit(x, endpoint, args["filters"], args["kernel"], args.get("strides", (1, 1, 1)))
        elif kind == "pool":
            x = _pool(x, endpoint, args["pool"], args["strides"])
        else:
            x = _mixed(x, endpoint)
        if endpoint == final_endpoint:
            return keras.Model(inputs, x, name=name or "i3d")

    return _logits_head(inputs, x, num_classes, final_endpoint, dropout_keep_prob, name)


def _logits_head(inputs, x, num_classes: int, final_endpoint: str, dropout_keep_prob: float, name: str | None):
    """DeepMind's head on Mixed_5c: a 2x7x7 VALID average pool, dropout, a 1x1x1 convolution with bias,
    the spatial squeeze and the mean over time (or, for ``"Features"``, the pooled mean)."""
    x = layers.AveragePooling3D((2, HEAD_GRID, HEAD_GRID), strides=(1, 1, 1), padding="valid",
                                name="Logits.AvgPool3D")(x)
    if final_endpoint == "Features":
        x = MeanOverAxes((1, 2, 3), name="Features")(x)
        return keras.Model(inputs, x, name=name or "i3d_features")
    x = layers.Dropout(1.0 - dropout_keep_prob, name="Logits.Dropout")(x)
    x = layers.Conv3D(num_classes, (1, 1, 1), padding="same", use_bias=True,
                      name="Logits.Conv3d_0c_1x1.conv_3d")(x)
    x = SpatialSqueeze(name="Logits.SpatialSqueeze")(x)
    x = MeanOverAxes((1,), name="Logits")(x)
    if final_endpoint == "Predictions":
        x = layers.Softmax(name="Predictions")(x)
    return keras.Model(inputs, x, name=name or "i3d")


TOP_INPUT = "Mixed_5b"
"""Where a fine-tuned top starts: the trunk's Mixed_5b output, (T/8, 7, 7, 832) for a T-frame clip."""
TOP_INPUT_CHANNELS = sum(_MIXED[TOP_INPUT][i] for i in (0, 2, 4, 5))


def build_top(num_classes: int, dropout_keep_prob: float = 1.0, name: str | None = None) -> keras.Model:
    """The network after :data:`TOP_INPUT`: Mixed_5c and the logits head, on Mixed_5b activations.

    Its layers carry the names they have in :func:`build_i3d`, so weights pass between the two by layer
    name: this is what ``i3d train --fine-tune mixed_5c`` trains.
    """
    inputs = keras.Input(shape=(None, HEAD_GRID, HEAD_GRID, TOP_INPUT_CHANNELS), name="mixed_5b")
    start = [endpoint for endpoint, _, _ in _LAYERS].index(TOP_INPUT) + 1
    x = inputs
    for endpoint, _, _ in _LAYERS[start:]:
        x = _mixed(x, endpoint)
    return _logits_head(inputs, x, num_classes, "Logits", dropout_keep_prob, name or "i3d_top")


def with_features(model: keras.Model) -> keras.Model:
    """The logits model with a second output: its 1024-d features, shared weights and all.

    The features are the head's 2x7x7-pooled Mixed_5c averaged over time and
    space, the input of the logits layer (what ``final_endpoint="Features"``
    gives); one forward pass yields both.
    """
    pooled = model.get_layer("Logits.AvgPool3D").output
    features = MeanOverAxes((1, 2, 3), name="Features")(pooled)
    return keras.Model(model.inputs, [model.outputs[0], features], name=model.name)
