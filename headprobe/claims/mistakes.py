"""Every independent mistake of one hypothesis file, kept so that one run reports them all.

A reading step runs under `Mistakes.attempt`: a `ClaimFileError` it raises is kept (in the order
raised) and the step's value is None. A step that fails only because of a mistake already kept
(a claim over a sentence set that is itself in error, a claim whose fields were each reported)
raises `Reported` instead, which is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from headprobe.errors import ClaimFileError

__all__ = ["Mistakes", "Reported"]

T = TypeVar("T")


class Reported(Exception):
    """Raised instead of an error that would only repeat one already kept (a claim over a set
    that is itself in error)."""


@dataclass
class Mistakes:
    """The mistakes kept so far, in the order they were found."""

    errors: list[ClaimFileError] = field(default_factory=list)

    def attempt(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None when it raised a `ClaimFileError`, which is kept in ``errors``
        so that every independent mistake of a file is reported in one run."""
        try:
            return read()
        except Reported:
            return None
        except ClaimFileError as error:
            self.errors.append(error)
            return None

    def add(self, error: ClaimFileError) -> None:
        """Keep ``error`` (a mistake found without raising)."""
        self.errors.append(error)

    def since(self, count: int) -> bool:
        """Whether a mistake was kept after the first ``count``."""
        return len(self.errors) > count
