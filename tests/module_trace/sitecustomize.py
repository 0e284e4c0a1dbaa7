"""Loaded by every Python process started with this folder on PYTHONPATH (tests/fast_tier_modules.py does it):
records which files of the i3d package ran a function in this process, into $I3D_MODULE_TRACE/<pid>.txt."""

import atexit
import os
import sys
import threading

_FOLDER = os.environ.get("I3D_MODULE_TRACE")
_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "i3d") + os.sep
_ran: set[str] = set()


def _profile(frame, event, arg):
    if event == "call":
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE) and name not in _ran and frame.f_code.co_name != "<module>":
            _ran.add(name)


def _write() -> None:
    with open(os.path.join(_FOLDER, f"{os.getpid()}.txt"), "a") as out:
        out.write("".join(f"{name}\n" for name in sorted(_ran)))


if _FOLDER:
    sys.setprofile(_profile)
    threading.setprofile(_profile)
    atexit.register(_write)
