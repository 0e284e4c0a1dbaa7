"""Which code defines the network: a hash of it keys every derived artefact (OpenVINO IRs, FVD embeddings).

Kept apart from :mod:`i3d.model`, which imports Keras (and so TensorFlow) when loaded: the
cached paths that only need the hash must not pay for that.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from i3d.files import sha256_file

PACKAGE = Path(__file__).resolve().parent
NETWORK_FILES = ("model.py", "limits.py")
"""The files, under the ``i3d`` package, that define the network an IR is converted from."""


@lru_cache(maxsize=1)
def network_sha256() -> str:
    """sha256 over the files that define the network, so an IR made before a change to them is never reused."""
    digest = hashlib.sha256()
    for name in NETWORK_FILES:
        digest.update(f"{name}:{sha256_file(PACKAGE / name)}\n".encode())
    return digest.hexdigest()
