"""Precision modes: bf16 and int8 keep float32's answer within a stated logit tolerance; the int8 model is
cached (reused, rebuilt when tampered with); TensorFlow refuses them; the precision used is reported."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from support import copy_rgb_cache, initialised_flow_set, run_cli, write_video

pytest.importorskip("openvino")
pytest.importorskip("nncf")
from i3d.errors import OptionError  # noqa: E402
from i3d.inputs import samples  # noqa: E402
from i3d.runtime import quantize as quantize_module  # noqa: E402
from i3d.runtime.base import EngineOptions  # noqa: E402
from i3d.runtime.openvino import OpenVINORunner, native_bf16  # noqa: E402
from i3d.runtime.quantize import cached_int8  # noqa: E402
from i3d.weights.loading import LoadOptions  # noqa: E402
from i3d.weights.sets import get_weight_set  # noqa: E402
from i3d.weights.store import WeightStore  # noqa: E402

RGB = get_weight_set("rgb", "kinetics")
OFFLINE = LoadOptions(download=False)
CRICKET = 227  # playing cricket
INT8_TOLERANCE = 2.5
"""Largest |int8 logit - fp32 logit| allowed on the cricket sample (measured 1.2 on a Zen 5 with VNNI; the
top logit is 17.6 and the runner-up 5.5 below it)."""
FLOW_TOLERANCE = 0.1
"""Largest |int8 - fp32| for the stand-in flow network, as a fraction of its fp32 logits' spread."""
BF16_TOLERANCE = 0.5
"""Largest |bf16 logit - fp32 logit| allowed on the cricket sample (measured 0.13)."""


@pytest.fixture(scope="module")
def sample_dir(cricket_clips):
    """The cricket sample the default calibration reads, wherever this session built it."""
    patch = pytest.MonkeyPatch()
    patch.setattr(samples, "DATA_DIR", cricket_clips["rgb"].parent)
    yield cricket_clips["rgb"].parent
    patch.undo()


@pytest.fixture(scope="module")
def int8_store(shared_weights_dir, tmp_path_factory, sample_dir) -> WeightStore:
    """A store with the rgb_kinetics Keras cache, its float32 IR and its int8 model (quantised once)."""
    root = tmp_path_factory.mktemp("int8_weights")
    copy_rgb_cache(shared_weights_dir, root)
    store = WeightStore(root)
    runner = OpenVINORunner.load(RGB, store, OFFLINE, precision="int8")
    assert runner.source == "quantised now" and cached_int8(RGB, store) is not None
    return store


@pytest.fixture(scope="module")
def cricket_rgb(cricket_clips) -> np.ndarray:
    return np.load(cricket_clips["rgb"])


@pytest.fixture(scope="module")
def fp32_logits(int8_store, cricket_rgb) -> np.ndarray:
    runner = OpenVINORunner.load(RGB, int8_store, OFFLINE)
    assert runner.precision == "fp32"
    return runner.logits(cricket_rgb)


def test_int8_keeps_the_fp32_answer_within_tolerance(int8_store, cricket_rgb, fp32_logits):
    runner = OpenVINORunner.load(RGB, int8_store, OFFLINE, precision="int8")
    assert runner.precision == "int8"  # read from the compiled model: its convolutions run in 8 bits
    logits = runner.logits(cricket_rgb)
    assert int(np.argmax(fp32_logits)) == int(np.argmax(logits)) == CRICKET
    deviation = float(np.abs(logits - fp32_logits).max())
    print(f"int8 max |logit - fp32| on the cricket sample: {deviation:.4f}")
    assert 0 < deviation < INT8_TOLERANCE  # not float32 in disguise, and close to it
    assert np.array_equal(np.argsort(logits)[-1:], np.argsort(fp32_logits)[-1:])


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16 (AVX512_BF16 or AMX)")
def test_bf16_keeps_the_fp32_answer_within_tolerance(int8_store, cricket_rgb, fp32_logits):
    runner = OpenVINORunner.load(RGB, int8_store, OFFLINE, precision="bf16")
    assert runner.precision == "bf16"
    logits = runner.logits(cricket_rgb)
    assert int(np.argmax(logits)) == CRICKET
    deviation = float(np.abs(logits - fp32_logits).max())
    print(f"bf16 max |logit - fp32| on the cricket sample: {deviation:.4f}")
    assert 0 < deviation < BF16_TOLERANCE


def test_bf16_without_native_support_says_so(int8_store, monkeypatch):
    """Where the CPU has no bf16, OpenVINO quietly runs float32: the runner says so and reports fp32."""
    from i3d.runtime import openvino as ov_runtime

    monkeypatch.setattr(ov_runtime, "native_bf16", lambda: False)
    monkeypatch.setattr(ov_runtime, "precision_used", lambda compiled: "fp32")
    with pytest.warns(UserWarning, match=r"precision bf16 was asked for, but this CPU \(it has no AVX512_BF16 or "
                                         r"AMX\) runs the network in fp32"):
        runner = OpenVINORunner.load(RGB, int8_store, OFFLINE, precision="bf16")
    assert runner.precision == "fp32"


@pytest.mark.slow  # quantises again
def test_int8_cache_is_reused_and_rebuilt_when_tampered_with(int8_store, cricket_rgb, monkeypatch, tmp_path):
    folder = cached_int8(RGB, int8_store)
    before = (folder / "model.bin").stat()
    quantised = []
    real = quantize_module.quantize
    monkeypatch.setattr(quantize_module, "quantize", lambda model, windows: quantised.append(len(windows))
                        or real(model, windows))

    again = OpenVINORunner.load(RGB, int8_store, OFFLINE, precision="int8")
    assert again.source == f"OpenVINO int8 IR {folder}" and quantised == []
    after = (folder / "model.bin").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten

    with open(folder / "model.bin", "r+b") as handle:  # a flipped byte: never used, made again
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    rebuilt = OpenVINORunner.load(RGB, int8_store, OFFLINE, precision="int8")
    assert rebuilt.source == "quantised now" and quantised == [4]
    assert cached_int8(RGB, int8_store) == folder
    assert int(np.argmax(rebuilt.logits(cricket_rgb))) == CRICKET

    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    manifest = json.loads((folder / "manifest.json").read_text())  # another calibration's model: not used
    manifest["variant"]["calibration_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert cached_int8(RGB, int8_store) is None and not folder.exists()  # discarded
    shutil.copytree(backup, folder)  # (put back for the next tests, rather than quantise again)
    assert cached_int8(RGB, int8_store) == folder and quantised == [4]


@pytest.mark.slow  # quantises on other videos
def test_own_calibration_videos_from_the_command_line(int8_store, cricket_clips, tmp_path, monkeypatch, capsys):
    from i3d.commands.classify import main

    videos = tmp_path / "calibration" / "some class"
    videos.mkdir(parents=True)
    write_video(videos / "one.avi", 70)
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(int8_store.root))
    argv = ["--rgb", str(cricket_clips["rgb"]), "--precision", "int8", "--calibration", str(videos.parent),
            "--format", "json", "--top-k", "1", "--offline"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # NNCF's lines and bars went to stderr: stdout is the JSON alone
    assert result["precision"] == {"asked": "int8", "used": {"rgb": "int8"}}
    assert result["top"][0]["index"] == CRICKET
    assert "quantising rgb_kinetics to int8" in err and "calibrated on at most 32 windows of the 1 video(s)" in err
    assert "int8 calibration: preparing video 1/1 (one.avi)" in err
    folders = sorted(p.name for p in int8_store.openvino_dir.iterdir() if "-int8-" in p.name)
    assert len(folders) == 2  # the sample's and this folder's, side by side
    assert cached_int8(RGB, int8_store, videos.parent) is not None
    assert main(argv) == 0  # the second time: from the cache, silently
    out, err = capsys.readouterr()
    assert "quantising" not in err and json.loads(out)["precision"]["used"] == {"rgb": "int8"}


@pytest.mark.slow  # a flow network converted and quantised for this test alone
def test_flow_stream_quantises_too(tmp_path, cricket_clips, sample_dir):
    """Both streams: a flow network (seeded random weights: flow_kinetics cannot be fetched here) calibrated
    on the flow sample keeps its float32 answer on it."""
    ws = initialised_flow_set(tmp_path)
    store = WeightStore(tmp_path)
    clip = np.load(cricket_clips["flow"])
    fp32 = OpenVINORunner.load(ws, store, OFFLINE).logits(clip)
    int8 = OpenVINORunner.load(ws, store, OFFLINE, precision="int8")
    assert int8.precision == "int8" and int8.source == "quantised now"
    logits = int8.logits(clip)
    assert int(np.argmax(logits)) in np.argsort(fp32)[-3:]  # untrained: its logits are close together
    deviation = float(np.abs(logits - fp32).max())
    print(f"flow int8 deviation {deviation:.4g}, fp32 logits spread {float(np.ptp(fp32)):.4g}")
    assert 0 < deviation < FLOW_TOLERANCE * float(np.ptp(fp32))
    folder = cached_int8(ws, store)
    assert folder is not None and folder.name.startswith("flow_kinetics-")


def test_precision_is_an_openvino_mode(tmp_path):
    with pytest.raises(OptionError, match="int8 is an OpenVINO mode: the tensorflow backend runs fp32 only"):
        EngineOptions("tensorflow", precision="int8").check()
    with pytest.raises(OptionError, match="precision is 'fp16'; choose from fp32, bf16, int8"):
        EngineOptions("openvino", precision="fp16").check()
    with pytest.raises(OptionError, match="calibration only applies to int8 precision"):
        EngineOptions("openvino", calibration=tmp_path).check()
    EngineOptions("openvino", precision="bf16").check()
    assert EngineOptions("openvino", precision="bf16").resolved() == EngineOptions("openvino", False, "bf16")

    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((9, 224, 224, 3), np.float32))
    weights = tmp_path / "weights"
    for flags, text in ((("--backend", "tensorflow", "--precision", "int8"),
                         "error: --precision int8 is an OpenVINO mode: the tensorflow backend runs fp32 only"),
                        (("--backend", "tensorflow", "--precision", "bf16"),
                         "error: --precision bf16 is an OpenVINO mode"),
                        (("--calibration", str(tmp_path)), "error: --calibration only applies to int8 precision")):
        proc = run_cli("--rgb", str(clip), *flags, weights_dir=weights)
        assert proc.returncode == 2 and proc.stderr.startswith(text) and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stdout == "" and not weights.exists()  # refused before any weights are touched


def test_batch_settings_record_the_precision(int8_store, cricket_clips, tmp_path):
    """A batch folder made in one precision refuses results of another (the numbers differ)."""
    from i3d.preprocess.windows import VideoOptions
    from i3d.tasks.batch.folder import prepare_folder, settings_of
    from i3d.tasks.recognizer import Recognizer

    fp32 = Recognizer.load("rgb", load=OFFLINE, engine=EngineOptions("openvino"), store=int8_store)
    int8 = Recognizer.load("rgb", load=OFFLINE, engine=EngineOptions("openvino", precision="int8"), store=int8_store)
    assert int8.engine.precision == "int8" and int8.precision == {"rgb": "int8"}
    settings = {name: settings_of(r, VideoOptions()) for name, r in (("fp32", fp32),
                                                                                            ("int8", int8))}
    assert settings["fp32"]["precision"] == {"asked": "fp32", "used": {"rgb": "fp32"}}
    assert settings["int8"]["precision"]["used"] == {"rgb": "int8"}
    assert len(settings["int8"]["precision"]["calibration_sha256"]["rgb"]) == 64
    prepare_folder(tmp_path / "run", settings["fp32"], overwrite=False)
    with pytest.raises(OptionError, match=r"made with other settings \(precision.asked \"fp32\" there, \"int8\" here"):
        prepare_folder(tmp_path / "run", settings["int8"], overwrite=False)
    # a folder written before precision modes existed ran float32: still usable in fp32
    legacy = {key: value for key, value in settings["fp32"].items() if key != "precision"}
    (tmp_path / "run" / "settings.json").write_text(json.dumps(legacy))
    prepare_folder(tmp_path / "run", settings["fp32"], overwrite=False)
    with pytest.raises(OptionError, match=r"\(precision.asked \"fp32\" there, \"int8\" here"):
        prepare_folder(tmp_path / "run", settings["int8"], overwrite=False)
