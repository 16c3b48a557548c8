"""The files a command writes for its user (``-o``, ``--json``, ``--figure``): checked before
anything is written, written whole, and every failure a `UsageError` naming the file.

`check_file` and `check_folder` look at a path without writing: a file is written through a
temporary file beside it and a rename (`headprobe.atomic`), so its folder must be, or be
creatable as, a folder this process may write in, and the path itself must not be a folder or a
special file (a named pipe, a device, a socket: renaming over one would replace it, and a device
such as ``/dev/null`` is no place for a whole file). A command checks all of its outputs before
it writes the first, so a bad one leaves nothing half-written. `write_file` writes atomically and
turns an `OSError` (a full disk, a folder removed meanwhile) into a `UsageError`.

Files that go together (a hypothesis file and the sentence file it points at) are written whole
in a `staging_folder` beside them first, then renamed into place one by one in an order where
every intermediate state is valid; `publish_new` never replaces a file, and `holds_exactly`
tells a file that may be kept (what would be written) from one that must not be touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from headprobe.atomic import write_all, write_atomic
from headprobe.errors import UsageError

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def check_file(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` as a `Path` if a file can be written there; else a `UsageError` that starts
    with ``option`` and the path (``--json out.json: ...``)."""
    target = Path(path)
    where = f"{option} {os.fspath(path)}"
    info = _stat(target, where)
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{where}: is a folder; give the name of a file")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{where}: is {_kind(info.st_mode)}, not a regular file; give "
                             f"the name of a file (headprobe writes it whole, through a "
                             f"temporary file beside it)")
    _check_parent(target.parent, where)
    return target


def check_folder(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` as a `Path` if it is a folder this process may write in, or can be made one."""
    folder = Path(path)
    where = f"{option} {os.fspath(path)}"
    info = _stat(folder, where)
    if info is None:
        _check_parent(folder.parent, where)
    elif not stat.S_ISDIR(info.st_mode):
        what = "a file" if stat.S_ISREG(info.st_mode) else _kind(info.st_mode)
        raise UsageError(f"{where}: is {what}, not a folder; give a folder (it is created if "
                         f"it does not exist)")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot write in this folder (permission denied); choose "
                         f"another")
    return folder


def _check_parent(folder: Path, where: str) -> None:
    """The folder a file goes in exists and is writable, or its nearest existing ancestor is a
    writable folder (the missing ones are created when the file is written)."""
    existing = folder
    while True:
        info = _stat(existing, where)
        if info is not None:
            break
        if existing.parent == existing:
            return
        existing = existing.parent
    shown = os.fspath(existing) if existing != Path() else "the current folder"
    if not stat.S_ISDIR(info.st_mode):
        what = "a file" if stat.S_ISREG(info.st_mode) else _kind(info.st_mode)
        raise UsageError(f"{where}: {shown} is {what}, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot write in {shown} (permission denied); choose "
                         f"another folder")


def _stat(path: Path, where: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:  # an embedded NUL
        raise UsageError(f"{where.replace(chr(0), '?')}: the path contains a NUL character; "
                         f"fix the path") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot use this path: {error.strerror or error}") from None


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def write_file(path: Path, blob: bytes, *, what: str = "") -> Path:
    """Write ``blob`` to ``path`` atomically (readable by all, less the umask), its folders
    created; an `OSError` becomes a `UsageError` that names the file."""
    try:
        write_atomic(path, blob, mode=0o644)
    except OSError as error:
        raise cannot_write(path, error, what) from None
    return path


def write_new_file(path: Path, blob: bytes) -> None:
    """Create ``path`` (which must not exist: `FileExistsError`) holding ``blob``, mode 0o644
    less the umask. OSErrors propagate; a file left half-written is removed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    handle = os.open(path, flags, 0o644)
    try:
        try:
            write_all(handle, blob)
        finally:
            os.close(handle)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def cannot_write(path: Path, error: OSError, what: str = "") -> UsageError:
    """The `UsageError` for an `OSError` while writing ``path``."""
    reason = error.strerror or str(error)
    hint = ("; free some space or choose another place" if error.errno == errno.ENOSPC
            else "; choose another place")
    name = f"the {what} " if what else ""
    return UsageError(f"cannot write {name}{os.fspath(path)}: {reason}{hint}")


def holds_exactly(path: Path, blob: bytes, *, where: str, fix: str) -> bool:
    """False when ``path`` does not exist, True when it is a regular file holding exactly
    ``blob`` (so it may be kept as it is); a `UsageError` (``where``: what is there; ``fix``:
    what to do) for anything else, which headprobe will not overwrite."""
    info = _stat(path, where)
    if info is None:
        if os.path.lexists(path):  # a link to nothing: a name headprobe will not take over
            raise UsageError(f"{where}: {os.fspath(path)} already exists as a broken symbolic "
                             f"link; headprobe does not overwrite a file it did not write: {fix}")
        return False
    if stat.S_ISREG(info.st_mode) and info.st_size == len(blob):
        try:
            with open(path, "rb") as stream:
                if stream.read(len(blob) + 1) == blob:
                    return True
        except OSError as error:
            raise UsageError(f"{where}: cannot read {os.fspath(path)}: "
                             f"{error.strerror or error}") from None
    what = ("holds something else than headprobe would write there"
            if stat.S_ISREG(info.st_mode) else
            "is a folder" if stat.S_ISDIR(info.st_mode) else f"is {_kind(info.st_mode)}")
    raise UsageError(f"{where}: {os.fspath(path)} already exists and {what}; headprobe does not "
                     f"overwrite a file it did not write: {fix}")


@contextlib.contextmanager
def staging_folder(folder: Path) -> Iterator[Path]:
    """A private folder inside ``folder`` (created if missing) for files to be renamed into
    place; removed, with whatever is left in it, on the way out."""
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".headprobe-", dir=folder))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish_new(staged: Path, target: Path) -> None:
    """Give the staged file the name ``target``, which must not exist (`FileExistsError` if
    it does, even when it appeared a moment ago: a hard link never replaces a file); a file
    system without hard links gets a rename after one more look."""
    try:
        os.link(staged, target)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST),
                                  os.fspath(target)) from None
        os.replace(staged, target)
