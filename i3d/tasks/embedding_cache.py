"""A folder of per-video embeddings, so a rerun embeds only the videos it has not seen.

One file per video, ``<key>.emb``, named by a sha256 of the video's content and
everything that changes its embedding (settings, weights, network code, backend).
An entry is a magic line, the float32 values and the sha256 of both; one that fails
its size or checksum is removed and recomputed. Writes are atomic. The cache is best
effort: a failure to read or write costs one warning line, never the run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from ..files import STALE_AFTER_S, atomic_path, reason, remove_older_than

CACHE_FORMAT = 1
MAGIC = b"I3D-EMBEDDING-1\n"


def cache_key(content_sha256: str, params: dict) -> str:
    """Hex sha256 naming an entry: the video's content hash plus ``params`` (canonical JSON)."""
    text = json.dumps({"content": content_sha256, "params": params, "format": CACHE_FORMAT}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class EmbeddingCache:
    """Entries of ``dims`` float32 values in ``folder``; with ``folder=None`` nothing is stored."""

    def __init__(self, folder: str | os.PathLike | None, dims: int) -> None:
        self.folder = None if folder is None else Path(folder)
        self.dims = dims
        self.size = len(MAGIC) + 4 * dims + 32
        if self.folder is not None:
            try:
                remove_older_than(list(self.folder.glob(".*.tmp")), STALE_AFTER_S)  # left by killed runs
            except OSError:
                pass

    def get(self, key: str) -> np.ndarray | None:
        """The cached embedding, or None (absent, unreadable, or corrupt: removed)."""
        if self.folder is None:
            return None
        path = self.folder / f"{key}.emb"
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read
                raise OSError(errno.EINVAL, "not a regular file")
            with open(path, "rb") as handle:
                data = handle.read(self.size + 1)
        except FileNotFoundError:
            return None
        except OSError as err:
            warnings.warn(f"{path}: cannot read the embedding cache ({reason(err)}); embedding again")
            return None
        body, digest = data[:-32], data[-32:]
        if len(data) != self.size or not body.startswith(MAGIC) or hashlib.sha256(body).digest() != digest:
            warnings.warn(f"{path}: corrupt embedding cache entry; removed it, embedding again")
            path.unlink(missing_ok=True)
            return None
        return np.frombuffer(body[len(MAGIC):], dtype="<f4").astype(np.float32)

    def put(self, key: str, embedding: np.ndarray) -> None:
        """Store an embedding atomically; a failure is one warning line."""
        if self.folder is None:
            return
        body = MAGIC + np.ascontiguousarray(embedding, dtype="<f4").tobytes()
        try:
            with atomic_path(self.folder / f"{key}.emb") as tmp:
                tmp.write_bytes(body + hashlib.sha256(body).digest())
        except OSError as err:  # Python shows a warning once per message: once per folder and reason
            warnings.warn(f"{self.folder}: cannot write to the embedding cache ({reason(err)}); continuing without it")
