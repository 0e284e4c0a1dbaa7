"""Kinetics-600, TF-Hub module folders as a source, and the export that proves the data file is DeepMind's."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from support import SHARED, index_path, needs_shared, run_cli, stand_in_kinetics600

from i3d.quiet import silence_tensorflow

silence_tensorflow()

from i3d.errors import OptionError, WeightsError  # noqa: E402
from i3d.files import git_blob_id, sha256_file  # noqa: E402
from i3d.model import build_i3d  # noqa: E402
from i3d.inputs.labels import match_labels  # noqa: E402
from i3d.weights.checkpoint import compare_with_index, read_index  # noqa: E402
from i3d.weights.checkpoint_writer import export_weights, write_checkpoint  # noqa: E402
from i3d.weights.layout import KINETICS_600, TFHUB_MODULE  # noqa: E402
from i3d.weights.loading import LoadOptions, build_pretrained, load_weights, model_tensors  # noqa: E402
from i3d.weights.sets import WEIGHT_SETS, get_weight_set, weight_set_by_name  # noqa: E402
from i3d.weights.store import WeightStore  # noqa: E402

HUB_MODULE = SHARED / "reference" / "tfhub_i3d_kinetics_400"
DATA = "model.ckpt.data-00000-of-00001"
OFFLINE = LoadOptions(download=False, cache=False)


# ---- the five sets ---------------------------------------------------------------

def test_five_sets_each_pin_their_published_files():
    assert len(WEIGHT_SETS) == 5
    pinned = {ws.deepmind_name: ws.data_git_blob for ws in WEIGHT_SETS.values()}
    assert pinned == {"rgb_scratch": "fa7df95674dbf3579e7fccd954e51e706b4734c1",
                      "rgb_imagenet": "2958652e0c9c48a65010c0ebda5c9cfd4edc7c18",
                      "flow_scratch": "1d6a0b68f32544af11111342857e47e30d13afa9",
                      "flow_imagenet": "bf56831f663abc3de0d35f193030b73a3df7fb61",
                      "rgb_scratch_kin600": "6392a74c3180e706cabada39d8f40a50a48642e5"}
    ws = weight_set_by_name("rgb_scratch_kin600")
    assert ws is get_weight_set("rgb", "kinetics600") and ws.name == "rgb_kinetics600"
    assert ws.num_classes == len(ws.categories) == 600
    assert ws.categories[:3] == ("abseiling", "acting in play", "adjusting glasses") and ws.categories[-1] == "zumba"


@needs_shared
def test_kinetics600_class_names_are_deepminds():
    reference = (SHARED / "reference" / "deepmind_label_map_600.txt").read_text().split("\n")
    assert list(get_weight_set("rgb", "kinetics600").categories) == [name for name in reference if name]
    assert sha256_file(index_path("rgb_scratch_kin600")) == get_weight_set("rgb", "kinetics600").index_sha256


def test_kinetics600_labels_match_by_name():
    """Batch accuracy matches dataset labels against the set's own classes: Kinetics-600-only names match there."""
    k600, k400 = get_weight_set("rgb", "kinetics600").categories, get_weight_set("rgb", "kinetics").categories
    assert match_labels(["Acting_in_play", "zumba"], k600) == {"Acting_in_play": 1, "zumba": 599}
    assert match_labels(["acting in play"], k400) == {"acting in play": None}
    assert set(match_labels(k600, k600).values()) == set(range(600))  # no two names collide once normalised


def test_kinetics600_has_no_flow_stream():
    with pytest.raises(OptionError, match="no flow weights for Kinetics-600"):
        get_weight_set("flow", "kinetics600")


@pytest.mark.parametrize("kind", ["optical_flow", "both"])
def test_cli_refuses_flow_with_kinetics600(tmp_path, kind):
    proc = run_cli("--type", kind, "--pretrain", "kinetics600", "--offline", weights_dir=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: --pretrain kinetics600 has RGB weights only: DeepMind published no "
                                   "optical-flow stream for Kinetics-600; use --type rgb")
    proc = run_cli("batch", str(tmp_path), "--out", str(tmp_path / "out"), "--type", kind, "--pretrain",
                   "kinetics600", weights_dir=tmp_path, module="i3d", timeout=120)
    assert proc.returncode == 2 and "no optical-flow stream for Kinetics-600" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# ---- Kinetics-600 through the real loader, on a stand-in checkpoint -------------------

@pytest.fixture(scope="module")
def kinetics600(tmp_path_factory):
    """A store holding the stand-in rgb_scratch_kin600 files where DeepMind's would go, and its set."""
    if not index_path("rgb_scratch_kin600").is_file():
        pytest.skip("../shared/reference is not beside the checkout")
    root = tmp_path_factory.mktemp("k600")
    tensors, ws = stand_in_kinetics600(root / "rgb_scratch_kin600")
    return WeightStore(root), ws, tensors


def test_stand_in_has_the_real_index_layout(kinetics600):
    store, ws, _ = kinetics600
    real, stand_in = read_index(index_path("rgb_scratch_kin600")), read_index(store.checkpoint_dir(ws) /
                                                                             "model.ckpt.index")
    assert [(n, e.shape, e.offset, e.size) for n, e in real.items()] == [
        (n, e.shape, e.offset, e.size) for n, e in stand_in.items()]
    assert len(real) == 346 and sum(name.endswith("/Momentum") for name in real) == 116
    assert real["Logits/Conv3d_0c_1x1/conv_3d/w"].shape == (1, 1, 1, 1024, 600)


def test_kinetics600_loads_by_name_slots_ignored_statistics_reshaped(kinetics600):
    store, ws, written = kinetics600
    model = build_pretrained(ws, store, OFFLINE)
    loaded = model_tensors(model, "RGB")
    assert len(loaded) == 230 and model.output_shape == (None, 600)
    for name, array in written.items():
        if name.endswith("/Momentum"):
            continue
        key = f"RGB/inception_i3d/{name}"
        want = array.reshape(-1) if "/batch_norm/" in name else array
        assert np.array_equal(loaded[key], want), name
    assert loaded["RGB/inception_i3d/Conv3d_1a_7x7/batch_norm/moving_mean"].shape == (64,)


def test_kinetics600_network_compares_with_its_index_slots_left_out(kinetics600):
    """What ``i3d weights verify`` does for Kinetics-600: the network in the file's layout against the index."""
    store, ws, _ = kinetics600
    tensors = KINETICS_600.from_model(model_tensors(build_pretrained(ws, store, OFFLINE), "RGB"), "RGB")
    index = store.checkpoint_dir(ws) / "model.ckpt.index"
    assert compare_with_index(tensors, index, skip=KINETICS_600.is_slot) == []
    missing = compare_with_index(tensors, index)
    assert len(missing) == 116 and all(name.endswith("/Momentum") for name in missing)
    tensors["Mixed_4c/Branch_0/Conv3d_0a_1x1/batch_norm/moving_mean"] = np.zeros((1, 1, 1, 1, 160), np.float32)
    assert compare_with_index(tensors, index, skip=KINETICS_600.is_slot) == [
        "Mixed_4c/Branch_0/Conv3d_0a_1x1/batch_norm/moving_mean"]


def test_real_kinetics600_set_refuses_the_stand_in(kinetics600):
    """The product's set pins DeepMind's index: random weights never load outside a test's own set."""
    store, _, _ = kinetics600
    with pytest.raises(WeightsError, match="sha256 differs"):
        build_pretrained(get_weight_set("rgb", "kinetics600"), store, OFFLINE)


def test_kinetics600_classifies_over_600_classes(kinetics600):
    from i3d.report.tables import result_dict
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.recognizer import classify

    store, ws, _ = kinetics600
    clip = np.random.default_rng(3).uniform(-1, 1, (1, 9, 224, 224, 3)).astype(np.float32)
    result = classify({"rgb": clip}, "rgb", "kinetics600", weight_sets={"rgb": ws}, top_k=600, load=OFFLINE,
                      engine=EngineOptions("tensorflow"), store=store)
    assert result.logits.shape == (600,) and result.categories == ws.categories
    assert sorted(entry.label for entry in result.top) == sorted(ws.categories)
    best = int(np.argmax(result.logits))
    assert result.top[0].label == ws.categories[best]
    data = json.loads(json.dumps(result_dict(result, {}, timeline=False)))
    assert len(data["logits"]) == len(data["probabilities"]) == 600


def test_kinetics600_exports_in_its_own_layout_without_slots(kinetics600, tmp_path):
    store, ws, written = kinetics600
    model = build_pretrained(ws, store, OFFLINE)
    exported = write_checkpoint(model_tensors(model, "RGB"), ws, tmp_path)
    assert exported.published is None  # DeepMind's file also holds the Momentum slots
    real = read_index(index_path("rgb_scratch_kin600"))
    out = read_index(tmp_path / "model.ckpt.index")
    assert {n: e.shape for n, e in out.items()} == {n: e.shape for n, e in real.items() if not n.endswith("Momentum")}
    reread = KINETICS_600.to_model({n: np.fromfile(tmp_path / DATA, "<f4", e.size // 4, offset=e.offset)
                                    .reshape(e.shape) for n, e in out.items()}, "RGB")
    assert all(np.array_equal(reread[k], v) for k, v in model_tensors(model, "RGB").items())
    assert np.array_equal(reread["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"],
                          written["Logits/Conv3d_0c_1x1/conv_3d/b"])


# ---- export: DeepMind's file, byte for byte --------------------------------------------

@pytest.fixture(scope="module")
def exported(shared_store, tmp_path_factory):
    """rgb_kinetics (the real weights) exported in DeepMind's format."""
    folder = tmp_path_factory.mktemp("export")
    return folder, export_weights("rgb_kinetics", folder, store=shared_store, load=OFFLINE)


def test_rgb_kinetics_export_is_deepminds_data_file_byte_for_byte(exported):
    folder, result = exported
    data = folder / DATA
    assert git_blob_id(data) == result.data_git_blob == "fa7df95674dbf3579e7fccd954e51e706b4734c1"
    assert sha256_file(data) == result.data_sha256 == (
        "40cda3a73eba49c7cec1b125cf2197c122a1c4e08a50031b91889e9be252d1ac")
    assert result.published is True
    assert data.stat().st_size == 50818176
    # TensorFlow's writer also rebuilds DeepMind's index exactly
    assert sha256_file(folder / "model.ckpt.index") == get_weight_set("rgb", "kinetics").index_sha256
    assert sorted(p.name for p in folder.iterdir()) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_export_loads_back_through_the_checkpoint_path(exported, pretrained_rgb):
    folder, _ = exported
    ws = get_weight_set("rgb", "kinetics")
    model = build_i3d(channels=3)
    assert load_weights(model, ws, WeightStore(folder / "none"), LoadOptions(download=False, cache=False,
                                                                             checkpoint=folder)).startswith("checkpoint")
    reference = pretrained_rgb
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))


def test_keras_export_loads_into_the_network(shared_store, pretrained_rgb, tmp_path):
    ws = get_weight_set("rgb", "kinetics")
    result = export_weights(ws, tmp_path / "k", "keras", store=shared_store, load=OFFLINE)
    assert result.files == (tmp_path / "k" / "rgb_kinetics.weights.h5",) and result.published is None
    model = build_i3d(channels=3)
    model.load_weights(result.files[0])
    reference = pretrained_rgb
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))


def test_export_into_an_unwritable_place_is_one_usage_line(tmp_path, capsys):
    from i3d.commands.weights import main

    (tmp_path / "file").write_text("not a folder")
    assert main(["export", "rgb_kinetics", str(tmp_path / "file" / "sub"), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'file' / 'sub'}: cannot write there (") and err.count("\n") == 1
    with pytest.raises(OptionError, match="choose from deepmind, keras"):
        export_weights("rgb_kinetics", tmp_path, "onnx")


def test_export_never_replaces_files_already_there(exported, shared_store, tmp_path):
    folder, result = exported
    before = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    with pytest.raises(OptionError, match=r"overwrite was not given and .*model.ckpt.index exists; add --overwrite"):
        export_weights("rgb_kinetics", folder, store=shared_store, load=OFFLINE)
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == before
    (tmp_path / "rgb_kinetics.weights.h5").write_bytes(b"mine")
    with pytest.raises(OptionError, match="rgb_kinetics.weights.h5 exists"):
        export_weights("rgb_kinetics", tmp_path, "keras", store=shared_store, load=OFFLINE)
    assert (tmp_path / "rgb_kinetics.weights.h5").read_bytes() == b"mine"
    again = export_weights("rgb_kinetics", folder, store=shared_store, load=OFFLINE, overwrite=True)
    assert again.data_sha256 == result.data_sha256



def test_an_unknown_set_is_one_line_before_tensorflow_and_overwrite_is_a_flag(exported, shared_weights_dir, tmp_path):
    import subprocess
    import sys

    from support import ROOT

    probe = ("import sys; from i3d.commands.weights import main; code = main(['export', 'nosuch', sys.argv[1]]); "
             "print(code, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)})
    assert proc.stdout.split() == ["2", "False"]
    assert proc.stderr.startswith("error: weight set 'nosuch' is unknown; choose from rgb_kinetics (rgb_scratch)")
    assert "--set" not in proc.stderr and proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    folder, result = exported
    proc = run_cli("weights", "export", "rgb_kinetics", str(folder), "--offline", "--overwrite",
                   weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 0, proc.stderr
    assert f"sha256 {result.data_sha256}" in proc.stdout

# ---- a TF-Hub module folder as a source ---------------------------------------------------

@pytest.fixture()
def hub_cache(exported, tmp_path):
    """A TF-Hub cache holding the real module's files, its data file rebuilt by the exporter."""
    if not HUB_MODULE.is_dir():
        pytest.skip("../shared/reference/tfhub_i3d_kinetics_400 is not beside the checkout")
    folder, _ = exported
    module = tmp_path / "tfhub_modules" / "0f3a6d4c5e8b"
    shutil.copytree(HUB_MODULE, module)
    for path in [module, *module.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.copyfile(folder / DATA, module / "variables" / "variables.data-00000-of-00001")
    return module


def test_hub_module_in_the_cache_loads_bit_identically(hub_cache, pretrained_rgb):
    ws = get_weight_set("rgb", "kinetics")
    store = WeightStore(hub_cache.parent.parent / "weights", hub_dirs=(hub_cache.parent,))
    assert [loc.kind for loc in store.locate(ws)][:1] == ["hub"]
    model = build_i3d(channels=3)
    assert load_weights(model, ws, store, OFFLINE) == f"TF-Hub module {hub_cache}"
    reference = pretrained_rgb
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    index = hub_cache / "variables" / "variables.index"
    assert compare_with_index(TFHUB_MODULE.from_model(model_tensors(model, "RGB"), "RGB"), index) == []
    # named directly, as --checkpoint DIR
    again = build_i3d(channels=3)
    load_weights(again, ws, WeightStore(hub_cache / "none"), dataclasses.replace(OFFLINE, checkpoint=hub_cache))
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), reference.get_weights()))


def test_hub_module_with_another_index_or_corrupt_data_is_refused(hub_cache):
    ws = get_weight_set("rgb", "kinetics")
    index = hub_cache / "variables" / "variables.index"
    store = WeightStore(hub_cache.parent.parent / "weights", hub_dirs=(hub_cache.parent,))
    pristine = index.read_bytes()
    index.write_bytes(pristine[:-60] + bytes([pristine[-60] ^ 1]) + pristine[-59:])
    assert store.hub_modules(ws) == []  # not the pinned index: not offered
    with pytest.raises(WeightsError, match="TF-Hub module deepmind/i3d-kinetics-400/1"):
        load_weights(build_i3d(channels=3), ws, store, dataclasses.replace(OFFLINE, checkpoint=hub_cache))
    index.write_bytes(pristine)
    data = hub_cache / "variables" / "variables.data-00000-of-00001"
    with open(data, "r+b") as handle:
        handle.seek(1234567)
        byte = handle.read(1)
        handle.seek(1234567)
        handle.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(WeightsError, match="corrupt"):
        load_weights(build_i3d(channels=3), ws, store, OFFLINE)


def test_hub_module_is_not_a_source_for_other_sets(hub_cache):
    store = WeightStore(hub_cache.parent.parent / "weights", hub_dirs=(hub_cache.parent,))
    assert store.hub_modules(get_weight_set("rgb", "bothsets")) == []
    with pytest.raises(WeightsError, match="sha256 differs"):
        load_weights(build_i3d(channels=3), get_weight_set("rgb", "bothsets"), store,
                     dataclasses.replace(OFFLINE, checkpoint=hub_cache))
