"""Edges of the command line and the library: one-line errors, closed pipes, ranges, privacy, modes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support import ROOT, run_cli, write_video


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args", [["--type", "depth"], ["--top-k", "many"], ["--nonsense"]])
def test_argparse_errors_are_one_line(tmp_path, args):
    proc = run_cli(*args, weights_dir=tmp_path)
    assert proc.returncode == 2
    assert one_line(proc).startswith("error: ") and "evaluate.py --help" in proc.stderr


def test_subcommand_usage_errors_are_one_line(tmp_path):
    for args in (["weights", "bogus"], ["preprocess"], ["samples", "--what"]):
        proc = run_cli(*args, weights_dir=tmp_path, module="i3d")
        assert proc.returncode == 2, (args, proc.stderr)
        one_line(proc)
    # ``python -m i3d`` itself, in a fresh interpreter: no command gives usage on stderr and 2, --help stdout and 0
    bare = run_cli(weights_dir=tmp_path, module="i3d", isolated=True)
    assert (bare.returncode, bare.stdout) == (2, "") and bare.stderr.startswith("usage: i3d <command>")
    asked = run_cli("--help", weights_dir=tmp_path, module="i3d")
    assert (asked.returncode, asked.stderr) == (0, "") and asked.stdout.startswith("usage: i3d <command>")


def test_closed_stdout_exits_quietly(tmp_path, shared_weights_dir):
    """`evaluate.py | head` with the reader gone before the result: no traceback, no 'unexpected', exit 141."""
    import os

    proc = subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), "--format", "json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)})
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 141
    assert stderr == ""


@pytest.mark.parametrize("args,flag", [
    (["--end", "inf"], "--end must be a finite number of seconds"),
    (["--end", "1e308"], "--end must be at most 1e+09 seconds"),
    (["--start", "1e300"], "--start must be between 0 and 1e+09 seconds"),
    (["--max-frames", str(10**30)], "--max-frames must be between 1 and"),
    (["--window", str(10**30)], "--window is"),
    (["--stride", str(10**30)], "--stride must be between 1 and"),
    (["--flow-workers", "1000"], "--flow-workers must be between 1 and"),
    (["--flow-workers", "0"], "--flow-workers must be between 1 and"),
])
def test_out_of_range_video_flags_exit_2(tmp_path, args, flag):
    video = write_video(tmp_path / "v.avi", 12)
    proc = run_cli("--video", str(video), *args, weights_dir=tmp_path / "weights")
    assert proc.returncode == 2, proc.stderr
    assert flag in one_line(proc)
    assert not (tmp_path / "weights").exists()


def test_start_past_the_end_is_bad_input(tmp_path):
    video = write_video(tmp_path / "v.avi", 30)
    proc = run_cli("--video", str(video), "--start", "100", weights_dir=tmp_path / "weights")
    assert proc.returncode == 3, proc.stderr
    assert "video has 0 frames at 25 fps in the requested range" in one_line(proc)


def test_video_flags_with_npy_input_are_refused(tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((9, 224, 224, 3), np.float32))
    proc = run_cli("--rgb", str(clip), "--window", "64", "--crop", "full", weights_dir=tmp_path / "weights")
    assert proc.returncode == 2
    assert "--crop, --window only apply to --video or --frames" in one_line(proc)


def test_mixed_precision_on_openvino_is_refused(tmp_path):
    pytest.importorskip("openvino")
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((9, 224, 224, 3), np.float32))
    proc = run_cli("--rgb", str(clip), "--backend", "openvino", "--mixed-precision", weights_dir=tmp_path / "w")
    assert proc.returncode == 2
    assert "--mixed-precision is TensorFlow's float16 compute on a GPU" in one_line(proc)
    assert not (tmp_path / "w").exists()


def test_openvino_telemetry_never_starts(tmp_path):
    """Importing the OpenVINO runner blocks OpenVINO's telemetry package: the converter gets its no-op stub."""
    pytest.importorskip("openvino")
    code = ("import sys, i3d.runtime.openvino, openvino.tools.ovc.telemetry_utils as t; "
            "print(t.tm.__name__, 'openvino_telemetry.main' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "False"], proc.stderr
    assert not (tmp_path / "intel").exists()


@pytest.mark.parametrize("args,text", [
    (["--shard", ""], "--shard is ''; give K/N"),
    (["--ray-actors", "2", "--ray-task-cpus", "0.5"], "--ray-actors, --ray-task-cpus only apply with --engine ray"),
    (["--workers", "256"], "--workers must be between 0 and"),
])
def test_batch_flags_that_would_be_ignored_or_could_never_run_exit_2(tmp_path, args, text):
    (tmp_path / "videos" / "archery").mkdir(parents=True)
    write_video(tmp_path / "videos" / "archery" / "a.avi", 12)
    proc = run_cli("batch", str(tmp_path / "videos"), "--labels-from-folders", "--out", str(tmp_path / "out"), *args,
                   weights_dir=tmp_path / "weights", module="i3d")
    assert proc.returncode == 2, proc.stderr
    assert text in one_line(proc)
    assert not (tmp_path / "out").exists() and not (tmp_path / "weights").exists()
