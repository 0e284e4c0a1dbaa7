"""Cue text is inert: a label cannot end its cue, forge another, or carry markup into a player."""

from __future__ import annotations

import pytest

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


def test_training_refuses_a_label_with_a_line_break_naming_the_video():
    from pathlib import Path


    from i3d.errors import InputError
    from i3d.inputs.dataset_items import Dataset, VideoItem
    from i3d.tasks.training.splits import check_labels

    labels = ["wave", "wave", FORGED, FORGED]
    items = tuple(VideoItem(f"v{i}.mp4", Path(f"/nowhere/v{i}.mp4"), label, None) for i, label in enumerate(labels))
    with pytest.raises(InputError, match=r"^v2\.mp4: label .* holds a line break or control character"):
        check_labels(Dataset(items, (), Path("/nowhere"), "list"))
    tab = tuple(VideoItem(f"v{i}.mp4", Path(f"/nowhere/v{i}.mp4"), label, None)
                for i, label in enumerate(["a", "a", "b\tc", "b\tc"]))
    with pytest.raises(InputError, match="v2.mp4"):
        check_labels(Dataset(tab, (), Path("/nowhere"), "list"))


def test_the_train_command_refuses_a_forged_jsonl_label_with_exit_3(tmp_path):
    import json
    from support import SHARED, run_cli

    FEWSHOT = SHARED / "fewshot"
    clips = sorted((FEWSHOT / "clips").glob("*.mp4"))[:4]
    listing = tmp_path / "train.jsonl"
    listing.write_text("".join(json.dumps({"path": str(clip), "label": "wave" if i < 2 else FORGED}) + "\n"
                               for i, clip in enumerate(clips)))
    # An empty weights folder: the labels are refused before any weights are looked for.
    proc = run_cli("train", str(listing), "--out", str(tmp_path / "head"), "--offline", module="i3d",
                   weights_dir=tmp_path / "weights")
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert clips[2].name in proc.stderr and "line break or control character" in proc.stderr
    assert not (tmp_path / "head").exists()
