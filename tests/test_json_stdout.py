"""--format json: stdout carries the summary alone, whatever a library prints there during the run."""

from __future__ import annotations

import json

import i3d.commands.batch as batch_command
import i3d.tasks.batch.run as batch_run
from i3d.tasks.batch.run import BatchReport


def test_a_librarys_print_during_the_run_goes_to_stderr_not_into_the_json(monkeypatch, tmp_path, capsys):
    """Ray prints its messages about dead nodes on stdout ("(raylet) The node with node id ..."); a program
    piping `i3d batch --format json` must still read one JSON document."""
    summary = {"videos": 1, "failed": 0, "missing": 0}

    def noisy_run(*args, **kwargs):
        print("(raylet) The node with node id: 1cba73 has been marked dead")
        return BatchReport(1, 0, 0, summary, 0.1, 0)

    monkeypatch.setattr(batch_command, "prepare_run", lambda args, features: (None, None, None, None, None))
    monkeypatch.setattr(batch_run, "run_batch", noisy_run)
    code = batch_command.main([str(tmp_path), "--out", str(tmp_path / "out"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out) == summary
    assert "(raylet) The node with node id: 1cba73 has been marked dead" in err
