"""Shared test helpers: paths, a private weights folder, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
INDEX_DIR = SHARED / "reference" / "deepmind_ckpt_index"
SAMPLES = SHARED / "samples"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the checkout")


def index_path(deepmind_name: str) -> Path:
    return INDEX_DIR / f"{deepmind_name}.model.ckpt.index"


def run_cli(*args: str, weights_dir: Path, cwd: Path = ROOT, module: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run evaluate.py (or ``python -m module``) with its own weights folder; returns the process."""
    env = {**os.environ, "I3D_WEIGHTS_DIR": str(weights_dir)}
    command = [sys.executable, "-m", module] if module else [sys.executable, str(ROOT / "evaluate.py")]
    return subprocess.run(command + list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def shared_weights_dir(tmp_path_factory) -> Path:
    """A weights folder shared by the tests that import the real rgb_kinetics weights once."""
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="session")
def cricket_clips(tmp_path_factory) -> dict[str, Path]:
    """DeepMind's cricket sample rebuilt from its GIF previews, as .npy files."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not beside the checkout")
    from i3d.samples import clips_from_gifs, write_clips

    out = tmp_path_factory.mktemp("data")
    write_clips(clips_from_gifs(SAMPLES), out)
    return {"rgb": out / "v_CricketShot_g04_c01_rgb.npy", "flow": out / "v_CricketShot_g04_c01_flow.npy"}


def random_clip(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, frames, 224, 224, channels)).astype(np.float32)
