"""Tests for i3d.preprocess.tvl1: the project's TV-L1 engine against OpenCV's DualTVL1OpticalFlow, bit for bit,
on real frame pairs (high motion, portrait, odd widths) and synthetic ones; the stopping sums; the tool's
use of it (tvl1 and tvl1-opencv, the shared cache); the on-disk cache of compiled code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from support import ARM_WRESTLING, ROOT, SHARED, counting_pairs, needs_shared

from i3d.preprocess import tvl1
from i3d.preprocess.flow import compute_flow, gray_frames
from i3d.preprocess.windows import VideoOptions, iter_source_frames

CLIPS = SHARED / "devset" / "clips"
HIGH_MOTION = CLIPS / "UCF101__v_Skijet_g13_c01.mp4"  # jet ski and spray: about 10 px mean motion, width 341
PORTRAIT = CLIPS / "other__skateboarding_dog__Video-LLaMA.mp4"  # 576x1024 source: 256x455 frames
WIDE_ODD = CLIPS / "other__cricket__pipelinetask-HumanActivityRecognition.mp4"  # 455x256, fast camera pan


def opencv_flow(image0: np.ndarray, image1: np.ndarray) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(image0, image1, None)


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """Values whose float32 bit patterns differ (so -0.0 against 0.0, or NaN, counts)."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return int(np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))


def tool_gray(path, first: int, count: int = 2) -> np.ndarray:
    """``count`` gray frames from frame ``first`` on, exactly as the tool prepares them for flow."""
    frames = [frame for frame, _, _ in iter_source_frames(path, VideoOptions(max_frames=first + count))]
    return gray_frames(np.stack(frames[first:first + count]))


def textured_square(shape: tuple[int, int], dx: int, dy: int, side: int, seed: int = 0) -> np.ndarray:
    """Two uint8 gray frames: a bright blocky square moving (dx, dy) px over a dark blocky background."""
    rng = np.random.default_rng(seed)
    h, w = shape
    background = np.kron(rng.integers(0, 90, (h // 2 + 1, w // 2 + 1)), np.ones((2, 2)))[:h, :w]
    texture = np.kron(rng.integers(140, 256, (side // 2 + 1, side // 2 + 1)), np.ones((2, 2)))[:side, :side]
    frames = np.repeat(background[None], 2, 0).astype(np.uint8)
    y, x = (h - side) // 3, (w - side) // 3
    frames[0, y:y + side, x:x + side] = texture
    frames[1, y + dy:y + dy + side, x + dx:x + dx + side] = texture
    return frames


@pytest.fixture(scope="module", autouse=True)
def engine():
    return tvl1.load_engine()


REAL_PAIRS = [
    pytest.param(ARM_WRESTLING, 30, id="arm_wrestling"),
    pytest.param(HIGH_MOTION, 30, id="high_motion_odd_width"),
    # two more shapes, slow: the first two keep the comparison in the fast tier
    pytest.param(PORTRAIT, 50, id="portrait", marks=pytest.mark.slow),
    pytest.param(WIDE_ODD, 10, id="high_motion_wide", marks=pytest.mark.slow),
]


@needs_shared
@pytest.mark.parametrize("path, first", REAL_PAIRS)
def test_bit_identical_to_opencv_on_real_pairs(path, first):
    gray = tool_gray(path, first)
    h, w = gray.shape[1:]
    reference = opencv_flow(gray[0], gray[1])
    exact = tvl1.SolveStats()
    ours = tvl1.tvl1_flow(gray[0], gray[1], stats=exact)
    assert ours.shape == (h, w, 2) and ours.dtype == np.float32
    assert np.array_equal(ours, reference) and differing(ours, reference) == 0
    # the same flow with rows spread over threads, and with OpenCV's serial stopping sum taken every time
    assert differing(tvl1.tvl1_flow(gray[0], gray[1], threads=2), reference) == 0
    serial = tvl1.SolveStats()
    assert differing(tvl1.tvl1_flow(gray[0], gray[1], stop="serial", stats=serial), reference) == 0
    assert serial.iterations == exact.iterations and serial.serial_sums == serial.iterations
    # the exact mode takes the serial sum only where the float64 total is too close to call
    assert exact.serial_sums < exact.iterations / 20
    # float64 alone agreed with OpenCV's serial float32 sum on every decision here
    assert serial.float64_flips == 0
    assert differing(tvl1.tvl1_flow(gray[0], gray[1], stop="float64"), reference) == 0
    # each pair is what its name says
    magnitude = float(np.hypot(reference[..., 0], reference[..., 1]).mean())
    if path in (HIGH_MOTION, WIDE_ODD):
        assert magnitude > 5.0 and w % 2 == 1
        assert serial.iterations > 1300  # against about 470-700 for calm pairs such as the sample's
    if path == PORTRAIT:
        assert h > w == 256


@pytest.mark.parametrize("shape, dx, dy, side", [((128, 128), 4, 0, 40), ((75, 97), -3, 2, 24),
                                                  ((23, 40), 1, 1, 8), ((8, 8), 1, 0, 3), ((256, 341), 6, -5, 60)])
def test_bit_identical_to_opencv_on_moving_squares(shape, dx, dy, side):
    frames = textured_square(shape, dx, dy, side)
    reference = opencv_flow(frames[0], frames[1])
    ours = tvl1.tvl1_flow(frames[0], frames[1])
    assert differing(ours, reference) == 0
    assert differing(tvl1.tvl1_flows(frames)[0], reference) == 0
    if shape == (128, 128):  # and it is motion: the square's middle moves 4 px right
        y, x = (128 - 40) // 3 + 20, (128 - 40) // 3 + 20
        assert ours[y - 8:y + 8, x - 8:x + 8, 0].mean() == pytest.approx(4, abs=0.4)
        assert abs(ours[y - 8:y + 8, x - 8:x + 8, 1].mean()) < 0.4


def test_flat_and_still_images():
    flat = np.full((2, 32, 48), 128, np.uint8)
    still = np.repeat(textured_square((40, 40), 0, 0, 10)[:1], 2, 0)
    for frames in (flat, still):
        reference = opencv_flow(frames[0], frames[1])
        ours = tvl1.tvl1_flow(frames[0], frames[1])
        assert differing(ours, reference) == 0 and not ours.any()


def test_pairs_side_by_side_match_one_by_one():
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 256, (20, 30)), np.ones((3, 3))).astype(np.uint8)
    gray = np.stack([np.roll(base, (t, 2 * t), (0, 1)) for t in range(5)])
    done = []
    together = tvl1.tvl1_flows(gray, threads=2, on_pair=lambda: done.append(1))
    assert len(done) == 4
    for i in range(4):
        assert differing(together[i], opencv_flow(gray[i], gray[i + 1])) == 0


def test_refuses_bad_images():
    good = np.zeros((16, 16), np.uint8)
    for a, b in ((good.astype(np.float32), good), (good, np.zeros((16, 17), np.uint8)),
                 (np.zeros((2, 16), np.uint8), np.zeros((2, 16), np.uint8)), (good[None], good[None])):
        with pytest.raises(ValueError):
            tvl1.tvl1_flow(a, b)
    with pytest.raises(ValueError, match="stop"):
        tvl1.tvl1_flow(good, good, stop="fast")


@needs_shared
def test_tool_engines_agree_and_share_the_cache(monkeypatch, tmp_path):
    frames = np.stack([frame for frame, _, _ in iter_source_frames(ARM_WRESTLING, VideoOptions(max_frames=4))])
    ours = compute_flow(frames, algorithm="tvl1", cache_dir=tmp_path)
    calls = counting_pairs(monkeypatch)
    reference = compute_flow(frames, algorithm="tvl1-opencv", workers=1)
    assert differing(ours, reference) == 0
    assert calls == [3]  # no cache: computed
    assert differing(compute_flow(frames, algorithm="tvl1-opencv", cache_dir=tmp_path), ours) == 0
    assert calls == [3] and len(os.listdir(tmp_path)) == 1  # tvl1's entry served tvl1-opencv
    assert differing(compute_flow(frames, algorithm="tvl1", workers=2), ours) == 0


def test_flag_and_options_accept_both_engines():
    import argparse

    from i3d.commands.flags import add_preprocessing_arguments, video_options
    from i3d.errors import OptionError
    from i3d.preprocess.flow import check_flow_settings
    from i3d.streams import streams_named

    parser = argparse.ArgumentParser()
    add_preprocessing_arguments(parser)
    for name in ("tvl1", "tvl1-opencv", "dis"):
        options = video_options(parser.parse_args(["--flow-algorithm", name]))
        assert options.flow_algorithm == name
        options.check(streams_named(("rgb", "flow")))
    assert parser.parse_args([]).flow_algorithm == "tvl1"
    with pytest.raises(OptionError, match="tvl1, tvl1-opencv, dis"):
        check_flow_settings("opencv", 1)


def test_batch_settings_treat_the_engines_alike():
    """A batch folder made with one TV-L1 engine resumes with the other: their flow is the same."""
    from types import SimpleNamespace

    from i3d.tasks.batch.folder import settings_of

    recognizer = SimpleNamespace(streams=(), weight_sets={}, backend="openvino", head=None,
                                 precision_record=lambda: {"asked": "fp32", "used": {}})
    settings = {name: settings_of(recognizer, VideoOptions(flow_algorithm=name))
                for name in ("tvl1", "tvl1-opencv", "dis")}
    assert settings["tvl1"] == settings["tvl1-opencv"] != settings["dis"]
    assert settings["tvl1-opencv"]["video"]["flow_algorithm"] == "tvl1"


def test_numba_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("I3D_CACHE_DIR", str(tmp_path / "cache"))
    assert tvl1._numba_cache_dir() == str(tmp_path / "cache" / "numba")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("I3D_CACHE_DIR", str(tmp_path / "file"))  # cannot hold a folder
    assert tvl1._numba_cache_dir() is None
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert tvl1._numba_cache_dir() == str(tmp_path / "mine")


_FIRST_USE = textwrap.dedent("""
    import numpy as np
    from i3d.preprocess.flow import compute_flow
    frames = np.zeros((3, 24, 32, 3), np.uint8)
    frames[1, 8:16, 10:18] = 200
    frames[2, 8:16, 12:20] = 200
    print(float(np.abs(compute_flow(frames)).sum()))
""")


@pytest.mark.slow
def test_compiled_once_then_loaded_from_disk(tmp_path):
    env = {**os.environ, "I3D_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_CACHE_DIR", None)
    runs = [subprocess.run([sys.executable, "-c", _FIRST_USE], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    note = [line for line in runs[0].stderr.splitlines() if "compiled the TV-L1 flow engine" in line]
    assert len(note) == 1 and str(tmp_path / "cache" / "numba") in note[0]
    assert "compiled" not in runs[1].stderr  # the second process loaded it
    assert runs[0].stdout == runs[1].stdout and float(runs[0].stdout) > 0
    assert any((tmp_path / "cache" / "numba").rglob("*.nbi"))



def test_an_interrupt_inside_a_compiler_callback_is_raised_after_it():
    """LLVM calls back into Python while numba compiles (through ctypes, as here); a Ctrl-C handled inside
    such a callback is reported as "Exception ignored" and would be lost: the engine is compiled under
    keep_interrupts, which raises it afterwards, without the report.

    In a fresh interpreter, so that nothing another test left behind can decide it: in the suite's process
    this test crashed (a segfault with no Python traceback, in CI and here) once OpenVINO's CPU plugins had
    left a freed alternate signal stack in place, before the process had one OpenVINO Core (runtime/ov_core)."""
    from support import in_fresh_process

    in_fresh_process(interrupt_inside_a_callback)


def interrupt_inside_a_callback() -> None:
    import ctypes
    import signal

    from i3d.interrupts import keep_interrupts

    def interrupted() -> None:
        signal.raise_signal(signal.SIGINT)  # Python's handler raises KeyboardInterrupt here, in the callback

    def failed() -> None:
        raise ValueError("an ordinary error stays the callback's own")

    callback = ctypes.CFUNCTYPE(None)
    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, lambda unraisable: seen.append(unraisable.exc_type)
    try:
        with pytest.raises(KeyboardInterrupt):
            with keep_interrupts():
                callback(interrupted)()
                seen.append("went on")  # the callback returned: compilation would go on to its end
        with keep_interrupts():
            callback(failed)()
    finally:
        sys.unraisablehook = previous
    assert seen == ["went on", ValueError]
