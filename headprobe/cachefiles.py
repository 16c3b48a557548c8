"""What every on-disk cache of headprobe shares: bounded reads, stale temporaries, one warning,
owner-only files.

A cache is never the source of truth. Whatever is read back from one is read within a bound
(`read_cache_file` reads only a regular file, and at most the size the caller expects) and
verified by the caller (a digest over everything that can change a result); what fails is
ignored, recomputed, and reported once per run and kind as a `CacheWarning` (`Problems`).

A cache holds the user's sentences, so it is private: the folders headprobe creates are 0700
(`private_folder`; a folder that exists already, which the user may have made, is left as it is)
and its files 0600 (`headprobe.atomic.write_atomic`'s mode, `private_file` for SQLite's).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import time
import warnings
from pathlib import Path

from headprobe.errors import CacheWarning

TEMPORARY_PREFIX = ".tmp-"  # `headprobe.atomic.write_atomic` names its temporaries so
STALE_SECONDS = 3600.0  # a temporary this old is left over, whoever wrote it
ORPHAN_SECONDS = 60.0  # ... or this old when the process named in it is gone
# Exactly the names write_atomic gives its temporaries: .tmp-PID-THREAD-N, then the suffix.
_TEMPORARY = re.compile(r"\.tmp-(\d+)-\d+-\d+(?:\.[A-Za-z0-9]+)*\Z")


class Problems:
    """Warns once per kind of damage (``forward cache``, ``compiled program`` ...) per run."""

    def __init__(self) -> None:
        self._told: set[str] = set()

    def damaged(self, kind: str, where: os.PathLike[str] | str, why: str) -> None:
        """A ``kind`` entry at ``where`` failed verification (``why``): say so once."""
        if kind in self._told:
            return
        self._told.add(kind)
        warnings.warn(CacheWarning(
            f"headprobe's {kind} at {where} held damaged data ({why}); it was ignored and is "
            f"recomputed, so results are unaffected (reported once per run). A failing disk "
            f"or an edited cache file can cause this; deleting the cache folder is safe."),
            stacklevel=3)


#: One per process: every cache of a run reports through it.
PROBLEMS = Problems()


PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def private_folder(folder: Path) -> Path:
    """Create ``folder`` and its missing parents, each owner-only (0700); folders that exist
    are left as they are. Raises OSError when it cannot (a file in the way, no permission)."""
    folder = Path(folder)
    missing = []
    current = folder
    while not os.path.lexists(current) and current.parent != current:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_FOLDER)
        except FileExistsError:  # made meanwhile by another process
            pass
    if not folder.is_dir():
        raise NotADirectoryError(20, "not a folder", str(folder))
    return folder


def private_file(path: Path, *, create: bool = True) -> None:
    """Make ``path`` owner-only: create it empty with mode 0600 if it does not exist (and
    ``create``), or take the group's and others' permissions off this user's regular file (one
    an older headprobe or SQLite made). Anything else at ``path`` is left alone."""
    flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
        getattr(os, "O_BINARY", 0) | (os.O_CREAT if create else 0)
    try:
        handle = os.open(path, flags, PRIVATE_FILE)
    except OSError:
        return
    try:
        info = os.fstat(handle)
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISREG(info.st_mode) and mode & 0o077 and \
                info.st_uid == getattr(os, "getuid", lambda: info.st_uid)():
            os.chmod(handle, mode & PRIVATE_FOLDER)
    except (OSError, NotImplementedError):
        pass
    finally:
        os.close(handle)


class NotARegularFile(OSError):
    """A cache path that is a FIFO, a device, a folder or a link to one: never read."""


def read_cache_file(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of the regular file ``path`` if it has at most ``max_bytes``; None when there
    is no such file. Raises `NotARegularFile` for anything but a regular file (symbolic links
    included) and ValueError when the file is larger than ``max_bytes``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_BINARY", 0)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(f"{path} is not a regular file")
    if info.st_size > max_bytes:
        raise ValueError(f"{info.st_size} bytes where at most {max_bytes} were expected")
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        with os.fdopen(handle, "rb", closefd=False) as stream:
            data = stream.read(max_bytes + 1)
    finally:
        os.close(handle)
    if len(data) > max_bytes:
        raise ValueError(f"more than the {max_bytes} bytes expected")
    return data


def remove_special(path: Path) -> bool:
    """Delete ``path`` if it exists and is not a regular file (a FIFO, a link, a device node
    left where a cache file belongs); True when something was removed."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(info.st_mode):
        return False
    try:
        if stat.S_ISDIR(info.st_mode):
            return False  # a folder is not ours to delete; the caller reports it
        os.unlink(path)
    except OSError:
        return False
    return True


def remove_stale_temporaries(folder: Path, now: float | None = None) -> int:
    """Delete temporaries that a killed run left in ``folder``: ``.tmp-PID-...`` files older
    than `ORPHAN_SECONDS` whose process is gone, or older than `STALE_SECONDS`; returns how
    many were deleted."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if _TEMPORARY.match(entry.name) is None:
            continue  # not a name write_atomic gives: a user's own file, never deleted
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(status.st_mode):
            continue
        age = now - status.st_mtime
        if age > STALE_SECONDS or (age > ORPHAN_SECONDS and not _alive(_pid_of(entry.name))):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _pid_of(name: str) -> int | None:
    match = _TEMPORARY.match(name)
    return int(match.group(1)) if match else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave it
    return True


@functools.lru_cache(maxsize=16)
def source_digest(*modules: str) -> str:
    """SHA-256 (hex) of the source of headprobe's ``modules`` (paths relative to the package,
    as ``"model/encoder.py"``): part of a cache key, so that numbers computed by other code are
    never read back."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode("utf-8") + b"\0" + (package / name).read_bytes() + b"\0")
    return digest.hexdigest()
