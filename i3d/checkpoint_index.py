"""Read TensorFlow V2 checkpoint index files without importing TensorFlow.

A ``model.ckpt.index`` file is a LevelDB-style SSTable (TensorFlow's
``core/lib/io/table`` format) mapping tensor names to serialized
``BundleEntryProto`` messages. Parsing it directly lets the tool list and
checksum-verify downloaded weights on fast paths where importing TensorFlow
would cost seconds.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Iterator, Union

import google_crc32c
import numpy as np

__all__ = ["IndexEntry", "masked_crc32c", "read_index", "verify_data_file"]

_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two padded BlockHandles (40 bytes) + 8-byte magic
_TRAILER_SIZE = 5  # 1-byte compression type + 4-byte masked crc32c

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
    """Return a block's contents after checking its trailer (compression, crc)."""
    end = offset + size
    if end + _TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise ValueError(f"block at offset {offset} (size {size}) runs past the end")
    compression = data[end]
    if compression != 0:
        raise ValueError(f"block at offset {offset} uses compression type "
                         f"{compression}; only uncompressed bundles are supported")
    stored = int.from_bytes(data[end + 1:end + _TRAILER_SIZE], "little")
    if masked_crc32c(data[offset:end + 1]) != stored:
        raise ValueError(f"block at offset {offset} fails its crc32c check")
    return data[offset:end]


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


def read_index(path: str | os.PathLike[str]) -> dict[str, IndexEntry]:
    """Parse a V2 checkpoint ``.index`` file into {tensor name: IndexEntry}.

    Raises ValueError naming the file if it is truncated or malformed.
    """
    with open(path, "rb") as f:
        data = memoryview(f.read())
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


def verify_data_file(index: dict[str, IndexEntry],
                     data_path: str | os.PathLike[str]) -> list[str]:
    """Return the names of tensors whose bytes in a single-shard data file fail their crc.

    A tensor cut off by a truncated file counts as a mismatch. Entries with no
    data of their own (size 0, crc 0: the parent of a sliced variable) are skipped.
    """
    bad: list[str] = []
    with open(data_path, "rb") as f:
        for name, entry in index.items():
            if entry.shard_id != 0:
                raise ValueError(f"{os.fspath(data_path)}: tensor {name!r} lives in "
                                 f"shard {entry.shard_id}; only single-shard bundles "
                                 "are supported")
            if entry.size == 0 and entry.crc32c == 0:
                continue
            if entry.offset < 0 or entry.size < 0:
                bad.append(name)
                continue
            f.seek(entry.offset)
            chunk = f.read(entry.size)
            if len(chunk) != entry.size or masked_crc32c(chunk) != entry.crc32c:
                bad.append(name)
    return bad
