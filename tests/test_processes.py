"""Worker pools stop at once and leave nothing running behind them."""

from __future__ import annotations

import os
import time

from i3d.processes import spawn_pool, terminate_pool


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
    assert took < 4.5, f"terminate_pool took {took:.1f} s"
    assert not manager.is_alive()
    assert [p.is_alive() for p in processes] == [False, False]
    assert all(f.done() for f in futures)
