"""A contact sheet of what the network sees: RGB crops and flow fields, as one image.

Wrong preprocessing silently gives wrong labels; a glance at the model's own
input (colours, crop, motion) catches most of it. Flow is drawn with hue for
direction and brightness for speed, scaled to the sheet's 99th percentile.
"""

from __future__ import annotations

import os

import numpy as np

from i3d.quiet import quiet_opencv


def _rgb_tiles(clip: np.ndarray, picks: np.ndarray) -> list[np.ndarray]:
    return [np.clip((clip[0, i] + 1.0) * 127.5, 0, 255).astype(np.uint8) for i in picks]


def _flow_tiles(clip: np.ndarray, picks: np.ndarray) -> list[np.ndarray]:
    import cv2

    fields = clip[0, np.minimum(picks, clip.shape[1] - 1)]
    magnitude = np.hypot(fields[..., 0], fields[..., 1])
    scale = max(float(np.percentile(magnitude, 99)), 1e-6)
    tiles = []
    for field, speed in zip(fields, magnitude):
        hsv = np.empty(field.shape[:2] + (3,), np.uint8)
        angle = np.degrees(np.arctan2(field[..., 1], field[..., 0])) % 360
        hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0-179
        hsv[..., 1] = 255
        hsv[..., 2] = np.clip(speed / scale * 255, 0, 255).astype(np.uint8)
        tiles.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    return tiles


def contact_sheet(clips: dict[str, np.ndarray], columns: int = 6, tile: int = 112) -> np.ndarray:
    """uint8 RGB image: one row of evenly spaced frames per stream (rgb first, then flow)."""
    quiet_opencv()
    import cv2

    frames = min(clip.shape[1] for clip in clips.values())
    picks = np.linspace(0, frames - 1, num=min(columns, frames)).round().astype(int)
    rows = []
    for stream, draw in (("rgb", _rgb_tiles), ("flow", _flow_tiles)):
        if stream in clips:
            tiles = [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in draw(clips[stream], picks)]
            rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def save_preview(path: str | os.PathLike, clips: dict[str, np.ndarray], columns: int = 6) -> None:
    """Write the contact sheet as PNG (or any format OpenCV writes, by extension)."""
    import cv2

    sheet = contact_sheet(clips, columns)
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the preview image")
