"""The process shell every command runs in: one-line errors, exit codes, signals, the network block.

Exit codes: 0 success, 1 unexpected (rerun with --debug), 2 usage (bad flags
or flag combinations, an output that cannot be written), 3 bad input, 4
weights unavailable or corrupt, 5 a batch in which some videos failed, 130
interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 standard output closed
early (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator

from i3d.errors import I3DError, InputError, OptionError, WeightsError

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = ((OptionError, 2), (InputError, 3), (WeightsError, 4))
FAILED_EXIT = 5
"""Exit code of a batch in which some videos failed (each is recorded with its error)."""


class UsageError(Exception):
    """Flags that contradict each other (exit code 2); the message speaks of flags."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` (temporary files, worker processes) runs."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: ... (see PROG --help)`` on stderr, exit code 2."""

    def error(self, message: str):
        print(f"error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


@contextlib.contextmanager
def folder_errors_as_usage() -> Iterator[None]:
    """An OptionError about ``folder`` (a command's positional DIR, not a flag) becomes a usage line
    with the library's own words; any other error passes."""
    try:
        yield
    except OptionError as err:
        if err.option != "folder":
            raise
        raise UsageError(err.detail) from None


def flag(option: str) -> str:
    """The command-line flag of a library option name: ``max_frames`` -> ``--max-frames``."""
    return "--" + option.replace("_", "-")


def one_line(text: str) -> str:
    """``text`` on one line: any line breaks (from a file name, a library's message) become spaces."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text).strip())


def message(err: Exception) -> str:
    """The one-line message for ``err``, option names turned into flags."""
    if isinstance(err, OptionError):
        return one_line(f"{flag(err.option)} {err.detail}")
    return one_line(str(err))


def _show_warning(text, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``warning: ...`` on one line, without the source line Python adds."""
    print(f"warning: {one_line(str(text))}", file=sys.stderr)


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _command_environment() -> Iterator[None]:
    """One-line warnings, SIGTERM as an exception, and file names printed as their raw bytes."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (a library caller running a command): leave signals alone
        previous = None
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                # a file name that is not valid UTF-8 prints as its own bytes, as `ls` would
                stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def exit_code(err: Exception) -> int:
    if isinstance(err, UsageError):
        return 2
    for kind, code in EXIT_CODES:
        if isinstance(err, kind):
            return code
    return 1


def _interruption(err: BaseException) -> BaseException | None:
    """The SIGTERM (:class:`Terminated`) or Ctrl-C behind ``err``, if its causes hold one."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (Terminated, KeyboardInterrupt)):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_command(action: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``action()`` and turn failures into one stderr line and an exit code.

    Library errors and usage errors give their own codes; Ctrl-C gives 130 and
    SIGTERM 143 (each one line, after every cleanup has run); anything else
    gives 1. With ``debug`` the exception propagates, traceback and all.
    """
    try:
        with _command_environment():
            code = action() or 0
            sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit has nowhere to fail
        return 141
    except (I3DError, UsageError) as err:
        if debug:
            raise
        print(f"error: {message(err)}", file=sys.stderr)
        return exit_code(err)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        stopped = _interruption(err)
        if stopped is not None:  # a library turned the signal into its own error (numba, mid-import)
            print("terminated" if isinstance(stopped, Terminated) else "interrupted", file=sys.stderr)
            return 143 if isinstance(stopped, Terminated) else 130
        print(f"error: unexpected {type(err).__name__}: {one_line(str(err))} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


def forbid_network() -> None:
    """``--offline``: make every socket connection and name lookup in this process fail at once.

    Downloads are already off with ``--offline``; this makes the promise hold for
    anything else a library might try (telemetry, update checks) as well.
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access is off (--offline)")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse


def weight_store():
    """The weights folder commands use (:func:`i3d.weights.store.default_weights_dir`)."""
    from i3d.weights.store import WeightStore

    return WeightStore.from_environment()
