"""Structure and numerics of the Keras I3D graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import index_path, needs_shared

from i3d.quiet import silence_tensorflow

silence_tensorflow()
from i3d.model import ENDPOINTS, build_i3d, checkpoint_key  # noqa: E402

# DeepMind's endpoint shapes for a 224x224 clip, without batch and time.
SPATIAL = {
    "Conv3d_1a_7x7": (112, 64), "MaxPool3d_2a_3x3": (56, 64), "Conv3d_2b_1x1": (56, 64),
    "Conv3d_2c_3x3": (56, 192), "MaxPool3d_3a_3x3": (28, 192), "Mixed_3b": (28, 256),
    "Mixed_3c": (28, 480), "MaxPool3d_4a_3x3": (14, 480), "Mixed_4b": (14, 512), "Mixed_4c": (14, 512),
    "Mixed_4d": (14, 512), "Mixed_4e": (14, 528), "Mixed_4f": (14, 832), "MaxPool3d_5a_2x2": (7, 832),
    "Mixed_5b": (7, 832), "Mixed_5c": (7, 1024),
}
TIME_DIVISOR = {name: 2 for name in list(SPATIAL)[:7]} | {name: 4 for name in list(SPATIAL)[7:13]} \
    | {name: 8 for name in list(SPATIAL)[13:]}


@pytest.fixture(scope="module")
def rgb_model():
    return build_i3d(channels=3)


@pytest.mark.parametrize("frames", [64, 79])
def test_endpoint_shapes(frames):
    model = build_i3d(channels=3, frames=frames)
    for name, (size, depth) in SPATIAL.items():
        steps = math.ceil(frames / TIME_DIVISOR[name])
        assert tuple(model.get_layer(name).output.shape) == (None, steps, size, size, depth), name
    assert tuple(model.output.shape) == (None, 400)
    assert ENDPOINTS[-2:] == ("Logits", "Predictions")


def test_final_endpoint_switch():
    model = build_i3d(channels=2, frames=16, final_endpoint="Mixed_4f")
    assert tuple(model.output.shape) == (None, 4, 14, 14, 832)
    assert tuple(build_i3d(frames=16, final_endpoint="Features").output.shape) == (None, 1024)
    probabilities = build_i3d(final_endpoint="Predictions")(np.zeros((1, 9, 224, 224, 3), np.float32))
    assert np.isclose(float(np.sum(probabilities)), 1.0, atol=1e-5)


def test_nine_frames_run_and_eight_are_refused(rgb_model):
    logits = np.asarray(rgb_model(np.zeros((1, 9, 224, 224, 3), np.float32)))
    assert logits.shape == (1, 400)
    with pytest.raises(ValueError, match="at least 9"):
        build_i3d(frames=8)
    with pytest.raises(ValueError, match="at least 9"):  # the dynamic-length model, called eagerly
        rgb_model(np.zeros((1, 8, 224, 224, 3), np.float32))
    with pytest.raises(ValueError, match="expected shape"):  # Keras checks the declared 224x224
        rgb_model(np.zeros((1, 9, 256, 256, 3), np.float32))
    with pytest.raises(ValueError, match="193 to 224"):
        build_i3d(height=256)
    with pytest.raises(ValueError, match="channels"):
        build_i3d(channels=1)


def test_parameter_counts(rgb_model):
    non_trainable = sum(int(np.prod(w.shape)) for w in rgb_model.non_trainable_weights)
    assert (rgb_model.count_params(), non_trainable) == (12_704_544, 14_560)
    assert build_i3d(channels=2).count_params() == 12_682_592


@needs_shared
@pytest.mark.parametrize("deepmind_name", ["rgb_scratch", "rgb_imagenet", "flow_scratch", "flow_imagenet"])
def test_variable_names_and_shapes_equal_the_official_index(deepmind_name):
    import tensorflow as tf

    stream = "RGB" if deepmind_name.startswith("rgb") else "Flow"
    model = build_i3d(channels=3 if stream == "RGB" else 2)
    ours = {checkpoint_key(v.path, stream): tuple(v.shape) for v in model.weights}
    prefix = str(index_path(deepmind_name))[: -len(".index")]
    theirs = {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}
    assert len(theirs) == 230
    assert ours == theirs


# ---- numerics against a small numpy reference -------------------------------

def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME': output ceil(size/stride), total pad split with the extra at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _numpy_conv_same(x, w, strides):
    pads = [_same_pads(x.shape[i], w.shape[i], strides[i]) for i in range(3)]
    x = np.pad(x, pads + [(0, 0)])
    out_shape = [(x.shape[i] - w.shape[i]) // strides[i] + 1 for i in range(3)]
    out = np.zeros(out_shape + [w.shape[-1]])
    for t in range(out_shape[0]):
        for h in range(out_shape[1]):
            for v in range(out_shape[2]):
                patch = x[t * strides[0]:t * strides[0] + w.shape[0], h * strides[1]:h * strides[1] + w.shape[1],
                          v * strides[2]:v * strides[2] + w.shape[2]]
                out[t, h, v] = np.tensordot(patch, w, axes=4)
    return out


def _numpy_maxpool_same(x, kernel, strides):
    pads = [_same_pads(x.shape[i], kernel[i], strides[i]) for i in range(3)]
    x = np.pad(x, pads + [(0, 0)], constant_values=-np.inf)
    out_shape = [(x.shape[i] - kernel[i]) // strides[i] + 1 for i in range(3)]
    out = np.zeros(out_shape + [x.shape[-1]])
    for t in range(out_shape[0]):
        for h in range(out_shape[1]):
            for v in range(out_shape[2]):
                out[t, h, v] = x[t * strides[0]:t * strides[0] + kernel[0], h * strides[1]:h * strides[1] + kernel[1],
                                 v * strides[2]:v * strides[2] + kernel[2]].max(axis=(0, 1, 2))
    return out


@pytest.mark.parametrize("frames,height,width", [(5, 9, 10), (6, 12, 11)])
def test_first_unit_and_pool_match_numpy(frames, height, width):
    rng = np.random.default_rng(1)
    model = build_i3d(channels=3, frames=frames, height=height, width=width, final_endpoint="MaxPool3d_2a_3x3")
    conv = model.get_layer("Conv3d_1a_7x7.conv_3d")
    bn = model.get_layer("Conv3d_1a_7x7.batch_norm")
    w = rng.normal(0, 0.1, (7, 7, 7, 3, 64)).astype(np.float32)
    beta, mean = rng.normal(0, 1, (2, 64)).astype(np.float32)
    var = rng.uniform(0.001, 2, 64).astype(np.float32)
    conv.set_weights([w])
    bn.set_weights([beta, mean, var])
    x = rng.uniform(-1, 1, (1, frames, height, width, 3)).astype(np.float32)

    conv_ref = _numpy_conv_same(x[0].astype(np.float64), w.astype(np.float64), (2, 2, 2))
    unit_ref = np.maximum((conv_ref - mean) / np.sqrt(var + 1e-3) + beta, 0)
    pool_ref = _numpy_maxpool_same(unit_ref, (1, 3, 3), (1, 2, 2))

    unit = build_i3d(channels=3, frames=frames, height=height, width=width, final_endpoint="Conv3d_1a_7x7")
    unit.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(unit(x))[0], unit_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model(x))[0], pool_ref, rtol=1e-4, atol=1e-4)
    # the asymmetric pad matters: a symmetric pad would give a different answer on these sizes
    assert unit_ref.shape[:3] == tuple(math.ceil(s / 2) for s in (frames, height, width))


def test_every_variant_shares_the_whole_networks_weights_and_agrees_with_it():
    """Trunk, per-step outputs, the fine-tuning top and the fine-tuned network are views of one built network:
    the same variables, and the same numbers as composing them by hand."""
    from i3d.model import Network, build_network

    built = []
    whole = build_network(Network(outputs=("logits", "features", "step_logits", "step_features")),
                          weights=built.append)
    [base] = built
    clip = np.random.default_rng(5).uniform(-1, 1, (1, 17, 224, 224, 3)).astype(np.float32)
    logits, features, step_logits, step_features = (np.asarray(t) for t in whole(clip, training=False))
    assert step_logits.shape == (1, 2, 400) and step_features.shape == (1, 2, 1, 1, 1024)
    np.testing.assert_allclose(step_logits.mean(axis=1), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step_features.mean(axis=(1, 2, 3)), features, rtol=1e-5, atol=1e-6)

    trunk = build_network(Network(outputs=("Mixed_5b",)), base=base)
    top = build_network(Network(top_classes=5, top_only=True), base=base)
    tuned = build_network(Network(outputs=("logits", "features"), top_classes=5), base=base)
    shared = {id(v) for v in base.weights}
    assert {id(v) for v in trunk.weights} <= shared and {id(v) for v in whole.weights} == shared
    conv = "Logits.Conv3d_0c_1x1.conv_3d"
    assert tuned.get_layer(conv).get_weights()[0].shape[-1] == 5 and tuned.get_layer(conv) is not top.get_layer(conv)
    tuned.get_layer(conv).set_weights(top.get_layer(conv).get_weights())
    by_hand = np.asarray(top(np.asarray(trunk(clip, training=False)), training=False))
    tuned_logits, tuned_features = (np.asarray(t) for t in tuned(clip, training=False))
    np.testing.assert_allclose(tuned_logits, by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tuned_features, features)  # Kinetics' Mixed_5c until a head's is set
