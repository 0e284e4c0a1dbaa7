"""A video's segments as text any player or spreadsheet reads: SRT and WebVTT subtitles, and CSV.

Each segment is one cue, shown for its span, reading ``label (score%)``; a moment
covered by segments of several classes shows each of them (players stack
overlapping cues). Times are the video's own, to the millisecond.

Labels come from the user's own classes too, so cue text is made inert: line breaks and other control
characters become spaces (a blank line would end the cue and let the rest forge cues of its own), and
``&``, ``<`` and ``>`` are written as character references (players read ``<b>`` as markup, and WebVTT
forbids ``-->`` in cue text).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from i3d.results import Segment


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def cue_text(text: str) -> str:
    """``text`` as one inert line of cue text: control characters and line breaks as a space, markup escaped."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return "".join(_REFERENCES.get(char, char) for char in flat)


def _text(segment: Segment) -> str:
    return cue_text(f"{segment.label} ({segment.score:.0%})")


def _by_time(segments: Sequence[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start, s.end, -s.score))


def srt(segments: Sequence[Segment]) -> str:
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = [f"{n}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{_text(s)}\n"
            for n, s in enumerate(_by_time(segments), start=1)]
    return "\n".join(cues)


def webvtt(segments: Sequence[Segment]) -> str:
    """WebVTT subtitles (what a browser's ``<track>`` reads)."""
    cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{_text(s)}\n" for s in _by_time(segments)]
    return "WEBVTT\n\n" + "\n".join(cues)


def segments_csv(segments: Sequence[Segment], video: str) -> str:
    """One row per segment: video, label, class index, start, end, duration (seconds), score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video", "label", "class_index", "start", "end", "duration", "score"])
    for s in _by_time(segments):
        writer.writerow([video, s.label, s.index, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}",
                         f"{s.score:.6f}"])
    return buffer.getvalue()
