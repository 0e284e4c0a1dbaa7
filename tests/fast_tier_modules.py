"""Which modules of i3d/ the fast tier runs: pytest -m "not slow" with every Python process it starts (its test
processes, the commands they run, their worker pools) recording the i3d files whose functions ran; then the
modules none ran are listed, and the exit status is 1 if there are any.

    .venv/bin/python tests/fast_tier_modules.py [more pytest arguments]

A module that defines no function (constants, exception classes) counts when it is imported. Tracing makes the
run slower than the fast tier alone; it is a check to run when tests are marked slow, not every time.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def has_functions(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in ast.walk(tree))


def main(argv: list[str]) -> int:
    modules = sorted(p for p in (ROOT / "i3d").rglob("*.py") if "__pycache__" not in p.parts)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "I3D_MODULE_TRACE": folder,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "module_trace"),
                                                           os.environ.get("PYTHONPATH")]))}
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", *argv], cwd=ROOT, env=env)
        ran = {line.strip() for path in Path(folder).glob("*.txt") for line in path.read_text().splitlines()}
    missed = [p for p in modules if str(p) not in ran and has_functions(p)]
    for path in missed:
        print(f"no fast test runs {path.relative_to(ROOT)}")
    print(f"{len(modules) - len(missed)} of {len(modules)} modules of i3d/ run in the fast tier "
          f"(pytest exited {tests.returncode})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
