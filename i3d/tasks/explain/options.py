"""What ``i3d explain`` is asked: the method, the layer, the classes, occlusion's patch and budget."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from i3d.errors import OptionError
from i3d.inputs.labels import normalise_label
from i3d.transforms import CROP_SIZE

METHODS = ("gradcam", "occlusion")
SCORES = ("logit", "probability")
"""What Grad-CAM takes the gradients of (see :mod:`i3d.tasks.explain.gradcam`)."""
DEFAULT_SCORE = "logit"
DEFAULT_LAYER = "Mixed_5c"
MAX_TOP = 20
"""The most classes one run explains per window (each is a map, a backward pass or a budget of passes)."""


@dataclass(frozen=True)
class ExplainOptions:
    """How the evidence for a class is measured.

    ``method``: ``gradcam`` (Grad-CAM at ``layer``, float32, one backward pass per class) or
    ``occlusion`` (a ``patch`` of frames x height x width pixels, filled with the clip's mean,
    slid over the clip; the drop in the class's probability, at most ``budget`` forward passes
    per window, stream and class, ``batch`` clips per pass of the engine). ``classes``: labels to
    explain (Kinetics' or the head's names); none: the window's ``top`` most likely classes. ``score``:
    Grad-CAM's gradients are of the class's ``logit`` or of its log-``probability``.
    """

    method: str = "gradcam"
    layer: str = DEFAULT_LAYER
    classes: tuple[str, ...] = ()
    top: int = 1
    patch: tuple[int, int, int] = (16, 56, 56)
    budget: int = 512
    batch: int = 4
    score: str = DEFAULT_SCORE

    def check(self) -> None:
        """Refuse options no run could use (OptionError naming the option)."""
        if self.method not in METHODS:
            raise OptionError("method", f"is {self.method!r}; choose from {', '.join(METHODS)}")
        layers = endpoints()
        if self.layer not in layers:
            raise OptionError("layer", f"{self.layer!r} is not an I3D endpoint; choose from {', '.join(layers)}")
        if self.method != "gradcam" and self.layer != DEFAULT_LAYER:
            raise OptionError("layer", "only applies to the gradcam method")
        if self.score not in SCORES:
            raise OptionError("score", f"is {self.score!r}; choose from {', '.join(SCORES)}")
        if self.method != "gradcam" and self.score != DEFAULT_SCORE:
            raise OptionError("score", "only applies to the gradcam method")
        if not 1 <= self.top <= MAX_TOP:
            raise OptionError("top", f"must be between 1 and {MAX_TOP}, not {self.top}")
        if self.classes and self.top != 1:
            raise OptionError("top", "and class choose the classes two ways; give one of them")
        if len(self.classes) > MAX_TOP:
            raise OptionError("class", f"is given {len(self.classes)} times; at most {MAX_TOP}")
        if len(self.patch) != 3 or not all(isinstance(n, int) for n in self.patch):
            raise OptionError("patch", f"must be three whole numbers T,H,W, not {self.patch!r}")
        frames, height, width = self.patch
        if frames < 1 or not 1 <= height <= CROP_SIZE or not 1 <= width <= CROP_SIZE:
            raise OptionError("patch", f"is {frames},{height},{width}; give at least 1 frame and 1 to {CROP_SIZE} "
                                       "pixels in height and width")
        if self.budget < 2:
            raise OptionError("budget", f"must be at least 2 forward passes, not {self.budget}")
        if not 1 <= self.batch <= 64:
            raise OptionError("batch", f"must be between 1 and 64 clips, not {self.batch}")

    def settings(self) -> dict:
        """The options that decide the maps, for explain.json."""
        if self.method == "gradcam":
            return {"method": self.method, "layer": self.layer, "score": self.score}
        return {"method": self.method, "patch": list(self.patch), "budget": self.budget, "fill": "clip mean"}


def endpoints() -> tuple[str, ...]:
    """The layers a map can be taken at: every I3D endpoint with space and time (not Logits, Predictions)."""
    from i3d.model import ENDPOINTS  # Keras: loaded only when options are checked for a run

    return tuple(name for name in ENDPOINTS if name.startswith(("Conv3d", "MaxPool3d", "Mixed")))


def occlusion_passes(frames: int, patch: tuple[int, int, int]) -> int:
    """Forward passes one sweep of ``patch`` over a ``frames``-frame clip takes: one per position, and the clip."""
    t, h, w = patch
    return math.ceil(frames / t) * math.ceil(CROP_SIZE / h) * math.ceil(CROP_SIZE / w) + 1


def check_budget(budget: int, frames: int, patch: tuple[int, int, int]) -> None:
    """Refuse an occlusion budget too small for one sweep of ``patch`` over a ``frames``-frame clip, naming
    the least that works (OptionError)."""
    need = occlusion_passes(frames, patch)
    if budget < need:
        t, h, w = patch
        raise OptionError("budget", f"is {budget} forward passes; a {t}x{h}x{w} patch over this {frames}-frame "
                                    f"clip needs {need}: give --budget {need} or a larger --patch")


def class_indices(labels: Sequence[str], categories: Sequence[str]) -> tuple[int, ...]:
    """Each label's index in ``categories``, compared as labels are elsewhere (case, ``_`` and ``-`` ignored);
    an unknown label is an OptionError naming the closest classes."""
    by_name = {normalise_label(name): index for index, name in enumerate(categories)}
    found = []
    for label in labels:
        index = by_name.get(normalise_label(label))
        if index is None:
            close = difflib.get_close_matches(normalise_label(label), list(by_name), n=3, cutoff=0.0)
            names = ", ".join(repr(categories[by_name[name]]) for name in close)
            raise OptionError("class", f"{label!r} is not one of the {len(categories)} classes; closest: {names}")
        if index not in found:
            found.append(index)
    return tuple(found)
