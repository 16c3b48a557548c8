"""Progress bars for long forward passes: tqdm, on the real terminal, only where a person watches.

`progress_bars` gives a factory ``bars(total, label)`` of tqdm bars, or None when no bar should
show: with ``-q``, when stderr is not a terminal, and in CI logs (``$CI`` set). Under pytest the
bar writes through `SuspendedCapture`: pytest captures sys.stderr while a test runs, so each write
suspends the capture, as pytest's own live logging does, and lands on the terminal. A bar appears
only once its work has lasted ``$HEADPROBE_PROGRESS_DELAY`` seconds (default 1) and is cleared
when done.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, Protocol

DELAY_ENV = "HEADPROBE_PROGRESS_DELAY"


class Progress(Protocol):
    def advance(self, count: int = 1) -> None: ...


#: ``progress(total, label)``: a context manager giving a `Progress` (a bar, or nothing).
ProgressFactory = Callable[[int, str], contextlib.AbstractContextManager[Progress]]


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, count: int = 1) -> None:
        return None


def bar_or_none(progress: ProgressFactory | None, total: int,
                label: str) -> contextlib.AbstractContextManager[Progress]:
    """``progress(total, label)``, or a bar that shows nothing when ``progress`` is None."""
    return progress(total, label) if progress is not None else _NoBar()


class SuspendedCapture(io.TextIOBase):
    """A text stream that writes to the process's stderr with pytest's capture suspended."""

    def __init__(self, suspended: Callable[[], contextlib.AbstractContextManager[Any]]) -> None:
        self._suspended = suspended
        self._started = False

    def write(self, text: str) -> int:
        with self._suspended():
            if not self._started:  # a line of its own: pytest's progress line stays whole
                sys.stderr.write("\n")
                self._started = True
            sys.stderr.write(text)
            sys.stderr.flush()
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return True


def wanted(verbosity: int, stream: Any = None) -> bool:
    """Whether a bar should show: not ``-q``, not in CI logs, and stderr a terminal."""
    stream = sys.__stderr__ if stream is None else stream
    return (verbosity >= 0 and not os.environ.get("CI")
            and bool(getattr(stream, "isatty", lambda: False)()))


def progress_bars(verbosity: int, *,
                  suspended: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
                  ) -> Callable[[int, str], contextlib.AbstractContextManager[Any]] | None:
    """``bars(total, label)``: a context manager giving a bar with ``advance(count)``, or None
    when no bar should show (`wanted`). ``suspended``: pytest's capture manager's
    ``global_and_fixture_disabled`` when running under pytest."""
    if suspended is not None:
        with suspended():  # under pytest, stderr is a terminal only with its capture suspended
            if not wanted(verbosity, sys.stderr):
                return None
    elif not wanted(verbosity):
        return None
    stream: Any = SuspendedCapture(suspended) if suspended is not None else sys.stderr

    @contextlib.contextmanager
    def bars(total: int, label: str) -> Iterator[_Bar]:
        from tqdm import tqdm  # imported only when a bar is wanted

        with tqdm(total=total, desc=label, unit="sentence", file=stream, leave=False,
                  dynamic_ncols=True, mininterval=0.2, delay=_delay()) as bar:
            yield _Bar(bar)

    return bars


class _Bar:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def advance(self, count: int = 1) -> None:
        self._bar.update(count)


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get(DELAY_ENV, "1")))
    except ValueError:
        return 1.0
