"""The answer drawn on the video: each moment shows the top classes of the window that covers it.

The video is written at its own size and its own frame rate, one output frame
per source frame, over the part that was classified (the first window's start
to the last window's end, so ``--start``/``--end`` apply). A frame at time t
(seconds since the video's first frame, the clock the windows use) shows the
window whose span [start, end) holds t; where windows overlap
(``stride < window``), the one whose centre is nearest t, the earlier on a
tie; a frame no window covers (a gap left by ``stride > window``) is written
unchanged.

The label panel sits in the top-left corner: the window's span, then the
window's top classes (up to 3), each with its probability and a bar. Its text
is max(11, 4.5% of the frame's short side) pixels high (11 px on a
240p frame, 49 px on 1080p), so it reads the same on small and large frames;
labels too long for the frame end in an ellipsis. The panel is a translucent
dark box; every pixel outside it is the source frame's own.

With ``heat`` (a callable: seconds, class index, width, height -> (height, width) heat in [0, 1] or
None), the heat of the class drawn first (the window's top class, the best segment under way) is
blended over the frame first (:func:`i3d.report.heat.blend`), and the panel drawn over it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.results import Result, Segment, WindowResult, softmax
from i3d.report.heat import blend
from i3d.report.video_writer import check_video_path, open_video

ROWS = 3
"""Classes drawn per window."""

FONT_SHARE = 0.045
MIN_FONT_PX = 11
BACKGROUND = (16, 20, 28)
BACKGROUND_ALPHA = 175  # of 255
TEXT = (255, 255, 255)
MUTED = (190, 198, 210)
TRACK = (70, 78, 92)
BAR_TOP = (79, 195, 247)  # the most likely class
BAR_OTHER = (176, 190, 197)


@dataclass(frozen=True)
class Panel:
    """A window's label panel: RGB pixels and their opacity (0-1), to lay over a frame at (x, y)."""

    x: int
    y: int
    rgb: np.ndarray  # float32 (h, w, 3)
    alpha: np.ndarray  # float32 (h, w, 1)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in frame pixels, right and bottom excluded."""
        return self.x, self.y, self.x + self.rgb.shape[1], self.y + self.rgb.shape[0]


@dataclass(frozen=True)
class AnnotatedVideo:
    """What :func:`annotate_video` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    codec: str


def font_size(width: int, height: int) -> int:
    """Text height in pixels for a frame: 4.5% of its short side, at least 11."""
    return max(MIN_FONT_PX, round(FONT_SHARE * min(width, height)))


def window_at(windows: Sequence[WindowResult], seconds: float) -> WindowResult | None:
    """The window shown at ``seconds``: the covering one with the nearest centre (earlier on a tie), or None."""
    best, best_distance = None, np.inf
    for window in windows:
        span = window.span
        if span.start - 1e-6 <= seconds < span.end - 1e-6:
            distance = abs(seconds - (span.start + span.end) / 2)
            if distance < best_distance:
                best, best_distance = window, distance
    return best


@functools.lru_cache(maxsize=4)
def _font(size: int, bold: bool):
    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)


def _fit(text: str, font, width: float) -> str:
    """``text``, cut and ended with an ellipsis where it is wider than ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _percent(probability: float) -> str:
    return f"{probability:.0%}" if probability >= 0.01 else "<1%"


def make_panel(window: WindowResult, width: int, height: int) -> Panel:
    """The label panel for ``window`` on a ``width`` x ``height`` frame (clipped to the frame)."""
    probabilities = softmax(window.logits)
    rows = [(p.label, float(probabilities[p.index])) for p in window.top[:ROWS]]
    return rows_panel(f"{window.span.start:.1f}–{window.span.end:.1f} s", rows, width, height)


def rows_panel(header: str, rows: Sequence[tuple[str, float]], width: int, height: int) -> Panel:
    """A label panel: a small ``header`` line, then each (label, probability) row with its bar."""
    from PIL import Image, ImageDraw

    size = font_size(width, height)
    font, bold, small = _font(size, False), _font(size, True), _font(max(8, round(size * 0.8)), False)
    pad, margin = round(size * 0.6), max(2, round(size * 0.5))
    bar_h, gap = max(3, round(size * 0.35)), round(size * 0.3)
    inner = min(width - 2 * margin - 2 * pad,
                max(size * 9, max(bold.getlength(label) + gap * 2 + bold.getlength("100%") for label, _ in rows)))
    inner = max(1, int(inner))
    line = size + gap  # a text line and the space below it
    panel_h = pad + round(size * 0.8) + gap + len(rows) * (line + bar_h + gap) + pad - gap
    panel_w = inner + 2 * pad
    rgb = Image.new("RGB", (panel_w, panel_h), BACKGROUND)
    alpha = Image.new("L", (panel_w, panel_h), 0)
    draw, mask = ImageDraw.Draw(rgb), ImageDraw.Draw(alpha)
    mask.rounded_rectangle((0, 0, panel_w - 1, panel_h - 1), radius=max(2, size // 2), fill=BACKGROUND_ALPHA)

    def text(xy, value, face, colour, anchor="la"):
        draw.text(xy, value, font=face, fill=colour, anchor=anchor)
        mask.text(xy, value, font=face, fill=255, anchor=anchor)

    def bar(x0, y0, x1, y1, colour):
        draw.rectangle((x0, y0, x1, y1), fill=colour)
        mask.rectangle((x0, y0, x1, y1), fill=255)

    y = pad
    text((pad, y), _fit(header, small, inner), small, MUTED)
    y += round(size * 0.8) + gap
    for rank, (label, probability) in enumerate(rows):
        face = bold if rank == 0 else font
        percent = _percent(probability)
        room = inner - face.getlength(percent) - gap * 2
        text((pad, y), _fit(label, face, room), face, TEXT)
        text((pad + inner, y), percent, face, TEXT, anchor="ra")
        y += line
        bar(pad, y, pad + inner - 1, y + bar_h - 1, TRACK)
        filled = round(inner * min(max(probability, 0.0), 1.0))
        if filled > 0:
            bar(pad, y, pad + filled - 1, y + bar_h - 1, BAR_TOP if rank == 0 else BAR_OTHER)
        y += bar_h + gap
    rgb_array = np.asarray(rgb, np.float32)[: height - margin, : width - margin]
    alpha_array = (np.asarray(alpha, np.float32) / 255.0)[: height - margin, : width - margin, np.newaxis]
    return Panel(margin, margin, rgb_array, alpha_array)


def draw_panel(frame: np.ndarray, panel: Panel) -> np.ndarray:
    """A copy of the RGB uint8 ``frame`` with ``panel`` laid over it; pixels outside the panel are unchanged."""
    out = frame.copy()
    x0, y0, x1, y1 = panel.box
    region = out[y0:y1, x0:x1].astype(np.float32)
    h, w = region.shape[:2]
    alpha = panel.alpha[:h, :w]
    out[y0:y1, x0:x1] = np.clip(region * (1.0 - alpha) + panel.rgb[:h, :w] * alpha + 0.5, 0, 255).astype(np.uint8)
    return out


HeatSource = Callable[[float, int, int, int], "np.ndarray | None"]
"""(seconds, class index, frame width, frame height) -> that class's heat on the frame, or None."""


def _heated(frame: np.ndarray, heat: HeatSource | None, seconds: float, index: int) -> np.ndarray:
    """``frame`` with class ``index``'s heat at ``seconds`` blended over it (unchanged without any)."""
    found = None if heat is None else heat(seconds, index, frame.shape[1], frame.shape[0])
    return frame if found is None else blend(frame, found)


def annotate_frames(frames: Iterable[tuple[np.ndarray, float]], result: Result,
                    heat: HeatSource | None = None) -> Iterator[np.ndarray]:
    """Each (RGB frame, seconds) with the panel of the window shown at that time (panels made once per window),
    over the heat of its top class when ``heat`` is given."""
    panels: dict[tuple[int, int, int], Panel] = {}
    for frame, seconds in frames:
        window = window_at(result.windows, seconds)
        if window is None:
            yield frame
            continue
        if window.top:
            frame = _heated(frame, heat, seconds, window.top[0].index)
        key = (window.span.index, frame.shape[1], frame.shape[0])
        if key not in panels:
            panels[key] = make_panel(window, frame.shape[1], frame.shape[0])
        yield draw_panel(frame, panels[key])


def _unchanged(frame: np.ndarray) -> np.ndarray:
    return frame


def source_frames(source: str | os.PathLike, result: Result, *,
                  progress: bool = False) -> tuple[float, Iterator[tuple[np.ndarray, float]]]:
    """(frame rate, (RGB frame at full size, seconds)) over the classified span of a video file or frames folder.

    A video file is read at its container's frame rate, on the same clock and
    by the same rule as the 25 fps frames the network saw (see
    :mod:`i3d.inputs.video`), so a constant-rate video gives each of its frames
    once; a frames folder is read at 25 fps.
    """
    if not result.windows:
        raise OptionError("result", "has no windows to draw; classify a video or a frames folder")
    return span_frames(source, min(w.span.start for w in result.windows), max(w.span.end for w in result.windows),
                       progress=progress)


def span_frames(source: str | os.PathLike, start: float, end: float, *,
                progress: bool = False) -> tuple[float, Iterator[tuple[np.ndarray, float]]]:
    """(frame rate, (RGB frame at full size, seconds)) of ``source`` from ``start`` to ``end`` seconds."""
    from i3d.inputs.frame_folders import iter_frames_dir
    from i3d.inputs.video import iter_video, source_fps

    fps = source_fps(source)
    reader = iter_frames_dir if Path(source).is_dir() else iter_video
    frames = reader(source, fps=fps, start=start or None, end=end, progress=progress, prepare=_unchanged)
    return fps, ((frame, seconds) for frame, seconds, _ in frames)


def annotate_video(result: Result, source: str | os.PathLike, out: str | os.PathLike, *,
                   progress: bool = False, heat: HeatSource | None = None) -> AnnotatedVideo:
    """Write ``source`` with ``result``'s windows drawn on it to ``out`` (.mp4, .webm or .gif, by extension).

    ``result`` must come from this video or frames folder (with the same
    start/end); ``heat`` lays each window's top class's heat under its panel. Raises OptionError for an
    output no run could write and InputError for a source that cannot be read; OSError when writing fails.
    """
    out = check_video_path(out)
    fps, frames = source_frames(source, result, progress=progress)
    with open_video(out, fps) as writer:
        for frame in annotate_frames(frames, result, heat):
            writer.write(frame)
        if writer.frames == 0:
            raise InputError(f"{os.fspath(source)}: no frame in the classified span "
                             f"{result.windows[0].span.start:.2f}-{result.windows[-1].span.end:.2f} s")
    return AnnotatedVideo(out, writer.frames, writer.width, writer.height, fps, writer.codec)


def annotate_segments(segments: Sequence[Segment], source: str | os.PathLike, out: str | os.PathLike,
                      start: float, end: float, *, progress: bool = False,
                      heat: HeatSource | None = None) -> AnnotatedVideo:
    """Write ``source`` from ``start`` to ``end`` seconds with the segments under way at each moment drawn on it
    (label and score, the best first, over the best one's ``heat`` when given; a moment in no segment is left
    unchanged)."""
    out = check_video_path(out)
    fps, frames = span_frames(source, start, end, progress=progress)
    panels: dict[tuple, Panel] = {}
    with open_video(out, fps) as writer:
        for frame, seconds in frames:
            now = sorted((s for s in segments if s.start - 1e-6 <= seconds < s.end - 1e-6), key=lambda s: -s.score)
            if now:
                frame = _heated(frame, heat, seconds, now[0].index)
                key = (tuple((s.index, s.start) for s in now[:ROWS]), frame.shape[1], frame.shape[0])
                if key not in panels:
                    header = f"{now[0].start:.1f}–{now[0].end:.1f} s"
                    panels[key] = rows_panel(header, [(s.label, s.score) for s in now[:ROWS]], frame.shape[1],
                                             frame.shape[0])
                frame = draw_panel(frame, panels[key])
            writer.write(frame)
        if writer.frames == 0:
            raise InputError(f"{os.fspath(source)}: no frame between {start:.2f} and {end:.2f} s")
    return AnnotatedVideo(out, writer.frames, writer.width, writer.height, fps, writer.codec)
