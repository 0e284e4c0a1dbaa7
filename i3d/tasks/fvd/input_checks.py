"""Input mistakes that give wrong FVD numbers, caught before any embedding.

- Float videos carry no scale of their own: [0, 1], [-1, 1] and [0, 255] all occur, and
  the wrong one gives a distance off by orders of magnitude. They are taken only with
  their range stated, and refused (naming the range their values look like) without it
  or when the values leave it; then they become what the protocol reads, by its own
  float-to-uint8 rule.
- A uint8 array whose values never pass 1 is a [0, 1] video cast without scaling.
- Sides whose frame sizes or frame rates differ, and sides with fewer videos than the
  protocol's count, warn.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.inputs.video_sets import VideoSet

VALUE_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
"""The ranges float videos may be declared in (``--range``), as (low, high)."""
TOLERANCE = 1e-3
"""Values may leave the declared range by this share of its span (float rounding of a generator's output)."""


def check_value_range(value_range: str | None) -> None:
    if value_range is not None and value_range not in VALUE_RANGES:
        raise OptionError("value_range", f"must be one of {', '.join(VALUE_RANGES)}, not {value_range!r}")


def apparent_range(low: float, high: float) -> str:
    """The narrowest declared range holding values from ``low`` to ``high``, in words."""
    for name, (lo, hi) in VALUE_RANGES.items():  # 0,1 before -1,1 before 0,255
        slack = TOLERANCE * (hi - lo)
        if lo - slack <= low and high <= hi + slack:
            return name
    return "none of 0,1, -1,1 or 0,255"


def _extent(videos: np.ndarray) -> tuple[float, float]:
    return float(np.min(videos)), float(np.max(videos))


def float_videos(videos: np.ndarray, value_range: str | None, to_uint8: str, name: str) -> np.ndarray:
    """Float videos as the frames a protocol reads: uint8 by ``round`` (``floor(v + 0.5)``) or ``truncate``
    (``floor(v)``) of their values scaled to 0-255, or float32 values 0-255 (``none``); InputError without a
    declared range, with values outside it, or with NaN/inf."""
    low, high = _extent(videos)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"{name}: float videos holding NaN or infinite values")
    looks = apparent_range(low, high)
    if value_range is None:
        raise InputError(f"{name}: dtype {videos.dtype} videos need their value range stated (--range 0,1, -1,1 "
                         f"or 0,255); their values, {low:.4g} to {high:.4g}, look like {looks}")
    lo, hi = VALUE_RANGES[value_range]
    slack = TOLERANCE * (hi - lo)
    if low < lo - slack or high > hi + slack:
        raise InputError(f"{name}: values {low:.4g} to {high:.4g} leave the stated range {value_range}; they look "
                         f"like {looks}")
    scaled = _to_0_255(np.asarray(videos), value_range)
    if to_uint8 == "none":
        return np.clip(scaled, 0, 255).astype(np.float32, copy=False)
    offset = np.float32(0.5) if to_uint8 == "round" else np.float32(0)
    return np.clip(np.floor(scaled + offset), 0, 255).astype(np.uint8)


def _to_0_255(videos: np.ndarray, value_range: str) -> np.ndarray:
    """Values 0-255 in the array's own float precision, as the implementations scale them (``x * 255``,
    ``x * 127.5 + 127.5``)."""
    kind = videos.dtype if videos.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    x = videos.astype(kind, copy=False)
    if value_range == "0,1":
        return x * kind.type(255)
    if value_range == "-1,1":
        return x * kind.type(127.5) + kind.type(127.5)
    return x


def check_unscaled_uint8(videos: np.ndarray, frames: int, name: str) -> None:
    """Refuse uint8 videos whose values never pass 1 but reach it: [0, 1] videos cast to uint8 without scaling
    (an all-black side, all zeros, stays allowed). Reads video after video, stopping at the first that passes 1."""
    if videos.dtype != np.uint8:
        return
    highest = 0
    for clip in videos:
        highest = max(highest, int(clip[:frames].max()))
        if highest > 1:
            return
    if highest == 1:
        raise InputError(f"{name}: uint8 videos whose values are only 0 and 1: [0, 1] videos cast to uint8 without "
                         "scaling? multiply by 255 before the cast (or give the floats with --range 0,1)")


def frame_size(videos: VideoSet) -> tuple[int, int] | None:
    """(width, height) of the side's first video, or None when it is not known without decoding."""
    if videos.array is not None:
        return int(videos.array.shape[3]), int(videos.array.shape[2])
    path = videos.paths[0]
    if os.path.isdir(path):
        return None
    import cv2  # OpenCV only for video files

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def frame_rate(videos: VideoSet) -> float | None:
    """The frame rate the side's first video file lists, or None (arrays and frame folders list none)."""
    if videos.array is not None or os.path.isdir(videos.paths[0]):
        return None
    import cv2  # OpenCV only for video files

    cap = cv2.VideoCapture(videos.paths[0])
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return round(fps, 3) if fps > 0 else None


RESIZE_WORDS = {"tf1-bilinear-224x224": "squashes every frame to 224x224 (TF1 bilinear)",
                "torch-bilinear-224x224": "squashes every frame to 224x224 (PyTorch bilinear)",
                "torch-bilinear-short-side-224-centre-crop": "scales the short side to 224 and crops the centre"}


def warn_mismatched_sides(real: VideoSet, generated: VideoSet, protocol_name: str, resize: str) -> None:
    """Warn when the sides' first videos differ in frame size or frame rate: the protocol resizes both alike,
    but the network then sees differently scaled content, and a rate changes the motion in 16 frames."""
    sizes = frame_size(real), frame_size(generated)
    if None not in sizes and sizes[0] != sizes[1]:
        (rw, rh), (gw, gh) = sizes
        warnings.warn(f"the real videos are {rw}x{rh} and the generated {gw}x{gh}: protocol {protocol_name} "
                      f"{RESIZE_WORDS[resize]}, so the sides' content reaches the network at different scales; "
                      "resize one side to the other's size first", stacklevel=3)
    rates = frame_rate(real), frame_rate(generated)
    if None not in rates and rates[0] != rates[1]:
        warnings.warn(f"the real videos run at {rates[0]:g} fps and the generated at {rates[1]:g}: protocol "
                      f"{protocol_name} reads frames as stored, never resampled, so the same 16 frames span different "
                      "times; give both sides at one frame rate", stacklevel=3)
