"""Worker process pools that start safely and stop at once: one mechanism for flow pairs and batch decoding.

Workers are spawned, not forked (a forked child deadlocks in OpenCV once the
parent has used its thread pool; spawned workers re-import the caller's
``__main__``, so keep heavy imports out of its top level). Each worker leaves
Ctrl-C to the parent and, on Linux, dies with it. :func:`terminate_pool` ends
work in progress instead of letting it finish, for interrupts and errors.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: signal sent to a process when its parent dies


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _init_worker(parent_pid: int, setup: Callable[[], None] | None = None) -> None:
    """Pool worker set-up: leave Ctrl-C to the parent and die with it (Linux), then the caller's ``setup``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    import threading

    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore: a worker ended by terminate_pool would leave it
    # registered, and the resource tracker would print a "leaked semaphore" warning when the run stops
    tqdm.set_lock(threading.RLock())
    if setup is not None:
        setup()


def spawn_pool(workers: int, setup: Callable[[], None] | None = None) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that ignore Ctrl-C and end with this process.

    ``setup`` (picklable: a module-level function or a partial of one) runs once in each worker.
    """
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_worker, initargs=(os.getpid(), setup))


def terminate_pool(pool: cf.ProcessPoolExecutor, grace: float = 2.0) -> None:
    """Stop a pool now: running work is abandoned, queued work cancelled, workers ended (killed after ``grace`` s).

    Returns once the pool's manager thread has ended too: while it is still
    closing its wake-up pipe, the interpreter's exit hook for pools may write
    to that pipe and print an ``OSError: Bad file descriptor`` traceback
    (CPython 3.11 does not lock that write). A worker ended while it was
    sending a result (a video's clips are megabytes) leaves the manager
    waiting for the rest of that message, for ever, and the exit hook waits
    for the manager: once the workers are gone, this process's own end of
    the result pipe is closed, so the manager reads the end of the pipe and
    stops.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    results = getattr(manager, "result_queue", None)
    terminate_workers = getattr(pool, "terminate_workers", None)  # Python 3.14+
    try:
        if terminate_workers is not None:
            terminate_workers()
        else:
            for process in processes:
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
    except (OSError, ValueError, RuntimeError):
        pass
    sentinels = {}
    for process in processes:
        try:
            sentinels[process.sentinel] = process
        except ValueError:  # already closed
            pass
    deadline = time.monotonic() + grace
    while sentinels and time.monotonic() < deadline:
        for ended in multiprocessing.connection.wait(list(sentinels), max(0.0, deadline - time.monotonic())):
            sentinels.pop(ended, None)
    for process in sentinels.values():  # ignored SIGTERM for `grace` seconds
        try:
            process.kill()
        except (OSError, ValueError):
            pass
    if manager is None:
        return
    manager.join(min(grace, 0.5))
    if manager.is_alive() and results is not None:  # stuck in a message a worker did not finish
        try:
            results._writer.close()
        except (OSError, AttributeError):
            pass
    manager.join(grace)
