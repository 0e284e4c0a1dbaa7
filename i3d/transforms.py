"""Every resize, crop and scaling of both streams, following DeepMind's Kinetics preprocessing.

Frames are resized bilinearly so the short side is 256 (aspect kept), then each
stream takes a 224x224 view of them: the centre crop (DeepMind's evaluation)
or, with ``crop="full"``, the whole frame squashed to 224x224 (MediaPipe's
choice). RGB becomes ``x / 255 * 2 - 1``; flow fields are already in [-1, 1]
and, when squashed, have their displacements rescaled with the pixels.

Functions take one frame ``(H, W, C)`` or a stack ``(T, H, W, C)`` alike.

Memory is bounded for extreme aspect ratios: :func:`prepare_frame` (what the
video pipeline applies to each decoded frame) resizes a frame whose long side is
at most ``MAX_ASPECT`` (4) times its short side exactly as
:func:`resize_short_side` does, so ordinary videos are unaffected; a wider or
taller frame would otherwise become enormous (2000x4 px -> 128000x256), so with
the centre crop its source is first trimmed to the central band whose long side
is 4x its short side (the 224x224 centre still sees the middle of the frame),
and with ``crop="full"`` it is resized straight to 256 x 1024. Either way no
prepared frame exceeds 256 x 1024 (x 3 channels).
"""

from __future__ import annotations

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.quiet import quiet_opencv

SHORT_SIDE = 256
CROP_SIZE = 224
CROPS = ("center", "full", "ten")
VIEWS = {"center": 1, "full": 1, "ten": 10}
"""Clips each crop makes of one window: ``ten`` is the four corners, the centre and their mirror images."""

MAX_ASPECT = 4
"""The widest long/short side ratio a prepared frame keeps: at most 256 x 1024 px (see :func:`prepare_frame`)."""


def _cv2():
    """OpenCV, loaded on the first resize (and quietly): clip arrays never need it."""
    quiet_opencv()
    import cv2

    return cv2


def check_crop(crop: str) -> str:
    if crop not in CROPS:
        raise OptionError("crop", f"is {crop!r}; use 'center', 'full' or 'ten'")
    return crop


def resize_short_side(frame: np.ndarray, short: int = SHORT_SIDE) -> np.ndarray:
    """Bilinearly resize an (H, W, C) image so min(H, W) == short, long side rounded."""
    h, w = frame.shape[:2]
    if min(h, w) == short:
        return frame
    scale = short / min(h, w)
    new_h = short if h <= w else int(round(h * scale))
    new_w = short if w < h else int(round(w * scale))
    cv2 = _cv2()
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def prepare_frame(frame: np.ndarray, crop: str = "center") -> np.ndarray:
    """An (H, W, C) frame at short side 256, its long side at most ``MAX_ASPECT`` x 256.

    A frame whose long side is at most ``MAX_ASPECT`` times its short side gives
    exactly :func:`resize_short_side`. A longer one, with ``crop="center"``, is
    first trimmed to its central band ``MAX_ASPECT`` x its short side long (so
    the centre crop still sees the middle of the frame: the very same pixels
    when the trimmed margin is even, else half a source pixel aside); with ``crop="full"``
    it is resized straight to 256 x (256 * MAX_ASPECT), to be squashed later.
    """
    crop = check_crop(crop)
    h, w = frame.shape[:2]
    short, long = min(h, w), max(h, w)
    if long <= MAX_ASPECT * short:
        return resize_short_side(frame)
    if crop != "full":  # centre and ten crops: keep the middle of the frame
        band = MAX_ASPECT * short
        offset = (long - band) // 2
        trimmed = frame[:, offset:offset + band] if w > h else frame[offset:offset + band]
        # a copy when no resize happens (short side already 256): never a view pinning the whole source frame
        return np.ascontiguousarray(resize_short_side(trimmed))
    size = (SHORT_SIDE * MAX_ASPECT, SHORT_SIDE) if w > h else (SHORT_SIDE, SHORT_SIDE * MAX_ASPECT)  # (w, h)
    cv2 = _cv2()
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def center_crop(arr: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Central size x size window of an (..., H, W, C) array (offsets floor((H-size)/2) etc.)."""
    if not isinstance(arr, np.ndarray) or arr.ndim not in (3, 4):
        raise InputError(f"center_crop: expected an (H, W, C) or (T, H, W, C) array, got shape "
                         f"{getattr(arr, 'shape', None)}")
    h, w = arr.shape[-3:-1]
    if h < size or w < size:
        raise InputError(f"center_crop: frames are {w}x{h}, smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return arr[..., top:top + size, left:left + size, :]


def ten_crops(arr: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(H, W, C) -> (10, size, size, C): the four corners and the centre, then the same five mirrored left-right."""
    h, w = arr.shape[:2]
    if h < size or w < size:
        raise InputError(f"ten_crops: frames are {w}x{h}, smaller than the {size}x{size} crop")
    corners = ((0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2))
    five = np.stack([arr[top:top + size, left:left + size] for top, left in corners])
    return np.concatenate([five, five[:, :, ::-1]])


def resize_to_crop(arr: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Bilinearly resize every (H, W, C) frame of an (H, W, C) or (T, H, W, C) array to size x size."""
    cv2 = _cv2()
    if arr.ndim == 3:
        return cv2.resize(arr, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in arr])


def crop_frame(frame: np.ndarray, crop: str = "center") -> np.ndarray:
    """uint8 RGB at short side 256 -> uint8 224x224: the centre crop or the whole frame squashed;
    ``ten`` gives (10, 224, 224, 3), see :func:`ten_crops`."""
    if check_crop(crop) == "center":
        return np.ascontiguousarray(center_crop(frame))
    if crop == "ten":
        return ten_crops(frame)
    return resize_to_crop(frame)


def crop_flow(flow: np.ndarray, crop: str = "center") -> np.ndarray:
    """float32 flow (x, y) at short side 256 -> 224x224, the same view as :func:`crop_frame`.

    ``ten`` gives the ten views of :func:`ten_crops`, x negated in the mirrored five.
    ``full`` scales x and y displacements by the horizontal and vertical resize
    factors, so they stay in units of the new pixels (as if flow had been
    computed on the squashed frames), then clips to [-1, 1] again.
    """
    flow = flow.astype(np.float32, copy=False)
    if check_crop(crop) == "center":
        return np.ascontiguousarray(center_crop(flow))
    if crop == "ten":  # a mirrored view moves the other way: its x displacement changes sign
        views = ten_crops(flow)
        views[5:, ..., 0] *= -1
        return views
    h, w = flow.shape[-3:-1]
    scale = np.array([CROP_SIZE / w, CROP_SIZE / h], np.float32)
    return np.clip(resize_to_crop(flow) * scale, -1.0, 1.0).astype(np.float32)


_UNIT_RANGE = (np.arange(256, dtype=np.float32) / np.float32(255.0) * np.float32(2.0) - np.float32(1.0)
               ).astype(np.float32)
"""``x / 255 * 2 - 1`` in float32 for every uint8 value: the scaling as a table, so it is one lookup."""


def rgb_to_unit_range(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB -> float32 in [-1, 1] as ``x / 255 * 2 - 1`` (DeepMind's scaling).

    A 256-entry table computed with exactly those float32 operations, applied
    by OpenCV's LUT: the same values as the arithmetic, about ten times faster.
    ``out`` (float32, C-contiguous, ``frames``' shape) receives the values when
    given, so a caller finishing clip after clip need not fault in new pages.
    """
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.size == 0:
        return (frames.astype(np.float32) / 255.0 * 2.0 - 1.0).astype(np.float32)
    width = frames.shape[-1] * (frames.shape[-2] if frames.ndim > 1 else 1)
    rows = frames.reshape(-1, width)
    if out is None:
        return _cv2().LUT(rows, _UNIT_RANGE).reshape(frames.shape)
    if out.shape != frames.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 of shape {frames.shape}, not {out.dtype} {out.shape}")
    _cv2().LUT(rows, _UNIT_RANGE, dst=out.reshape(rows.shape))
    return out


def as_float32(fields: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Flow fields, already in [-1, 1], as contiguous float32 (``out`` is not needed: no new values)."""
    return np.ascontiguousarray(fields, dtype=np.float32)


def _check_stack(arr: np.ndarray, channels: int, what: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[-1] != channels:
        shape = getattr(arr, "shape", None)
        raise InputError(f"{what}: expected a (T, H, W, {channels}) array, got shape {shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{what}: no frames")


def rgb_clip(frames: np.ndarray, crop: str = "center") -> np.ndarray:
    """uint8 (T, H, W, 3) RGB at short side 256 -> float32 (T, 224, 224, 3) in [-1, 1]."""
    _check_stack(frames, 3, "rgb_clip")
    if frames.dtype != np.uint8:
        raise InputError(f"rgb_clip: expected uint8 frames, got {frames.dtype}")
    view = center_crop(frames) if check_crop(crop) == "center" else resize_to_crop(frames)
    return rgb_to_unit_range(view)


def flow_clip(flow: np.ndarray, crop: str = "center") -> np.ndarray:
    """float32 flow (T-1, H, W, 2) at short side 256 -> (T-1, 224, 224, 2), the crops of :func:`rgb_clip`."""
    _check_stack(flow, 2, "flow_clip")
    return crop_flow(flow, crop)
