"""The Runner interface, the engine options, and the choice of backend.

A runner holds one stream's network with its weights and answers logits and
features for model-ready clips; :func:`open_runner` makes one for a weight set
on the chosen backend. The Keras model in :mod:`i3d.model` is the one
definition of the network: every backend runs it or a conversion of it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import OptionError
from ..weights.loading import LoadOptions
from ..weights.sets import WeightSet
from ..weights.store import WeightStore

BACKENDS = ("auto", "openvino", "tensorflow")


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs the network: ``backend`` auto, openvino or tensorflow; ``mixed_precision``
    is TensorFlow's float16 compute on a GPU (it changes logits slightly)."""

    backend: str = "auto"
    mixed_precision: bool = False


class Runner(Protocol):
    """One stream's network with its weights, on some backend."""

    backend: str
    source: str  # where its weights came from

    def logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits (num_classes,) of one validated (1, T, 224, 224, C) float32 clip."""

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) of N clips of equal length."""

    def features(self, clip: np.ndarray) -> np.ndarray:
        """The 1024-d pooled Mixed_5c features of one clip."""

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, num_classes), features (N, 1024)) of N clips, from one forward pass."""


class TwoHeadRunner:
    """Logits and features from one forward pass that gives both: subclasses supply ``outputs``."""

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def logits(self, clip: np.ndarray) -> np.ndarray:
        return self.logits_batch(clip)[0]

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        return self.outputs(clips)[0]

    def features(self, clip: np.ndarray) -> np.ndarray:
        return self.outputs(clip)[1][0]


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, judged without importing TensorFlow."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def resolve_backend(name: str = "auto") -> str:
    """``auto`` is TensorFlow when a GPU is present, else OpenVINO when installed, else TensorFlow."""
    if name not in BACKENDS:
        raise OptionError("backend", f"is {name!r}; choose from {', '.join(BACKENDS)}")
    openvino_installed = importlib.util.find_spec("openvino") is not None
    if name == "openvino" and not openvino_installed:
        raise OptionError("backend", "openvino needs `pip install openvino`")
    if name != "auto":
        return name
    return "openvino" if openvino_installed and not gpu_present() else "tensorflow"


def check_engine(engine: EngineOptions) -> EngineOptions:
    """The engine with its backend resolved; refuses mixed precision where it would be ignored."""
    backend = resolve_backend(engine.backend)
    if backend == "openvino" and engine.mixed_precision:
        raise OptionError("mixed_precision", "is TensorFlow's float16 compute on a GPU; the openvino backend "
                                             "runs float32 (use backend tensorflow)")
    return EngineOptions(backend, engine.mixed_precision)


def open_runner(ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
                engine: EngineOptions = EngineOptions()) -> Runner:
    """A runner for ``ws`` on the engine's backend (``auto`` resolved here if the caller has not)."""
    backend = check_engine(engine).backend
    if backend == "openvino":
        from .openvino import OpenVINORunner

        return OpenVINORunner.load(ws, store, load)
    from .tensorflow import TensorFlowRunner

    return TensorFlowRunner.load(ws, store, load, mixed_precision=engine.mixed_precision)
