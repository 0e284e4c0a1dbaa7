"""`i3d batch --out` on a full disk: the documented one-line usage error (exit 2), the records already written kept,
and the run resumed once there is room again (issue 38, item 10). The disk is a small tmpfs (root only, as in CI)."""

from __future__ import annotations

import dataclasses
import errno
import json

import pytest
from support import write_labelled_videos
from test_cache_edges import tmpfs

from i3d.commands.shell import exit_code, message
from i3d.errors import OptionError
from i3d.inputs.dataset_items import ListOptions
from i3d.inputs.datasets import load_dataset
from i3d.tasks.batch.run import run_batch


def files(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (temporary ones too) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fill(folder) -> None:
    """Write into ``folder`` until its filesystem has no space left."""
    with open(folder / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (64 << 10))
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_a_full_disk_is_one_usage_line_and_the_run_resumes_once_there_is_room(tmp_path, recognizer):
    dataset = load_dataset(write_labelled_videos(tmp_path / "videos"), ListOptions(labels_from_folders=True))
    with tmpfs(tmp_path / "disk", "2m") as disk:
        out = disk / "out"
        first = run_batch(dataclasses.replace(dataset, items=dataset.items[:2]), out, recognizer)
        assert (first.processed, first.skipped) == (2, 0)
        kept = files(out / "results")
        assert len(kept) == 2

        fill(disk)
        with pytest.raises(OptionError) as caught:
            run_batch(dataset, out, recognizer)
        err = caught.value
        assert exit_code(err) == 2 and "\n" not in message(err)
        assert message(err) == (f"--out {out}: cannot be written (No space left on device); the 0 video(s) recorded "
                                "in this run are kept: free space (or give another folder) and run again to resume")
        assert files(out / "results") == kept  # no half-written record, no temporary file left

        (disk / "filler").unlink()
        again = run_batch(dataset, out, recognizer)
        assert (again.processed, again.skipped) == (len(dataset.items) - 2, 2)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["evaluated"] == len(dataset.items) == 6 and summary["not_run"] == 0
        assert {name: data for name, data in files(out / "results").items() if name in kept} == kept
