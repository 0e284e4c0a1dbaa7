"""The pointing game: does a map point at the action when the answer to *where* is known?

A composite is built from two real clips: one shrunk to half size (112x112 of a
224x224 crop) and pasted into one quadrant of another clip's frame, that frame frozen
for the whole clip. The only motion, and the only evidence for the pasted clip's
class, is in that quadrant. A map scores when its peak falls in the quadrant, and
when most of its heat (more than half) does; chance is one in four.

Maps may be at any resolution (Grad-CAM's 7x7 or 14x14, occlusion's patch grid, the
upsampled 224x224): each map cell is taken to cover its block of the frame evenly, so
a cell straddling the middle line counts half on each side, and a peak there points at
no quadrant. Only positive heat is evidence. Everything here is numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from i3d.errors import OptionError

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
"""Quadrant 0 to 3, row by row."""


@dataclass(frozen=True)
class Point:
    """One map's score on one composite: whether its peak is in the pasted quadrant, and the share of its
    positive heat there."""

    quadrant: int
    peak: bool
    mass: float

    @property
    def most(self) -> bool:
        """Whether more than half the heat is in the quadrant."""
        return self.mass > 0.5


def check_quadrant(quadrant: int) -> None:
    """Refuse a quadrant other than 0 to 3 (OptionError)."""
    if quadrant not in range(len(QUADRANTS)):
        raise OptionError("quadrant", f"is {quadrant}; choose 0 to 3 ({', '.join(QUADRANTS)})")


def quadrant_box(quadrant: int, size: int = 224) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of a quadrant of a ``size`` x ``size`` frame, ends exclusive."""
    check_quadrant(quadrant)
    half = size // 2
    top, left = (quadrant // 2) * half, (quadrant % 2) * half
    return top, top + half, left, left + half


def shrink_half(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) frames at half size, each pixel the mean of a 2x2 block (H and W even)."""
    t, h, w, c = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frames of {h}x{w} do not halve evenly")
    return frames.reshape(t, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4), dtype=np.float64).astype(frames.dtype)


def composite(inner: np.ndarray, background: np.ndarray, quadrant: int, frame: int | None = None) -> np.ndarray:
    """``inner``'s (T, S, S, C) frames shrunk to half and pasted into ``quadrant`` of ``background``'s frame
    ``frame`` (default its middle one) repeated T times: a (T, S, S, C) clip moving in one quadrant only."""
    check_quadrant(quadrant)
    if inner.ndim != 4 or background.ndim != 4 or inner.shape[1:] != background.shape[1:]:
        raise ValueError(f"inner {inner.shape} and background {background.shape} must be (T, S, S, C) alike")
    size = inner.shape[1]
    if inner.shape[2] != size:
        raise ValueError(f"frames must be square, not {inner.shape[1]}x{inner.shape[2]}")
    still = background[len(background) // 2 if frame is None else frame]
    out = np.repeat(still[np.newaxis], len(inner), axis=0)
    top, bottom, left, right = quadrant_box(quadrant, size)
    out[:, top:bottom, left:right] = shrink_half(inner)
    return out


def _top_share(cells: int) -> np.ndarray:
    """For each of ``cells`` equal cells along an axis, the share of it in the axis's first half."""
    edges = np.arange(cells + 1) / cells
    return np.clip((np.minimum(edges[1:], 0.5) - edges[:-1]) * cells, 0.0, 1.0)


def quadrant_weights(rows: int, columns: int) -> np.ndarray:
    """(4, rows, columns): the share of each map cell's area in each quadrant."""
    top, left = _top_share(rows), _top_share(columns)
    vertical, horizontal = (top, 1 - top), (left, 1 - left)
    return np.stack([np.outer(vertical[q // 2], horizontal[q % 2]) for q in range(len(QUADRANTS))])


def _spatial(heat: np.ndarray) -> np.ndarray:
    """A map as (t, h, w), one given as (h, w) being one step."""
    heat = np.asarray(heat, dtype=np.float64)
    if heat.ndim == 2:
        heat = heat[np.newaxis]
    if heat.ndim != 3:
        raise ValueError(f"a map is (t, h, w) or (h, w), not {heat.shape}")
    return heat


def quadrant_shares(heat: np.ndarray) -> np.ndarray:
    """The share of the map's positive heat (summed over time) in each quadrant; zeros when it has none."""
    heat = np.maximum(_spatial(heat), 0).sum(axis=0)
    total = heat.sum()
    weights = quadrant_weights(*heat.shape)
    if total <= 0:
        return np.zeros(len(QUADRANTS))
    return (weights * heat).sum(axis=(1, 2)) / total


def point(heat: np.ndarray, quadrant: int) -> Point:
    """Score a (t, h, w) or (h, w) map against the pasted ``quadrant``.

    The peak is the highest value over space and time; it points at the quadrant when
    every cell holding it lies mostly (more than half its area) inside. A map with no
    positive value points nowhere.
    """
    check_quadrant(quadrant)
    heat = _spatial(heat)
    mass = float(quadrant_shares(heat)[quadrant])
    top = heat.max()
    if not top > 0:
        return Point(quadrant, False, mass)
    weights = quadrant_weights(*heat.shape[1:])[quadrant]
    _, rows, columns = np.nonzero(heat == top)
    return Point(quadrant, bool(np.all(weights[rows, columns] > 0.5)), mass)


def pairings(count: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """(inner, background, quadrant) for ``count`` composites of ``count`` clips: every clip pasted once,
    onto another clip's frame (a seeded shuffle), the quadrants taken in turn so each is used alike."""
    if count < 2:
        raise OptionError("clips", f"is {count}; a composite needs two clips")
    order = [int(i) for i in np.random.default_rng(seed).permutation(count)]
    return [(inner, order[(n + 1) % count], n % len(QUADRANTS)) for n, inner in enumerate(order)]


def rates(points: Sequence[Point]) -> dict[str, float | int]:
    """The share of maps whose peak is in the quadrant (``peak``), and of those with most heat there
    (``mass``), over ``points``."""
    if not points:
        return {"peak": float("nan"), "mass": float("nan"), "count": 0}
    return {"peak": float(np.mean([p.peak for p in points])), "mass": float(np.mean([p.most for p in points])),
            "count": len(points)}
