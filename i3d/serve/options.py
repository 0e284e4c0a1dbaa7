"""What a server was started with: its limits (:class:`ServeOptions`) and how its model is named (:class:`ServedModel`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from i3d.errors import OptionError


@dataclass(frozen=True)
class ServeOptions:
    """The server's limits: a bearer token (None: none asked), upload size and video length per request,
    requests run at once and waiting beyond them (then 503 with Retry-After), the folder JSON paths may
    name, and where uploads are written while they are used (a private temporary folder by default)."""

    token: str | None = None
    max_upload_mb: float = 512.0
    max_seconds: float = 600.0
    concurrency: int = 2
    queue: int = 64
    allow_dir: Path | None = None
    temp_dir: Path | None = None
    retry_after: int = 5

    def check(self) -> ServeOptions:
        if self.token is not None and not self.token.strip():
            raise OptionError("token", "is empty; give a secret, or no --token")
        for name in ("max_upload_mb", "max_seconds"):
            if not 0 < getattr(self, name) <= 1e6:
                raise OptionError(name, f"must be above 0 and at most 1e6, not {getattr(self, name)}")
        if not 1 <= self.concurrency <= 64:
            raise OptionError("concurrency", f"must be between 1 and 64, not {self.concurrency}")
        if not 0 <= self.queue <= 10000:
            raise OptionError("queue", f"must be between 0 and 10000, not {self.queue}")
        if self.allow_dir is not None and not self.allow_dir.is_dir():
            raise OptionError("allow_dir", f"{self.allow_dir} is not a folder")
        return self

    def temp_folder(self) -> Path:
        """A new private folder for this server's uploads (inside ``temp_dir`` when one is given)."""
        try:
            return Path(tempfile.mkdtemp(prefix="i3d-serve-", dir=self.temp_dir))
        except OSError as err:
            raise OptionError("temp_dir", f"{self.temp_dir or tempfile.gettempdir()}: cannot make a folder for "
                                          f"uploads there ({err.strerror or err})") from None


@dataclass(frozen=True)
class ServedModel:
    """How answers name the model, as ``evaluate.py --format json`` names it, and what requests default to."""

    type_name: str = "rgb"
    pretrain: str = "kinetics"
    fusion: str = "mean"
    head_path: str | None = None
    flow_cache: Path | None = None
