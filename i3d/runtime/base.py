"""The Runner interface, the engine options, and the choice of backend.

A runner holds one stream's network with its weights and answers logits and
features for model-ready clips; :func:`i3d.runtime.factory.open_runner` makes one
for a weight set on the chosen backend. The Keras model in :mod:`i3d.model` is the one
definition of the network: every backend runs it or a conversion of it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from i3d.errors import InputError, OptionError

BACKENDS = ("auto", "openvino", "tensorflow")
PRECISIONS = ("fp32", "bf16", "int8")
"""OpenVINO's compute precisions: float32 (the reference), bfloat16 (an inference hint, on CPUs with native
bf16) and int8 (the network quantised by NNCF, made once per weight set and calibration and cached)."""


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs the network, and in what precision.

    ``backend`` auto, openvino or tensorflow. ``mixed_precision`` is TensorFlow's float16
    compute on a GPU; ``precision`` (fp32, bf16, int8) is OpenVINO's, on the CPU: both change
    logits slightly. ``calibration`` is a folder of videos int8 is calibrated on instead of
    the sample clips.
    """

    backend: str = "auto"
    mixed_precision: bool = False
    precision: str = "fp32"
    calibration: Path | None = None

    def check(self) -> None:
        """Refuse a precision unknown, or one the backend it resolves to would ignore (OptionError)."""
        if self.precision not in PRECISIONS:
            raise OptionError("precision", f"is {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        backend = resolve_backend(self.backend)
        if backend == "openvino" and self.mixed_precision:
            raise OptionError("mixed_precision", "is TensorFlow's float16 compute on a GPU; the openvino backend "
                                                 "has precision instead (fp32, bf16, int8)")
        if backend == "tensorflow" and self.precision != "fp32":
            raise OptionError("precision", f"{self.precision} is an OpenVINO mode: the tensorflow backend runs fp32 "
                                           "only (on a GPU it has mixed precision instead)")
        if self.precision == "int8" and importlib.util.find_spec("nncf") is None:
            raise OptionError("precision", 'int8 needs NNCF: pip install -e ".[openvino]" (or pip install nncf)')
        if self.calibration is not None:
            if self.precision != "int8":
                raise OptionError("calibration", "only applies to int8 precision")
            if not Path(self.calibration).is_dir():
                raise InputError(f"{self.calibration}: not a folder (calibration needs a folder of videos)")

    def resolved(self) -> EngineOptions:
        """This engine with ``auto`` replaced by the backend it means here (see :func:`resolve_backend`)."""
        return EngineOptions(resolve_backend(self.backend), self.mixed_precision, self.precision,
                             None if self.calibration is None else Path(self.calibration))


class Runner(Protocol):
    """One stream's network with its weights, on some backend.

    Its facts are set when it is made and never change. Threads may share a runner: each
    backend's runner makes its own calls safe for that (see its class).
    """

    backend: str
    source: str  # where its weights came from
    precision: str  # what it computes in, as the engine reports it: fp32, bf16, int8, fp16-mixed
    head_fingerprint: str | None  # the fine-tuned head whose network it runs (its sha256), or None: Kinetics'
    calibration_sha256: str | None  # int8: the checksum of what it was calibrated on, else None

    def logits(self, clip: np.ndarray) -> np.ndarray:
        """Logits (num_classes,) of one validated (1, T, 224, 224, C) float32 clip."""

    def logits_batch(self, clips: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) of N clips of equal length."""

    def features(self, clip: np.ndarray) -> np.ndarray:
        """The 1024-d pooled Mixed_5c features of one clip."""

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, num_classes), features (N, 1024)) of N clips, from one forward pass."""

    def step_outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, S, num_classes), features (N, S, 1024)) of each of the S time steps whose mean over
        the steps is what :meth:`outputs` gives (see :mod:`i3d.preprocess.dense`)."""


class TwoHeadRunner:
    """Logits and features from one forward pass that gives both: subclasses supply ``outputs``."""

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def step_outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise OptionError("dense", f"the {getattr(self, 'backend', 'this')} runner gives no per-step outputs")

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
