"""i3d segments over a folder of several videos, as the README says it takes a dataset like i3d batch: shards
sharing one --out, --workers decoding ahead, and a last run that resumes (nothing redone) and cuts them all."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from support import write_video

from i3d.preprocess.windows import VideoOptions

SETTINGS = ("--window", "16", "--stride", "16", "--workers", "2", "--no-charts", "--format", "json", "--offline")


@pytest.mark.slow  # three runs of the command over three short videos, with worker processes
def test_a_folder_in_two_shards_with_workers_then_resumed(tmp_path, shared_weights_dir, recognizer, monkeypatch,
                                                         capsys):
    from i3d.commands.segments import main

    videos = tmp_path / "videos"
    videos.mkdir()
    for i, name in enumerate(("a", "b", "d")):
        write_video(videos / f"{name}.avi", 20, width=320, height=256, seed=i)  # two 16-frame windows each
    # README: --shard K/N takes the videos whose key hashes to shard K (sha256 here): a and b in 1/2, d in 2/2
    assert [int(hashlib.sha256(f"{n}.avi".encode()).hexdigest(), 16) % 2 + 1 for n in "abd"] == [1, 1, 2]
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
    out = tmp_path / "out"

    def run(*extra: str) -> dict:
        code = main([str(videos), "--out", str(out), *SETTINGS, *extra])
        printed, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(printed)

    first = run("--shard", "1/2")
    records = out / "features"
    assert sorted(p.name for p in records.glob("*.json")) == ["a.avi.json", "b.avi.json"]  # shard 1's only
    assert set(first["segments"]) == {"a", "b"}
    second = run("--shard", "2/2")
    assert sorted(p.name for p in records.glob("*.json")) == ["a.avi.json", "b.avi.json", "d.avi.json"]
    assert set(second["segments"]) == {"a", "b", "d"}  # a run cuts every video the folder has done so far
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*")}
    assert len(done) == 3 * 3  # per video: its record, its features and its logits
    last = run()  # no shard: every video is done already, so nothing runs again; the summary is of all
    assert {p.name: p.stat().st_mtime_ns for p in records.glob("*")} == done
    assert set(last["segments"]) == {"a", "b", "d"} and last["summary"]["ok"] == 3
    for name in ("a", "b", "d"):
        assert (out / "segments" / f"{name}.avi.srt").is_file()
    # the windows the shards' workers prepared give the network's answers on the video read inline
    alone = recognizer.classify(videos / "d.avi", video=VideoOptions(window=16, stride=16))
    kept = np.load(records / "d.avi.rgb.logits.npy")
    np.testing.assert_allclose(kept, np.stack([w.logits for w in alone.windows]), atol=1e-4)
