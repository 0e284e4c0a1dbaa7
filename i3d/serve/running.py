"""Running a :class:`~i3d.serve.app.Server` on a listening socket until SIGTERM, with a bounded drain.

On SIGTERM the socket stops accepting and the requests in flight are given ``--drain-timeout`` seconds
to be answered; those still open then (an upload stalled or still arriving, a request waiting for a
slot or being run) are cut: answered 503, their uploads removed, counted in ``i3d_timeouts{phase="drain"}``.
Without ``--drain-timeout``, requests the network is running are let finish (the drain lasts as long as
the longest of them), and the others are cut ``--read-timeout`` + 5 s after SIGTERM.
Log lines of the libraries underneath (uvicorn, python-multipart) reach stderr as the server's own do:
``warning: uvicorn: ...``, one line each.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys

from i3d.serve.app import Server, create_app
from i3d.serve.guard import HostPolicy
from i3d.serve.timeouts import timed_protocol


class OneLineFormatter(logging.Formatter):
    """``level: library: message`` on one line (an exception as its type and first line)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text = f"{text}: {type(error).__name__}: {error}"
        text = " ".join(part.strip() for part in text.splitlines() if part.strip())
        return f"{record.levelname.lower()}: {record.name.split('.')[0]}: {text}"


def route_library_logs(stream=None) -> logging.Handler:
    """Send every logger's warnings and errors to ``stream`` (stderr) through :class:`OneLineFormatter`."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "python_multipart"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


def serve(server: Server, sock: socket.socket, hosts: HostPolicy) -> int:
    """Answer on ``sock`` (already listening) until SIGTERM or Ctrl-C; returns how many requests the
    drain cut. The uploads folder is left to the caller, who made the server."""
    import uvicorn  # the serve extra, imported when a server runs

    options = server.options
    handler = route_library_logs()
    protocol = timed_protocol(options.header_timeout, server.metrics.timeouts.labels("headers").inc)
    config = uvicorn.Config(create_app(server, hosts), log_level="warning", log_config=None, http=protocol,
                            timeout_graceful_shutdown=options.drain_timeout, limit_concurrency=None,
                            access_log=False)

    class Draining(uvicorn.Server):
        """uvicorn's server, cutting the requests not yet running ``drain_seconds`` into its shutdown."""

        async def shutdown(self, sockets=None) -> None:
            asyncio.get_running_loop().call_later(options.drain_seconds, server.cut_pending)
            await super().shutdown(sockets)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:  # uvicorn drains on SIGTERM, then raises it again: here that is ignored
        Draining(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.getLogger().removeHandler(handler)
    return int(server.metrics.registry.get_sample_value("i3d_timeouts_total", {"phase": "drain"}) or 0)
