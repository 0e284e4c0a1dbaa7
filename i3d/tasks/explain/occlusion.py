"""Occlusion (Zeiler & Fergus 2014) for video: hide a block of the clip and see how much the answer falls.

A patch of frames x height x width pixels, filled with the clip's mean (per channel), is placed at
every position of a grid over the clip, non-overlapping, each placement one forward pass; a cell's
value is the class's probability on the whole clip less its probability with the cell hidden. It asks
the network itself and nothing else, so it is faithful by construction and runs on any engine, in any
precision: the recognizer's own runner, clips sent in batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from i3d.tasks.explain.options import check_budget
from i3d.transforms import CROP_SIZE

Probabilities = Callable[[np.ndarray], np.ndarray]
"""(N, T, 224, 224, C) clips -> (N, classes) probabilities."""


def grid_shape(frames: int, patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """The occlusion grid's (T', H', W') for a ``frames``-frame clip: the map's resolution."""
    t, h, w = patch
    return math.ceil(frames / t), math.ceil(CROP_SIZE / h), math.ceil(CROP_SIZE / w)


def occlusion_maps(probabilities: Probabilities, clip: np.ndarray, indices: Sequence[int],
                   patch: tuple[int, int, int] = (16, 56, 56), batch: int = 4,
                   budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the classes' probabilities on the whole clip (K,), their drops (K, T', H', W') float32) for one clip
    (1, T, 224, 224, C): one sweep of :func:`occlusion_passes` forward passes, shared by the K classes.
    A ``budget`` of forward passes too small for the sweep is an OptionError naming the least that works."""
    clip = np.asarray(clip, np.float32)
    frames = clip.shape[1]
    if budget is not None:
        check_budget(budget, frames, patch)
    fill = clip[0].mean(axis=(0, 1, 2))
    shape = grid_shape(frames, patch)
    cells = list(np.ndindex(*shape))
    indices = list(indices)
    base = np.asarray(probabilities(clip), np.float64)[0, indices]
    drops = np.zeros((len(indices), len(cells)), np.float64)
    for first in range(0, len(cells), batch):
        chosen = cells[first:first + batch]
        hidden = np.repeat(clip, len(chosen), axis=0)
        for n, (t, y, x) in enumerate(chosen):
            hidden[n, t * patch[0]:(t + 1) * patch[0], y * patch[1]:(y + 1) * patch[1],
                   x * patch[2]:(x + 1) * patch[2]] = fill
        scores = np.asarray(probabilities(hidden), np.float64)[:, indices]
        drops[:, first:first + len(chosen)] = (base[None, :] - scores).T
    return base.astype(np.float32), drops.reshape(len(indices), *shape).astype(np.float32)


def occlusion_map(probabilities: Probabilities, clip: np.ndarray, index: int,
                  patch: tuple[int, int, int] = (16, 56, 56), batch: int = 4, budget: int | None = None) -> np.ndarray:
    """The drop in class ``index``'s probability when each cell of the grid is hidden: float32 (T', H', W')."""
    return occlusion_maps(probabilities, clip, [index], patch, batch, budget)[1][0]


def runner_probabilities(runner, head=None, stream: str | None = None) -> Probabilities:
    """A stream runner's class probabilities (the head's classes on its features, when ``head`` is given)."""
    def probabilities(clips: np.ndarray) -> np.ndarray:
        logits, features = runner.outputs(clips)
        if head is not None:
            logits = head.logits(stream, features)
        logits = np.asarray(logits, np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    return probabilities
