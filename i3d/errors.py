"""Exceptions that carry the command-line exit code."""


class I3DError(Exception):
    """Base class: a one-line message for stderr and the process exit code."""

    exit_code = 1


class UsageError(I3DError):
    exit_code = 2


class InputError(I3DError):
    """A clip, video or array the tool cannot use (exit code 3)."""

    exit_code = 3


class WeightsError(I3DError):
    """Weights missing, unverifiable or corrupt (exit code 4)."""

    exit_code = 4


def report_errors(action, debug: bool = False) -> int:
    """Run ``action()`` and turn failures into one stderr line and an exit code.

    I3DError gives its own code; Ctrl-C gives 130; anything else gives 1. With
    ``debug`` the exception propagates, traceback and all.
    """
    import sys

    try:
        return action() or 0
    except I3DError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)", file=sys.stderr)
        return 1
