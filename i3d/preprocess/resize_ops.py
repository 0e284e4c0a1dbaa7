"""The frame resizes FVD implementations use, in numpy, so each protocol runs its own.

- :func:`resize_bilinear_half_pixel`: PyTorch's ``F.interpolate(mode="bilinear",
  align_corners=False)`` without antialiasing: output pixel ``i`` samples the source at
  ``(i + 0.5) * in/out - 0.5`` (half-pixel centres), clamped at 0 below, the upper
  neighbour clamped to the last row or column; float32 weights, as PyTorch's CPU kernel
  takes them. On float input OpenCV's ``INTER_LINEAR`` computes the same sampling (tested
  against it).
- :func:`resize_short_side_centre_crop`: the short side to ``size`` (the long side
  ``ceil(long * size / short)``) with that bilinear, then the central ``size x size``
  (offsets ``(h - size) // 2``, ``(w - size) // 2``): VideoGPT's preprocessing.
- TF1's legacy bilinear (no half-pixel centres) is :mod:`i3d.preprocess.legacy_bilinear`.
"""

from __future__ import annotations

import math

import numpy as np


def _half_pixel_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, weight of the lower, weight of the upper), float32, per output position."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0))
    lower = np.minimum(source.astype(np.int64), in_size - 1)  # non-negative: truncation is the floor
    upper = lower + (lower < in_size - 1)
    upper_weight = np.clip(source - lower.astype(np.float32), 0, 1).astype(np.float32)
    return lower, upper, (np.float32(1) - upper_weight).astype(np.float32), upper_weight


def resize_bilinear_half_pixel(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Frames ``(..., H, W, C)`` of any real dtype -> float32 ``(..., height, width, C)``, bilinear with
    half-pixel centres and no antialiasing (PyTorch's ``F.interpolate(bilinear, align_corners=False)``)."""
    in_h, in_w = frames.shape[-3:-1]
    y0, y1, wy0, wy1 = _half_pixel_taps(in_h, height)
    x0, x1, wx0, wx1 = _half_pixel_taps(in_w, width)
    source = np.asarray(frames, dtype=np.float32)
    top, bottom = source[..., y0, :, :], source[..., y1, :, :]
    wx0, wx1 = wx0[:, None], wx1[:, None]
    top = top[..., x0, :] * wx0 + top[..., x1, :] * wx1
    bottom = bottom[..., x0, :] * wx0 + bottom[..., x1, :] * wx1
    return top * wy0[:, None, None] + bottom * wy1[:, None, None]


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side ``size`` and the long side ``ceil(long * size / short)``."""
    scale = size / min(height, width)
    if height < width:
        return size, math.ceil(width * scale)
    return math.ceil(height * scale), size


def resize_short_side_centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames ``(..., H, W, C)`` -> float32 ``(..., size, size, C)``: short side to ``size`` with
    :func:`resize_bilinear_half_pixel`, then the central square."""
    height, width = short_side_size(*frames.shape[-3:-1], size)
    resized = resize_bilinear_half_pixel(frames, height, width)
    top, left = (height - size) // 2, (width - size) // 2
    return resized[..., top:top + size, left:left + size, :]
