"""A head folder is checked against its schema before anything is built from it; a ground truth that would crash
the parser or a float is one line (issue 38, item 7)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from support import ARM_WRESTLING, run_cli

from i3d.errors import InputError, WeightsError
from i3d.heads import FEATURE_DIMS, Head, StreamHead, top_shapes
from i3d.tasks.segments.evaluation import read_results, read_truth

SETTINGS = {"fps": 25.0, "window": 16, "stride": None, "crop": "center", "flow_algorithm": "tvl1",
            "precision": "fp32"}
SHA = "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c"  # rgb_kinetics' index


def make_head(classes=("a", "b", "c"), tops=None) -> Head:
    rng = np.random.default_rng(0)
    n = len(classes)
    part = StreamHead(rng.normal(size=(n, FEATURE_DIMS)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                      np.zeros(FEATURE_DIMS, np.float32), np.ones(FEATURE_DIMS, np.float32))
    return Head(tuple(classes), {"rgb": part}, {"rgb": {"set": "rgb_kinetics", "index_sha256": SHA}}, dict(SETTINGS),
                {"C": 1.0}, None, tops or {})


@pytest.fixture
def saved(tmp_path) -> Path:
    return make_head().save(tmp_path / "head")


def edit_json(folder: Path, change) -> None:
    meta = json.loads((folder / "head.json").read_text())
    change(meta)
    (folder / "head.json").write_text(json.dumps(meta))


def rewrite_npz(folder: Path, change) -> None:
    """Change head.npz's arrays and record its new sha256 in head.json, as a forger would."""
    with np.load(folder / "head.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (folder / "head.npz").write_bytes(buffer.getvalue())
    edit_json(folder, lambda m: m.update(head_npz_sha256=hashlib.sha256(buffer.getvalue()).hexdigest()))


def test_a_saved_head_reloads_and_head_npz_records_the_sha256_of_head_json(saved):
    head = Head.load(saved)
    assert head.classes == ("a", "b", "c") and head.fingerprint() == make_head().fingerprint()
    meta = json.loads((saved / "head.json").read_text())
    assert meta["format"] == 2
    del meta["head_npz_sha256"]
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    with np.load(saved / "head.npz") as npz:
        assert npz["meta.sha256"].tobytes() == hashlib.sha256(canonical).digest()


@pytest.mark.parametrize("weight_sets", [{}, {"rgb": {}}, {"rgb": {"set": "x", "index_sha256": "12"}}, []])
def test_weight_sets_not_naming_every_stream_are_refused(saved, weight_sets):
    edit_json(saved, lambda m: m.update(weight_sets=weight_sets))
    with pytest.raises(InputError, match=r"head\.json: 'weight_sets(\.rgb)?' must be .*train the head again"):
        Head.load(saved)


@pytest.mark.parametrize("field,value,named", [
    ("classes", "ab", "classes"), ("classes", ["a", "a", "b"], "classes"), ("classes", ["a", 1], "classes"),
    ("classes", ["a", "b\n\n00:00:00,000 --> 10:00:00,000"], "classes"),
    ("settings", {"fps": 25.0}, "settings.window"), ("settings", {**SETTINGS, "window": "16"}, "settings.window"),
    ("settings", {**SETTINGS, "fps": 10 ** 400}, "settings.fps"), ("streams", ["rgb", "rgb"], "streams"),
    ("fine_tuned", "mixed_4f", "fine_tuned"), ("head_npz_sha256", None, "head_npz_sha256")])
def test_a_head_json_outside_the_schema_is_refused_naming_the_field(saved, field, value, named):
    edit_json(saved, lambda m: m.update({field: value}))
    with pytest.raises(InputError, match=f"'{named}' must be"):
        Head.load(saved)


def test_a_deeply_nested_head_json_is_one_line(saved):
    (saved / "head.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="head.json: nested too deeply"):
        Head.load(saved)


def test_renamed_classes_are_refused_by_the_sha256_head_npz_records(saved):
    edit_json(saved, lambda m: m.update(classes=["a", "c", "b"]))
    with pytest.raises(WeightsError, match="head.json: its content .* does not match the sha256 head.npz records"):
        Head.load(saved)
    for settings in ({**SETTINGS, "window": 250}, {}):  # {} would let any feature settings use the head
        edit_json(saved, lambda m: m.update(classes=["a", "b", "c"], settings=settings))
        with pytest.raises(WeightsError, match="does not match the sha256 head.npz records"):
            Head.load(saved)


def test_a_stray_top_array_is_refused_before_any_network(saved):
    rewrite_npz(saved, lambda arrays: arrays.update({"rgb.top.Logits.Conv3d_0c_1x1.conv_3d.1": np.zeros(3)}))
    with pytest.raises(InputError, match="head.npz: holds 'rgb.top.Logits.Conv3d_0c_1x1.conv_3d.1', which head.json's "
                                         "linear head for rgb does not have"):
        Head.load(saved)


def test_a_fine_tuned_head_needs_its_whole_top(tmp_path):
    shapes = top_shapes(3)
    assert len(shapes) == 6 * 4 + 2 and shapes["Mixed_5c.Branch_1.Conv3d_0b_3x3.conv_3d.0"] == (3, 3, 3, 192, 384)
    top = {key: np.zeros(shape, np.float32) for key, shape in shapes.items()}
    folder = make_head(tops={"rgb": top}).save(tmp_path / "ft")
    assert Head.load(folder).fine_tuned == "mixed_5c"
    rewrite_npz(folder, lambda arrays: arrays.pop("rgb.top.Mixed_5c.Branch_3.Conv3d_0b_1x1.batch_norm.2"))
    with pytest.raises(InputError, match="lacks 'rgb.top.Mixed_5c.Branch_3.Conv3d_0b_1x1.batch_norm.2'"):
        Head.load(folder)
    rewrite_npz(folder, lambda arrays: arrays.update({"rgb.top.Mixed_5c.Branch_3.Conv3d_0b_1x1.batch_norm.2":
                                                      np.zeros(5, np.float32)}))
    with pytest.raises(InputError, match=r"batch_norm.2 is float32 \(5,\), not float \(128,\) for 3 classes"):
        Head.load(folder)


def test_a_head_of_the_previous_format_still_loads(saved):
    """Format 1 (no meta.sha256 in head.npz) is read as before, schema-checked."""
    rewrite_npz(saved, lambda arrays: arrays.pop("meta.sha256"))
    edit_json(saved, lambda m: m.update(format=1))
    assert Head.load(saved).classes == ("a", "b", "c")
    for field, value in (("classes", "ab"), ("settings", {})):  # no digest: {} would skip the settings check
        edit_json(saved, lambda m: m.update({"classes": ["a", "b", "c"], field: value}))
        with pytest.raises(InputError, match=f"'{field}(.fps)?' must be"):
            Head.load(saved)


def test_a_malformed_head_is_exit_3_in_one_line_before_any_weights(saved, tmp_path):
    edit_json(saved, lambda m: m.update(weight_sets={}))
    proc = run_cli("--video", str(ARM_WRESTLING), "--head", str(saved), "--offline", weights_dir=tmp_path / "none")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{saved / 'head.json'}: 'weight_sets' must be" in proc.stderr and not (tmp_path / "none").exists()


# ---- ground truth -------------------------------------------------------------------------------------


def test_a_400_digit_time_in_the_ground_truth_is_one_input_error(tmp_path):
    big = "9" * 400
    path = tmp_path / "gt.json"
    path.write_text('{"database": {"v": {"annotations": [{"label": "x", "segment": [0, %s]}]}}}' % big)
    with pytest.raises(InputError, match="gt.json: video v, annotation 0: the end is a 400-digit integer"):
        read_truth(path)
    path.write_text('{"results": {"v": [{"label": "x", "segment": [0, 1], "score": -%s}]}}' % big)
    with pytest.raises(InputError, match="the score is a 400-digit integer"):
        read_results(path)


def test_a_deeply_nested_ground_truth_is_one_input_error(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text('{"database": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match="gt.json: nested too deeply"):
        read_truth(path)
