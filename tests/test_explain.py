"""i3d explain: Grad-CAM against its definition, occlusion against hand-computed drops, the sanity checks of
Adebayo et al. (2018), where the crop lies in the video, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import ARM_WRESTLING, needs_video, run_cli

from i3d.errors import OptionError
from i3d.tasks.explain import ExplainOptions, GradCAM, explain, occlusion_map, upsample
from i3d.tasks.explain.options import check_budget, class_indices, occlusion_passes
from i3d.tasks.explain.regions import crop_geometry, half_heat_box, peak, temporal_curve

FRAMES = 32


# --- Grad-CAM's definition on a small network ------------------------------------------------------------------

def _small_network(seed: int = 0):
    """A few 3D convolutions in float64: clip (4, 8, 8, 2) -> conv 'target' -> conv -> pool -> 5 logits; and the
    part after 'target' as a model of its own, sharing the layers."""
    import keras

    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv3D(3, 3, padding="same", activation="relu", name="target", dtype="float64")
    after = [keras.layers.Conv3D(4, 3, padding="same", activation="relu", dtype="float64"),
             keras.layers.GlobalAveragePooling3D(dtype="float64"), keras.layers.Dense(5, dtype="float64")]
    clip = keras.Input((4, 8, 8, 2), dtype="float64")
    x = conv(clip)
    tail_input = keras.Input((4, 8, 8, 3), dtype="float64")
    y, z = x, tail_input
    for layer in after:
        y, z = layer(y), layer(z)
    return keras.Model(clip, y), keras.Model(clip, x), keras.Model(tail_input, z)


def test_gradcam_equals_its_definition_computed_by_finite_differences():
    model, trunk, tail = _small_network()
    clip = np.random.default_rng(1).normal(size=(1, 4, 8, 8, 2))
    activations = np.asarray(trunk(clip))[0]
    logits = np.asarray(model(clip))[0]
    index = int(np.argsort(logits)[-2])  # not the top class: any class has a map
    step = 1e-6
    flat = activations.ravel()
    plus = np.repeat(flat[None], flat.size, 0) + step * np.eye(flat.size)
    minus = np.repeat(flat[None], flat.size, 0) - step * np.eye(flat.size)
    scores = lambda batch: np.asarray(tail(batch.reshape(-1, *activations.shape)))[:, index]  # noqa: E731
    gradients = ((scores(plus) - scores(minus)) / (2 * step)).reshape(activations.shape)
    weights = gradients.mean(axis=(1, 2))  # one per channel and time step: the mean over space
    blank = np.broadcast_to(clip.mean(axis=(1, 2, 3), keepdims=True), clip.shape)  # the clip's mean colour
    reference = np.asarray(trunk(blank))[0]
    expected = np.maximum(((activations - reference) * weights[:, None, None, :]).sum(axis=-1), 0.0)

    cam = GradCAM(model, "target")
    got_activations, got_reference, got_gradients, score = cam.parts(clip, index)
    assert score == pytest.approx(logits[index], abs=1e-12)
    np.testing.assert_allclose(got_activations, activations, atol=1e-12)
    np.testing.assert_allclose(got_reference, reference, atol=1e-12)
    np.testing.assert_allclose(got_gradients.mean(axis=(1, 2)), weights, rtol=1e-4, atol=1e-4 * abs(weights).max())
    got = cam.map(clip, index)
    assert got.shape == (4, 8, 8) and (expected > 0).sum() > 20 and (expected == 0).any()  # not a trivial map
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.max())


# --- maps to places ------------------------------------------------------------------------------------------

def test_upsample_is_linear_interpolation_with_pixel_centres_aligned():
    from scipy.ndimage import zoom

    layer = np.random.default_rng(0).uniform(size=(4, 7, 7))
    got = upsample(layer, 32)
    expected = zoom(layer, (32 / 4, 224 / 7, 224 / 7), order=1, mode="nearest", grid_mode=True)
    assert got.shape == (32, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(upsample(np.full((2, 3, 3), 0.25), 9, 30), 0.25, atol=1e-7)


def test_half_heat_box_is_the_smallest_box_holding_half_the_heat():
    frame = np.zeros((224, 224))
    frame[40:80, 120:200] = 1.0  # all the heat in one block: half of it fits in half the block
    box = half_heat_box(frame)
    left, top, right, bottom = box
    assert frame[top:bottom, left:right].sum() >= frame.sum() / 2
    assert (right - left) * (bottom - top) == 40 * 40  # 5 x 5 cells of 8 px: the least area holding half
    rng = np.random.default_rng(3)
    small = rng.uniform(size=(12, 12)) ** 4
    best = min(((b - t) * (r - l), -small[t:b, l:r].sum(), (l, t, r, b))
               for t in range(12) for b in range(t + 1, 13) for l in range(12) for r in range(l + 1, 13)
               if small[t:b, l:r].sum() >= small.sum() / 2)
    assert half_heat_box(small, grid=12) == best[2]
    assert half_heat_box(np.zeros((224, 224))) is None and peak(np.zeros((224, 224))) is None
    frame[60, 150] = 2.0
    assert peak(frame) == (150.5, 60.5)
    curve = temporal_curve(np.stack([frame, 3 * frame]))
    np.testing.assert_allclose(curve, [0.25, 0.75])


@pytest.mark.parametrize("width, height, crop", [(320, 240, "center"), (240, 320, "center"), (640, 360, "full"),
                                                 (1200, 200, "center"), (256, 300, "ten")])
def test_crop_points_map_onto_the_original_frame(width, height, crop):
    """A bright square in the original frame, prepared and cropped as the network sees it: its centre in the
    crop, mapped back, lands on the square's centre in the original."""
    from i3d.transforms import crop_frame, prepare_frame

    centre = (width // 2 + 13, height // 2 - 9)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[centre[1] - 6:centre[1] + 6, centre[0] - 6:centre[0] + 6] = 255
    seen = crop_frame(prepare_frame(frame, crop), crop)
    seen = seen[4] if crop == "ten" else seen  # the centre view
    weights = seen[..., 0].astype(np.float64)
    rows, columns = np.indices(weights.shape)
    x, y = (columns * weights).sum() / weights.sum() + 0.5, (rows * weights).sum() / weights.sum() + 0.5
    video = crop_geometry(width, height, crop).to_video(x, y)
    assert video == pytest.approx(centre, abs=1.0)


def test_arm_wrestling_geometry_is_a_shift():
    """340 x 256 is already at short side 256: the centre crop starts 58 px in and 16 px down."""
    geometry = crop_geometry(340, 256, "center")
    assert geometry.box_to_video((0, 0, 224, 224)) == (58.0, 16.0, 282.0, 240.0)


# --- options --------------------------------------------------------------------------------------------------

def test_options_refuse_what_no_run_could_use():
    with pytest.raises(OptionError, match="not an I3D endpoint; choose from .*Mixed_4f.*Mixed_5c") as err:
        ExplainOptions(layer="Mixed_6a").check()
    assert err.value.option == "layer"
    with pytest.raises(OptionError, match="top"):
        ExplainOptions(top=0).check()
    with pytest.raises(OptionError, match="patch"):
        ExplainOptions(method="occlusion", patch=(0, 56, 56)).check()
    ExplainOptions(layer="Mixed_4f").check()
    assert occlusion_passes(64, (16, 56, 56)) == 4 * 4 * 4 + 1
    assert occlusion_passes(250, (16, 56, 56)) == 16 * 4 * 4 + 1
    with pytest.raises(OptionError, match=r"needs 65: give --budget 65"):
        check_budget(64, 64, (16, 56, 56))
    check_budget(65, 64, (16, 56, 56))


def test_class_names_match_as_labels_do_and_unknown_ones_list_the_closest():
    from i3d.weights.sets import get_weight_set

    categories = get_weight_set("rgb", "kinetics").categories
    assert class_indices(["Playing_Cricket", "juggling-balls"], categories) == (
        categories.index("playing cricket"), categories.index("juggling balls"))
    with pytest.raises(OptionError, match="'playing crickett' is not one of the 400 classes; closest: "
                                          "'playing cricket'"):
        class_indices(["playing crickett"], categories)


# --- occlusion ------------------------------------------------------------------------------------------------

def test_occlusion_drops_equal_those_computed_by_hand():
    """A 'network' whose probability is the clip's mean: hiding a cell changes the mean by exactly
    (cell's sum - its size x the fill) / the clip's size."""
    clip = np.zeros((1, 32, 224, 224, 3), np.float32)
    clip[0, 16:32, 56:112, 112:168] = 1.0  # exactly one cell of the 16 x 56 x 56 grid
    seen = []

    def probabilities(clips):
        seen.append(len(clips))
        p = clips.mean(axis=(1, 2, 3, 4))
        return np.stack([p, 1 - p], axis=1)

    got = occlusion_map(probabilities, clip, 0, patch=(16, 56, 56), batch=5, budget=33)
    size, fill = clip.size, clip.mean()
    cell = 16 * 56 * 56 * 3
    expected = np.full((2, 4, 4), -cell * fill / size)
    expected[1, 1, 2] = (cell - cell * fill) / size
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert sum(seen) == 33 == occlusion_passes(32, (16, 56, 56)) and max(seen) == 5
    with pytest.raises(OptionError, match="needs 33"):
        occlusion_map(probabilities, clip, 0, patch=(16, 56, 56), budget=32)


# --- on I3D ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_i3d(shared_store):
    from i3d.weights.loading import LoadOptions, build_pretrained
    from i3d.weights.sets import get_weight_set

    return build_pretrained(get_weight_set("rgb", "kinetics"), shared_store, LoadOptions(download=False))


@pytest.fixture(scope="module")
def cricket(cricket_clips) -> np.ndarray:
    return np.load(cricket_clips["rgb"])[:, :FRAMES]


@pytest.fixture(scope="module")
def cricket_cam(keras_i3d, cricket):
    """(the Grad-CAM network at Mixed_5c, the top class, its map, the logits) on the cricket clip."""
    cam = GradCAM(keras_i3d, "Mixed_5c")
    logits = np.asarray(keras_i3d(cricket))[0]
    top = int(np.argmax(logits))
    return cam, top, cam.map(cricket, top), logits


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.ravel(), b.ravel())[0])


def test_i3d_gradient_at_mixed_5c_matches_finite_differences(keras_i3d, cricket, cricket_cam):
    """The logits after Mixed_5c (the head's average pool, the 1x1x1 convolution, the mean over time) recomputed
    from the layer's activations; their change along random directions equals the gradient's."""
    cam, top, _, logits = cricket_cam
    activations, gradients, score = cam.gradients(cricket, top)
    assert activations.shape == gradients.shape == (FRAMES // 8, 7, 7, 1024)
    assert score == pytest.approx(logits[top], rel=1e-5)

    def logit(a):
        x = keras_i3d.get_layer("Logits.Conv3d_0c_1x1.conv_3d")(keras_i3d.get_layer("Logits.AvgPool3D")(a[None]))
        return float(np.asarray(x, np.float64).mean(axis=1)[0, 0, 0, top])

    assert logit(activations) == pytest.approx(score, rel=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(3):
        direction = rng.normal(size=activations.shape).astype(np.float32)
        difference = (logit(activations + direction) - logit(activations - direction)) / 2
        along = float((gradients.astype(np.float64) * direction).sum())
        tolerance = 2e-3 * float(np.linalg.norm(gradients) * np.linalg.norm(direction))
        assert difference == pytest.approx(along, abs=tolerance)


@pytest.mark.slow
def test_sanity_checks_randomised_weights_and_another_class_change_the_map(shared_store, cricket, cricket_cam):
    """Adebayo et al. 2018: with the logits layer's weights drawn at random, then Mixed_5c's as well, the map's
    Spearman rank correlation with the real one is under 0.5 (mean over three draws); so is the least likely
    class's map."""
    from i3d.weights.loading import LoadOptions, build_pretrained
    from i3d.weights.sets import get_weight_set

    cam, top, real, logits = cricket_cam
    assert real.shape == (FRAMES // 8, 7, 7) and real.max() > 0
    assert _spearman(real, cam.map(cricket, int(np.argmin(logits)))) < 0.5
    model = build_pretrained(get_weight_set("rgb", "kinetics"), shared_store, LoadOptions(download=False))
    random_cam = GradCAM(model, "Mixed_5c")
    original = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}

    def randomise(prefix, rng):
        for name, weights in original.items():
            if name.startswith(prefix):
                model.get_layer(name).set_weights([rng.normal(0, w.std(), w.shape).astype(np.float32)
                                                   if w.ndim == 5 else w for w in weights])

    for cascade in ("Logits.Conv3d_0c_1x1", "Mixed_5c"):
        correlations = []
        for seed in range(3):
            rng = np.random.default_rng(seed)
            randomise("Logits.Conv3d_0c_1x1", rng)
            if cascade == "Mixed_5c":
                randomise("Mixed_5c.", rng)
            correlations.append(_spearman(real, random_cam.map(cricket, top)))
        assert np.mean(correlations) < 0.5, (cascade, correlations)


@pytest.mark.slow  # a second explain process (test_command_end_to_end keeps the command in the fast tier)
def test_explain_on_clip_arrays(recognizer, cricket):
    explanation = explain(recognizer, cricket, ExplainOptions(classes=("Playing Cricket",)))
    answer = recognizer.classify(cricket).top[0]
    assert answer.label == "playing cricket"
    (window,) = explanation.windows
    (item,) = window.maps
    assert item.label == "playing cricket" and item.probability == pytest.approx(answer.probability, rel=1e-6)
    assert item.layer_map.shape == (FRAMES // 8, 7, 7) and item.crop_map.shape == (FRAMES, 224, 224)
    assert float(item.crop_map.max()) == 1.0 and float(item.crop_map.min()) >= 0
    assert sum(item.curve) == pytest.approx(1.0) and len(item.peaks) == len(item.boxes) == FRAMES
    assert window.frames["rgb"].shape == (FRAMES, 224, 224, 3)
    np.testing.assert_array_equal(window.frames["rgb"], np.rint((cricket[0] + 1) * 127.5).astype(np.uint8))
    data = explanation.as_json()
    assert data["method"] == "gradcam" and data["layer"] == "Mixed_5c" and data["video_size"] is None
    assert data["windows"][0]["maps"][0]["per_frame"][0]["peak"]["video"] is None
    (finer,) = explain(recognizer, cricket, ExplainOptions(layer="Mixed_4f")).windows[0].maps
    assert finer.layer_map.shape == (FRAMES // 4, 14, 14) and finer.index == item.index


@needs_video
def test_command_end_to_end(shared_weights_dir, tmp_path):
    import av

    out = tmp_path / "why"
    done = run_cli("explain", str(ARM_WRESTLING), "--out", str(out), "--window", str(FRAMES), "--max-frames",
                   str(FRAMES), "--top", "2", weights_dir=shared_weights_dir, module="i3d")
    assert done.returncode == 0, done.stderr
    assert "arm wrestling" in done.stdout
    data = json.loads((out / "explain.json").read_text())
    assert data["video_size"] == [340, 256] and data["weights"] == {"rgb": "rgb_scratch"}
    assert data["weight_sets"] == {"rgb": "rgb_kinetics"} and data["head_sha256"] is None
    assert data["settings"]["window"] == FRAMES and data["precision"]["used"] == {"rgb": "fp32"}
    (window,) = data["windows"]
    first, second = window["maps"]
    assert first["class"] == "arm wrestling" and first["probability"] > 0.9
    assert second["probability"] < first["probability"] and first["layer_shape"] == [FRAMES // 8, 7, 7]
    assert len(first["per_frame"]) == FRAMES and sum(first["curve"]) == pytest.approx(1.0, abs=1e-4)
    for frame in first["per_frame"]:
        left, top, right, bottom = frame["box"]["crop"]
        assert 0 <= left < right <= 224 and 0 <= top < bottom <= 224
        assert frame["box"]["video"] == [left + 58, top + 16, right + 58, bottom + 16]
        assert frame["peak"]["video"] == [frame["peak"]["crop"][0] + 58, frame["peak"]["crop"][1] + 16]
    with np.load(out / "maps.npz", allow_pickle=False) as maps:
        key = f"window0.rgb.{first['index']}"
        assert maps[f"{key}.layer"].shape == (FRAMES // 8, 7, 7) and maps[f"{key}.layer"].dtype == np.float16
        assert maps[f"{key}.crop"].shape == (FRAMES, 224, 224) and float(maps[f"{key}.crop"].max()) == 1.0
        assert float(np.abs(maps[f"{key}.layer"]).max()) == 1.0 and float(maps[f"{key}.scale"]) > 0
        crop = maps[f"{key}.crop"][5].astype(np.float32)
        assert first["per_frame"][5]["peak"]["crop"] == [float(np.argmax(crop) % 224) + 0.5,
                                                         float(np.argmax(crop) // 224) + 0.5]
    with av.open(str(out / "explain.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (448, 224)
        assert sum(1 for _ in video.decode(stream)) == FRAMES
    from PIL import Image

    assert Image.open(out / "sheet.png").size[1] > 2 * 112


@pytest.mark.parametrize("args, code, words", [
    (["--class", "playing crickett"], 2, "closest: 'playing cricket'"),
    (["--layer", "Mixed_9z"], 2, "choose from Conv3d_1a_7x7"),
    (["--method", "occlusion", "--budget", "20"], 2, "needs 81: give --budget 81"),
    (["--method", "occlusion", "--score", "probability"], 2, "--score only applies to the gradcam method"),
])
def test_command_refuses_bad_options(shared_weights_dir, cricket_clips, tmp_path, args, code, words):
    done = run_cli("explain", "--rgb", str(cricket_clips["rgb"]), "--out", str(tmp_path / "out"), *args,
                   weights_dir=shared_weights_dir, module="i3d")
    assert done.returncode == code and words in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "explain.json").exists()


def test_command_refuses_bad_input_and_outputs_over_inputs(shared_weights_dir, cricket_clips, tmp_path):
    missing = run_cli("explain", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o"),
                      weights_dir=shared_weights_dir, module="i3d")
    assert missing.returncode == 3 and "none.mp4" in missing.stderr
    over = run_cli("explain", "--rgb", str(cricket_clips["rgb"]), "--out", str(cricket_clips["rgb"].parent),
                   weights_dir=shared_weights_dir, module="i3d")
    assert over.returncode == 2 and "--out" in over.stderr


@pytest.mark.slow
def test_occlusion_on_i3d_equals_the_runner_on_a_hand_hidden_clip(recognizer, cricket):
    """Occlusion through explain: a cell's value is the window's probability of the class less the runner's
    probability on the clip with that cell filled with the clip's mean, computed here by hand."""
    from i3d.results import softmax

    options = ExplainOptions(method="occlusion", patch=(16, 112, 112), budget=9, batch=3)
    (window,) = explain(recognizer, cricket, options).windows
    (item,) = window.maps
    assert item.layer_map.shape == (2, 2, 2) and item.label == "playing cricket"
    runner = recognizer.runners["rgb"]
    base = softmax(runner.outputs(cricket)[0][0])[item.index]
    hidden = cricket.copy()
    hidden[0, 16:32, 0:112, 112:224] = cricket[0].mean(axis=(0, 1, 2))
    dropped = softmax(runner.outputs(hidden)[0][0])[item.index]
    assert item.layer_map[1, 0, 1] == pytest.approx(base - dropped, abs=1e-5)
    assert item.probability == pytest.approx(base, rel=1e-5)
    with pytest.raises(OptionError, match="needs 9: give --budget 9"):
        explain(recognizer, cricket, ExplainOptions(method="occlusion", patch=(16, 112, 112), budget=8))


@pytest.mark.slow  # builds a second Grad-CAM network
def test_a_heads_classes_get_maps_through_its_linear_layer(recognizer, keras_i3d, cricket):
    """With a head, the score is its linear layer on the features: Grad-CAM's score equals the head's logit on
    the runner's features, and explain names and maps the head's classes."""
    from support import random_head

    from i3d.tasks.recognizer import Recognizer

    head = random_head(classes=3)
    features = recognizer.runners["rgb"].outputs(cricket)[1]
    expected = head.logits("rgb", features)[0]
    cam = GradCAM(keras_i3d, "Mixed_5c", head.streams["rgb"])
    for index in range(3):
        assert cam.gradients(cricket, index)[2] == pytest.approx(expected[index], rel=1e-3, abs=1e-3)
    with_head = Recognizer(recognizer.runners, recognizer.weight_sets, recognizer.backend, recognizer.engine,
                           head=head, store=recognizer.store)
    (window,) = explain(with_head, cricket, ExplainOptions(classes=("Class_2",))).windows
    (item,) = window.maps
    assert (item.label, item.index) == ("class 2", 2)
    np.testing.assert_allclose(item.layer_map, cam.map(cricket, 2), rtol=1e-4, atol=1e-6)
    assert item.layer_map.max() > 0
    with pytest.raises(OptionError, match="'class 9' is not one of the 3 classes; closest: 'class 2', 'class 1'"):
        explain(with_head, cricket, ExplainOptions(classes=("class 9",)))


@pytest.mark.slow
def test_both_streams_get_a_map_each_on_their_own_input(shared_weights_dir, cricket_clips, tmp_path):
    from support import copy_rgb_cache, initialised_flow_set

    from i3d.runtime.base import EngineOptions
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions
    from i3d.weights.store import WeightStore

    copy_rgb_cache(shared_weights_dir, tmp_path, ir=False)
    # a flow stand-in whose activations keep a sane size (the run's normal-noise stand-in overflows float32,
    # which explain refuses), answered by TensorFlow so that no OpenVINO model is converted for it
    flow_set = initialised_flow_set(tmp_path)
    both = Recognizer.load(("rgb", "flow"), weight_sets={"flow": flow_set}, store=WeightStore(tmp_path),
                           load=LoadOptions(download=False), engine=EngineOptions("tensorflow"))
    clips = {name: np.load(cricket_clips[name])[:, :FRAMES] for name in ("rgb", "flow")}
    explanation = explain(both, clips, ExplainOptions(top=2))
    (window,) = explanation.windows
    assert [(m.stream, m.index) for m in window.maps][::2] == [("rgb", window.maps[0].index),
                                                                ("flow", window.maps[0].index)]
    rgb, flow = window.maps[0], window.maps[2]
    fused = both.classify(clips).top
    assert rgb.label == flow.label == fused[0].label and rgb.probability == pytest.approx(fused[0].probability)
    assert rgb.layer_map.shape == flow.layer_map.shape == (FRAMES // 8, 7, 7)
    assert np.isfinite(rgb.layer_map).all() and np.isfinite(flow.layer_map).all() and flow.layer_map.max() > 0
    assert not np.allclose(rgb.layer_map, flow.layer_map)  # each on its own input and network
    picture = window.frames["flow"]
    length = np.sqrt((clips["flow"][0] ** 2).sum(axis=-1)) / np.sqrt(2)
    np.testing.assert_array_equal(picture[..., 0], np.clip(np.rint(length * 255), 0, 255).astype(np.uint8))
    explanation_json = explanation.as_json()
    assert explanation_json["weights"] == {"rgb": "rgb_scratch", "flow": "flow_scratch"}
