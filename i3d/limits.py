"""Which clip sizes the I3D network takes (kept free of TensorFlow so checks are cheap)."""

from __future__ import annotations

import math

MIN_FRAMES = 9
"""Fewest frames the logits head takes: its 2-frame pool needs ceil(T/8) >= 2."""

HEAD_GRID = 7
"""The logits head pools 7x7: the Mixed_5c grid, ceil(size/32), must be exactly 7."""

CLIP_SIZE = 224
"""The standard spatial size of a clip (DeepMind's centre crop)."""


def check_clip_shape(frames: int, height: int, width: int, final_endpoint: str = "Logits") -> None:
    """Raise ValueError when a clip of this size cannot go through to ``final_endpoint``."""
    if min(frames, height, width) < 1:
        raise ValueError(f"clip of {frames}x{height}x{width} (frames x height x width) is empty")
    if final_endpoint not in ("Logits", "Predictions", "Features"):
        return
    if frames < MIN_FRAMES:
        raise ValueError(f"clip has {frames} frames; I3D needs at least {MIN_FRAMES}")
    lo, hi = 32 * (HEAD_GRID - 1) + 1, 32 * HEAD_GRID
    for axis, size in (("height", height), ("width", width)):
        if final_endpoint == "Features":
            if size < lo:
                raise ValueError(f"clip {axis} is {size}; I3D features need at least {lo} ({CLIP_SIZE} is standard)")
        elif math.ceil(size / 32) != HEAD_GRID:
            raise ValueError(f"clip {axis} is {size}; the I3D logits head takes {lo} to {hi} ({CLIP_SIZE} is standard)")
