"""Where the weights go: ``$I3D_WEIGHTS_DIR``, else a checkout's ``weights/``, else (installed from a wheel) the user's
cache, never a folder named ``weights`` in site-packages (issue 38, item 13)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import ROOT

from i3d.weights.store import WeightStore, default_weights_dir


def test_a_checkout_keeps_its_weights_folder_and_the_variable_comes_first(monkeypatch, tmp_path):
    monkeypatch.delenv("I3D_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_weights_dir() == ROOT / "weights" == WeightStore.from_environment().root
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert default_weights_dir() == tmp_path / "mine"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the i3d wheel built from this checkout; .venv's site-packages (numpy and the
    rest, without its editable i3d) reached through a .pth line. Returns the venv's python."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "i3d", source / "i3d", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(base / "dist"), "-q"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    [wheel] = (base / "dist").glob("i3d-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           purelib, str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return python


def where(python: Path, cwd: Path, **env: str) -> tuple[Path, Path]:
    """(the imported i3d package's folder, the weights folder it resolves) in ``python`` run from ``cwd``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("I3D_WEIGHTS_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    proc = subprocess.run([str(python), "-c", "import i3d; from i3d.weights.store import default_weights_dir; "
                           "print(i3d.__file__); print(default_weights_dir())"],
                          cwd=cwd, env={**clean, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    package, weights = proc.stdout.splitlines()
    return Path(package).parent, Path(weights)


@pytest.mark.slow  # builds a wheel (about 10 s)
def test_an_installed_wheel_keeps_its_weights_in_the_users_cache(installed, tmp_path):
    package, weights = where(installed, tmp_path, HOME=str(tmp_path / "home"))
    assert package.parent.name == "site-packages" and ROOT not in package.parents  # the wheel's i3d, not ours
    assert weights == tmp_path / "home" / ".cache" / "i3d" / "weights"
    assert where(installed, tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))[1] == tmp_path / "xdg" / "i3d" / "weights"
    assert where(installed, tmp_path, XDG_CACHE_HOME="relative", HOME=str(tmp_path / "h"))[1] == \
        tmp_path / "h" / ".cache" / "i3d" / "weights"  # a relative XDG_CACHE_HOME is ignored, as the spec says
    assert where(installed, tmp_path, I3D_WEIGHTS_DIR=str(tmp_path / "w"),
                 XDG_CACHE_HOME=str(tmp_path / "xdg"))[1] == tmp_path / "w"
    assert not (package.parent / "weights").exists()
