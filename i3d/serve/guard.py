"""Who may talk to the server: the names it answers as, the origins that may POST to it, the bearer token.

A page on another site can reach a server on this machine through the browser: by DNS rebinding (a name of
its own that resolves to 127.0.0.1, so the Host header is that name) or by a cross-site form POST (the
Origin header is the other site). :class:`Guard` answers the first 400 and the second 403 before any route
runs; a request carrying the valid token is let through whatever its Origin.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""What a client on this machine calls a server bound to loopback (or to every address)."""
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def token_matches(header: bytes | None, token: str) -> bool:
    """Whether an Authorization header's raw bytes are ``Bearer <token>``, the token in UTF-8 (constant time)."""
    scheme, _, given = (header or b"").strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(b" \t"), token.encode("utf-8"))


def split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port or None) of a Host header or ``--allowed-hosts`` entry; None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port = value.partition(":")
        port = port if colon else None
        if ":" in (port or ""):
            return None
    if not name or any(ch.isspace() or ch in "/@?#\\" for ch in name):
        return None
    if port is not None and not (port.isdigit() and 0 < int(port) <= 65535):
        return None
    return name, int(port) if port is not None else None


def _is_loopback_or_any(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True)
class HostPolicy:
    """The Host names the server answers as: its own (with its port, or none), and ``--allowed-hosts``
    entries (``NAME`` with any port, ``NAME:PORT`` with that one; ``*``: any Host)."""

    own: frozenset[str]
    port: int | None
    extra: frozenset[tuple[str, int | None]] = frozenset()
    any_host: bool = False

    @classmethod
    def listening_as(cls, bound: tuple[str, ...], port: int | None, allowed: tuple[str, ...] = ()) -> HostPolicy:
        """The policy of a server bound to the names ``bound`` (as given and as the socket tells) on ``port``."""
        own = {name.strip("[]").lower() for name in bound if name}
        if any(_is_loopback_or_any(name) for name in own):
            own.update(LOOPBACK_NAMES)
        extra = {split_host(entry) for entry in allowed if entry != "*"}
        return cls(frozenset(own), port, frozenset(entry for entry in extra if entry is not None), "*" in allowed)

    def accepts(self, name: str, port: int | None) -> bool:
        if name in self.own and (port is None or self.port is None or port == self.port):
            return True
        return (name, None) in self.extra or (name, port) in self.extra

    def accepts_host(self, value: str) -> bool:
        """Whether a Host header names this server."""
        parts = split_host(value)
        return parts is not None and (self.any_host or self.accepts(*parts))

    def accepts_origin(self, origin: str, host: str) -> bool:
        """Whether an Origin header is one of this server's own (or the request's Host, as behind a proxy)."""
        try:
            url = urlsplit(origin.strip())
            port = url.port
        except ValueError:
            return False
        if url.scheme not in ("http", "https") or not url.hostname or url.path or url.query:
            return False
        if url.netloc.lower() == host.strip().lower():
            return True
        return self.accepts(url.hostname.lower(), port if port is not None else {"http": 80, "https": 443}[url.scheme])

    def names(self) -> str:
        """The names accepted, for a message (IPv6 addresses in brackets)."""
        def shown(name: str, port: int | None) -> str:
            text = f"[{name}]" if ":" in name else name
            return f"{text}:{port}" if port else text

        return ", ".join([shown(name, self.port) for name in sorted(self.own)]
                         + sorted(shown(name, port) for name, port in self.extra))


class Guard:
    """ASGI middleware: a Host not in ``policy`` gets 400, a non-GET request from another origin 403
    unless it carries ``token``; both as one JSON line ``{"error": ..., "kind": ...}``."""

    def __init__(self, app, policy: HostPolicy, token: str | None) -> None:
        self.app, self.policy, self.token = app, policy, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan; the app has no websocket routes
            return await self.app(scope, receive, send)
        hosts = [value for key, value in scope["headers"] if key.lower() == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if host is None or not self.policy.accepts_host(host):
            shown = "no Host header" if not hosts else ("several Host headers" if len(hosts) > 1 else f"Host {host!r}")
            return await _refuse(send, 400, f"{shown}: this server answers as {self.policy.names()} only (a page on "
                                            "another site may not use it); start it with --allowed-hosts NAME to add "
                                            "a name", "host")
        headers = {key.lower(): value for key, value in scope["headers"]}
        origin = headers.get(b"origin")
        method = scope.get("method", "GET").encode()
        if origin is not None and method not in SAFE_METHODS:
            text = origin.decode("latin-1")
            if not self.policy.accepts_origin(text, host) and not (
                    self.token is not None and token_matches(headers.get(b"authorization"), self.token)):
                return await _refuse(send, 403, f"a {method.decode()} from another site ({text!r}) is refused: "
                                                "send it from the server's own page, or with its bearer token",
                                     "forbidden")
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, message: str, kind: str) -> None:
    body = json.dumps({"error": message, "kind": kind}).encode() + b"\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
