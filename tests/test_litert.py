"""i3d export --format tflite: I3D in LiteRT's built-in ops (2D rewrite of its 3D convolutions and pools),
float32, float16 or full-integer int8, checked in LiteRT's interpreter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, random_head, write_video

from i3d.runtime.litert import TOLERANCES, litert_runner
from i3d.weights.sets import get_weight_set

FRAMES = 16
"""The files' clip length here: plumbing needs no 64-frame file, and converting one costs more."""
BUILTIN_FLOAT_OPS = {"AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "MAX_POOL_2D", "MEAN", "PAD", "RESHAPE",
                     "STRIDED_SLICE"}
"""What the float32 logits file is made of (int8 adds nothing; fp16 adds DEQUANTIZE for its weights)."""
CRICKET = 227
"""Kinetics' "playing cricket", the sample's top-1."""


def _ops(path: Path) -> list[tuple[str, list[str]]]:
    """Each op of the file as stored (no delegate applied): its name and its inputs' types."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {detail["index"]: np.dtype(detail["dtype"]).name for detail in interpreter.get_tensor_details()}
    return [(op["op_name"], [tensors[i] for i in op["inputs"] if i >= 0]) for op in interpreter._get_ops_details()]


@pytest.fixture(scope="module")
def sample(cricket_clips) -> np.ndarray:
    return np.load(cricket_clips["rgb"])


@pytest.fixture(scope="module")
def ours(pretrained_rgb, sample) -> np.ndarray:
    """The network's logits (TensorFlow, the tool's own path) on the sample's first FRAMES frames."""
    return pretrained_rgb(np.ascontiguousarray(sample[:, :FRAMES]), training=False).numpy()


@pytest.fixture(scope="module")
def exporting(shared_weights_dir, cricket_clips):
    """``i3d export --format tflite`` in this process, on the session's weights and sample: argv -> exit code."""
    from i3d.commands.export import main
    from i3d.inputs import samples

    def export(*argv: str) -> int:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
            patch.setattr(samples, "DATA_DIR", cricket_clips["rgb"].parent)
            return main(["rgb_kinetics", "--format", "tflite", "--offline", *argv])

    return export


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, exporting) -> Path:
    """A float32 logits file for FRAMES-frame clips, made once for the module."""
    folder = tmp_path_factory.mktemp("tflite")
    code = exporting("--frames", str(FRAMES), str(folder))
    assert code == 0
    return folder


# The rewrite, layer by layer: random data in odd sizes, so every padding case comes up.
POOLS = [("max", (1, 3, 3), (1, 2, 2), "same"), ("max", (3, 3, 3), (2, 2, 2), "same"),
         ("max", (3, 3, 3), (1, 1, 1), "same"), ("max", (2, 2, 2), (2, 2, 2), "same"),
         ("average", (2, 7, 7), (1, 1, 1), "valid"), ("average", (3, 3, 3), (2, 2, 2), "same")]


@pytest.mark.parametrize("kind, pool, strides, padding", POOLS)
def test_separable_pools_equal_keras_3d_pools(kind, pool, strides, padding):
    """I3D's pools (and a SAME average pool, which divides by the real elements) as 2D pools over space then
    time give Keras' 3D pools; the input is all negative, so a max that took a padded zero would show."""
    import keras

    from i3d.runtime.litert_network import SeparablePool3D

    x = -np.random.default_rng(0).uniform(0.5, 1.5, (2, 7, 9, 11, 5)).astype(np.float32)
    if padding == "valid":
        x = x[:, :, :8, :9]
    layer = (keras.layers.MaxPooling3D if kind == "max" else keras.layers.AveragePooling3D)(pool, strides, padding)
    want = np.asarray(layer(x))
    got = np.asarray(SeparablePool3D(kind, pool, strides, padding)(x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kernel, strides", [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 1, 1), (1, 1, 1)),
                                             ((2, 3, 3), (2, 1, 1))])
def test_frame_stack_convolution_equals_conv3d_with_batch_norm(kernel, strides):
    """A Conv3D + batch norm (as Unit3D has them) equals the one 2D convolution of stacked frames it becomes."""
    import keras

    from i3d.runtime.litert_network import litert_network

    rng = np.random.default_rng(1)
    inputs = keras.Input((9, 13, 11, 3))
    conv = keras.layers.Conv3D(4, kernel, strides=strides, padding="same", use_bias=False, name="unit.conv_3d")
    norm = keras.layers.BatchNormalization(epsilon=1e-3, scale=False, name="unit.batch_norm")
    model = keras.Model(inputs, norm(conv(inputs)))
    conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype(np.float32))
    norm.beta.assign(rng.normal(size=4).astype(np.float32))
    norm.moving_mean.assign(rng.normal(size=4).astype(np.float32))
    norm.moving_variance.assign(rng.uniform(0.5, 2, 4).astype(np.float32))
    x = rng.uniform(-1, 1, (1, 9, 13, 11, 3)).astype(np.float32)
    rewritten = litert_network(model, frames=9)
    assert "Conv3D" not in {type(layer).__name__ for layer in rewritten.layers}
    np.testing.assert_allclose(np.asarray(rewritten(x)), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_rewritten_network_equals_the_network(pretrained_rgb, sample, ours):
    """The whole rgb_kinetics I3D in 2D ops gives the network's logits on the sample within float rounding."""
    from i3d.runtime.litert_network import litert_network

    rewritten = litert_network(pretrained_rgb, FRAMES)
    logits = np.asarray(rewritten(np.ascontiguousarray(sample[:, :FRAMES]), training=False))
    assert np.max(np.abs(logits - ours)) < 1e-4 and int(logits.argmax()) == CRICKET


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_headroom_widens_the_int8_output_range_so_larger_logits_do_not_clip(tmp_path):
    """A tiny int8 file (a dense layer, then a mean over steps, as logits are read off) calibrated on answers
    within +-0.25 clips larger ones to a tie at its top; widened five times, the same file gives them."""
    import keras
    import tensorflow as tf

    from i3d.runtime.litert import with_headroom

    inputs = keras.Input((4, 8), batch_size=1)
    dense = keras.layers.Dense(3)
    model = keras.Model(inputs, keras.ops.mean(dense(inputs), axis=1))
    dense.set_weights([np.eye(8, 3, dtype=np.float32), np.zeros(3, np.float32)])
    steps = np.array([1, -1, 1, 0], np.float32)[None, :, None]  # calibration: the mean over steps is v / 4
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.float32(v) * steps * np.ones((1, 4, 8), np.float32)]
                                                for v in np.linspace(-1, 1, 9))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    plain = converter.convert()
    x = np.zeros((1, 4, 8), np.float32)
    x[..., 0], x[..., 1] = 1.0, 0.5  # answers 1.0, 0.5, 0: past the calibrated 0.25
    for name, flatbuffer in (("plain", plain), ("headroom", with_headroom(plain, 5.0))):
        (tmp_path / f"{name}.tflite").write_bytes(flatbuffer)
    clipped = litert_runner(tmp_path / "plain.tflite")(x)[0]
    assert clipped[0] == pytest.approx(0.25, abs=0.01) and clipped[1] == clipped[0]  # a tie at the top
    np.testing.assert_allclose(litert_runner(tmp_path / "headroom.tflite")(x)[0], [1.0, 0.5, 0.0], atol=0.05)


# The float32 file.

def test_the_float32_file_is_built_in_ops_and_gives_the_networks_logits(fp32, sample, ours):
    """LiteRT alone runs the file (no Flex, no CONV_3D, nothing custom) and gives the network's logits."""
    assert {name for name, _ in _ops(fp32 / "model.tflite")} == BUILTIN_FLOAT_OPS
    logits = litert_runner(fp32 / "model.tflite")(sample[:, :FRAMES])
    assert logits.shape == (1, 400)
    assert np.max(np.abs(logits - ours)) < 1e-4 and int(logits.argmax()) == CRICKET
    check = json.loads((fp32 / "model.tflite.check.json").read_text())
    assert check["passed"] and check["precision"] == "fp32" and check["tolerance"] == 1e-4
    [run] = check["runs"]
    assert run["frames"] == FRAMES and run["top1"] == {"ours": "playing cricket", "export": "playing cricket"}
    assert run["max_abs_difference"] == pytest.approx(float(np.max(np.abs(logits - ours))), abs=2e-6)


def test_model_json_says_what_a_program_needs(fp32):
    ws = get_weight_set("rgb", "kinetics")
    about = json.loads((fp32 / "model.json").read_text())
    assert about["input"] == {"name": "clip", "value_range": [-1.0, 1.0], "shape": [1, FRAMES, 224, 224, 3],
                              "dtype": "float32", "quantization": None}
    assert about["output"] == {"name": "logits", "shape": [1, 400], "dtype": "float32", "quantization": None}
    assert about["classes"] == list(ws.categories) and about["classes"][CRICKET] == "playing cricket"
    assert (about["frames"], about["precision"], about["stream"], about["set"]) == (FRAMES, "fp32", "rgb",
                                                                                     "rgb_kinetics")
    assert about["index_sha256"] == ws.index_sha256 and about["head_sha256"] is None
    assert (about["window"]["frames"], about["window"]["fps"], about["window"]["crop"]) == (FRAMES, 25.0, "center")
    assert about["window"]["seconds"] == pytest.approx(FRAMES / 25)


@pytest.mark.parametrize("argv, option", [(["--frames", "8"], "--frames"), (["--frames", "80"], "--frames"),
                                          (["--calibration", "."], "--calibration")])
def test_refused_tflite_options_are_usage_errors(tmp_path, exporting, argv, option, capsys):
    """Too few frames, more than the 79-frame sample the check runs, calibration for a float file: exit 2."""
    code = exporting(*argv, str(tmp_path / "out"))
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and option in error and not (tmp_path / "out" / "model.tflite").exists()


def test_tflite_options_are_refused_for_other_formats(tmp_path, capsys):
    from i3d.commands.export import main

    for argv in (["--format", "onnx", "--frames", "16"], ["--format", "keras", "--precision", "int8"]):
        assert main(["rgb_kinetics", *argv, str(tmp_path), "--offline"]) == 2
        assert "tflite only" in capsys.readouterr().err


def test_the_file_is_not_replaced_without_overwrite(fp32, exporting, capsys):
    before = (fp32 / "model.tflite").read_bytes()
    code = exporting("--frames", str(FRAMES), str(fp32))
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (fp32 / "model.tflite").read_bytes() == before


def _readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("### LiteRT")[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_classifies_a_video_without_tensorflow(fp32, tmp_path):
    """The README's LiteRT example, run as written (TensorFlow made unimportable), on a 40-frame video: a
    line per 16-frame window (two, and one aligned to the end)."""
    video = write_video(tmp_path / "video.avi", 40)
    guard = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
    done = subprocess.run([sys.executable, "-c", guard + _readme_example(), str(fp32), str(video)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(" s  ")[0].strip() for line in lines] == ["0.00", "0.64", "0.96"]
    assert all(line.split(" s  ")[1] in get_weight_set("rgb", "kinetics").categories for line in lines)


# fp16 and int8: a conversion each, so marked slow.

@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_int8_files_check_themselves_and_keep_the_top1(tmp_path, exporting, sample, ours, precision):
    """fp16 and full-integer int8 files give the network's top-1 on the sample within their tolerance; every
    op of the int8 file computes in int8 (its input and output included), with no float op left."""
    code = exporting("--frames", str(FRAMES), "--precision", precision, str(tmp_path))
    assert code == 0
    logits = litert_runner(tmp_path / "model.tflite")(sample[:, :FRAMES])
    assert int(logits.argmax()) == CRICKET and np.max(np.abs(logits - ours)) < TOLERANCES[precision]
    check = json.loads((tmp_path / "model.tflite.check.json").read_text())
    assert check["passed"] and check["tolerance"] == TOLERANCES[precision]
    about = json.loads((tmp_path / "model.json").read_text())
    ops = _ops(tmp_path / "model.tflite")
    if precision == "fp16":
        assert {name for name, _ in ops} == BUILTIN_FLOAT_OPS | {"DEQUANTIZE"}
        assert about["input"]["dtype"] == "float32" and about["calibration"] is None
        return
    assert {name for name, _ in ops} == BUILTIN_FLOAT_OPS
    assert all(types[0] == "int8" for _, types in ops), [op for op in ops if op[1][0] != "int8"]
    assert about["input"]["dtype"] == about["output"]["dtype"] == "int8"
    assert about["input"]["quantization"]["scale"] == pytest.approx(2 / 255, rel=0.01)
    assert about["calibration"] == "the sample clip's windows"


@pytest.mark.slow
@pytest.mark.parametrize("what", ["head", "features"])
def test_a_head_or_the_features_export_to_litert(tmp_path, shared_store, sample, pretrained_rgb, what):
    """--head puts a head's classes on top (its sha256 in model.json); --endpoint features gives the 1024-d
    features: both checked in LiteRT against the network within 1e-4."""
    from i3d.model import Network, build_network
    from i3d.runtime.export import ExportOptions, export_model

    head = random_head() if what == "head" else None
    options = ExportOptions("tflite", "logits" if head else "features", frames=FRAMES)
    exported = export_model("rgb_kinetics", tmp_path, options, head=head, store=shared_store, sample=sample)
    clip = np.ascontiguousarray(sample[:, :FRAMES])
    features = build_network(Network(outputs=("features",)), base=pretrained_rgb)(clip, training=False).numpy()
    want = head.streams["rgb"].logits(features) if head else features
    got = litert_runner(tmp_path / "model.tflite")(clip)
    assert got.shape == want.shape and np.max(np.abs(got - want)) < 1e-4 and exported.check["passed"]
    about = json.loads((tmp_path / "model.json").read_text())
    if head:
        assert about["classes"] == ["class 0", "class 1", "class 2"] and about["head_sha256"] == head.fingerprint()
    else:
        assert about["classes"] is None and about["output"]["shape"] == [1, 1024]
