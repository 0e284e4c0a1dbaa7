"""TensorFlow V2 checkpoints (DeepMind's format), read and verified without TensorFlow.

A ``model.ckpt.index`` file is a LevelDB-style SSTable (TensorFlow's
``core/lib/io/table`` format) mapping tensor names to serialized
``BundleEntryProto`` messages, each with the tensor's place in the data file
and the masked crc32c of its bytes. Parsing it directly lets the tool list and
checksum-verify weights on fast paths where importing TensorFlow would cost
seconds. Every check of tensor bytes against an index goes through
:func:`check_tensors`. Blocks may be stored raw (DeepMind's checkpoints) or
Snappy-compressed (a SavedModel's or TF-Hub module's ``variables.index``);
Snappy is cramjam's.

A checkpoint is named by its prefix (``.../model.ckpt``), a folder holding
``model.ckpt.*``, or a SavedModel / TF-Hub module folder holding
``variables/variables.*``: see :func:`checkpoint_files`.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import cramjam
import google_crc32c
import numpy as np

from i3d.errors import WeightsError
from i3d.files import sha256_file

__all__ = ["IndexEntry", "check_tensors", "checkpoint_files", "compare_with_index", "is_saved_model_folder",
           "masked_crc32c", "read_checkpoint", "read_index", "verify_data_file"]

_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two padded BlockHandles (40 bytes) + 8-byte magic
_TRAILER_SIZE = 5  # 1-byte compression type + 4-byte masked crc32c
_RAW, _SNAPPY = 0, 1  # a table block's compression types
DATA_SUFFIX = ".data-00000-of-00001"
MAX_INDEX_BYTES = 16 << 20
"""The largest ``.index`` read: DeepMind's are 10-40 KB (a few hundred tensors); a larger file is not one."""

# TensorFlow's DataType enum (types.proto), the values a bundle can hold.
_DTYPES = {
    1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8",
    5: "DT_INT16", 6: "DT_INT8", 7: "DT_STRING", 8: "DT_COMPLEX64",
    9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8", 12: "DT_QUINT8",
    13: "DT_QINT32", 14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16",
    17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF", 20: "DT_RESOURCE",
    21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64",
}

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


@dataclass(frozen=True)
class IndexEntry:
    """One tensor's record in a checkpoint index (a decoded BundleEntryProto)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked crc32c of the tensor's bytes, as stored in the index


def masked_crc32c(data: Buffer) -> int:
    """TensorFlow's masked CRC32C of ``data`` (what bundle entries store)."""
    if isinstance(data, np.ndarray):
        raw = np.ascontiguousarray(data).tobytes()
    else:
        raw = bytes(data)  # google_crc32c only accepts immutable bytes
    crc = google_crc32c.value(raw)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(buf: memoryview, pos: int, limit: int | None = None) -> tuple[int, int]:
    """Decode a little-endian base-128 varint at ``pos``; return (value, new pos)."""
    end = len(buf) if limit is None else limit
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _int64(value: int) -> int:
    """Reinterpret a decoded varint as a two's-complement int64."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise ValueError("truncated fixed-width protobuf field")
            value = int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited protobuf field")
            value = buf[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _parse_shape(buf: memoryview) -> tuple[int, ...]:
    """Decode a TensorShapeProto into a tuple of dimension sizes."""
    dims: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 2 and wire == 2:  # repeated Dim dim
            size = 0
            for dnum, dwire, dval in _fields(value):  # type: ignore[arg-type]
                if dnum == 1 and dwire == 0:
                    size = _int64(dval)  # type: ignore[arg-type]
            dims.append(size)
    return tuple(dims)


def _parse_entry(name: str, buf: memoryview) -> IndexEntry:
    """Decode a serialized BundleEntryProto."""
    dtype, shape, shard_id, offset, size, crc = 0, (), 0, 0, 0, 0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = value  # type: ignore[assignment]
        elif number == 2 and wire == 2:
            shape = _parse_shape(value)  # type: ignore[arg-type]
        elif number == 3 and wire == 0:
            shard_id = _int64(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 0:
            offset = _int64(value)  # type: ignore[arg-type]
        elif number == 5 and wire == 0:
            size = _int64(value)  # type: ignore[arg-type]
        elif number == 6 and wire == 5:
            crc = value  # type: ignore[assignment]
    return IndexEntry(name, _DTYPES.get(dtype, f"DT_{dtype}"), shape,
                      shard_id, offset, size, crc)


def _block_handle(buf: memoryview, pos: int = 0) -> tuple[int, int, int]:
    """Decode a BlockHandle (varint64 offset, varint64 size); return (offset, size, pos)."""
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _read_block(data: memoryview, offset: int, size: int) -> memoryview:
    """Return a block's contents after checking its trailer (crc over the stored bytes, then compression)."""
    end = offset + size
    if end + _TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise ValueError(f"block at offset {offset} (size {size}) runs past the end")
    compression = data[end]
    if compression not in (_RAW, _SNAPPY):
        raise ValueError(f"block at offset {offset} uses compression type {compression}; "
                         "only raw and Snappy blocks are supported")
    stored = int.from_bytes(data[end + 1:end + _TRAILER_SIZE], "little")
    if masked_crc32c(data[offset:end + 1]) != stored:
        raise ValueError(f"block at offset {offset} fails its crc32c check")
    if compression == _RAW:
        return data[offset:end]
    try:
        return memoryview(bytes(cramjam.snappy.decompress_raw(bytes(data[offset:end]))))
    except cramjam.DecompressionError as err:
        raise ValueError(f"block at offset {offset} is not valid Snappy data ({err})") from None


def _block_entries(block: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """Yield (key, value) pairs from a prefix-compressed table block."""
    if len(block) < 4:
        raise ValueError("block too short for its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 * (num_restarts + 1)
    if limit < 0:
        raise ValueError("block restart array larger than the block")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        value_len, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise ValueError("corrupt block entry")
        key = key[:shared] + bytes(block[pos:pos + non_shared])
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _regular_file_opener(path: str, flags: int) -> int:
    """Open without blocking (a FIFO) and refuse anything but a regular file before a byte is read."""
    fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file")
    return fd


def read_index(path: str | os.PathLike[str]) -> dict[str, IndexEntry]:
    """Parse a V2 checkpoint ``.index`` file into {tensor name: IndexEntry}.

    Raises ValueError naming the file if it is truncated or malformed.
    """
    with open(path, "rb", opener=_regular_file_opener) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_INDEX_BYTES:
            raise ValueError(f"{size} bytes, more than any checkpoint index ({MAX_INDEX_BYTES} at most)")
        data = memoryview(f.read(MAX_INDEX_BYTES + 1))
    try:
        if len(data) < _FOOTER_SIZE:
            raise ValueError(f"file is {len(data)} bytes, shorter than a table footer")
        footer = data[len(data) - _FOOTER_SIZE:]
        if int.from_bytes(footer[40:], "little") != _TABLE_MAGIC:
            raise ValueError("bad table magic number (not a checkpoint index)")
        meta_offset, meta_size, pos = _block_handle(footer)
        index_offset, index_size, _ = _block_handle(footer, pos)
        _read_block(data, meta_offset, meta_size)  # unused by bundles; crc-checked only
        entries: dict[str, IndexEntry] = {}
        for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
            offset, size, _ = _block_handle(handle)
            for key, value in _block_entries(_read_block(data, offset, size)):
                if not key:
                    continue  # the BundleHeaderProto
                name = key.decode("utf-8")
                entries[name] = _parse_entry(name, value)
        return entries
    except (ValueError, IndexError, struct.error) as exc:
        raise ValueError(f"{os.fspath(path)}: malformed checkpoint index: {exc}") from exc


def _readable(entry: IndexEntry) -> bool:
    """Whether an entry has bytes of its own (the parent of a sliced variable has none: size 0, crc 0)."""
    return not (entry.size == 0 and entry.crc32c == 0)


def check_tensors(index: dict[str, IndexEntry],
                  raw_of: Callable[[str, IndexEntry], bytes | None]) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes, problem) for each tensor of ``index``: problem is None, "missing", "truncated" or "corrupt".

    ``raw_of(name, entry)`` gives the tensor's bytes, or None when it has none.
    A cut-off tensor is "truncated"; bytes whose masked crc32c differs from the
    index are "corrupt".
    """
    for name, entry in index.items():
        if not _readable(entry):
            continue
        raw = raw_of(name, entry)
        if raw is None:
            problem = "missing"
        elif len(raw) != entry.size:
            problem = "truncated"
        elif masked_crc32c(raw) != entry.crc32c:
            problem = "corrupt"
        else:
            problem = None
        yield name, raw, problem


def _file_reader(handle) -> Callable[[str, IndexEntry], bytes | None]:
    """Read one tensor's bytes from an open single-shard data file (seeks; never the whole file)."""
    def read(name: str, entry: IndexEntry) -> bytes | None:
        if entry.shard_id != 0:
            raise ValueError(f"{handle.name}: tensor {name!r} lives in shard {entry.shard_id}; "
                             "only single-shard bundles are supported")
        if entry.offset < 0 or entry.size < 0:
            return b""
        handle.seek(entry.offset)
        return handle.read(entry.size)
    return read


def verify_data_file(index: dict[str, IndexEntry], data_path: str | os.PathLike[str]) -> list[str]:
    """The names of tensors whose bytes in a single-shard data file fail their check ([] when all pass)."""
    with open(data_path, "rb") as handle:
        return [name for name, _, problem in check_tensors(index, _file_reader(handle)) if problem]


def is_saved_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose checkpoint is ``variables/variables.*`` (a TF-Hub module, a SavedModel)."""
    path = Path(path)
    return path.is_dir() and (path / "variables" / "variables.index").is_file()


def checkpoint_files(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """The index and data file of a single-shard checkpoint.

    ``prefix`` is the path without ``.index`` (``.../model.ckpt``), a folder
    holding ``model.ckpt.*``, or a TF-Hub module / SavedModel folder holding
    ``variables/variables.*``.
    """
    prefix = Path(prefix)
    if is_saved_model_folder(prefix):
        prefix = prefix / "variables" / "variables"
    elif prefix.is_dir():
        prefix = prefix / "model.ckpt"
    index_path = Path(f"{prefix}.index")
    data_path = Path(f"{prefix}{DATA_SUFFIX}")
    for path in (index_path, data_path):
        if not path.is_file():
            raise WeightsError(f"{path}: checkpoint file missing (need {index_path.name} and {data_path.name})")
    return index_path, data_path


def _index_of(index_path: Path) -> dict[str, IndexEntry]:
    try:
        return read_index(index_path)
    except (OSError, ValueError) as err:
        raise WeightsError(f"{index_path}: not a readable checkpoint index ({err})") from None


def read_checkpoint(prefix: str | os.PathLike, expected_index_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read every float32 tensor of a single-shard checkpoint, each checked against the index.

    ``prefix`` is the path without ``.index`` (a folder holding ``model.ckpt.*`` works
    too). With ``expected_index_sha256`` the index must be that exact file.
    """
    index_path, data_path = checkpoint_files(prefix)
    if expected_index_sha256 and sha256_file(index_path) != expected_index_sha256:
        raise WeightsError(f"{index_path}: sha256 differs from DeepMind's published index; "
                           "replace it with the official file")
    index = _index_of(index_path)
    for name, entry in index.items():
        if entry.dtype != "DT_FLOAT" or entry.shard_id != 0:
            raise WeightsError(f"{index_path}: tensor {name} is {entry.dtype} in shard {entry.shard_id}; "
                               "expected float32 in one shard")
    tensors: dict[str, np.ndarray] = {}
    with open(data_path, "rb") as handle:
        for name, raw, problem in check_tensors(index, _file_reader(handle)):
            if problem == "truncated":
                raise WeightsError(f"{data_path}: truncated (tensor {name} ends past the end of the file); "
                                   "download it again")
            if problem:
                raise WeightsError(f"{data_path}: corrupt (crc32c of tensor {name} does not match the index); "
                                   "download it again")
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(index[name].shape).copy()
    return tensors


def compare_with_index(tensors: dict[str, np.ndarray], index_path: str | os.PathLike,
                       skip: Callable[[str], bool] | None = None) -> list[str]:
    """Names that differ between ``tensors`` and the index (bytes, shape, or present in only one); [] if identical.

    Index entries for which ``skip(name)`` is true (optimizer slots) are left out.
    """
    index = _index_of(Path(index_path))
    if skip is not None:
        index = {name: entry for name, entry in index.items() if not skip(name)}
    bad = sorted(set(tensors) - set(index))

    def raw_of(name: str, entry: IndexEntry) -> bytes | None:
        if name not in tensors:
            return None
        array = np.ascontiguousarray(tensors[name], dtype="<f4")
        return array.tobytes() if tuple(array.shape) == entry.shape else b""

    bad += [name for name, _, problem in check_tensors(index, raw_of) if problem]
    return sorted(bad)
