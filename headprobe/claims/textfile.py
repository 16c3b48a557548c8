"""Reading a user's text file (a hypothesis file, a sentence file) within bounds.

`read_user_text` reads only a regular file (a FIFO, a device or a folder is refused before it is
opened for reading, so nothing blocks or streams forever), at most `max_file_bytes` bytes
(``$HEADPROBE_MAX_FILE_MB``, default `DEFAULT_MAX_FILE_MB`), decodes it as UTF-8 and refuses
characters no text file of ours should hold (NUL, other control characters, non-characters).
Every refusal is a `TextFileProblem` that says what was wrong and, when it is about the content,
the 1-based line and column; callers turn it into their own located `ClaimFileError`.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_MB_ENV = "HEADPROBE_MAX_FILE_MB"
DEFAULT_MAX_FILE_MB = 64
# What YAML allows in a stream (YAML 1.1 "printable"), and what we allow in sentence files too:
# tab, line breaks, and every printable character; not NUL, other C0/C1 controls, DEL,
# surrogates or U+FFFE/U+FFFF.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd"
                            "\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class TextFileProblem(Exception):
    """Why a file could not be read as text; ``line``/``column`` (1-based) when it is about a
    place in it."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return self.message


def max_file_megabytes() -> float:
    """The most MiB headprobe reads from one user file: ``$HEADPROBE_MAX_FILE_MB`` when it is a
    positive number, else `DEFAULT_MAX_FILE_MB`."""
    raw = os.environ.get(MAX_FILE_MB_ENV, "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_MAX_FILE_MB
    except ValueError:
        megabytes = DEFAULT_MAX_FILE_MB
    return min(megabytes, 1 << 20) if megabytes > 0 else DEFAULT_MAX_FILE_MB


def max_file_bytes() -> int:
    """`max_file_megabytes` in bytes."""
    return int(max_file_megabytes() * (1 << 20))


def read_user_text(path: str | os.PathLike[str]) -> str:
    """The text of a regular UTF-8 file of at most `max_file_bytes` bytes.

    Raises FileNotFoundError, IsADirectoryError and other OSErrors as `open` does, and
    `TextFileProblem` for a special file, a file over the cap, bytes that are not UTF-8 or a
    character that is not printable.
    """
    cap = max_file_bytes()
    data = read_regular_bytes(path, cap)
    if len(data) > cap:
        raise TextFileProblem(
            f"the file is larger than {max_file_megabytes():g} MiB ({cap:,} bytes), the most "
            f"headprobe reads from one file; split it, or raise the limit with "
            f"{MAX_FILE_MB_ENV}=N (MiB)")
    return decode_user_text(data)


def read_regular_bytes(path: str | os.PathLike[str], cap: int) -> bytes:
    """At most ``cap + 1`` bytes of the regular file ``path`` (a symbolic link is followed):
    more than ``cap`` bytes means the file is larger. A FIFO, a device or a socket is refused
    (`TextFileProblem`) before it is opened for reading, so nothing blocks or streams forever;
    a folder raises IsADirectoryError, a missing file FileNotFoundError."""
    path = Path(path)
    info = stat_regular(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    handle = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):  # replaced since the stat above
            raise TextFileProblem("is not a regular file; give the path of a text file")
        with os.fdopen(handle, "rb", closefd=False) as stream:
            return stream.read(cap + 1)
    finally:
        os.close(handle)


def stat_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat(path)`` (a symbolic link is followed) of a regular file or a folder, without
    opening it: a path with a NUL, a FIFO, a device or a socket is a `TextFileProblem`; a
    missing file raises FileNotFoundError, as `os.stat` does."""
    try:
        info = os.stat(path)
    except ValueError:  # e.g. an embedded NUL in the path
        raise TextFileProblem("the path contains a NUL character; fix the path") from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise TextFileProblem(f"{special_file_kind(info.st_mode)} is not a regular file; give "
                              f"the path of a text file")
    return info


def decode_user_text(data: bytes) -> str:
    """``data`` as UTF-8 (a leading byte-order mark dropped), every character printable."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise TextFileProblem(f"byte 0x{data[error.start]:02x} at line {line} (byte {column} of "
                              f"the line) is not UTF-8; save the file as UTF-8",
                              line, column) from None
    text = text.removeprefix("\ufeff")
    check_printable(text)
    return text


def first_unprintable(text: str) -> int | None:
    """The index of the first character of ``text`` no text file of ours may hold (NUL, other
    control characters, lone surrogates, non-characters), or None."""
    bad = _NOT_PRINTABLE.search(text)
    return None if bad is None else bad.start()


def check_printable(text: str) -> None:
    """Raise `TextFileProblem` at the first character that is not printable."""
    position = first_unprintable(text)
    if position is None:
        return
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    raise TextFileProblem(f"{describe_character(text[position])} at line {line}, column {column}; "
                          f"remove it (text files hold printable characters, tabs and line "
                          f"breaks)", line, column)


def describe_character(char: str) -> str:
    """``'U+0000 (a control character)'`` and the like, for errors about one character."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        kind = "a lone surrogate, half of a UTF-16 pair"
    elif code < 0x20 or 0x7F <= code < 0xA0:
        kind = "a control character"
    else:
        kind = "a non-character"
    return f"U+{code:04X} ({kind})"


def special_file_kind(mode: int) -> str:
    """What a file that is not a regular file is (``a named pipe (FIFO)``, ``a device``)."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "it"
