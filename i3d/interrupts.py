"""Ctrl-C and SIGTERM that stop a block even where a library swallows them."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


def _python_handlers(signals: tuple[int, ...]) -> dict[int, object]:
    """The Python-level handlers of ``signals`` that can be replaced here: none outside the main thread
    (only it may change handlers), and none for a signal ignored or left to its default action."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {signum: signal.getsignal(signum) for signum in signals}
    return {signum: handler for signum, handler in handlers.items() if callable(handler)}


@contextlib.contextmanager
def keep_interrupts(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Let Ctrl-C (or a SIGTERM handler's exception) stop the block, even where a library swallows it.

    OpenVINO's converter catches a KeyboardInterrupt raised inside TensorFlow's tracing and
    raises ``RuntimeError("... Converting input model KeyboardInterrupt ...")`` instead; LLVM
    (numba's compiler) calls back into Python through ctypes, which reports an exception raised
    there as "Exception ignored" and goes on. Around the block each Python-level handler of
    ``signals`` is wrapped to remember the exception it raises; an Exception (or a fresh
    KeyboardInterrupt: Ray's waits raise one in place of a handler's exception) that ends the block
    after one is replaced by it, a block that swallowed it entirely raises it at its end, and one
    Python would report as unraisable is not printed. Signal handlers can only be changed in the
    main thread: elsewhere the block runs as is.
    """
    raised: list[BaseException] = []
    previous = _python_handlers(signals)
    unraisable_hook = sys.unraisablehook
    if previous:
        for signum, handler in previous.items():

            def remembering(number, frame, handler=handler):
                try:
                    handler(number, frame)
                except BaseException as exc:
                    raised.append(exc)
                    raise

            signal.signal(signum, remembering)

        def quiet(unraisable) -> None:  # raised again at the block's end: not "Exception ignored"
            if not any(unraisable.exc_value is exc for exc in raised):
                unraisable_hook(unraisable)

        sys.unraisablehook = quiet
    try:
        yield
    except (Exception, KeyboardInterrupt) as err:  # Ray turns a handler's exception into a KeyboardInterrupt
        if raised and err is not raised[0]:
            raise raised[0] from err
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = unraisable_hook
    if raised:
        raise raised[0]


@contextlib.contextmanager
def signals_held(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then act on the first that came.

    For imports a signal must not break halfway: numba's C extensions turn an exception raised
    while they load into an ImportError and print its traceback. Each Python-level handler is
    replaced by one that only remembers the signal (whatever thread the OS delivers it to), and
    the real handler runs once the block is done. Only in the main thread; elsewhere the block
    runs as is.
    """
    held: list[tuple[int, object]] = []
    previous = _python_handlers(signals)
    for signum in previous:
        signal.signal(signum, lambda number, frame: held.append((number, frame)))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        number, frame = held[0]
        previous[number](number, frame)
