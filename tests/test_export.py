"""i3d export: every format loads in its own runtime and gives the network's numbers (within 1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, random_head, run_cli

from i3d.heads import Head
from i3d.runtime.export import MODEL_FORMATS, ExportOptions, export_model, runtime_runner
from i3d.weights.sets import get_weight_set


@pytest.fixture(scope="module")
def sample(cricket_clips) -> np.ndarray:
    return np.load(cricket_clips["rgb"])


@pytest.fixture(scope="module")
def ours(pretrained_rgb, sample) -> dict[str, np.ndarray]:
    """The network's own logits and features (TensorFlow, the tool's reference path) on the sample."""
    from i3d.model import with_features

    model = with_features(pretrained_rgb)
    logits, features = model(sample, training=False)
    short_logits, short_features = model(sample[:, :16], training=False)
    return {"logits": logits.numpy(), "features": features.numpy(), "short": short_logits.numpy(),
            "short_features": short_features.numpy()}


SHORT = 16
"""Frames of the sample the in-process exports check themselves on (the check's two runs of the network and of the
file cost a quarter of the full 79); the tests run each file on all 79 themselves, and the command's own check on all
79 is test_features_and_head_exports'."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, recognizer, sample) -> Path:
    folder = tmp_path_factory.mktemp("export")
    for file_format in MODEL_FORMATS:
        export_model("rgb_kinetics", folder, ExportOptions(file_format), store=recognizer.store,
                     sample=np.ascontiguousarray(sample[:, :SHORT]))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("file_format", MODEL_FORMATS)
def test_every_format_runs_in_its_runtime_with_the_networks_logits(exported, ours, sample, file_format):
    path = {"onnx": "model.onnx", "saved_model": "saved_model", "openvino": "model.xml",
            "keras": "model.keras"}[file_format]
    check = json.loads((exported / f"{path}.check.json").read_text())
    assert check["passed"] and check["format"] == file_format and check["set"] == "rgb_kinetics"
    assert [run["frames"] for run in check["runs"]] == [SHORT, 9]
    assert all(run["top1"] == {"ours": "playing cricket", "export": "playing cricket"} for run in check["runs"])
    run = runtime_runner(file_format, exported / path)
    logits = run(sample)
    assert logits.shape == (1, 400)
    assert np.max(np.abs(logits - ours["logits"])) < 1e-4
    assert int(logits.argmax()) == int(ours["logits"].argmax())
    short = run(np.ascontiguousarray(sample[:, :16]))  # the time axis is dynamic
    assert np.max(np.abs(short - ours["short"])) < 1e-4
    assert check["runs"][0]["max_abs_difference"] == pytest.approx(float(np.max(np.abs(short - ours["short"]))),
                                                                   abs=2e-6)


@pytest.mark.slow
def test_onnx_batch_axis_is_dynamic_and_named(exported, sample, ours):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    [clip] = session.get_inputs()
    assert clip.name == "clip" and clip.shape == ["batch", "frames", 224, 224, 3]
    assert [output.name for output in session.get_outputs()] == ["logits"]
    clips = [np.ascontiguousarray(sample[:, :24]), np.ascontiguousarray(sample[:, 24:48][:, ::-1])]
    logits = session.run(None, {"clip": np.concatenate(clips)})[0]
    assert logits.shape == (2, 400) and not np.allclose(logits[0], logits[1])
    for row, clip in zip(logits, clips):  # each row is its own clip's answer: nothing mixes clips in a batch
        alone = session.run(None, {"clip": clip})[0]
        np.testing.assert_allclose(row, alone[0], atol=1e-4)


@pytest.mark.slow
def test_features_and_head_exports(tmp_path, recognizer, shared_weights_dir, sample, ours):
    short = np.ascontiguousarray(sample[:, :SHORT])
    export_model("rgb_kinetics", tmp_path / "f", ExportOptions("keras", "features"), store=recognizer.store,
                 sample=short)  # the endpoint is the Keras model's, whatever the format (keras: the quickest)
    features = runtime_runner("keras", tmp_path / "f" / "model.keras")(short)
    assert features.shape == (1, 1024) and np.max(np.abs(features - ours["short_features"])) < 1e-4

    head = random_head(4)
    head.save(tmp_path / "head")
    done = run_cli("export", "rgb_kinetics", "--format", "keras", "--head", str(tmp_path / "head"),
                   str(tmp_path / "out"), "--offline", weights_dir=shared_weights_dir, module="i3d", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [str(tmp_path / "out" / "model.keras"), str(tmp_path / "out" / "model.keras.check.json")]
    assert lines[2].startswith("check: 79 frames of the cricket sample: max |difference| ")
    assert "top-1 class " in lines[2]
    check = json.loads((tmp_path / "out" / "model.keras.check.json").read_text())
    assert check["passed"] and check["head"] == str(tmp_path / "head") and check["output"] == "logits"
    assert check["head_sha256"] == head.fingerprint()
    logits = runtime_runner("keras", tmp_path / "out" / "model.keras")(np.ascontiguousarray(sample[:, :16]))
    want = head.logits("rgb", ours["short_features"])
    assert logits.shape == (1, 4) and np.max(np.abs(logits - want)) < 1e-4


def test_heads_that_do_not_fit_are_refused(tmp_path, recognizer, sample):
    from i3d.errors import OptionError

    ws = get_weight_set("rgb", "kinetics")
    head = random_head()
    other = Head(head.classes, head.streams, {"rgb": {"set": "rgb_imagenet", "index_sha256": "0" * 64}}, {})
    with pytest.raises(OptionError, match="trained on rgb features from rgb_imagenet"):
        export_model(ws, tmp_path, ExportOptions("onnx"), head=other, store=recognizer.store, sample=sample)
    flow = Head(head.classes, {"flow": head.streams["rgb"]}, {"flow": head.weight_sets["rgb"]}, {})
    with pytest.raises(OptionError, match="trained on flow features, not rgb"):
        export_model(ws, tmp_path, ExportOptions("onnx"), head=flow, store=recognizer.store, sample=sample)
    tuned = Head(head.classes, head.streams, head.weight_sets, {}, tops={"rgb": {"x.0": np.zeros(1, np.float32)}})
    with pytest.raises(OptionError, match="fine-tuned"):
        export_model(ws, tmp_path, ExportOptions("onnx"), head=tuned, store=recognizer.store, sample=sample)
    with pytest.raises(OptionError, match="drop --head to export features"):
        export_model(ws, tmp_path, ExportOptions("onnx", "features"), head=head, store=recognizer.store, sample=sample)
    assert list(tmp_path.iterdir()) == []


def test_command_refuses_an_unknown_set_in_one_line(tmp_path, shared_weights_dir):
    done = run_cli("export", "rgb_nonsense", "--format", "onnx", str(tmp_path / "out"), weights_dir=shared_weights_dir,
                   module="i3d")
    assert done.returncode == 2 and "weight set 'rgb_nonsense' is unknown" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_command_never_replaces_files_and_keeps_the_old_weights_export(tmp_path, shared_weights_dir, exported):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"mine")
    done = run_cli("export", "rgb_kinetics", "--format", "onnx", str(out), "--offline",
                   weights_dir=shared_weights_dir, module="i3d")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--overwrite" in done.stderr
    assert (out / "model.onnx").read_bytes() == b"mine"
    assert [p.name for p in out.iterdir()] == ["model.onnx"]  # no staging folder left behind


    for argv in (["export", "rgb_kinetics", "--format", "deepmind", str(tmp_path / "dm"), "--offline"],
                 ["weights", "export", "rgb_kinetics", str(tmp_path / "old"), "--offline"]):
        done = run_cli(*argv, weights_dir=shared_weights_dir, module="i3d")
        assert done.returncode == 0, done.stderr
        assert "DeepMind's published file, byte for byte" in done.stdout
    assert ((tmp_path / "dm" / "model.ckpt.data-00000-of-00001").read_bytes()
            == (tmp_path / "old" / "model.ckpt.data-00000-of-00001").read_bytes())


@pytest.mark.slow
def test_overwrite_replaces_the_files_and_a_failed_self_check_is_exit_4(tmp_path, shared_weights_dir, cricket_clips,
                                                                          ours, monkeypatch, capsys):
    """README: --overwrite replaces what is in DIR; a file that differs from the network by more than 1e-4 is
    exit 4, one line naming its check file, which records the failure."""
    from i3d.commands.export import main
    from i3d.inputs import samples
    from i3d.runtime import export as export_module

    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
    short = tmp_path / "short.npy"  # the session's cricket sample, its first SHORT frames: the check's runs are short
    np.save(short, np.load(cricket_clips["rgb"])[:, :SHORT])
    monkeypatch.setattr(samples, "sample_path", lambda stream, data_dir=None: short)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.keras").write_bytes(b"mine")
    argv = ["rgb_kinetics", "--format", "keras", str(out), "--offline", "--overwrite"]
    assert main(argv) == 0, capsys.readouterr().err
    logits = runtime_runner("keras", out / "model.keras")(np.load(short))
    assert np.max(np.abs(logits - ours["short"])) < 1e-4  # the file was replaced by the export
    capsys.readouterr()

    real = export_module.runtime_runner

    def off_by_a_little(file_format, path):
        run = real(file_format, path)
        return lambda clip: np.asarray(run(clip)) + 1e-3  # a runtime that differs from the network by 1e-3

    monkeypatch.setattr(export_module, "runtime_runner", off_by_a_little)
    assert main(argv) == 4
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert "differs from the network by 0.001" in error and "model.keras.check.json" in error
    [failed] = out.glob(".i3d-export-*/model.keras.check.json")  # not installed: kept in the staging folder
    check = json.loads(failed.read_text())
    assert check["passed"] is False and check["runs"][0]["max_abs_difference"] == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.slow
def test_outputs_are_named_logits_in_saved_model_and_openvino(exported):
    """README: every model gives one output named logits (or features)."""
    import openvino as ov
    import tensorflow as tf

    signature = tf.saved_model.load(str(exported / "saved_model")).signatures["serving_default"]
    assert list(signature.structured_outputs) == ["logits"]
    model = ov.Core().read_model(str(exported / "model.xml"))
    assert [output.get_any_name() for output in model.outputs] == ["logits"]
