"""Cue text is inert: a label cannot end its cue, forge another, or carry markup into a player."""

from __future__ import annotations

from i3d.report.subtitles import cue_text, srt, webvtt
from i3d.results import Segment

FORGED = "wave\n\n2\n00:00:00,000 --> 10:00:00,000\n<b>forged</b> & more\r\x00"


def test_a_forged_label_stays_one_line_of_escaped_text():
    assert cue_text(FORGED) == ("wave 2 00:00:00,000 --&gt; 10:00:00,000 &lt;b&gt;forged&lt;/b&gt; &amp; more")
    assert cue_text("tai chi") == "tai chi"


def test_srt_and_webvtt_hold_one_cue_per_segment_whatever_the_label():
    found = [Segment(FORGED, 0, 1.0, 2.0, 0.5)]
    subrip = srt(found)
    assert subrip.count("-->") == 1 and subrip.count("\n\n") == 0
    assert subrip.splitlines()[:2] == ["1", "00:00:01,000 --> 00:00:02,000"]
    vtt = webvtt(found)
    body = vtt.split("\n\n", 1)[1]
    assert body.count("-->") == 1 and "<" not in body and "\x00" not in body
    assert body.splitlines()[1].endswith("&amp; more (50%)")
