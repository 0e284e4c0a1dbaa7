"""Tests for i3d.weights.checkpoint: the TensorFlow-free checkpoint index reader."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import INDEX_DIR as REF_INDEX_DIR
from support import ROOT, SHARED

from i3d.streams import STREAMS
from i3d.weights.checkpoint import IndexEntry, masked_crc32c, read_index, verify_data_file

REF_TSV = SHARED / "reference" / "deepmind_ckpt_vars.tsv"
CHECKPOINTS = ["rgb_scratch", "rgb_imagenet", "flow_scratch", "flow_imagenet"]

needs_reference = pytest.mark.skipif(
    not (REF_INDEX_DIR.is_dir() and REF_TSV.is_file()),
    reason="reference checkpoint indexes not available next to the checkout")


def _reference_rows(checkpoint: str) -> list[tuple]:
    """TSV rows for one checkpoint as (name, dtype, shape, offset, size, crc32c)."""
    rows = []
    with open(REF_TSV, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["checkpoint"] != checkpoint:
                continue
            shape = tuple(int(d) for d in row["shape"].split("x")) if row["shape"] else ()
            rows.append((row["name"], row["dtype"], shape, int(row["offset"]),
                         int(row["size"]), int(row["crc32c"], 16)))
    return rows


def _as_row(e: IndexEntry) -> tuple:
    return (e.name, e.dtype, e.shape, e.offset, e.size, e.crc32c)


def test_module_does_not_import_tensorflow() -> None:
    code = ("import sys, i3d.weights.checkpoint; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_masked_crc32c_known_values() -> None:
    # mask(crc) = rotr15(crc) + 0xa282ead8; crc32c("") == 0, crc32c("123456789") == 0xe3069283.
    assert masked_crc32c(b"") == 0xA282EAD8
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected
    assert masked_crc32c(memoryview(b"x123456789")[1:]) == expected
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert masked_crc32c(arr) == masked_crc32c(arr.tobytes())
    assert masked_crc32c(arr.T) == masked_crc32c(np.ascontiguousarray(arr.T).tobytes())


@needs_reference
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_read_reference_index_matches_tsv(checkpoint: str) -> None:
    index = read_index(REF_INDEX_DIR / f"{checkpoint}.model.ckpt.index")
    expected = _reference_rows(checkpoint)
    assert len(index) == 230 and len(expected) == 230
    assert all(name == e.name for name, e in index.items())
    assert {_as_row(e) for e in index.values()} == set(expected)
    assert sorted(_as_row(e) for e in index.values()) == sorted(expected)
    assert all(e.shard_id == 0 for e in index.values())
    # Spot-check one known row so a broken TSV loader cannot hide a bug.
    stream = STREAMS[checkpoint.split("_")[0]]
    w = index[f"{stream.scope}/inception_i3d/Conv3d_1a_7x7/conv_3d/w"]
    in_ch = stream.channels
    assert w.dtype == "DT_FLOAT" and w.shape == (7, 7, 7, in_ch, 64)
    assert w.size == 4 * 7 * 7 * 7 * in_ch * 64


@needs_reference
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_read_reference_index_matches_tensorflow(checkpoint: str) -> None:
    tf = pytest.importorskip("tensorflow")
    path = REF_INDEX_DIR / f"{checkpoint}.model.ckpt.index"
    tf_vars = tf.train.list_variables(str(path)[: -len(".index")])
    index = read_index(path)
    assert len(tf_vars) == 230
    assert sorted((n, tuple(s)) for n, s in tf_vars) == sorted(
        (e.name, e.shape) for e in index.values())


@pytest.fixture
def saved_bundle(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A small checkpoint written by tf.raw_ops.SaveV2 in tmp_path."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    tensors = {
        "a/empty": np.zeros((0, 3), np.float32),
        "b/scalar": np.array(7, np.int64),
        "c/double": rng.standard_normal((5, 2)),
        "d/int32": rng.integers(-1000, 1000, size=(4, 3, 2), dtype=np.int32),
        "e/kernel": rng.standard_normal((3, 3, 3, 4, 8)).astype(np.float32),
        "f/bias": rng.standard_normal(8).astype(np.float32),
    }
    prefix = tmp_path / "model.ckpt"
    names = list(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    return prefix, tensors


def test_saved_bundle_round_trip(saved_bundle) -> None:
    prefix, tensors = saved_bundle
    index = read_index(f"{prefix}.index")
    assert sorted(index) == sorted(tensors)
    dtypes = {np.float32: "DT_FLOAT", np.float64: "DT_DOUBLE",
              np.int32: "DT_INT32", np.int64: "DT_INT64"}
    for name, arr in tensors.items():
        e = index[name]
        assert e.name == name
        assert e.dtype == dtypes[arr.dtype.type]
        assert e.shape == arr.shape
        assert e.shard_id == 0
        assert e.size == arr.nbytes
        assert masked_crc32c(arr.tobytes()) == e.crc32c
        assert masked_crc32c(arr) == e.crc32c
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = data.read_bytes()
    for name, arr in tensors.items():
        e = index[name]
        assert raw[e.offset:e.offset + e.size] == arr.tobytes()
    assert verify_data_file(index, data) == []


def test_verify_detects_flipped_byte_and_truncation(saved_bundle) -> None:
    prefix, tensors = saved_bundle
    index = read_index(f"{prefix}.index")
    data = Path(f"{prefix}.data-00000-of-00001")
    pristine = data.read_bytes()

    for victim in ["c/double", "e/kernel", "f/bias"]:
        e = index[victim]
        corrupt = bytearray(pristine)
        corrupt[e.offset + e.size // 2] ^= 0x40
        data.write_bytes(bytes(corrupt))
        assert verify_data_file(index, data) == [victim]

    kernel = index["e/kernel"]
    cut = kernel.offset + kernel.size // 3
    data.write_bytes(pristine[:cut])
    expected = sorted(n for n, e in index.items() if e.offset + e.size > cut)
    assert expected == ["e/kernel", "f/bias"]
    assert sorted(verify_data_file(index, data)) == expected


def _index_block(raw: bytes) -> tuple[int, int]:
    """(offset, size) of the index block, from the footer's second BlockHandle."""
    footer, pos = raw[-48:], 0
    values = []
    for _ in range(4):
        value = shift = 0
        while True:
            byte = footer[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values[2], values[3]


def _retyped(raw: bytes, compression: int) -> bytes:
    """``raw`` with the index block's compression byte set, its crc32c made to fit."""
    raw = bytearray(raw)
    offset, size = _index_block(bytes(raw))
    raw[offset + size] = compression
    raw[offset + size + 1:offset + size + 5] = masked_crc32c(bytes(raw[offset:offset + size + 1])).to_bytes(4, "little")
    return bytes(raw)


def test_unknown_compression_and_bad_snappy_blocks_are_rejected(saved_bundle, tmp_path: Path) -> None:
    prefix, _ = saved_bundle
    raw = Path(f"{prefix}.index").read_bytes()
    bad = tmp_path / "compressed.index"
    bad.write_bytes(_retyped(raw, 2))  # not a type TensorFlow writes
    with pytest.raises(ValueError, match="compression type 2") as info:
        read_index(bad)
    assert str(bad) in str(info.value)
    bad.write_bytes(_retyped(raw, 1))  # a raw block that claims to be Snappy
    with pytest.raises(ValueError, match="Snappy|corrupt|block"):
        read_index(bad)
    offset, size = _index_block(raw)
    mislabelled = bytearray(raw)
    mislabelled[offset + size] = 1  # relabelled without fixing the crc: the crc catches it first
    bad.write_bytes(bytes(mislabelled))
    with pytest.raises(ValueError, match="crc32c"):
        read_index(bad)


HUB_INDEX = SHARED / "reference" / "tfhub_i3d_kinetics_400" / "variables" / "variables.index"


@pytest.mark.skipif(not (HUB_INDEX.is_file() and REF_INDEX_DIR.is_dir()), reason="TF-Hub module index not available")
def test_snappy_compressed_hub_index_reads_as_rgb_scratch() -> None:
    """The TF-Hub module's index (Snappy blocks) lists rgb_scratch's tensors: same bytes, statistics stored 5-D."""
    from i3d.weights.checkpoint import _block_entries, _block_handle, _read_block

    raw = HUB_INDEX.read_bytes()
    offset, size = _index_block(raw)
    handles = [_block_handle(h)[:2] for _, h in _block_entries(_read_block(memoryview(raw), offset, size))]
    assert [raw[o + n] for o, n in handles] == [1]  # its one data block really is Snappy-compressed
    hub = read_index(HUB_INDEX)
    scratch = read_index(REF_INDEX_DIR / "rgb_scratch.model.ckpt.index")
    assert list(hub) == list(scratch) and len(hub) == 230
    for name, entry in hub.items():
        ref = scratch[name]
        assert (entry.offset, entry.size, entry.crc32c, entry.dtype) == (ref.offset, ref.size, ref.crc32c, ref.dtype)
        if "/batch_norm/" in name:
            assert entry.shape == (1, 1, 1, 1) + ref.shape, name
        else:
            assert entry.shape == ref.shape, name
    assert hub["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/w"].shape == (1, 1, 1, 1024, 400)


def _reference_or_saved_index(saved_bundle) -> bytes:
    ref = REF_INDEX_DIR / "rgb_imagenet.model.ckpt.index"
    if ref.is_file():
        return ref.read_bytes()
    return Path(f"{saved_bundle[0]}.index").read_bytes()


def test_truncated_index_raises_value_error(saved_bundle, tmp_path: Path) -> None:
    good = _reference_or_saved_index(saved_bundle)
    bad = tmp_path / "truncated.index"
    for length in [0, 1, 47, 48, len(good) // 2, len(good) - 49, len(good) - 1]:
        bad.write_bytes(good[:length])
        with pytest.raises(ValueError) as info:
            read_index(bad)
        assert str(bad) in str(info.value)
    # Every possible truncation point: only ValueError may escape.
    for length in range(len(good)):
        bad.write_bytes(good[:length])
        with pytest.raises(ValueError):
            read_index(bad)


def test_random_bytes_raise_value_error(saved_bundle, tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    bad = tmp_path / "random.index"
    bad.write_bytes(rng.bytes(4096))
    with pytest.raises(ValueError) as info:
        read_index(bad)
    assert str(bad) in str(info.value)

    # Random bodies behind a valid magic number, so parsing reaches the blocks.
    good = _reference_or_saved_index(saved_bundle)
    for trial in range(200):
        body = rng.bytes(int(rng.integers(0, 300)))
        tail = good[-48:] if trial % 2 else rng.bytes(40) + good[-8:]
        bad.write_bytes(body + tail)
        with pytest.raises(ValueError):
            read_index(bad)

    # A flipped byte in any block (crc-protected) or in the magic number: ValueError.
    # (The footer's handles and zero padding carry no checksum, so they are skipped.)
    for pos in [*range(0, len(good) - 48, 3), *range(len(good) - 8, len(good))]:
        corrupt = bytearray(good)
        corrupt[pos] ^= 0xFF
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(ValueError):
            read_index(bad)
