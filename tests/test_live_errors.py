"""A live run that never started says one thing, its error: no summary line before it."""

from __future__ import annotations

import socket

from support import SAMPLES, run_cli


def test_top_k_0_is_one_usage_line_before_any_weights(tmp_path):
    proc = run_cli("live", str(SAMPLES / "arm_wrestling.mp4"), "--top-k", "0", "--offline",
                   weights_dir=tmp_path / "no-weights", module="i3d")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["error: --top-k must be at least 1, not 0"], proc.stderr


def test_a_source_that_cannot_be_opened_has_no_summary(shared_weights_dir):
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        proc = run_cli("live", f"tcp://127.0.0.1:{port}", "--open-timeout", "3", "--reconnect", "0", "--offline",
                       weights_dir=shared_weights_dir, module="i3d")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "summary" not in proc.stderr, proc.stderr
