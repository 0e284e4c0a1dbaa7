"""Heat drawn over frames: a colour map, the blend, and a contact sheet of frames across time.

Heat is a value in [0, 1] per pixel. It is coloured with matplotlib's ``inferno`` (dark purple
for little, yellow for most) and laid over the frame with an opacity that grows with the heat
(``ALPHA`` at the hottest pixel), so a cold region shows the frame as it is.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from i3d.files import atomic_path

ALPHA = 0.6
"""Opacity of the colour at heat 1 (0 at heat 0)."""
SHEET_COLUMNS = 8
SHEET_CELL = 112
"""A contact sheet shows 8 frames per row, each 112 x 112 pixels (half the crop)."""


@functools.lru_cache(maxsize=1)
def colour_table() -> np.ndarray:
    """The colour map as a (256, 3) uint8 table, heat 0 to 1."""
    from matplotlib import colormaps  # the Agg-free colour tables only; loaded when heat is first drawn

    return np.rint(colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def colour(heat: np.ndarray) -> np.ndarray:
    """(H, W) heat in [0, 1] -> (H, W, 3) uint8 colours."""
    levels = np.clip(np.rint(np.asarray(heat, np.float32) * 255), 0, 255).astype(np.uint8)
    return colour_table()[levels]


def blend(frame: np.ndarray, heat: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """An RGB uint8 ``frame`` (H, W, 3) with (H, W) ``heat`` in [0, 1] laid over it: uint8 (H, W, 3)."""
    heat = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
    opacity = (alpha * heat)[..., None]
    mixed = frame.astype(np.float32) * (1.0 - opacity) + colour(heat).astype(np.float32) * opacity
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def sheet_columns(frames: int, columns: int = SHEET_COLUMNS) -> list[int]:
    """Which of ``frames`` frames a sheet row shows: ``columns`` of them evenly spread, first and last included."""
    return sorted(set(np.linspace(0, frames - 1, min(columns, frames)).round().astype(int).tolist()))


def contact_sheet(rows: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | os.PathLike,
                  columns: int = SHEET_COLUMNS, cell: int = SHEET_CELL) -> tuple[int, int]:
    """Write a PNG with one row per (title, frames (T, H, W, 3) uint8, heat (T, H, W) in [0, 1]): the title,
    then ``columns`` frames across the row's time with their heat; returns the image's (width, height)."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), 13)
    title_h, gap = 20, 4
    width = columns * (cell + gap) + gap
    height = len(rows) * (title_h + cell + gap) + gap
    sheet = Image.new("RGB", (width, height), (16, 20, 28))
    draw = ImageDraw.Draw(sheet)
    for r, (title, frames, heat) in enumerate(rows):
        top = gap + r * (title_h + cell + gap)
        draw.text((gap, top + 3), title, font=font, fill=(255, 255, 255))
        for c, n in enumerate(sheet_columns(len(frames), columns)):
            image = Image.fromarray(blend(frames[n], heat[n])).resize((cell, cell), Image.BILINEAR)
            sheet.paste(image, (gap + c * (cell + gap), top + title_h))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return width, height
