"""The architecture is a test: import-linter checks the layers and the absence of cycles
declared in pyproject.toml, counting every import, function-local ones too."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_keep_the_layers_and_have_no_cycles():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout
    assert ("Tasks by use: training | segments > batch | live | fvd | explain > recognizer > sources KEPT"
            in " ".join(proc.stdout.split()))  # the nested contract: the recognizer can never import a use


def test_no_module_is_over_500_lines():
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / "i3d").rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}


def test_nothing_edits_the_import_path():
    offenders = [str(path.relative_to(ROOT)) for folder in ("i3d", "benchmarks", "tests")
                 for path in (ROOT / folder).rglob("*.py")
                 if "sys.path" in path.read_text() and path.name != "test_architecture.py"]
    assert offenders == []
