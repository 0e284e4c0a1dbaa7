"""Deletion and insertion curves: whether a saliency map is faithful to the network it explains.

A map is faithful when the places it ranks first are the ones the class's probability
depends on. The clip's space-time volume is cut into cells (``CurveOptions.cell``
frames x pixels x pixels); *deletion* blanks the cells in the map's order, most
salient first, and records the class's probability after each tenth (a faithful
map makes it fall at once: a low area under the curve); *insertion* starts from a
blank clip and restores the cells in the same order (a faithful map makes it rise
at once: a high area). Blank means the clip's mean colour, the fill occlusion uses
(``fill="mean"``), or the same place in a blurred copy of the clip (``fill="blur"``: each
frame smoothed with a Gaussian of ``BLUR_SIGMA`` pixels, as Petsiuk et al. 2018 start their
insertion curves): a flat fill cuts sharp edges round every blanked cell, a sight the network
never trained on, which a blurred fill avoids, at the cost of leaving the coarse shapes and
motion in place.
Two orders that know nothing of the network are the baselines a map must beat: a
random order, and centre-first (the camera usually frames the action in the middle).

Everything here is numpy: the network is a ``predict(clips) -> probabilities``
callable over (N, T, H, W, C) batches, so any backend (or a stand-in with known
answers) can be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from i3d.errors import OptionError

FILLS = ("mean", "blur")
BLUR_SIGMA = 16.0
"""The blur fill's Gaussian, in pixels of the 224 x 224 crop (a cell of Mixed_4f's 14 x 14 grid)."""

Predict = Callable[[np.ndarray], np.ndarray]
"""(N, T, H, W, C) float32 clips -> (N, classes) probabilities."""


@dataclass(frozen=True)
class CurveOptions:
    """How the curves are sampled: ``steps`` points past the start (10: every 10% of the volume), cells of
    ``cell`` (frames, rows, columns) blanked whole, and up to ``batch`` clips per ``predict`` call; blanked
    cells hold the clip's mean colour (``fill="mean"``) or a blurred copy of the clip (``fill="blur"``)."""

    steps: int = 10
    cell: tuple[int, int, int] = (4, 16, 16)
    batch: int = 4
    fill: str = "mean"

    def check(self) -> None:
        """Refuse a curve with no points, an empty cell or an empty batch (OptionError)."""
        if self.steps < 1:
            raise OptionError("steps", f"is {self.steps}; a curve needs at least 1 step")
        if len(self.cell) != 3 or any(int(size) < 1 for size in self.cell):
            raise OptionError("cell", f"is {self.cell}; give three sizes of at least 1 (frames, rows, columns)")
        if self.batch < 1:
            raise OptionError("batch", f"is {self.batch}; at least 1 clip per call")
        if self.fill not in FILLS:
            raise OptionError("fill", f"is {self.fill!r}; choose from {', '.join(FILLS)}")


@dataclass(frozen=True)
class Curve:
    """The class's probability at each fraction of the volume blanked (deletion) or restored (insertion)."""

    fractions: np.ndarray
    probabilities: np.ndarray

    @property
    def auc(self) -> float:
        """The area under the curve over fractions 0 to 1 (trapezoids)."""
        return area_under(self.fractions, self.probabilities)


@dataclass(frozen=True)
class Curves:
    """One order's deletion and insertion curves on one clip."""

    deletion: Curve
    insertion: Curve


def area_under(fractions: np.ndarray, values: np.ndarray) -> float:
    """The trapezoid area under ``values`` sampled at increasing ``fractions``."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def as_frames(clip: np.ndarray) -> np.ndarray:
    """A (T, H, W, C) clip from one given as (T, H, W, C) or (1, T, H, W, C)."""
    clip = np.asarray(clip)
    if clip.ndim == 5 and clip.shape[0] == 1:
        clip = clip[0]
    if clip.ndim != 4:
        raise ValueError(f"a clip is (T, H, W, C) or (1, T, H, W, C), not {clip.shape}")
    return clip


def clip_fill(clip: np.ndarray) -> np.ndarray:
    """The clip's mean colour (one value per channel): what blanked cells are filled with."""
    return as_frames(clip).mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) weights of a Gaussian blur along one axis, each row renormalised at the edges (so a border
    pixel keeps its brightness; scipy.ndimage's boundary modes reflect, repeat or pad the image instead)."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def blurred_copy(clip: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The (T, H, W, C) clip with every frame blurred by a Gaussian of ``sigma`` pixels (time untouched)."""
    frames = as_frames(clip)
    rows = _gaussian_matrix(frames.shape[1], sigma)
    columns = _gaussian_matrix(frames.shape[2], sigma)
    out = np.einsum("ij,tjwc->tiwc", rows, frames.astype(np.float64))
    return np.einsum("kw,tiwc->tikc", columns, out).astype(frames.dtype)


def cell_grid(shape: tuple[int, int, int], cell: tuple[int, int, int]) -> tuple[int, int, int]:
    """Cells along time, rows and columns of a (T, H, W) volume; a last cell may be partial."""
    return tuple(-(-int(n) // int(c)) for n, c in zip(shape, cell))


def _resample_axis(values: np.ndarray, axis: int, length: int, cell: int, cells: int) -> np.ndarray:
    """``values`` along ``axis`` (covering ``length`` pixels) read at the centres of ``cells`` cells."""
    n = values.shape[axis]
    centres = (np.arange(cells) + 0.5) * cell  # in pixels; a partial last cell's centre is past its middle
    where = np.clip(centres, 0, length) / length * n - 0.5  # in the map's samples (their centres at i)
    moved = np.moveaxis(values, axis, -1)
    out = np.stack([np.interp(where, np.arange(n), row) for row in moved.reshape(-1, n)])
    return np.moveaxis(out.reshape(moved.shape[:-1] + (cells,)), -1, axis)


def cell_scores(saliency: np.ndarray, shape: tuple[int, int, int], cell: tuple[int, int, int]) -> np.ndarray:
    """The map's value per cell of a (T, H, W) volume.

    A map at the volume's full resolution is averaged over each cell; a coarser one
    (Grad-CAM's T/8 x 7 x 7) is read at the cells' centres by linear interpolation
    along each axis, its samples standing at the centres of the blocks they cover.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim == 2:  # one map for every frame
        saliency = saliency[np.newaxis]
    if saliency.ndim != 3:
        raise ValueError(f"a saliency map is (t, h, w) or (h, w), not {saliency.shape}")
    grid = cell_grid(shape, cell)
    if saliency.shape == tuple(shape):
        padded = np.pad(saliency, [(0, g * c - n) for g, c, n in zip(grid, cell, shape)], constant_values=np.nan)
        blocks = padded.reshape(grid[0], cell[0], grid[1], cell[1], grid[2], cell[2])
        return np.nanmean(blocks, axis=(1, 3, 5))
    for axis in range(3):
        saliency = _resample_axis(saliency, axis, shape[axis], cell[axis], grid[axis])
    return saliency


def saliency_order(saliency: np.ndarray, shape: tuple[int, int, int], cell: tuple[int, int, int]) -> np.ndarray:
    """The cells (flat indices into the grid) from the most salient to the least; ties in grid order."""
    return np.argsort(-cell_scores(saliency, shape, cell).reshape(-1), kind="stable")


def random_order(grid: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """The cells in a random order (seeded, so a benchmark's baseline is repeatable)."""
    return np.random.default_rng(seed).permutation(int(np.prod(grid)))


def centre_order(grid: tuple[int, int, int]) -> np.ndarray:
    """The cells nearest the frame's centre first (in space; among equals, nearest the middle in time)."""
    t, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in grid], indexing="ij")
    return np.lexsort((np.abs(t).reshape(-1), (y ** 2 + x ** 2).reshape(-1)))


def cell_mask(cells: np.ndarray, grid: tuple[int, int, int], cell: tuple[int, int, int],
              shape: tuple[int, int, int]) -> np.ndarray:
    """A (T, H, W) boolean mask of the voxels in the given cells (flat indices into the grid)."""
    chosen = np.zeros(int(np.prod(grid)), dtype=bool)
    chosen[cells] = True
    mask = chosen.reshape(grid)
    for axis, size in enumerate(cell):
        mask = np.repeat(mask, size, axis=axis)
    return mask[:shape[0], :shape[1], :shape[2]]


def blanked(clip: np.ndarray, cells: np.ndarray, cell: tuple[int, int, int], fill: np.ndarray | None = None,
            *, keep: bool = False) -> np.ndarray:
    """The (T, H, W, C) clip with the given cells filled (``keep``: every other cell filled instead) from
    ``fill``: a colour (C,), or a whole clip (T, H, W, C) to take the cells from; default the clip's mean."""
    frames = as_frames(clip)
    shape = frames.shape[:3]
    mask = cell_mask(np.asarray(cells, dtype=np.int64), cell_grid(shape, cell), cell, shape)
    if keep:
        mask = ~mask
    fill = clip_fill(frames) if fill is None else np.asarray(fill, dtype=frames.dtype)
    return np.where(mask[..., np.newaxis], fill, frames).astype(frames.dtype, copy=False)


def _batched(predict: Predict, clips: Iterator[np.ndarray], class_index: int, batch: int) -> list[float]:
    """The class's probability for each clip, ``batch`` clips per ``predict`` call."""
    out: list[float] = []
    pending: list[np.ndarray] = []
    for clip in clips:
        pending.append(clip)
        if len(pending) == batch:
            out.extend(np.asarray(predict(np.stack(pending)), dtype=np.float64)[:, class_index])
            pending = []
    if pending:
        out.extend(np.asarray(predict(np.stack(pending)), dtype=np.float64)[:, class_index])
    return [float(p) for p in out]


def curves(predict: Predict, clip: np.ndarray, orders: Mapping[str, np.ndarray], class_index: int,
           options: CurveOptions = CurveOptions()) -> dict[str, Curves]:
    """Each order's deletion and insertion curves for ``class_index`` on ``clip``.

    The curves' shared ends (the clip itself, and the all-blank clip) are predicted once;
    every order's inner points after them, in batches. Point ``i`` of ``steps`` blanks (or
    restores) the first ``round(i / steps * cells)`` cells of the order.
    """
    options.check()
    frames = as_frames(clip).astype(np.float32, copy=False)
    cell = tuple(int(c) for c in options.cell)
    grid = cell_grid(frames.shape[:3], cell)
    total = int(np.prod(grid))
    for name, order in orders.items():
        if sorted(np.asarray(order).tolist()) != list(range(total)):
            raise ValueError(f"order {name!r} is not a permutation of the {total} cells")
    fill = clip_fill(frames) if options.fill == "mean" else blurred_copy(frames)
    counts = [round(i / options.steps * total) for i in range(1, options.steps)]

    def clips() -> Iterator[np.ndarray]:
        yield frames
        yield np.broadcast_to(fill, frames.shape)
        for order in orders.values():
            for keep in (False, True):
                for count in counts:
                    yield blanked(frames, order[:count], cell, fill, keep=keep)

    probabilities = _batched(predict, clips(), class_index, options.batch)
    whole, blank, inner = probabilities[0], probabilities[1], probabilities[2:]
    fractions = np.array([0.0] + [c / total for c in counts] + [1.0])
    result = {}
    for n, name in enumerate(orders):
        deleted = inner[2 * n * len(counts):(2 * n + 1) * len(counts)]
        restored = inner[(2 * n + 1) * len(counts):(2 * n + 2) * len(counts)]
        result[name] = Curves(Curve(fractions, np.array([whole, *deleted, blank])),
                              Curve(fractions, np.array([blank, *restored, whole])))
    return result
