"""Any input the library takes, as a stream of windows: a video, a frames folder or arrays."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import numpy as np

from i3d.errors import OptionError
from i3d.inputs.arrays import load_clip, validate_clip
from i3d.preprocess.windows import VideoOptions, Window, iter_windows
from i3d.streams import Stream

Source = str | os.PathLike | np.ndarray | Mapping[str, "np.ndarray | str | os.PathLike"]
"""A video file, a folder of numbered frames, one stream's clip, or clips (arrays or .npy files) by stream name."""


def is_video(source: Source) -> bool:
    """Whether ``source`` is read from disk as a video or a frames folder (rather than given as arrays)."""
    return isinstance(source, (str, os.PathLike))


def open_source(source: Source, streams: tuple[Stream, ...], video: VideoOptions) -> Iterator[Window]:
    """The source's windows: a video's as :func:`~i3d.preprocess.windows.iter_windows` cuts them;
    arrays as one window of their own, each clip validated for its stream."""
    if is_video(source):
        return iter_windows(source, streams, video)
    if isinstance(source, np.ndarray):
        if len(streams) != 1:
            raise OptionError("streams", f"are {'+'.join(s.name for s in streams)} but one array was given; "
                                         "give clips by stream name")
        source = {streams[0].name: source}
    missing = [s.name for s in streams if s.name not in source]
    extra = sorted(set(source) - {s.name for s in streams})
    if missing or extra:
        raise OptionError("streams", f"need clips for {', '.join(s.name for s in streams)}; "
                                     f"got {', '.join(sorted(source)) or 'none'}")
    clips = {s.name: _clip(source[s.name], s) for s in streams}
    frames = min(clip.shape[1] for clip in clips.values())
    return iter([Window(0, 0, frames, 0.0, frames / video.fps, clips)])


def _clip(given: np.ndarray | str | os.PathLike, stream: Stream) -> np.ndarray:
    """A stream's clip from an array or a .npy file, validated."""
    if isinstance(given, (str, os.PathLike)):
        return load_clip(given, stream)
    return validate_clip(np.asarray(given), stream, f"{stream.name} clip")
