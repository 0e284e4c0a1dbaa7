"""From a video's window logits to where each action starts and ends.

Each window's fused logits become probabilities (a softmax over the classes).
A 25 fps frame's score for a class is the mean probability of the windows that
cover it, so overlapping windows (a stride below the window) give a finer
time resolution. The scores are smoothed by a centred moving average
(``smooth`` seconds), then each class is cut into segments by hysteresis: a
segment is a run of frames whose score stays at or above ``release`` and reaches
``threshold`` somewhere. Segments of one class less than ``merge_gap`` apart
are joined, and those shorter than ``min_duration`` are dropped. A segment's
score is its class's mean smoothed score over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.results import Segment, WindowSpan, fuse_logits


@dataclass(frozen=True)
class SegmentOptions:
    """How frame scores become segments (seconds are the video's own)."""

    threshold: float = 0.3  # a segment needs a frame scoring at least this
    release: float | None = None  # ... and runs while the score stays at least this (default: threshold / 2)
    min_duration: float = 1.0  # shorter segments are dropped
    merge_gap: float = 1.0  # segments of one class closer than this are joined
    smooth: float = 1.0  # width of the moving average over frame scores; 0: none
    classes: tuple[str, ...] | None = None  # only these classes get segments (None: every class)

    def check(self, categories: Sequence[str] | None = None) -> None:
        """Refuse settings that could give no sensible segment (OptionError), and unknown ``classes``."""
        if not 0.0 < self.threshold <= 1.0:
            raise OptionError("threshold", f"is {self.threshold}; give a probability in (0, 1]")
        if self.release is not None and not 0.0 < self.release <= self.threshold:
            raise OptionError("release", f"is {self.release}; give a probability in (0, threshold={self.threshold}]")
        for name in ("min_duration", "merge_gap", "smooth"):
            value = getattr(self, name)
            if not np.isfinite(value) or not 0.0 <= value <= 3600.0:
                raise OptionError(name, f"is {value}; give seconds between 0 and 3600")
        if self.classes is not None:
            if not self.classes:
                raise OptionError("classes", "is empty; name at least one class")
            unknown = [name for name in self.classes if categories is not None and name not in categories]
            if unknown:
                raise OptionError("classes", f"names {', '.join(map(repr, unknown[:5]))}, not among the "
                                             f"{len(categories)} classes answers are over")

    @property
    def low(self) -> float:
        return self.threshold / 2 if self.release is None else self.release


@dataclass(frozen=True)
class FrameScores:
    """Every 25 fps frame's score per class: the mean probability of the windows covering it."""

    times: np.ndarray  # (F,) float64: each frame's start, seconds from the start of the video
    scores: np.ndarray  # (F, C) float32 in [0, 1]
    fps: float

    @property
    def end(self) -> float:
        return float(self.times[-1] + 1.0 / self.fps) if len(self.times) else 0.0


def window_probabilities(logits: np.ndarray) -> np.ndarray:
    """(W, C) logits -> (W, C) probabilities, a softmax per window (float64 inside)."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def frame_scores(spans: Sequence[WindowSpan], logits: np.ndarray, fps: float) -> FrameScores:
    """Per-frame scores from the windows' spans and their (W, C) fused logits.

    Frames are counted from the first window's first frame (whose time is its
    ``start``); a frame no window covers (none, with the tool's windows) scores 0.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(spans) != len(logits) or not len(spans):
        raise InputError(f"window logits of shape {logits.shape} do not match {len(spans)} windows")
    probabilities = window_probabilities(logits)
    origin = min(span.first_frame for span in spans)
    frames = max(span.first_frame + span.frames for span in spans) - origin
    total = np.zeros((frames, logits.shape[1]))
    covered = np.zeros(frames)
    for span, row in zip(spans, probabilities):
        first = span.first_frame - origin
        total[first:first + span.frames] += row
        covered[first:first + span.frames] += 1
    scores = total / np.maximum(covered, 1)[:, None]
    start = next(span.start for span in spans if span.first_frame == origin)
    times = start + np.arange(frames) / fps
    return FrameScores(times=times, scores=scores.astype(np.float32), fps=fps)


def smoothed(scores: FrameScores, seconds: float) -> np.ndarray:
    """(F, C) scores after a centred moving average ``seconds`` wide (edges: the mean of what is there)."""
    width = int(round(seconds * scores.fps))
    values = scores.scores.astype(np.float64)
    if width <= 1:
        return values
    kernel = np.ones(width)
    before, after = (width - 1) // 2, width // 2
    padded = np.pad(values, ((before, after), (0, 0)))
    counts = np.convolve(np.pad(np.ones(len(values)), (before, after)), kernel, mode="valid")
    sums = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(values.shape[1])], axis=1)
    return sums / counts[:, None]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) of each run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def class_segments(score: np.ndarray, options: SegmentOptions, fps: float) -> list[tuple[int, int]]:
    """One class's segments as (first frame, last frame + 1), from its smoothed per-frame ``score``."""
    runs = [(a, b) for a, b in _runs(score >= options.low) if score[a:b].max() >= options.threshold]
    gap = options.merge_gap * fps
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if (b - a) / fps >= options.min_duration - 1e-9]


def find_segments(scores: FrameScores, categories: Sequence[str],
                  options: SegmentOptions = SegmentOptions()) -> list[Segment]:
    """Every class's segments, by start time (then by score, highest first)."""
    options.check(categories)
    if scores.scores.shape[1] != len(categories):
        raise InputError(f"scores over {scores.scores.shape[1]} classes, but {len(categories)} class names")
    values = smoothed(scores, options.smooth)
    wanted = range(len(categories)) if options.classes is None else [categories.index(c) for c in options.classes]
    found = []
    for index in wanted:
        column = values[:, index]
        if column.max(initial=0.0) < options.threshold:
            continue
        for a, b in class_segments(column, options, scores.fps):
            end = float(scores.times[b - 1] + 1.0 / scores.fps)
            found.append(Segment(categories[index], index, float(scores.times[a]), end,
                                 float(column[a:b].mean())))
    return sorted(found, key=lambda s: (s.start, -s.score, s.index))


def fused_window_logits(stream_logits: Sequence[np.ndarray], fusion: str = "mean") -> np.ndarray:
    """Each window's logits fused over the streams, as classify fuses them ((W, C), or (W, V, C) per view:
    the views' mean first)."""
    per_stream = [np.asarray(a, dtype=np.float64) for a in stream_logits]
    per_stream = [a.mean(axis=1) if a.ndim == 3 else a for a in per_stream]
    return fuse_logits(per_stream, fusion)
