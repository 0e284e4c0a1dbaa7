"""Slow clients: a deadline for a request's headers and a limit on each pause in its body.

A client that opens a connection and sends its headers slowly (or never) is closed once
``header_timeout`` has passed, with a 408 when it had sent part of a request; this is done in the
HTTP protocol itself (:func:`timed_protocol`), since the app sees a request only once its headers are
in. A body that pauses longer than ``read_timeout`` between two pieces raises :class:`BodyTimedOut`
in the app (:class:`BodyTimeout`), which answers 408 and frees the request's admission slot.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from i3d.errors import InputError


class BodyTimedOut(InputError):
    """The request's body paused longer than the server's --read-timeout (HTTP 408)."""


class BodyTimeout:
    """ASGI middleware: each wait for the next piece of a request's body is limited to ``seconds``.

    Only the body is timed: once its last piece has come, a wait (for a disconnect) is left alone.
    ``on_timeout`` is called when the limit is passed, before :class:`BodyTimedOut` is raised.
    """

    def __init__(self, app, seconds: float, on_timeout: Callable[[], None]) -> None:
        self.app, self.seconds, self.on_timeout = app, seconds, on_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        finished = False

        async def timed_receive():
            nonlocal finished
            if finished:
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):
                    message = await receive()
            except TimeoutError:
                self.on_timeout()
                raise BodyTimedOut(f"the request's body paused over {self.seconds:g} s (the server's "
                                   "--read-timeout); send it without stalling") from None
            finished = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return await self.app(scope, timed_receive, send)


def _late_headers(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request's headers did not arrive within {seconds:g} s (the server's "
                                "--header-timeout)", "kind": "timeout"}).encode() + b"\n"
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def timed_protocol(seconds: float, on_timeout: Callable[[], None]) -> type:
    """uvicorn's HTTP/1.1 protocol class, with every request's headers due within ``seconds``.

    The clock starts when the connection opens or its previous answer is sent; it stops when a
    request's headers are complete. When it runs out, a connection that sent nothing is closed, one
    that sent part of a request is answered 408 first; ``on_timeout`` is called for both, unless the
    connection is an idle one kept alive after an answer.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _received = 0  # bytes since the connection opened or its last answer
        _answered = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._settle()

        def data_received(self, data: bytes) -> None:
            self._received += len(data)
            super().data_received(data)
            self._settle()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._received, self._answered = 0, True
            self._settle()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_clock()
            super().connection_lost(exc)

        def _settle(self) -> None:
            """Run the clock while the connection waits for a request's headers, stop it otherwise."""
            waiting = self.cycle is None or self.cycle.response_complete
            if not waiting or self.transport.is_closing():
                self._stop_clock()
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _stop_clock(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not (self.cycle is None or self.cycle.response_complete):
                return
            # bytes of a new request: a 408; after an answer given early, the rest of its body: just closed
            started = self._received > 0 and self.conn.their_state is h11.IDLE
            if started:
                self.transport.write(_late_headers(seconds))
            if started or not self._answered:  # an idle keep-alive connection is no slow client
                on_timeout()
            self.transport.close()

    return TimedH11Protocol
