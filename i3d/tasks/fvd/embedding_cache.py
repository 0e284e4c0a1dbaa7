"""A folder of per-video embeddings, so a rerun embeds only the videos it has not seen.

One entry per video, ``<key>.npy``, named by a sha256 of the video's content and
everything that changes its embedding (settings, weights, network code, backend),
stored and checked as every cache entry of the tool is (:class:`i3d.caches.EntryCache`:
a checksummed ``.npy``, written atomically; a bad one is removed and recomputed;
a failure to read or write costs one warning line, never the run).
"""

from __future__ import annotations

import os

import numpy as np

from i3d.caches import EntryCache, entry_key

CACHE_FORMAT = 2  # 2: entries are checksummed .npy files
TRAILER = b"I3D-EMBEDDING-SHA256\n"
"""Magic that starts an entry's trailer; the SHA-256 digest of all preceding bytes follows."""
WHAT = "embedding cache"


def cache_key(content_sha256: str, params: dict) -> str:
    """Hex sha256 naming an entry: the video's content hash plus ``params`` (canonical JSON)."""
    return entry_key({"content": content_sha256, "params": params, "format": CACHE_FORMAT})


def embedding_cache(folder: str | os.PathLike | None) -> EntryCache | None:
    """The embedding cache in ``folder``, or None when there is no folder (nothing is stored)."""
    return None if folder is None else EntryCache(folder, WHAT, TRAILER, _not_finite)


def _not_finite(embedding: np.ndarray) -> str | None:
    return None if np.isfinite(embedding).all() else "values that are not finite"
