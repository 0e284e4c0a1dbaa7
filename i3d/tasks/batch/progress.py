"""Progress of a long run: a tqdm bar on a terminal, a plain line now and then elsewhere."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """A tqdm bar on a terminal; otherwise a plain line every ``every`` seconds (and at the end)."""

    def __init__(self, total: int, enabled: bool, every: float = 30.0) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.start = self.last = time.monotonic()
        self.every = every
        self.bar = None
        self.plain = enabled and not sys.stderr.isatty()
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, unit="video", file=sys.stderr, leave=False)

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed)
        now = time.monotonic()
        if self.plain and (now - self.last >= self.every or self.done == self.total):
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"{self.done}/{self.total} videos, {self.failed} failed, {rate:.2f} videos/s, "
                  f"ETA {eta:.0f} s", file=sys.stderr, flush=True)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
