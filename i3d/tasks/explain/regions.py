"""From a map to places: upsampling to the crop, each frame's peak and half-heat box, and where the crop
lies in the original video's pixels.

Coordinates are in pixels with (0, 0) the top-left corner of the top-left pixel: a peak (x, y) is
the centre of its pixel (column + 0.5, row + 0.5); a box (left, top, right, bottom) runs along
pixel edges, right and bottom excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from i3d.transforms import CROP_SIZE, MAX_ASPECT, SHORT_SIDE

BOX_GRID = 28
"""Half-heat boxes are searched on a 28 x 28 grid of the crop (8 px cells): finer than any layer's
cells (Mixed_5c's are 32 px, Mixed_4f's 16 px)."""


def _linear(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of linear interpolation with pixel centres aligned (half-pixel offsets),
    edges held: the resampling ``cv2.resize`` and ``tf.image.resize`` call bilinear."""
    position = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weight = position - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1 - weight
    matrix[np.arange(size_out), high] += weight
    return matrix


def upsample(layer_map: np.ndarray, frames: int, size: int = CROP_SIZE) -> np.ndarray:
    """A (T', H', W') map at a layer's resolution, linearly interpolated in time and space to
    (frames, size, size): float32, each layer cell spread over the frames and pixels it covers."""
    t, h, w = layer_map.shape
    out = np.einsum("at,tij->aij", _linear(t, frames), np.asarray(layer_map, np.float64))
    out = np.einsum("bi,aij->abj", _linear(h, size), out)
    return np.einsum("cj,abj->abc", _linear(w, size), out).astype(np.float32)


def heat(crop_map: np.ndarray) -> np.ndarray:
    """A map's positive part scaled so its largest value over the whole window is 1 (all zeros: zeros)."""
    positive = np.maximum(np.asarray(crop_map, np.float32), 0.0)
    top = float(positive.max()) if positive.size else 0.0
    return positive / top if top > 0 else positive


def peak(frame_map: np.ndarray) -> tuple[float, float] | None:
    """The (x, y) centre of a (H, W) map's hottest pixel (the first on a tie), or None when nothing is hot."""
    if not np.any(frame_map > 0):
        return None
    row, column = np.unravel_index(int(np.argmax(frame_map)), frame_map.shape)
    return float(column) + 0.5, float(row) + 0.5


def half_heat_box(frame_map: np.ndarray, grid: int = BOX_GRID) -> tuple[int, int, int, int] | None:
    """The smallest box (left, top, right, bottom) of grid cells holding at least half the (H, W) map's
    positive heat, in the map's pixels; the hotter box on a tie of area. None when nothing is hot.

    Every box of whole cells is tried (grid^4 / 4 of them, through summed-area tables).
    """
    positive = np.maximum(np.asarray(frame_map, np.float64), 0.0)
    total = positive.sum()
    if total <= 0:
        return None
    height, width = positive.shape
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    columns = np.linspace(0, width, grid + 1).round().astype(int)
    cells = np.add.reduceat(np.add.reduceat(positive, rows[:-1], axis=0), columns[:-1], axis=1)
    table = np.zeros((grid + 1, grid + 1))
    table[1:, 1:] = cells.cumsum(0).cumsum(1)
    top, bottom = np.triu_indices(grid + 1, 1)  # every pair of row edges
    band = table[bottom] - table[top]  # (pairs, grid + 1): heat left of each column edge within the rows
    sums = band[:, None, :] - band[:, :, None]  # (pairs, left, right)
    enough = sums >= total / 2 - 1e-12 * total
    area = ((bottom - top)[:, None, None] * (np.arange(grid + 1)[None, None, :] - np.arange(grid + 1)[None, :, None]))
    area = np.where(enough & (area > 0), area, np.iinfo(np.int64).max)
    smallest = area.min()
    candidates = np.argwhere(area == smallest)
    hotness = sums[area == smallest]  # the candidates' heat, in the same (row-major) order
    # the first of the hottest (a NaN first wins, a later NaN never does), picked by NumPy: a map holding NaN makes
    # every box (about 170 000) a candidate
    first = 0 if np.isnan(hotness[0]) or np.isnan(hotness).all() else int(np.nanargmax(hotness))
    pair, left, right = (int(v) for v in candidates[first])
    return int(columns[left]), int(rows[top[pair]]), int(columns[right]), int(rows[bottom[pair]])


def temporal_curve(crop_map: np.ndarray) -> np.ndarray:
    """Each frame's share of the window's positive heat (sums to 1; all zeros when nothing is hot)."""
    per_frame = np.maximum(np.asarray(crop_map, np.float64), 0.0).sum(axis=(1, 2))
    total = per_frame.sum()
    return per_frame / total if total > 0 else per_frame


@dataclass(frozen=True)
class CropGeometry:
    """Where the 224 x 224 crop lies in the original video frame: video = offset + (crop + shift) * factor."""

    width: int  # the original frame's size
    height: int
    crop: str
    offset: tuple[float, float]  # the trimmed band's start in the original (x, y)
    shift: tuple[float, float]  # the crop's start in the resized frame
    factor: tuple[float, float]  # original pixels per resized (or crop) pixel

    def to_video(self, x: float, y: float) -> tuple[float, float]:
        """A crop point (pixel edges or centres alike) in the original frame's pixels."""
        return (self.offset[0] + (x + self.shift[0]) * self.factor[0],
                self.offset[1] + (y + self.shift[1]) * self.factor[1])

    def box_to_video(self, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        left, top = self.to_video(box[0], box[1])
        right, bottom = self.to_video(box[2], box[3])
        return left, top, right, bottom


def crop_geometry(width: int, height: int, crop: str) -> CropGeometry:
    """How :func:`i3d.transforms.prepare_frame` and the crop took the network's view from a width x height
    frame: short side to 256 (a band 4x the short side long kept for extreme shapes), then the centre
    224 x 224 (``center``, and the centre view of ``ten``) or the whole frame squashed (``full``)."""
    if crop == "full":
        return CropGeometry(width, height, crop, (0.0, 0.0), (0.0, 0.0), (width / CROP_SIZE, height / CROP_SIZE))
    short, long = min(width, height), max(width, height)
    band_w, band_h, offset = width, height, (0.0, 0.0)
    if long > MAX_ASPECT * short:
        band = MAX_ASPECT * short
        start = (long - band) // 2
        band_w, band_h = (band, height) if width > height else (width, band)
        offset = (float(start), 0.0) if width > height else (0.0, float(start))
    scale = SHORT_SIDE / min(band_w, band_h)
    new_h = SHORT_SIDE if band_h <= band_w else int(round(band_h * scale))
    new_w = SHORT_SIDE if band_w < band_h else int(round(band_w * scale))
    if min(band_w, band_h) == SHORT_SIDE:
        new_w, new_h = band_w, band_h
    shift = (float((new_w - CROP_SIZE) // 2), float((new_h - CROP_SIZE) // 2))
    return CropGeometry(width, height, crop, offset, shift, (band_w / new_w, band_h / new_h))
