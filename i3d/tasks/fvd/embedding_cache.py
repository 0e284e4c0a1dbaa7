"""A folder of per-video embeddings, so a rerun embeds only the videos it has not seen.

One entry per video, ``<key>.npy``, named by a sha256 of the video's content and
everything that changes its embedding (settings, weights, network code, backend),
stored and checked as every cache entry of the tool is (:mod:`i3d.caches`:
a checksummed ``.npy``, written atomically; a bad one is removed and recomputed;
a failure to read or write costs one warning line, never the run).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from i3d.caches import entry_key, load_entry, save_entry, sweep_stale_temporaries

CACHE_FORMAT = 2  # 2: entries are checksummed .npy files
TRAILER = b"I3D-EMBEDDING-SHA256\n"
"""Magic that starts an entry's trailer; the SHA-256 digest of all preceding bytes follows."""
WHAT = "embedding cache"


def cache_key(content_sha256: str, params: dict) -> str:
    """Hex sha256 naming an entry: the video's content hash plus ``params`` (canonical JSON)."""
    return entry_key({"content": content_sha256, "params": params, "format": CACHE_FORMAT})


class EmbeddingCache:
    """Entries of ``dims`` float32 values in ``folder``; with ``folder=None`` nothing is stored."""

    def __init__(self, folder: str | os.PathLike | None, dims: int) -> None:
        self.folder = None if folder is None else Path(folder)
        self.dims = dims
        if self.folder is not None:
            sweep_stale_temporaries(os.fspath(self.folder))  # left by killed runs

    def get(self, key: str) -> np.ndarray | None:
        """The cached embedding, or None (absent, unreadable, or corrupt: removed)."""
        if self.folder is None:
            return None
        return load_entry(os.fspath(self.folder / f"{key}.npy"), (self.dims,), WHAT, TRAILER, _not_finite)[0]

    def put(self, key: str, embedding: np.ndarray) -> None:
        """Store an embedding atomically; a failure is one warning line."""
        if self.folder is not None:
            save_entry(os.fspath(self.folder / f"{key}.npy"), embedding, WHAT, TRAILER)


def _not_finite(embedding: np.ndarray) -> str | None:
    return None if np.isfinite(embedding).all() else "values that are not finite"
