"""A minimal progress bar on stderr: only when stderr is a terminal and the run is long."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total=n) as p: p.advance()``; silent unless stderr is a TTY and the run
    has lasted more than ``delay`` seconds."""

    def __init__(self, total: int, label: str = "", delay: float = 2.0, stream=None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.delay = delay
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> Progress:
        return self

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if not self.enabled or now - self._start < self.delay or now - self._last < 0.2:
            return
        self._last = now
        self._shown = True
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} ({rate:.0f}/s)")
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self._shown:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
