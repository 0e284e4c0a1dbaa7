"""Keep TensorFlow's start-up noise off the user's terminal."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_fd_to_devnull():
    """Point file descriptor 2 at /dev/null; C++ logging ignores Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def silence_tensorflow() -> None:
    """Import TensorFlow with its log lines suppressed (silence-tensorflow plus the pre-absl lines).

    TensorFlow prints a few lines from C++ before its logging is configured; no
    environment variable hides them, so the import runs with stderr closed.
    Python errors raised by the import still surface normally afterwards.
    """
    if "tensorflow" in sys.modules:
        return
    from silence_tensorflow import silence_tensorflow as _silence

    with _stderr_fd_to_devnull():
        _silence()  # sets the log levels, then imports tensorflow


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own log lines off stderr (call before ``import cv2``).

    Problems with a video are reported by i3d as one line; FFmpeg's warnings
    ("moov atom not found", ...) would only repeat them. Settings already in the
    environment win.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def no_openvino_telemetry() -> None:
    """Keep OpenVINO from starting its telemetry (a process that contacts an analytics host and writes
    under ``~/intel``). Call before ``import openvino``: with the telemetry package unimportable,
    OpenVINO's converter uses its own no-op stub.
    """
    sys.modules.setdefault("openvino_telemetry", None)
