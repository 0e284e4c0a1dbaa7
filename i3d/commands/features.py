"""``i3d features``: ``i3d batch`` that also writes each video's per-window 1024-d features."""

from __future__ import annotations

from i3d.commands import batch


def main(argv: list[str] | None = None, prog: str = "i3d features") -> int:
    return batch.main(argv, prog, features=True)
