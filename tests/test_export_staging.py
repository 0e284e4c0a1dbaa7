"""i3d export: only a checked export is installed in DIR; a failed one stays in the staging folder it names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from i3d.runtime import export as export_module


@pytest.fixture
def failing(shared_weights_dir, cricket_clips, monkeypatch) -> None:
    """The export command on the session's weights and cricket sample, checked by a runtime off by 1e-3."""
    from i3d.inputs import samples

    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
    monkeypatch.setattr(samples, "DATA_DIR", cricket_clips["rgb"].parent)
    real = export_module.runtime_runner

    def off_by_a_little(file_format, path):
        run = real(file_format, path)
        return lambda clip: np.asarray(run(clip)) + 1e-3  # a runtime that differs from the network by 1e-3

    monkeypatch.setattr(export_module, "runtime_runner", off_by_a_little)


def _staging_named(error: str, folder: Path) -> Path:
    """The staging folder the one-line error names (it ends the sentence 'it stays in <folder>, see ...')."""
    [named] = re.findall(r"it stays in (\S+), see", error)
    staging = Path(named)
    assert staging.parent == folder and staging.is_dir()
    return staging


@pytest.mark.slow
def test_a_failed_check_installs_nothing_and_keeps_the_previous_export_under_overwrite(tmp_path, failing, capsys):
    """--overwrite replaces an export only with a checked one: a failed export (exit 4) leaves DIR as it was
    (no model replaced, no check file added) and stays, with its failed check, in the staging folder it names."""
    from i3d.commands.export import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "model.keras").write_bytes(b"the previous export")
    assert main(["rgb_kinetics", "--format", "keras", str(out), "--offline", "--overwrite"]) == 4
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert "differs from the network by 0.001" in error and "not installed" in error
    assert (out / "model.keras").read_bytes() == b"the previous export"
    staging = _staging_named(error, out)
    assert sorted(path.name for path in out.iterdir()) == sorted(["model.keras", staging.name])
    assert sorted(path.name for path in staging.iterdir()) == ["model.keras", "model.keras.check.json"]
    failed = json.loads((staging / "model.keras.check.json").read_text())
    # the staged file is the real export: the runtime's 1e-3 is all the difference there is
    assert failed["passed"] is False and failed["runs"][0]["max_abs_difference"] == pytest.approx(1e-3, rel=1e-2)
