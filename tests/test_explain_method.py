"""Grad-CAM's video definition (a weight per time step, the blank clip's activations subtracted), the deletion
curves' blurred fill and the Grad-CAM networks a server keeps: on small networks and arrays, in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from i3d.errors import OptionError
from i3d.tasks.explain import GradCAM
from i3d.tasks.explain.faithfulness import CurveOptions, blanked, blurred_copy, curves
from i3d.tasks.explain.gradcam import SharedNetworks


def _pooled_head_network(seed: int = 0):
    """I3D's shape in small (float32: TensorFlow pools only that on a CPU): clip (4, 8, 8, 2) -> conv 'target'
    (zero padding, ReLU) -> average pool over 2 x 8 x 8 windows (stride 1: time steps 0 and 3 in one window,
    1 and 2 in two) -> 1x1x1 conv to 5 logits -> mean over time. The logits are linear in the target's
    activations."""
    import keras

    keras.utils.set_random_seed(seed)
    clip = keras.Input((4, 8, 8, 2), dtype="float32")
    x = keras.layers.Conv3D(6, 3, padding="same", activation="relu", name="target", dtype="float32")(clip)
    x = keras.layers.AveragePooling3D((2, 8, 8), strides=1, padding="valid", dtype="float32")(x)
    x = keras.layers.Conv3D(5, 1, dtype="float32")(x)
    return keras.Model(clip, keras.layers.GlobalAveragePooling3D(dtype="float32")(x))


def test_the_map_before_its_relu_adds_up_to_the_logit_change_from_the_blank_clip():
    """Where the head is linear (I3D's Mixed_5c), the signed map is an exact account of the class's logit: its
    sum is the logit on the clip less the logit on the clip's mean colour. A weight per channel for all time
    steps, or no blank subtracted, would not add up."""
    model = _pooled_head_network()
    clip = np.random.default_rng(2).normal(size=(1, 4, 8, 8, 2)).astype(np.float32)
    blank = np.broadcast_to(clip.mean(axis=(1, 2, 3), keepdims=True), clip.shape)
    logits, blank_logits = np.asarray(model(clip))[0], np.asarray(model(blank))[0]
    cam = GradCAM(model, "target")
    sums = []
    for index in range(5):
        signed = cam.signed_map(clip, index)
        assert signed.shape == (4, 8, 8)
        sums.append(float(signed.astype(np.float64).sum()))
        np.testing.assert_array_equal(cam.map(clip, index), np.maximum(signed, 0.0))
    changes = logits.astype(np.float64) - blank_logits
    assert np.abs(changes).max() > 0.05  # real changes to account for
    np.testing.assert_allclose(sums, changes, rtol=1e-4, atol=1e-5)
    activations, reference, gradients, _ = cam.parts(clip, 0)
    per_step = np.abs(gradients).mean(axis=(1, 2, 3))
    assert per_step[1] == pytest.approx(2 * per_step[0], rel=1e-5) and per_step[2] == pytest.approx(2 * per_step[3],
                                                                                                     rel=1e-5)
    single_weight = (activations - reference) @ gradients.mean(axis=(0, 1, 2))
    assert abs(single_weight.sum() - changes[0]) > 1e-3 * abs(changes[0])  # ten times the tolerance above: the
    # image recipe's one weight per channel does not add up


def test_a_blank_clip_has_no_evidence_though_the_padding_lights_its_edges():
    """The zero padding makes a one-colour clip's activations differ at the borders; subtracting the blank
    clip's activations leaves no heat at all on such a clip."""
    model = _pooled_head_network(seed=1)
    clip = np.broadcast_to(np.array([0.3, -0.2], np.float32), (1, 4, 8, 8, 2)).copy()
    cam = GradCAM(model, "target")
    activations, reference, _, _ = cam.parts(clip, 1)
    assert np.ptp(activations[1, :, :, :], axis=(0, 1)).max() > 1e-3  # the borders differ from the middle
    np.testing.assert_allclose(reference, activations, atol=1e-6)
    assert np.abs(cam.signed_map(clip, 1)).max() < 1e-6


def test_blurred_copy_is_a_gaussian_in_space_only():
    """An impulse spreads as exp(-d^2 / 2 sigma^2) along rows and columns, not across frames; a flat clip stays."""
    clip = np.zeros((3, 64, 64, 1), np.float32)
    clip[1, 32, 32, 0] = 1.0
    out = blurred_copy(clip, sigma=4.0)
    assert out[0].max() == 0 and out[2].max() == 0
    profile = out[1, 32, :, 0]
    assert profile[32 + 4] / profile[32] == pytest.approx(np.exp(-0.5), rel=1e-4)
    assert profile[32 + 8] / profile[32] == pytest.approx(np.exp(-2.0), rel=1e-4)
    assert out[1, 32 - 4, 32, 0] == pytest.approx(profile[32 + 4], rel=1e-5)
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    flat = np.full((2, 16, 16, 3), 0.25, np.float32)
    np.testing.assert_allclose(blurred_copy(flat), flat, atol=1e-6)


def test_blur_fill_takes_the_blanked_cells_from_the_blurred_copy():
    rng = np.random.default_rng(0)
    clip = rng.uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)
    soft = blurred_copy(clip)
    out = blanked(clip, np.array([0, 3]), (2, 16, 16), soft)  # grid 2 x 2 x 2: cells 0 and 3
    np.testing.assert_array_equal(out[:2, :16, :16], soft[:2, :16, :16])
    np.testing.assert_array_equal(out[:2, 16:, 16:], soft[:2, 16:, 16:])
    np.testing.assert_array_equal(out[:2, :16, 16:], clip[:2, :16, 16:])
    np.testing.assert_array_equal(out[2:], clip[2:])

    seen = []

    def predict(batch):  # the probability of class 0: the share of the clip's voxels left as they were
        seen.extend(batch)
        same = np.isclose(batch, clip[None]).all(axis=-1).mean(axis=(1, 2, 3))
        return np.stack([same, 1 - same], axis=1)

    options = CurveOptions(steps=2, cell=(2, 16, 16), batch=3, fill="blur")
    result = curves(predict, clip, {"first": np.arange(8)}, 0, options)["first"]
    np.testing.assert_allclose(result.deletion.probabilities, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(result.insertion.probabilities, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(seen[1], soft)  # the all-blank clip is the blurred copy
    with pytest.raises(OptionError, match="fill"):
        CurveOptions(fill="noise").check()


def test_shared_networks_build_each_network_once():
    shared, built = SharedNetworks(), []

    def build(name):
        def make():
            built.append(name)
            return name
        return make

    with shared.lock:
        assert shared.get(("rgb", "Mixed_5c"), build("a")) == "a"
        assert shared.get(("rgb", "Mixed_5c"), build("b")) == "a"
        assert shared.get(("rgb", "Mixed_4f"), build("c")) == "c"
    assert built == ["a", "c"]


def test_a_network_that_overflows_is_refused_not_drawn_as_nan():
    """Weights that overflow float32 give inf activations and NaN gradients: a WeightsError (exit 4) naming
    the layer, never a map of NaN (whose peak and boxes would be arbitrary)."""
    from i3d.errors import WeightsError

    model = _pooled_head_network()
    target = model.get_layer("target")
    kernel, bias = target.get_weights()
    target.set_weights([np.full_like(kernel, 1e38), bias])
    clip = np.random.default_rng(0).uniform(0.5, 1.0, size=(1, 4, 8, 8, 2)).astype(np.float32)
    with pytest.raises(WeightsError, match="at target are not finite on this clip"):
        GradCAM(model, "target").map(clip, 0)


def test_the_heat_under_the_labels_follows_the_window_the_labels_choose():
    """--heat's frame lookup, on hand-made maps: at each moment the covering window whose centre is nearest
    (the earlier on a tie) gives the heat, at the network frame the moment falls on, placed where the crop
    lies in the full frame (a 448 x 224 video, centre crop: x 112..336); pixels outside the crop get none."""
    from i3d.results import WindowSpan
    from i3d.tasks.explain.heat_track import HeatTrack
    from i3d.tasks.explain.regions import CropGeometry

    first, second = np.zeros((2, 7, 7), np.float32), np.zeros((2, 7, 7), np.float32)
    first[:, 0, 0] = 1.0  # the first window's evidence: top-left of the crop
    second[:, 6, 6] = 1.0  # the second's: bottom-right
    spans = {0: WindowSpan(0, 0, 32, 0.0, 1.28), 1: WindowSpan(1, 16, 32, 0.64, 1.92)}
    geometry = CropGeometry(448, 224, "centre", (0.0, 0.0), (112.0, 0.0), (1.0, 1.0))
    track = HeatTrack(spans, {(0, 5): (first,), (1, 5): (second,)}, {0: 32, 1: 32}, geometry)
    assert [track.window_for(t, 5) for t in (0.1, 0.95, 0.96, 0.97, 1.5, 1.92)] == [0, 0, 0, 1, 1, None]  # 0.96: a tie
    assert track.window_for(0.1, 4) is None and track(0.1, 4, 448, 224) is None
    early, late = track(0.1, 5, 448, 224), track(1.5, 5, 448, 224)
    assert early.shape == late.shape == (224, 448)
    assert np.unravel_index(np.argmax(early), early.shape) == (0, 112)  # the crop's top-left pixel
    # the bottom-right cell's centre is crop pixel 207.5 (cells of 32): full heat from there to the crop's corner
    assert np.unravel_index(np.argmax(late), late.shape) == (208, 320) and late[223, 335] == late.max()
    assert early[:, :112].max() == 0 and early[:, 336:].max() == 0 and late[:, :112].max() == 0
    assert float(early.max()) == pytest.approx(1.0)
