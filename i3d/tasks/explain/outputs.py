"""An :class:`~i3d.tasks.explain.run.Explanation` written to a folder: the video, the sheet, the maps, the JSON.

- ``explain.mp4``: H.264 at 25 fps, window after window, the frames the network saw with the heat over
  them, one tile per stream and class side by side, each with its class and probability drawn.
- ``sheet.png``: a contact sheet, one row per window, stream and class, 8 frames across its time.
- ``maps.npz``: per window, stream and class (keys ``window<i>.<stream>.<class index>.``): ``layer``,
  the map at the layer's resolution divided by ``scale`` (its largest absolute value, float32), and
  ``crop``, the heat upsampled to the frames and the 224 x 224 crop; float16, ``allow_pickle=False``.
- ``explain.json``: :meth:`Explanation.as_json`.
Each file appears whole or not at all.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from i3d.files import atomic_path
from i3d.report.annotate import draw_panel, rows_panel
from i3d.report.heat import blend, contact_sheet
from i3d.report.video_writer import open_video
from i3d.tasks.explain.run import Explanation

OUTPUTS = ("explain.mp4", "sheet.png", "maps.npz", "explain.json")
FPS = 25.0


def map_key(window: int, stream: str, index: int) -> str:
    """The maps.npz key prefix of a window's map for a stream and class."""
    return f"window{window}.{stream}.{index}"


def write_maps(explanation: Explanation, path: Path) -> None:
    arrays = {}
    for window in explanation.windows:
        for item in window.maps:
            key = map_key(window.span.index, item.stream, item.index)
            scale = float(np.abs(item.layer_map).max()) or 1.0
            arrays[f"{key}.layer"] = (item.layer_map / scale).astype(np.float16)
            arrays[f"{key}.scale"] = np.float32(scale)
            arrays[f"{key}.crop"] = np.asarray(item.crop_map, np.float16)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path, suffix=".npz") as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_video(explanation: Explanation, path: Path) -> int:
    """explain.mp4; returns the frames written."""
    with open_video(path, FPS) as writer:
        for window in explanation.windows:
            span = window.span
            panels = [rows_panel(f"{span.start:.1f}–{span.end:.1f} s · {item.stream}",
                                 [(item.label, item.probability)], 224, 224) for item in window.maps]
            length = max(len(frames) for frames in window.frames.values())
            for n in range(length):
                tiles = []
                for item, panel in zip(window.maps, panels):
                    frames = window.frames[item.stream]
                    k = min(n, len(frames) - 1)  # flow has one field fewer than frames
                    tiles.append(draw_panel(blend(frames[k], item.crop_map[k].astype(np.float32)), panel))
                writer.write(np.concatenate(tiles, axis=1))
        return writer.frames


def write_sheet(explanation: Explanation, path: Path) -> tuple[int, int]:
    rows = []
    for window in explanation.windows:
        span = window.span
        for item in window.maps:
            title = (f"window {span.index}  {span.start:.1f}–{span.end:.1f} s  {item.stream}  "
                     f"{item.label} {item.probability:.0%}")
            rows.append((title, window.frames[item.stream], item.crop_map))
    return contact_sheet(rows, path)


def write_explanation(explanation: Explanation, folder: str | os.PathLike) -> dict[str, Path]:
    """Write the four files into ``folder`` (made if missing); returns their paths by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in OUTPUTS}
    write_maps(explanation, paths["maps.npz"])
    write_sheet(explanation, paths["sheet.png"])
    write_video(explanation, paths["explain.mp4"])
    with atomic_path(paths["explain.json"]) as tmp:
        tmp.write_text(json.dumps(explanation.as_json(), indent=1) + "\n")
    return paths
