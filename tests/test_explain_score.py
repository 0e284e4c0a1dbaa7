"""Grad-CAM's ``--score``: the log-probability's map against its definition by finite differences, and the
option carried from the command line to the map that is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax
from support import run_cli
from test_explain import _small_network

from i3d.tasks.explain import GradCAM


def _by_hand(tail, activations: np.ndarray, reference: np.ndarray, score) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM's weights (T, C) and map before its ReLU (T, H, W), computed by hand: each activation moved by
    +-1e-6 through ``tail`` (the network after the layer), ``score`` applied to the logits, the central
    difference as the gradient, its mean over space as each channel's weight at each time step, the change from
    the reference weighted and summed over the channels."""
    step = 1e-6
    flat = activations.ravel()
    moved = step * np.eye(flat.size)

    def scores(batch):
        return score(np.asarray(tail(batch.reshape(-1, *activations.shape))))

    gradients = ((scores(flat + moved) - scores(flat - moved)) / (2 * step)).reshape(activations.shape)
    weights = gradients.mean(axis=(1, 2))
    return weights, ((activations - reference) * weights[:, None, None, :]).sum(axis=-1)


def test_the_probability_score_is_the_log_softmax_and_its_map_equals_finite_differences():
    """score="probability": the gradients are of the class's log-probability, log softmax(logits)[c], not of its
    logit; the weights and map equal those computed by hand from finite differences of the log-softmax through
    the network after the layer, and differ from the logit's (themselves equal to the logit's finite
    differences)."""
    model, trunk, tail = _small_network(seed=3)
    clip = np.random.default_rng(4).normal(size=(1, 4, 8, 8, 2))
    blank = np.broadcast_to(clip.mean(axis=(1, 2, 3), keepdims=True), clip.shape)
    activations, reference = np.asarray(trunk(clip))[0], np.asarray(trunk(blank))[0]
    logits = np.asarray(model(clip))[0]
    index = int(np.argmax(logits))
    weights, expected = _by_hand(tail, activations, reference, lambda z: log_softmax(z, axis=1)[:, index])
    logit_weights, logit_expected = _by_hand(tail, activations, reference, lambda z: z[:, index])
    assert (expected > 0).sum() > 20 and (expected < 0).sum() > 20  # not a trivial map

    probability = GradCAM(model, "target", score="probability")
    got_activations, got_reference, gradients, value = probability.parts(clip, index)
    assert value == pytest.approx(log_softmax(logits)[index], abs=1e-12)
    np.testing.assert_allclose(got_activations, activations, atol=1e-12)
    np.testing.assert_allclose(got_reference, reference, atol=1e-12)
    np.testing.assert_allclose(gradients.mean(axis=(1, 2)), weights, rtol=1e-4, atol=1e-4 * np.abs(weights).max())
    signed = probability.signed_map(clip, index)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(signed, expected, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(probability.map(clip, index), np.maximum(expected, 0.0), rtol=1e-4, atol=1e-4 * scale)

    logit = GradCAM(model, "target", score="logit")
    assert logit.parts(clip, index)[3] == pytest.approx(logits[index], abs=1e-12)
    np.testing.assert_allclose(logit.signed_map(clip, index), logit_expected, rtol=1e-4,
                               atol=1e-4 * np.abs(logit_expected).max())
    # the log-probability takes away the other classes' evidence, each by its probability: other weights, another map
    assert np.abs(weights - logit_weights).max() > 0.1 * np.abs(logit_weights).max()
    assert np.abs(expected - logit_expected).max() > 0.1 * np.abs(logit_expected).max()


def _head_cam(model, clip: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Grad-CAM at I3D's Mixed_5c (ReLU'd) for the score ``weights . logits``, by hand: the head after Mixed_5c is
    linear (a 2x7x7 average pool with stride 1, the 1x1x1 logits layer, the mean over its time steps), so the
    gradient at step t is the logits layer's kernel times ``weights``, times the pooling windows holding t over
    the windows' count and size: no automatic differentiation."""
    import keras

    trunk = keras.Model(model.inputs[0], model.get_layer("Mixed_5c").output)
    blank = np.broadcast_to(clip.mean(axis=(1, 2, 3), keepdims=True), clip.shape)
    activations, reference = np.asarray(trunk(np.concatenate([clip, blank])), np.float64)
    kernel = model.get_layer("Logits.Conv3d_0c_1x1.conv_3d").get_weights()[0].reshape(1024, -1)
    steps = activations.shape[0]
    windows = np.array([(t >= 1) + (t <= steps - 2) for t in range(steps)])  # 1 at the ends, 2 between
    gradient = windows[:, None] * (kernel.astype(np.float64) @ weights)[None] / ((steps - 1) * 2 * 7 * 7)
    return np.maximum(np.einsum("thwk,tk->thw", activations - reference, gradient), 0.0)


def test_the_command_draws_the_log_probabilitys_map_when_asked(shared_weights_dir, cricket_clips, pretrained_rgb,
                                                                tmp_path):
    """--score probability reaches the map written to maps.npz (the command on 24 frames of the cricket clip): the Grad-CAM of log softmax(logits)[c], whose gradient is the logits layer's kernel
    times (one-hot c less the softmax), computed by hand; not the logit's map (the default)."""
    clip = np.load(cricket_clips["rgb"])[:, :24]
    np.save(tmp_path / "short.npy", clip)
    out = tmp_path / "why"
    done = run_cli("explain", "--rgb", str(tmp_path / "short.npy"), "--out", str(out), "--score", "probability",
                   weights_dir=shared_weights_dir, module="i3d")
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "explain.json").read_text())
    assert data["settings"]["score"] == "probability" and data["layer"] == "Mixed_5c"
    (item,) = data["windows"][0]["maps"]
    assert item["class"] == "playing cricket" and item["layer_shape"] == [3, 7, 7]
    with np.load(out / "maps.npz", allow_pickle=False) as maps:
        key = f"window0.rgb.{item['index']}"
        written = maps[f"{key}.layer"].astype(np.float64) * float(maps[f"{key}.scale"])

    logits = np.asarray(pretrained_rgb(clip), np.float64)[0]
    assert int(np.argmax(logits)) == item["index"]
    one_hot = np.eye(len(logits))[item["index"]]
    expected = _head_cam(pretrained_rgb, clip, one_hot - np.exp(log_softmax(logits)))
    logit = _head_cam(pretrained_rgb, clip, one_hot)
    assert expected.max() > 0
    np.testing.assert_allclose(written, expected, atol=2e-3 * expected.max())  # float16 in maps.npz
    assert np.abs(written / written.max() - logit / logit.max()).max() > 0.1  # another map than the logit's
