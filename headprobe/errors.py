"""Errors users can act on, and the exit codes of every headprobe command.

One family of exceptions is raised anywhere in headprobe for bad input; the command line catches
`HeadprobeError` once and prints ``ERROR: <message>`` on stderr (never a traceback). Messages
follow one wording: where (``file:line: field:``), what was wrong, the bad value, what is valid,
what to do.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """The same numbers pytest uses, for every headprobe command."""

    OK = 0
    TESTS_FAILED = 1
    INTERRUPTED = 2
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4
    NO_TESTS_COLLECTED = 5


class ClaimWarning(UserWarning):
    """A claim that is valid but weaker than it looks (it can never pass, for one): shown in
    pytest's warnings summary at its file and line."""


class CacheWarning(UserWarning):
    """A cache could not be written (a full disk, a read-only folder): the run goes on without
    caching what it computed."""


class HeadprobeError(Exception):
    """Base class: bad input a user can fix. ``exit_code`` says how the CLI ends."""

    exit_code: ExitCode = ExitCode.USAGE_ERROR


class UsageError(HeadprobeError):
    """Wrong command-line use, or a model that cannot be had (exit 4)."""

    exit_code = ExitCode.USAGE_ERROR


class ModelNotFoundError(UsageError):
    """A model spec that resolves to nothing: says where it looked and what to do."""


class ModelFormatError(UsageError):
    """A checkpoint we cannot use: unsupported architecture, missing/misshapen weight, pickle."""


class ClaimFileError(HeadprobeError):
    """A malformed hypothesis file or claim; a pytest collection error (exit 2).

    ``str()`` gives ``file:line: field: message`` so the user can jump to it.
    """

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        if self.field:
            where += f"{self.field}: "
        return printable(where + self.message)

    def located(self, *, file: str | None = None, line: int | None = None,
                field: str | None = None) -> ClaimFileError:
        """The same error with a location filled in where it was missing."""
        return type(self)(self.message, file=self.file or file, line=self.line or line,
                          field=self.field or field)


class ClaimFileErrors(ClaimFileError):
    """Several independent mistakes in one file, reported together (as a compiler does); each
    is a `ClaimFileError` of its own, in the order of the file."""

    def __init__(self, errors: list[ClaimFileError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)

    def _render(self) -> str:
        if not getattr(self, "errors", None):
            return super()._render()
        return (f"{len(self.errors)} mistakes in this file:\n"
                + "\n".join(str(error) for error in self.errors))


class FileOutsideProject(ClaimFileError):
    """A hypothesis file names a file outside the folders it may read (the project, and those
    allowed with ``--allow-files-under`` or ``files_under``): a usage error (exit 4), raised
    once collection ends, so that nothing of the file is read or published."""

    exit_code = ExitCode.USAGE_ERROR


def collected(errors: list[ClaimFileError]) -> ClaimFileError:
    """The one error, or all of them as a `ClaimFileErrors`, each message once."""
    unique = list({str(error): error for error in errors}.values())
    return unique[0] if len(unique) == 1 else ClaimFileErrors(unique)


def printable(text: str) -> str:
    """``text`` safe to print anywhere: every lone surrogate and control character other than
    a line break or tab becomes U+FFFD, one character for one (carets stay aligned)."""
    return _UNPRINTABLE.sub("\ufffd", text)


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'next'?)`` for the closest valid name, or ``''``."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
