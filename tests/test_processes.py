"""Worker pools stop at once and leave nothing running behind them."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from i3d.processes import spawn_pool, terminate_pool


@pytest.mark.slow
def test_terminate_pool_ends_workers_and_the_manager_thread():
    """After terminate_pool no worker and no manager thread is left: a manager thread still closing its
    wake-up pipe at interpreter exit races the exit hook and prints a Bad-file-descriptor traceback."""
    pool = spawn_pool(2)
    assert len({pool.submit(os.getpid).result(timeout=60) for _ in range(2)}) >= 1  # workers are up
    futures = [pool.submit(time.sleep, 60) for _ in range(3)]
    deadline = time.monotonic() + 60
    while len(pool._processes or {}) < 2 or not any(f.running() for f in futures):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    processes = list(pool._processes.values())
    manager = pool._executor_manager_thread
    assert manager.is_alive()
    started = time.monotonic()
    terminate_pool(pool, grace=2.0)
    took = time.monotonic() - started
    print(f"terminate_pool took {took:.2f} s")
    # the tasks sleep 60 s: a pool that waited for them (or hung) is still busy at 30 s, whatever the load
    assert took < 30, f"terminate_pool took {took:.1f} s: it waited for the tasks"
    assert not manager.is_alive()
    assert [p.is_alive() for p in processes] == [False, False]
    assert all(f.done() for f in futures)


def _reading_a_message(thread) -> bool:
    """Whether ``thread`` is inside a Connection's read of a message's body."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "_recv" and "connection" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


@pytest.mark.slow
def test_terminate_pool_ends_a_manager_waiting_for_a_result_a_worker_did_not_finish():
    """A worker ended mid-send (a batch's clips are megabytes) left the manager thread reading the rest of the
    message for ever, and the interpreter's exit hook waiting for it: a SIGTERM printed "terminated" and hung."""
    from support import half_a_result

    pool = spawn_pool(1)
    future = pool.submit(half_a_result)
    manager = pool._executor_manager_thread
    deadline = time.monotonic() + 60
    while not _reading_a_message(manager):
        assert time.monotonic() < deadline, "the manager never began reading the worker's message"
        time.sleep(0.05)
    started = time.monotonic()
    terminate_pool(pool, grace=2.0)
    took = time.monotonic() - started
    print(f"terminate_pool took {took:.2f} s")
    assert not manager.is_alive()
    # the worker sleeps 600 s after its half message: a manager left reading it would hold terminate_pool
    assert took < 30, f"terminate_pool took {took:.1f} s: it waited for the worker's message"
    assert future.done()


def test_decoding_workers_use_one_ffmpeg_thread_each_and_decode_the_same_frames():
    """Batch decoding workers run their set-up: one FFmpeg thread per video (the workers share out the cores)."""
    from support import SAMPLES, decode_threads

    from i3d.inputs import video
    from i3d.tasks.batch.video_work import one_decoding_thread

    pool = spawn_pool(1, one_decoding_thread)
    try:
        assert pool.submit(decode_threads).result(timeout=60) == 1
    finally:
        terminate_pool(pool)
    assert video._decode_threads == 0  # this process keeps FFmpeg's own choice
    clip = SAMPLES / "arm_wrestling.mp4"
    default = video.read_video(clip, max_frames=30).frames
    try:
        video.set_decode_threads(1)
        single = video.read_video(clip, max_frames=30).frames
    finally:
        video.set_decode_threads(0)
    assert single.shape == (30, 256, 340, 3)
    np.testing.assert_array_equal(single, default)
    with pytest.raises(ValueError):
        video.set_decode_threads(-1)
