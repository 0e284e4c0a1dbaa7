"""Dense windows: the network runs once over long chunks, and every window inside is read off its steps.

I3D's logits are a mean over time: the 1x1x1 logits convolution scores each step
of the 2x7x7-pooled Mixed_5c, one step per 8 frames (step ``k`` of a clip sees
frames ``8k`` to ``8k + 16`` most), and the clip's logits are the mean of its
steps. A window of ``W`` frames starting at frame ``8s`` of a longer clip is
steps ``s`` to ``s + W/8 - 2`` of that clip, so one pass over a 256-frame chunk
answers every 64-frame window in it, 8 frames apart, for about what two
64-frame windows cost. The features are read off the same way (the mean of the
window's pooled steps).

A dense window is not the same computation as the window run alone: alone, the
network sees zero padding beyond the window's edges; dense, it sees the video's
frames there. Each window is therefore read from a chunk that has at least
:data:`MARGIN` frames beyond both its edges (the video's own start and end
excepted), and chunks overlap so that every window has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from i3d.errors import OptionError

STEP = 8
"""Frames per step of Mixed_5c: the network's time resolution, and the finest dense stride."""
CHUNK = 256
"""Frames the network runs over at a time (at least the window and both margins)."""
MARGIN = 32
"""Frames a dense window keeps from its chunk's edges, so the padding there barely reaches it."""

T = TypeVar("T")


@dataclass(frozen=True)
class DenseSpans:
    """The dense windows one chunk answers for: their first frames counted from the chunk's, each
    ``window`` frames long (the video's last one runs to the chunk's end)."""

    window: int
    starts: tuple[int, ...]
    to_end: bool  # the last start's window runs to the end of the chunk (the video's last window)

    def frames(self, index: int, chunk_frames: int) -> int:
        """How many frames the ``index``-th window of a ``chunk_frames``-frame chunk spans."""
        start = self.starts[index]
        if self.to_end and index == len(self.starts) - 1:
            return chunk_frames - start
        return min(self.window, chunk_frames - start)


def check_dense(window: int | None, stride: int | None) -> None:
    """Refuse a dense window or stride that is not whole steps (OptionError)."""
    if window is None:
        raise OptionError("window", "dense windows need a window length; give --window (64, say)")
    if window % STEP or window < 2 * STEP:
        raise OptionError("window", f"is {window} frames; dense windows are whole steps of {STEP} frames: "
                                    f"give a multiple of {STEP}, at least {2 * STEP}")
    if stride is not None and (stride % STEP or stride > window):
        raise OptionError("stride", f"is {stride} frames; dense windows start on steps of {STEP} frames and "
                                    f"overlap: give a multiple of {STEP} up to the window ({window})")


def chunk_and_hop(window: int, stride: int) -> tuple[int, int]:
    """Frames per chunk and between chunk starts, for dense windows of ``window`` every ``stride`` frames.

    A chunk is at least twice a window with its margins, so that about half of it is new each time;
    the hop is the most that still leaves the next chunk's first window :data:`MARGIN` frames from its
    start (chunks start on the stride's grid).
    """
    chunk = max(CHUNK, 2 * (window + 2 * MARGIN))
    last_owned = (chunk - window - MARGIN) // stride * stride  # the last window a chunk answers, from its start
    return chunk, max((last_owned + stride - MARGIN) // stride * stride, stride)


def with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is the last (one item held back to know)."""
    iterator = iter(items)
    try:
        held = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield held, False
        held = item
    yield held, True


class DenseTiling:
    """Shares a video's dense windows out among its chunks, in order, each window to exactly one chunk."""

    def __init__(self, window: int, stride: int) -> None:
        self.window, self.stride = window, stride
        self.claimed = 0  # the first frame from which windows are still unanswered

    def spans(self, first: int, count: int, last: bool) -> DenseSpans:
        """The windows the chunk of frames ``[first, first + count)`` answers for.

        From the first unanswered frame on (on the chunk's steps, then every ``stride`` frames), leaving
        :data:`MARGIN` frames to the chunk's end unless it is the video's last chunk, whose last window
        runs to its end; a chunk shorter than a window answers one window of all its frames.
        """
        last_start = max(count - self.window, 0)
        limit = last_start if last else last_start - MARGIN
        first_start = max(-(-(self.claimed - first) // STEP) * STEP, 0)  # the first step not yet answered
        starts = tuple(range(first_start, limit + 1, self.stride))
        if last and not starts:  # everything from here was answered: one more window to the video's end
            starts = (last_start // STEP * STEP,)
        if starts:
            self.claimed = first + starts[-1] + self.stride
        return DenseSpans(self.window, starts, to_end=last)


def window_means(steps: np.ndarray, spans: DenseSpans, chunk_frames: int) -> np.ndarray:
    """A chunk's (V, S, K) per-step values (V views, S steps) -> (W, V, K): each of its W dense windows'
    mean over the steps it spans (at least one; steps past the chunk's last are not there to take)."""
    rows = []
    for n, start in enumerate(spans.starts):
        first = start // STEP
        count = max(1, -(-spans.frames(n, chunk_frames) // STEP) - 1)  # a W-frame window has W/8 - 1 steps
        stop = max(min(first + count, steps.shape[1]), 1)
        rows.append(steps[:, min(first, stop - 1):stop].mean(axis=1))
    return np.stack(rows)
