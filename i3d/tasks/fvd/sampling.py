"""Which frames of each video a protocol reads: the first ones, or a seeded random window.

A random start is drawn per video, in the side's order, from Python's ``random.Random(seed)``
with ``randint`` (inclusive bounds), the generator the implementations themselves call
(StyleGAN-V's dataset, content-debiased-fvd's loaders), so a seed names one set of clips:
the same seed, videos and lengths give the same frames on every run.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

import numpy as np

from i3d.errors import InputError
from i3d.inputs.video_sets import VideoSet
from i3d.tasks.fvd.protocols import ClipRule


def start_bound(rule: ClipRule, length: int, frames: int) -> int:
    """The largest start ``rule`` may draw for ``frames`` frames of a ``length``-frame video (negative: too short).

    ``window``: ``L - n*s`` (the last window whose span ``n*s`` fits: content-debiased-fvd, VideoGPT's clips);
    ``stylegan-v``: ``L - n*s + s - 1`` (StyleGAN-V's dataset: the last frame read is then at most L - 1).
    """
    span = frames * rule.stride
    return length - span + (rule.stride - 1 if rule.bound == "stylegan-v" else 0)


def clip_indices(rule: ClipRule, length: int, frames: int, rng: random.Random) -> np.ndarray:
    """Frame indices ``start, start + s, ...`` (``frames`` of them) of a ``length``-frame video."""
    bound = start_bound(rule, length, frames)
    if bound < 0:
        raise InputError(f"has {length} frames; {frames} frames every {rule.stride} need {frames * rule.stride}")
    start = rng.randint(0, bound) if rule.start == "random" else 0
    return start + rule.stride * np.arange(frames)


def video_length(videos: VideoSet, index: int) -> int:
    """How many frames video ``index`` holds: an array's T, a frame folder's images, a video file's frame count
    as its container lists it (InputError when it lists none)."""
    if videos.array is not None:
        return int(videos.array.shape[1])
    path = videos.paths[index]
    if os.path.isdir(path):
        from i3d.inputs.frame_folders import image_paths

        return len(image_paths(path))
    import cv2  # OpenCV only for video files

    cap = cv2.VideoCapture(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    if count <= 0:
        raise InputError(f"{path}: its container does not list a frame count, so no random window can be drawn; "
                         "use a protocol that reads the first frames, or give the frames as a folder")
    return count


def side_clips(videos: VideoSet, rule: ClipRule, frames: int, seed: int) -> list[np.ndarray] | None:
    """Each video's frame indices under ``rule`` (None for the first ``frames`` frames: nothing to draw, and
    no length is needed); one draw per video, in order, from ``random.Random(seed)``."""
    if rule.start == "first" and rule.stride == 1:
        return None
    rng = random.Random(seed)
    picked = []
    for index in range(len(videos)):
        try:
            picked.append(clip_indices(rule, video_length(videos, index), frames, rng))
        except InputError as err:
            name = videos.source if videos.array is not None else videos.paths[index]
            raise InputError(f"{name}: video {index + 1} {err}") from None
    return picked


def read_clip(videos: VideoSet, index: int, indices: np.ndarray | None, frames: int) -> np.ndarray:
    """Video ``index``'s frames at ``indices`` (None: its first ``frames``), decoding no further than needed."""
    if indices is None:
        return videos.frames(index, frames)
    if videos.array is not None:
        return np.ascontiguousarray(videos.array[index, indices])
    return videos.frames(index, int(indices[-1]) + 1)[indices]


def first_videos(videos: VideoSet, count: int | None) -> VideoSet:
    """The side's first ``count`` videos (all when None or when it has no more)."""
    if count is None or len(videos) <= count:
        return videos
    if videos.array is not None:
        return replace(videos, array=videos.array[:count])
    return replace(videos, paths=videos.paths[:count])
