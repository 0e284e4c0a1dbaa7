"""One long video made of clips joined end to end, with where each clip lies in it.

What a long video with known boundaries needs for trying ``i3d segments`` (and
what its tests and benchmark use): each clip is read at 25 fps as any video is,
scaled to one frame size (stretched, so no part of a clip is cut), and written
after the one before it; the answer is each clip's [start, end) in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FPS = 25.0


def join_videos(clips: Sequence[str | os.PathLike], out: str | os.PathLike, size: tuple[int, int] = (320, 240),
                fps: float = FPS) -> list[tuple[float, float]]:
    """Write ``clips`` one after another into ``out`` (.mp4, .webm or .gif) at ``size`` (width, height)."""
    import cv2

    from i3d.inputs.video import iter_video
    from i3d.report.video_writer import open_video

    def scaled(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    spans, written = [], 0
    with open_video(Path(out), fps) as writer:
        for clip in clips:
            first = written
            for frame, _, _ in iter_video(clip, fps=fps, prepare=scaled):
                writer.write(frame)
                written += 1
            spans.append((first / fps, written / fps))
    return spans
