"""Backends: OpenVINO agrees with TensorFlow; the IR cache is verified, rebuilt when stale."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("openvino")
from i3d import inference  # noqa: E402
from i3d.weight_sets import get_weight_set  # noqa: E402

RGB = get_weight_set("rgb", "kinetics")


@pytest.fixture()
def private_weights(shared_weights_dir, tmp_path, monkeypatch):
    """A weights folder holding only the imported rgb_kinetics Keras cache."""
    for name in ("rgb_kinetics.weights.h5", "rgb_kinetics.weights.json"):
        src = shared_weights_dir / name
        if not src.exists():  # import it once through the normal loader
            monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
            inference.TensorFlowStream(RGB, download=False)
        (tmp_path / name).write_bytes(src.read_bytes())
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def test_openvino_matches_tensorflow_and_reuses_its_ir(private_weights, cricket_clips):
    clip = np.load(cricket_clips["rgb"])
    tf_logits = inference.TensorFlowStream(RGB, download=False).logits(clip)
    first = inference.OpenVINOStream(RGB, download=False)
    assert first.source == "converted from Keras"
    ov_logits = first.logits(clip)
    assert np.abs(ov_logits - tf_logits).max() < 1e-4
    assert int(np.argmax(ov_logits)) == 227  # playing cricket
    xml = inference.valid_ir(RGB)
    assert xml is not None and xml.parent.parent == private_weights / "openvino"
    second = inference.OpenVINOStream(RGB, download=False)
    assert second.source.startswith("OpenVINO IR")
    assert np.array_equal(second.logits(clip), ov_logits)
    # a dynamic frame axis: another length runs on the same compiled model
    assert second.logits(clip[:, :16]).shape == (400,)


def test_corrupt_or_stale_ir_is_rebuilt_never_used(private_weights, monkeypatch):
    inference.OpenVINOStream(RGB, download=False)
    xml = inference.valid_ir(RGB)
    with open(xml.with_name("model.bin"), "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    assert inference.valid_ir(RGB) is None and not xml.parent.exists()  # corrupt: removed
    rebuilt = inference.OpenVINOStream(RGB, download=False)
    assert rebuilt.source == "converted from Keras" and inference.valid_ir(RGB) == xml

    monkeypatch.setattr(inference, "model_source_sha256", lambda: "0" * 64)  # the network changed
    assert inference.valid_ir(RGB) is None
    monkeypatch.undo()
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(private_weights))
    inference.OpenVINOStream(RGB, download=False)
    assert inference.valid_ir(RGB) == xml

    record_path = private_weights / "rgb_kinetics.weights.json"
    record = json.loads(record_path.read_text())
    record["sha256"] = "f" * 64  # the weights changed since the IR was made
    record_path.write_text(json.dumps(record))
    assert inference.valid_ir(RGB) is None


def test_cached_run_does_not_import_tensorflow(private_weights, cricket_clips):
    inference.OpenVINOStream(RGB, download=False)  # make sure the IR is cached
    code = ("import sys, json; from i3d.cli import main; "
            f"rc = main(['--rgb', {str(cricket_clips['rgb'])!r}, '--format', 'json', "
            "'--backend', 'openvino', '--offline']); "
            "print(json.dumps({'rc': rc, 'tf': 'tensorflow' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, "I3D_WEIGHTS_DIR": str(private_weights)})
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == {"rc": 0, "tf": False}, proc.stderr


def test_backend_choice(monkeypatch):
    monkeypatch.setattr(inference, "gpu_present", lambda: False)
    assert inference.resolve_backend("auto") == "openvino"
    monkeypatch.setattr(inference, "gpu_present", lambda: True)
    assert inference.resolve_backend("auto") == "tensorflow"
    assert inference.resolve_backend("openvino") == "openvino"
    with pytest.raises(Exception, match="unknown backend"):
        inference.resolve_backend("onnx")


def test_mixed_precision_without_a_gpu_is_a_usage_error(tmp_path):
    from conftest import run_cli

    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((9, 224, 224, 3), np.float32))
    proc = run_cli("--backend", "tensorflow", "--mixed-precision", "--rgb", str(clip), weights_dir=tmp_path)
    assert proc.returncode == 2 and "needs a GPU" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [clip]
