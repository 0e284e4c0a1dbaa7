"""The two I3D streams as values: what each one reads, its input transform and its limits.

A :class:`Stream` is the one place that knows that RGB has 3 channels and
flow 2, that DeepMind's checkpoints scope them ``RGB`` and ``Flow``, and that T
video frames give the flow stream T-1 fields. Everything else asks the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from i3d.errors import OptionError
from i3d.limits import MIN_FRAMES
from i3d import transforms


@dataclass(frozen=True)
class Stream:
    """One input stream of the two-stream network."""

    name: str  # "rgb" or "flow"
    channels: int
    scope: str  # top variable scope in DeepMind's checkpoints
    needs_flow: bool  # reads optical-flow fields rather than frames
    frames_lost: int  # video frames that give no input frame (flow: T frames give T-1 fields)
    crop: Callable[[np.ndarray, str], np.ndarray]  # one frame (or field) at short side 256 -> 224x224
    finish: Callable[..., np.ndarray]  # stacked crops (T, 224, 224, C)[, out] -> float32 in [-1, 1]
    range_hint: str  # how values get into [-1, 1], for error messages

    @property
    def min_clip_frames(self) -> int:
        """Fewest frames the network takes from this stream."""
        return MIN_FRAMES

    @property
    def min_video_frames(self) -> int:
        """Fewest 25 fps video frames that make one clip for this stream."""
        return MIN_FRAMES + self.frames_lost

    def clip(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame crops -> the model-ready (1, T, 224, 224, C) float32 clip.

        Frames cropped to several views, (V, 224, 224, C) each, give (V, T, 224, 224, C).
        """
        return self.finish_stack(np.stack(list(crops)))

    def finish_stack(self, stacked: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stacked crops (T, 224, 224, C) or (T, V, 224, 224, C) -> the clip :meth:`clip` gives.

        ``out``, float32 (1, T, 224, 224, C), may receive a one-view clip's values (see ``finish``).
        """
        if stacked.ndim == 5:  # several views: (T, V, ...) -> (V, T, ...), new memory anyway
            return np.ascontiguousarray(self.finish(stacked).transpose(1, 0, 2, 3, 4))
        return self.finish(stacked, None if out is None else out[0])[np.newaxis]


FLOW_ALGORITHMS = ("tvl1", "tvl1-opencv", "dis")
"""How the flow stream's input can be computed (see :mod:`i3d.preprocess.flow`); tvl1 is DeepMind's."""

RGB = Stream("rgb", 3, "RGB", needs_flow=False, frames_lost=0, crop=transforms.crop_frame,
             finish=transforms.rgb_to_unit_range,
             range_hint="RGB should be pixel / 127.5 - 1")
FLOW = Stream("flow", 2, "Flow", needs_flow=True, frames_lost=1, crop=transforms.crop_flow,
              finish=transforms.as_float32,
              range_hint="flow should be clipped to [-20, 20] and divided by 20")

STREAMS: dict[str, Stream] = {stream.name: stream for stream in (RGB, FLOW)}


def stream_named(name: str | Stream) -> Stream:
    """The stream called ``name`` ('rgb' or 'flow'); a Stream passes through."""
    if isinstance(name, Stream):
        return name
    try:
        return STREAMS[name]
    except KeyError:
        raise OptionError("streams", f"has unknown stream {name!r}; choose from {', '.join(STREAMS)}") from None


def streams_named(names: str | Stream | Iterable[str | Stream]) -> tuple[Stream, ...]:
    """A tuple of distinct streams, rgb before flow, from names or Stream values."""
    if isinstance(names, (str, Stream)):
        names = (names,)
    chosen = {stream_named(n).name for n in names}
    if not chosen:
        raise OptionError("streams", "is empty; name rgb, flow or both")
    return tuple(STREAMS[n] for n in STREAMS if n in chosen)
