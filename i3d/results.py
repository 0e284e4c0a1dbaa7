"""Results as values: logits to probabilities and rankings, and the dataclasses the tasks return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from i3d.errors import OptionError

FUSIONS = ("mean", "sum")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax (shifted by the maximum; float64 inside)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    exp = np.exp(shifted)
    return exp / exp.sum()


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise OptionError("fusion", f"is {fusion!r}; use 'mean' or 'sum'")
    return fusion


def fuse_logits(stream_logits: Sequence[np.ndarray], fusion: str = "mean") -> np.ndarray:
    """Combine per-stream logits: 'mean' averages them, 'sum' adds them (DeepMind's sample output)."""
    stacked = np.stack([np.asarray(x, dtype=np.float64) for x in stream_logits])
    return stacked.mean(axis=0) if check_fusion(fusion) == "mean" else stacked.sum(axis=0)


@dataclass(frozen=True)
class Prediction:
    """One ranked class."""

    rank: int
    index: int
    label: str
    probability: float
    logit: float


def top_k(logits: np.ndarray, labels: Sequence[str], k: int) -> tuple[Prediction, ...]:
    """The k most likely classes, most likely first (ties keep class order)."""
    probabilities = softmax(logits)
    order = np.argsort(-np.asarray(logits), kind="stable")[:k]
    return tuple(Prediction(rank, int(i), labels[i], float(probabilities[i]), float(logits[i]))
                 for rank, i in enumerate(order, start=1))


@dataclass(frozen=True)
class WindowSpan:
    """Where a window lies in its video: 25 fps frame indices and seconds."""

    index: int
    first_frame: int
    frames: int
    start: float
    end: float


@dataclass(frozen=True)
class WindowResult:
    """One window's fused logits and its most likely classes (at most 3)."""

    span: WindowSpan
    logits: np.ndarray
    top: tuple[Prediction, ...]


@dataclass(frozen=True)
class Result:
    """A classified clip or video: the windows' logits averaged, ranked, with how it was made."""

    logits: np.ndarray  # float64 (num_classes,): the windows' fused logits, averaged
    top: tuple[Prediction, ...]
    windows: tuple[WindowResult, ...]
    categories: tuple[str, ...]
    frames: dict[str, int]  # input frames per stream, over all windows
    weights: dict[str, str]  # DeepMind checkpoint per stream
    backend: str
    fusion: str
    seconds: dict[str, float] = field(default_factory=dict)  # inputs, load, inference
    precision: dict[str, str] = field(default_factory=dict)  # per stream, what the engine computed in

    @property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits)

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.logits))

    @property
    def label(self) -> str:
        """The most likely class."""
        return self.top[0].label


@dataclass(frozen=True)
class Features:
    """Per-window 1024-d features (pooled Mixed_5c) of each stream, with optional logits."""

    features: dict[str, np.ndarray]  # stream -> float32 (W, 1024), or (W, 10, 1024) with ten crops
    logits: dict[str, np.ndarray] | None  # stream -> float32 (W, num_classes), when asked for
    windows: tuple[WindowSpan, ...]
    weights: dict[str, str]
    backend: str
    seconds: dict[str, float] = field(default_factory=dict)
    precision: dict[str, str] = field(default_factory=dict)  # per stream, what the engine computed in
    head_logits: dict[str, np.ndarray] | None = None  # with a head: stream -> its logits over the head's classes


@dataclass(frozen=True)
class Segment:
    """Where one class's action runs in a video: seconds from the start of the video, and how sure."""

    label: str
    index: int  # the class's index in the categories the scores are over
    start: float
    end: float
    score: float  # the class's mean smoothed score over the segment, in [0, 1]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_json(self) -> dict:
        """ActivityNet's result form: label, [start, end], score."""
        return {"label": self.label, "segment": [round(self.start, 3), round(self.end, 3)],
                "score": round(self.score, 6)}
