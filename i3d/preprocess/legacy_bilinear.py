"""TensorFlow 1's legacy bilinear resize, in numpy, value for value.

The reference FVD implementation resizes every frame with TF1's
``tf.image.resize_bilinear`` (``align_corners=False``, ``half_pixel_centers=False``):
output pixel ``i`` samples the source at ``i * in/out`` (no half-pixel shift, no
antialiasing, so a downscale skips pixels), the upper neighbour is clamped to the
last row or column, and every step is float32 arithmetic. This module repeats
those float32 steps in the kernel's order, so the result equals TensorFlow's bit
for bit (tested against it) without importing TensorFlow.
"""

from __future__ import annotations

import numpy as np


def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, float32 weight of the upper) for each output position along one axis."""
    scale = np.float32(in_size) / np.float32(out_size)
    position = np.arange(out_size, dtype=np.float32) * scale
    floor = np.floor(position)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(position).astype(np.int64), in_size - 1)
    return lower, upper, (position - floor).astype(np.float32)


def resize_bilinear_legacy(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Frames ``(..., H, W, C)`` of any real dtype -> float32 ``(..., height, width, C)``, as TF1 resizes them."""
    in_h, in_w = frames.shape[-3:-1]
    y0, y1, dy = _taps(in_h, height)
    x0, x1, dx = _taps(in_w, width)
    source = np.asarray(frames, dtype=np.float32)
    rows_top, rows_bottom = source[..., y0, :, :], source[..., y1, :, :]
    top_left, top_right = rows_top[..., x0, :], rows_top[..., x1, :]
    bottom_left, bottom_right = rows_bottom[..., x0, :], rows_bottom[..., x1, :]
    dx = dx[:, None]
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy[:, None, None]
