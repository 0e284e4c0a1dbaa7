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
