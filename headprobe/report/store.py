"""Where a run's report lives on disk (SPEC §5), written so that nothing is ever half-written.

Layout of ``REPORT_DIR`` (default ``reports/``)::

    reports/
      20261123T100000Z/          one folder per run, named by its UTC start time
        report.json
        index.html
        figures/*.png, figures/*.html (failures' diagrams and interactive views)
      20261123T100000Z-2/        a second run in the same second
      latest -> 20261123T100000Z-2   a symlink (a copied folder where symlinks are not allowed)

A run goes in three steps, so figures can be written while claims are still being evaluated:

1. `new_run_dir` creates the run's folder (and ``figures/``) under a name no other run has;
2. figures are saved into ``figures/`` (`figures.save_png` writes atomically);
3. `finish_run` writes report.json and index.html (each to a temp name, then renamed) and only then
   points ``latest`` at the new folder (a new symlink renamed over the old one) -- for a run that
   finished: an interrupted run's folder stays beside the others and ``latest`` where it was.

`write_report` does all three at once. Earlier runs stay beside the new one.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from headprobe.atomic import write_atomic
from headprobe.claims.textfile import special_file_kind
from headprobe.errors import UsageError
from headprobe.report.html import render_index_html
from headprobe.report.status import finished, with_banner

LATEST = "latest"
FIGURES = "figures"
REPORT_JSON = "report.json"
INDEX_HTML = "index.html"


def utc_timestamp(now: _dt.datetime | None = None) -> str:
    """``2026-11-23T10:00:00Z``: the ``started`` field of report.json."""
    moment = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_dir(report_dir: str | os.PathLike[str], now: _dt.datetime | None = None) -> Path:
    """Create and return ``REPORT_DIR/<UTC timestamp>[-n]/`` with an empty ``figures/`` in it."""
    root = Path(report_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror
        if isinstance(error, FileExistsError) and not root.is_symlink():
            kind = os.stat(root).st_mode
            reason = ("is a file" if stat.S_ISREG(kind) else f"is {special_file_kind(kind)}") \
                + ", not a folder"
        raise UsageError(f"cannot create the report folder {str(root)!r}: {reason}; "
                         f"pass a writable folder with --report-dir") from error
    moment = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    stem = moment.strftime("%Y%m%dT%H%M%SZ")
    for number in range(1, 10_000):
        run_dir = root / (stem if number == 1 else f"{stem}-{number}")
        try:
            run_dir.mkdir()                        # atomic: fails if another run took the name
        except FileExistsError:
            continue
        (run_dir / FIGURES).mkdir()
        return run_dir
    raise UsageError(f"too many runs named {stem} in {str(root)!r}; remove old runs")


def figure_path(run_dir: str | os.PathLike[str], name: str) -> Path:
    """Where a figure called ``name`` (a file name such as ``next-token_L2H5_1.png``) goes."""
    return Path(run_dir) / FIGURES / safe_file_name(name)


def relative_path(run_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` relative to the run folder, with ``/`` separators: what report.json stores."""
    return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()


def safe_file_name(name: str) -> str:
    """A file name made of letters, digits and ``._-`` only (ids and heads come from users)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    cleaned = cleaned.lstrip(".") or "figure"
    return cleaned[:150]


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars/arrays, tuples, paths and dataclass-free dicts.

    NaN and infinities become ``null`` (JSON has no such numbers).
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if hasattr(value, "tolist"):                   # numpy scalars and arrays
        return to_jsonable(value.tolist())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"report.json cannot hold a {type(value).__name__}: {value!r}")


def text_bytes(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate (a file name that is not UTF-8, text from a caller
    that never checked it) written as its escape ``\\udcff`` instead of failing the write."""
    return text.encode("utf-8", errors="backslashreplace")


def json_bytes(data: Any) -> bytes:
    """``data`` as indented JSON in UTF-8 (non-ASCII text as it is). A lone surrogate can only
    be inside a string there, where `text_bytes` writes it as the JSON escape ``\\udcff``: the
    file stays valid UTF-8 and reads back to the same string."""
    return text_bytes(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def finish_run(run_dir: str | os.PathLike[str], report_dir: str | os.PathLike[str],
               report: Mapping[str, Any], *, point_latest: bool | None = None) -> Path:
    """Write report.json and index.html into ``run_dir``, then point ``report_dir/latest`` at it.

    Returns the path of report.json. Each file is written to a temp name and renamed, and
    ``latest`` moves only after both are complete, and by default (``point_latest=None``) only
    when the report's run finished (`status.finished`: exit status 0 or 1, or none given). A run
    that did not finish gets a banner at the top of its index.html saying so.
    """

    folder = Path(run_dir)
    data = to_jsonable(report)
    write_atomic(folder / REPORT_JSON, json_bytes(data), mode=0o644)
    page = with_banner(render_index_html(data), data)
    write_atomic(folder / INDEX_HTML, text_bytes(page), mode=0o644)
    move_latest = finished(data) if point_latest is None else point_latest
    if move_latest:
        point_latest_at(folder, report_dir)
    return folder / REPORT_JSON


def write_report(report_dir: str | os.PathLike[str], report: Mapping[str, Any],
                 figures: Mapping[str, bytes | str | os.PathLike[str]] | None = None, *,
                 now: _dt.datetime | None = None) -> Path:
    """Write a whole run at once: a new run folder, its figures, report.json, index.html, latest.

    Args:
      report: the report.json dict of SPEC §5 (``headprobe_version``, ``started``, ``results``,
        ``summary``); figure paths in its results are relative to the run folder.
      figures: ``{relative path: PNG bytes or a file to copy}``; keys such as
        ``figures/next-token_L2H5_1.png``, relative to the run folder (no ``..``, not absolute).
    Returns:
      The run folder.
    """
    run_dir = new_run_dir(report_dir, now=now)
    for name, content in (figures or {}).items():
        target = run_dir / _inside_run(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (bytes, bytearray)):
            write_atomic(target, bytes(content), mode=0o644)
        else:
            write_atomic(target, Path(content).read_bytes(), mode=0o644)
    finish_run(run_dir, report_dir, report)
    return run_dir


def _inside_run(name: str) -> PurePosixPath:
    path = PurePosixPath(str(name).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or ":" in str(path):
        raise UsageError(
            f"figure path {name!r} must be relative to the run folder and stay inside it, "
            f"such as 'figures/next-token_L2H5_1.png'")
    return path


def point_latest_at(run_dir: str | os.PathLike[str],
                    report_dir: str | os.PathLike[str] | None = None) -> Path:
    """Make ``report_dir/latest`` (default: beside ``run_dir``) show ``run_dir``: a relative
    symlink renamed into place, or, where symlinks cannot be made, a copy of the folder swapped in
    for the old one."""
    folder = Path(run_dir)
    root = folder.parent if report_dir is None else Path(report_dir)
    latest = root / LATEST
    _check_latest(latest, folder)
    temp = root / f".{LATEST}.{os.getpid()}.tmp"
    _remove(temp)
    try:
        os.symlink(os.path.relpath(folder, root), temp, target_is_directory=True)
    except (OSError, NotImplementedError):
        return _copy_latest(folder, latest, temp)
    if latest.is_dir() and not latest.is_symlink():
        _remove(latest)                            # an earlier copy-based latest
    os.replace(temp, latest)
    return latest


def _check_latest(latest: Path, run_dir: Path) -> None:
    """``latest`` is missing, a symbolic link or a folder (what `point_latest_at` makes); else
    a `UsageError`: a named pipe, a device or a file there is not headprobe's to replace."""
    try:
        info = os.lstat(latest)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode):
        return
    what = "a file" if stat.S_ISREG(info.st_mode) else special_file_kind(info.st_mode)
    raise UsageError(f"{latest} is {what}, not the link to the last run that headprobe makes "
                     f"there; the report is in {run_dir}, and 'latest' is left as it is. "
                     f"Remove it, or pass another folder with --report-dir")


def _copy_latest(folder: Path, latest: Path, temp: Path) -> Path:
    shutil.copytree(folder, temp)
    old = latest.parent / f".{LATEST}.{os.getpid()}.old"
    _remove(old)
    if latest.is_symlink() or latest.exists():
        os.replace(latest, old)
    os.replace(temp, latest)
    _remove(old)
    return latest


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def read_report(report_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The report.json of the latest run under ``report_dir``."""
    path = Path(report_dir) / LATEST / REPORT_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UsageError(f"no report at {str(path)!r}: run 'headprobe check' first") from error
