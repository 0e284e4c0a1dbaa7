"""One OpenVINO Core for the whole process, so that OpenVINO's CPU plugin is made once and kept.

Why: the CPU plugin gives the thread that creates it an alternate signal stack and, when the
plugin goes, puts back the stack it found there. Two plugins (one per ``ov.Core()``) that go in
the order they came leave the thread's alternate stack pointing at freed memory. CPython runs
its signal handlers on the alternate stack, so the next Ctrl-C or SIGTERM was a segmentation
fault instead of a clean exit 130/143. A single Core, whose plugin is created when the Core is
and lives until the process ends, leaves nothing to be put back out of order.
"""

from __future__ import annotations

import threading

from i3d.quiet import no_openvino_telemetry

_lock = threading.Lock()
_core = None


def ov_core():
    """The process's ``openvino.Core``, with its CPU plugin already loaded (made on the first call)."""
    global _core
    with _lock:
        if _core is None:
            no_openvino_telemetry()
            import openvino as ov

            core = ov.Core()
            core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # loads the CPU plugin now, first of all
            _core = core
        return _core
