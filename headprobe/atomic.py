"""Atomic file writes, shared by the caches and the reports: readers see the old file or the new.

A write costs as few system calls and as little Python as it can: each folder is created once per
process, the temporary file gets a name unique to this process and thread (``.tmp-PID-THREAD-N``)
opened with ``O_EXCL`` instead of `tempfile.mkstemp`'s random names, and the bytes go out with
`os.write` (no file object). Cache files are the owner's only (mode 0o600); reports are readable
by all (0o644, less the umask).
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

_made: set[Path] = set()  # folders this process has created (or found) already
_counter = itertools.count()


def write_atomic(path: Path, blob: bytes, *, mode: int = 0o600) -> None:
    """Write ``blob`` to a temporary file beside ``path``, then rename it over ``path``; the
    file gets ``mode`` (less the umask)."""
    folder = path.parent
    if folder not in _made:
        folder.mkdir(parents=True, exist_ok=True)
        _made.add(folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_counter)}{path.suffix}"
        temporary = folder / name
        try:
            handle = os.open(temporary, flags, mode)
            break
        except FileExistsError:  # left over by a crashed process that had our pid: next name
            continue
        except FileNotFoundError:  # the folder went away (deleted cache): make it again
            _made.discard(folder)
            folder.mkdir(parents=True, exist_ok=True)
            _made.add(folder)
    try:
        try:
            write_all(handle, blob)
        finally:
            os.close(handle)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_all(handle: int, blob: bytes) -> None:
    """Write every byte of ``blob`` to the file descriptor ``handle`` (``os.write`` may write
    less than asked)."""
    view = memoryview(blob)
    while view:
        view = view[os.write(handle, view):]
