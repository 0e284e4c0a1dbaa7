"""What a server was started with: its limits (:class:`ServeOptions`) and how its model is named (:class:`ServedModel`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from i3d.errors import OptionError
from i3d.serve.guard import split_host

TOKEN_VARIABLE = "I3D_SERVE_TOKEN"
"""The environment variable a token may come from (the command line shows --token to every local user)."""


@dataclass(frozen=True)
class ServeOptions:
    """The server's limits: a bearer token (None: none asked), upload size and video length per request,
    requests run at once and waiting beyond them (then 503 with Retry-After), the folder JSON paths may
    name, where uploads are written while they are used (a private temporary folder by default), and the
    Host names the server answers as beyond its own (``*``: any).

    Slow clients: a connection's request headers must all arrive within ``header_timeout`` seconds, and a
    request's body may pause at most ``read_timeout`` seconds between two pieces (408 otherwise, its slot
    freed). On SIGTERM, requests in flight get ``drain_timeout`` seconds to be answered; those still open
    then are cut (503). None: requests the network is running are let finish (their work is bounded by
    ``max_seconds``), the others (uploading, waiting for a slot) are cut :attr:`drain_seconds` after SIGTERM."""

    token: str | None = None
    max_upload_mb: float = 512.0
    max_seconds: float = 600.0
    concurrency: int = 2
    queue: int = 64
    allow_dir: Path | None = None
    temp_dir: Path | None = None
    retry_after: int = 5
    allowed_hosts: tuple[str, ...] = ()
    header_timeout: float = 10.0
    read_timeout: float = 20.0
    drain_timeout: float | None = None

    @property
    def drain_seconds(self) -> float:
        """Seconds after SIGTERM that requests not yet running are cut: ``drain_timeout``, or by default the
        read timeout plus 5 s (a stalled upload gets its own 408 first)."""
        return self.drain_timeout if self.drain_timeout is not None else self.read_timeout + 5.0

    def check(self) -> None:
        if self.token is not None and not self.token.strip():
            raise OptionError("token", "is empty; give a secret, or no --token")
        for name in ("max_upload_mb", "max_seconds"):
            if not 0 < getattr(self, name) <= 1e6:
                raise OptionError(name, f"must be above 0 and at most 1e6, not {getattr(self, name)}")
        if not 1 <= self.concurrency <= 64:
            raise OptionError("concurrency", f"must be between 1 and 64, not {self.concurrency}")
        if not 0 <= self.queue <= 10000:
            raise OptionError("queue", f"must be between 0 and 10000, not {self.queue}")
        for name in ("header_timeout", "read_timeout", "drain_timeout"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 3600:
                raise OptionError(name, f"must be above 0 and at most 3600 seconds, not {value}")
        for entry in self.allowed_hosts:
            if entry != "*" and split_host(entry) is None:
                raise OptionError("allowed_hosts", f"has {entry!r}, not a host name, address or NAME:PORT")
        if self.allow_dir is not None and not self.allow_dir.is_dir():
            raise OptionError("allow_dir", f"{self.allow_dir} is not a folder")

    def temp_folder(self) -> Path:
        """A new private folder for this server's uploads (inside ``temp_dir`` when one is given)."""
        try:
            return Path(tempfile.mkdtemp(prefix="i3d-serve-", dir=self.temp_dir))
        except OSError as err:
            raise OptionError("temp_dir", f"{self.temp_dir or tempfile.gettempdir()}: cannot make a folder for "
                                          f"uploads there ({err.strerror or err})") from None


def read_token(given: str | None, file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The server's token from one of --token, --token-file (its first line) or $I3D_SERVE_TOKEN; None: none.

    Two of them is a usage error, as is a token file that is empty, unreadable or not UTF-8.
    """
    from_env = environ.get(TOKEN_VARIABLE)
    sources = [name for name, value in (("--token", given), ("--token-file", file), (f"${TOKEN_VARIABLE}", from_env))
               if value is not None]
    if len(sources) > 1:
        raise OptionError("token", f"is given by {' and '.join(sources)}; give it one way only")
    if file is None:
        return given if given is not None else from_env
    if file.exists() and not file.is_file():  # a FIFO would block: only a plain file is opened
        raise OptionError("token_file", f"{file}: is not a plain file; give a file holding the token")
    try:
        with open(file, "rb") as handle:
            raw = handle.read(65537)
    except OSError as err:
        raise OptionError("token_file", f"{file}: cannot be read ({err.strerror or err}); give a file holding "
                                        "the token") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise OptionError("token_file", f"{file}: is not UTF-8 text; write the token in UTF-8") from None
    if not lines or not lines[0].strip() or len(raw) > 65536:
        raise OptionError("token_file", f"{file}: holds no token on its first line (or is over 64 KiB); "
                                        "write the token there") from None
    return lines[0].strip()


@dataclass(frozen=True)
class ServedModel:
    """How answers name the model, as ``evaluate.py --format json`` names it, and what requests default to.

    ``fusion`` is a request's default and ``flow_cache`` the server's own folder: the server passes both down
    into each request (a request may choose its fusion, never the cache), so neither is defined twice.
    """

    type_name: str = "rgb"
    pretrain: str = "kinetics"
    fusion: str = "mean"
    head_path: str | None = None
    flow_cache: Path | None = None
