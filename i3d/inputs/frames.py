"""One decoded frame: OpenCV's colour orders to RGB, and the checks every frame passes before use."""

from __future__ import annotations

import numpy as np

from i3d.errors import InputError
from i3d.quiet import quiet_opencv

quiet_opencv()  # before OpenCV loads: its own log lines stay off stderr
import cv2  # noqa: E402


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV BGR / BGRA / gray image -> RGB (3 channels)."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def video_frame_name(name: str, index: int) -> str:
    """How messages name a video's frame: ``clip.mp4: frame 3 (counting from 1)`` for index 2."""
    return f"{name}: frame {index + 1} (counting from 1)"


def check_frame(frame: np.ndarray | None, what: str) -> np.ndarray:
    """Refuse an empty, tiny or non-8-bit frame; ``what`` names it (a video's frame, an image file)."""
    if frame is None or frame.size == 0 or frame.ndim not in (2, 3):
        raise InputError(f"{what} is empty")
    h, w = frame.shape[:2]
    if h < 2 or w < 2:
        raise InputError(f"{what} is {w}x{h} px; frames must be at least 2x2")
    if frame.dtype != np.uint8:
        raise InputError(f"{what} has pixel type {frame.dtype}, expected 8-bit")
    return frame
