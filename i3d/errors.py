"""The library's errors: ``ValueError`` subclasses whose messages speak of values.

The command line maps each class to its exit code and an option's name to its
flag (see :mod:`i3d.commands.shell`); nothing here knows about flags.
"""

from __future__ import annotations


class I3DError(ValueError):
    """Base class of every error the library raises on purpose; its message is one line."""


class OptionError(I3DError):
    """An option value no run could use (a window of 8 frames, an unknown backend).

    ``option`` names the setting (``window``, ``max_frames``...); the message
    reads as a sentence that follows that name.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.detail = message
        super().__init__(f"{option} {message}")


class InputError(I3DError):
    """A clip, video or array the network cannot use."""


class WeightsError(I3DError):
    """Weights missing, unverifiable or corrupt."""
