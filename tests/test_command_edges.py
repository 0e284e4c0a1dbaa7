"""The commands at their edges: streamed preprocess output, unwritable outputs, signals, one-line output, --offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, run_cli, skip_outside_ci, write_video

from i3d.preprocess.windows import VideoOptions, read_clips
from i3d.streams import streams_named


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def preprocess(*args: str, tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("preprocess", *args, "--no-flow-cache", weights_dir=tmp_path / "weights", module="i3d", **kwargs)


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A small tmpfs at ``path`` (root only): a full or read-only disk without touching the real one."""
    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        skip_outside_ci("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_preprocess_streams_the_same_arrays_as_read_clips(tmp_path):
    video = write_video(tmp_path / "v.avi", 20)
    proc = preprocess(str(video), "--out", str(tmp_path / "out"), "--flow-algorithm", "dis", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and proc.stderr == ""
    expected = read_clips(video, streams_named(("rgb", "flow")), VideoOptions(flow_algorithm="dis"))
    for stream, shape in (("rgb", (1, 20, 224, 224, 3)), ("flow", (1, 19, 224, 224, 2))):
        written = np.load(tmp_path / "out" / f"v_{stream}.npy")
        assert written.shape == shape
        np.testing.assert_array_equal(written, expected[stream])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v_flow.npy", "v_rgb.npy"]


def test_preprocess_memory_does_not_grow_with_the_video(tmp_path):
    """300 frames write 180 MB of RGB; numpy's peak stays that of a few frames."""
    import tracemalloc

    from i3d.report.npy import save_clips

    video = write_video(tmp_path / "long.avi", 300)
    tracemalloc.start()
    try:
        shapes = save_clips(video, streams_named("rgb"), VideoOptions(), {"rgb": tmp_path / "long_rgb.npy"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shapes == {"rgb": (1, 300, 224, 224, 3)}
    assert (tmp_path / "long_rgb.npy").stat().st_size > 300 * 224 * 224 * 3 * 4
    assert peak < 30e6, f"peak {peak / 1e6:.0f} MB"
    clip = np.load(tmp_path / "long_rgb.npy", mmap_mode="r")
    first = read_clips(video, streams_named("rgb"), VideoOptions(max_frames=9))["rgb"]
    np.testing.assert_array_equal(clip[0, :9], first[0])


def test_preprocess_too_short_video_writes_nothing(tmp_path):
    video = write_video(tmp_path / "short.avi", 5)
    proc = preprocess(str(video), "--out", str(tmp_path / "out"), "--type", "rgb", tmp_path=tmp_path)
    assert proc.returncode == 3
    assert "video has 5 frames" in one_line(proc)
    assert list((tmp_path / "out").iterdir()) == []


def test_preprocess_out_that_is_a_file_is_a_usage_error(tmp_path):
    video = write_video(tmp_path / "v.avi", 12)
    (tmp_path / "taken").write_text("x")
    proc = preprocess(str(video), "--out", str(tmp_path / "taken"), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "--out" in one_line(proc) and "is a file" in proc.stderr


@pytest.mark.parametrize("preview", ["sheet.xyz", "sheet"])
def test_preview_with_unknown_type_is_refused_before_any_work(tmp_path, preview):
    video = write_video(tmp_path / "v.avi", 12)
    proc = preprocess(str(video), "--out", str(tmp_path / "out"), "--preview", str(tmp_path / preview),
                      tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "--preview" in one_line(proc) and "unknown image type" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_preview_in_a_missing_folder_is_made(tmp_path):
    video = write_video(tmp_path / "v.avi", 12)
    sheet = tmp_path / "new" / "deeper" / "sheet.png"
    proc = preprocess(str(video), "--type", "rgb", "--out", str(tmp_path / "out"), "--preview", str(sheet),
                      tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import cv2

    assert cv2.imread(str(sheet)).shape == (112, 112 * 6, 3)


def test_preprocess_on_a_full_disk_exits_2_and_leaves_nothing(tmp_path):
    video = write_video(tmp_path / "v.avi", 20)
    with tmpfs(tmp_path / "small", "1m") as out:
        proc = preprocess(str(video), "--type", "rgb", "--out", str(out), tmp_path=tmp_path)
        left = list(out.iterdir())
    assert proc.returncode == 2, proc.stderr
    assert "No space left on device" in one_line(proc)
    assert left == []


def test_preprocess_into_a_read_only_folder_exits_2(tmp_path):
    video = write_video(tmp_path / "v.avi", 12)
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as out:
        proc = preprocess(str(video), "--out", str(out), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "not writable" in one_line(proc)


@pytest.mark.slow
def test_sigterm_exits_143_in_one_line_and_leaves_no_partial_file(tmp_path):
    video = write_video(tmp_path / "v.avi", 60, width=320, height=240)
    env = {**os.environ, "I3D_WEIGHTS_DIR": str(tmp_path / "weights")}
    proc = subprocess.Popen([sys.executable, "-m", "i3d", "preprocess", str(video), "--out", str(tmp_path / "out"),
                             "--no-flow-cache"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not any((tmp_path / "out").glob(".*.tmp.npy")):  # writing has begun: the temporary files exist
        assert time.monotonic() < deadline and proc.poll() is None, "the preprocess never began writing"
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # mid-write: a partial file would be left if it did not clean up
    _, stderr = proc.communicate(timeout=60)
    print(f"exited {proc.returncode} {time.monotonic() - sent:.2f} s after SIGTERM")
    assert proc.returncode == 143, stderr  # not 0: it stopped, rather than finishing the video first
    assert stderr.strip() == "terminated"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_signal_during_an_import_waits_for_its_end_and_a_wrapped_one_is_still_a_signal(capsys):
    from i3d.commands.shell import Terminated, run_command
    from i3d.interrupts import signals_held

    def stop(number, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        reached = []
        with pytest.raises(Terminated):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler would have run by now
                reached.append("the block's end")
        assert reached == ["the block's end"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)

    def wrapped():  # what numba's C extensions make of an exception raised while they load
        try:
            raise Terminated()
        except Terminated as err:
            raise ImportError("numba._devicearray failed to import") from err

    assert run_command(wrapped) == 143
    assert capsys.readouterr().err == "terminated\n"


def test_warnings_and_messages_are_one_line(capsys):
    import warnings

    from i3d.commands.shell import run_command
    from i3d.errors import InputError

    def warn_then_fail():
        warnings.warn("first line\nsecond line")
        raise InputError("/tmp/a\nb.npy: no such file")

    assert run_command(warn_then_fail) == 3
    assert capsys.readouterr().err == "warning: first line second line\nerror: /tmp/a b.npy: no such file\n"


def test_a_file_name_with_a_newline_gives_one_line(tmp_path):
    proc = run_cli("--rgb", str(tmp_path / "bad\nname.npy"), weights_dir=tmp_path)
    assert proc.returncode == 3
    assert "no such file" in one_line(proc)


def test_offline_means_no_network_at_all():
    code = ("import urllib.request\nfrom i3d.commands.shell import forbid_network\nforbid_network()\n"
            "try:\n    urllib.request.urlopen('http://127.0.0.1:9/', timeout=5)\n"
            "except OSError as err:\n    print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "network access is off (--offline)" in proc.stdout, proc.stdout + proc.stderr


def test_fetch_offline_reports_each_set_and_one_error_line(tmp_path):
    proc = run_cli("weights", "fetch", "--offline", "flow_kinetics", "rgb_bothsets", weights_dir=tmp_path,
                   module="i3d")
    assert proc.returncode == 4
    line = one_line(proc)
    assert line.startswith("error: 2 weight set(s) unavailable (flow_kinetics, rgb_bothsets)")
    assert str(tmp_path / "flow_scratch") in line and "drop --offline" in line
    assert [row.split(":")[0] for row in proc.stdout.splitlines()] == ["flow_kinetics", "rgb_bothsets"]
