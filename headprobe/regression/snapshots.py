"""Snapshot files (SPEC §10): the recorded values of a hypothesis file's ``expect: unchanged``
claims, meant to be committed and reviewed in pull requests.

``HYPOTHESIS_FOLDER/__snapshots__/<file name>.json``, e.g. ``__snapshots__/heads.yaml.json``::

    {
      "claims": {
        "next-token": {
          "L2H9": {
            "model_fingerprint": "sha256:...",
            "n": 1678,
            "sentences_sha256": "...",
            "value": 0.769011
          }
        }
      },
      "format": "headprobe-snapshot",
      "version": 1
    }

Keys are sorted (heads by layer, then head: L1H2 before L1H10; files written in the older
L1H1, L1H10, L1H11 order read the same) and every value sits on a line of its own, so a git
diff of a snapshot shows exactly which claim on which head moved. ``sentences_sha256`` is the
SHA-256 of the JSON array of the evaluated sentence texts in order (as in profiles).

Reading is bounded and checked (`read_snapshot`): at most ``$HEADPROBE_MAX_FILE_MB`` of UTF-8,
values a float holds; a file that is not a snapshot of this format and version (or not JSON,
or nested too deeply to parse) is a `ClaimFileError` naming it. Updating
(`SnapshotStore.flush`) is a locked read-modify-write: under an exclusive lock on
``.<file name>.lock`` beside the snapshot, the file is read again, only the values this run
recorded are merged into it, and the result is renamed into place; so runs updating claims of
one file at once (a CI matrix, ``pytest -n``) all land. Temporaries a killed writer left are
swept; a folder that cannot be written is a `UsageError` naming it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headprobe.atomic import write_atomic
from headprobe.cachefiles import remove_stale_temporaries
from headprobe.claims.textfile import TextFileProblem, read_user_text
from headprobe.errors import ClaimFileError, HeadprobeError, UsageError, printable

FORMAT = "headprobe-snapshot"
VERSION = 1
FOLDER = "__snapshots__"
LOCK_TIMEOUT = 60.0  # seconds to wait for another run's update of the same file
_DIGITS = 6
_MAX_COUNT = 2**63 - 1
_HEAD = re.compile(r"L([0-9]+)H([0-9]+)")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Recorded:
    """One claim's recorded value on one head."""

    value: float
    n: int
    model_fingerprint: str
    sentences_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"model_fingerprint": self.model_fingerprint, "n": self.n,
                "sentences_sha256": self.sentences_sha256,
                "value": round(self.value, _DIGITS)}


Claims = dict[str, dict[str, Recorded]]  # claim id -> head -> recorded value


def snapshot_path(hypothesis_file: str | os.PathLike[str]) -> Path:
    """Where the snapshots of ``hypothesis_file`` live."""
    path = Path(hypothesis_file)
    return path.parent / FOLDER / f"{path.name}.json"


# ---- reading ----------------------------------------------------------------------------------

def read_snapshot(path: Path) -> Claims:
    """``{claim id: {head: Recorded}}`` from a snapshot file (empty when there is none)."""
    shown = printable(str(path))
    try:
        text = read_user_text(path)
    except FileNotFoundError:
        return {}
    except (OSError, TextFileProblem) as error:
        raise ClaimFileError(f"cannot read the snapshot file: {error}; restore it from version "
                             f"control, or delete it and record again with --snapshot-update",
                             file=shown, line=getattr(error, "line", None)) from None
    return _claims(_parse(text, shown), shown)


def _parse(text: str, shown: str) -> Any:
    """The JSON of ``text``; a located `ClaimFileError` for anything else (including nesting
    deeper than Python's recursion limit)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        why = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ClaimFileError(f"the snapshot file is not JSON ({why}); restore it from version "
                             f"control, or delete it and record again with --snapshot-update",
                             file=shown, line=getattr(error, "lineno", None)) from None


def _claims(data: Any, shown: str) -> Claims:
    def bad(what: str) -> ClaimFileError:
        return ClaimFileError(f"not a headprobe snapshot file: {what}; restore it from version "
                              f"control, or delete it and record again with --snapshot-update",
                              file=shown)

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"expected a JSON object with \"format\": \"{FORMAT}\"")
    version = data.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise bad(f"format version {repr(version)[:40]}, this headprobe reads version {VERSION}")
    claims = data.get("claims")
    if not isinstance(claims, dict):
        raise bad("'claims' must map claim ids to heads")
    out: Claims = {}
    for claim_id, heads in claims.items():
        if not isinstance(heads, dict):
            raise bad(f"claim {claim_id!r} must map heads to recorded values")
        out[str(claim_id)] = {str(head): _recorded(entry, f"{claim_id} {head}", bad)
                              for head, entry in heads.items()}
    return out


def _recorded(entry: Any, where: str, bad: Any) -> Recorded:
    try:
        value, n = entry["value"], entry["n"]
        fingerprint, digest = entry["model_fingerprint"], entry["sentences_sha256"]
    except (TypeError, KeyError):
        raise bad(f"{where}: expected value, n, model_fingerprint and sentences_sha256") from None
    number = _finite(value)
    if number is None or isinstance(n, bool) or not isinstance(n, int) or \
            not 0 <= n <= _MAX_COUNT or not isinstance(fingerprint, str) or \
            not isinstance(digest, str):
        raise bad(f"{where}: a value, count or digest of the wrong type or out of range (value: "
                  f"a finite number, n: a count)")
    return Recorded(number, n, fingerprint, digest)


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, infinite, NaN, or an integer too
    large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# ---- writing ----------------------------------------------------------------------------------

def render_snapshot(claims: Claims) -> bytes:
    """The bytes of a snapshot file of ``claims``: keys sorted, heads by layer and head, one
    value per line; a lone surrogate in a claim id (from a file name read with
    surrogateescape, or a YAML ``\\udcff``) is written as its JSON escape, which reads back as
    the same id."""
    ordered = {claim_id: {head: claims[claim_id][head].to_json()
                          for head in sorted(claims[claim_id], key=head_order)}
               for claim_id in sorted(claims)}
    data = {"claims": ordered, "format": FORMAT, "version": VERSION}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def head_order(head: str) -> tuple[int, int, int, str]:
    """Sort key of a head name: ``L1H2`` before ``L1H10``; other names after, as text."""
    match = _HEAD.fullmatch(head)
    if match is None:
        return (1, 0, 0, head)
    return (0, int(match.group(1)), int(match.group(2)), head)


def write_snapshot(path: Path, claims: Claims) -> None:
    """Write ``claims`` as a snapshot file at ``path`` (atomically; see `render_snapshot`)."""
    write_atomic(path, render_snapshot(claims), mode=0o644)


# ---- updating ---------------------------------------------------------------------------------

@dataclass
class UpdateCounts:
    written: int = 0  # new claims/heads recorded
    changed: int = 0  # recorded values replaced
    unchanged: int = 0  # left alone: recorded exactly as they are


def merge(claims: Claims, updates: dict[tuple[str, str], Recorded]) -> UpdateCounts:
    """Put ``updates`` (``(claim id, head) -> value``) into ``claims``; what each did."""
    counts = UpdateCounts()
    for (claim_id, head), recorded in updates.items():
        old = claims.get(claim_id, {}).get(head)
        if old is None:
            counts.written += 1
        elif old == recorded:
            counts.unchanged += 1
        else:
            counts.changed += 1
        claims.setdefault(claim_id, {})[head] = recorded
    return counts


def update_snapshot(path: Path, updates: dict[tuple[str, str], Recorded]) -> UpdateCounts:
    """Merge ``updates`` into the snapshot file at ``path``: read again and written under the
    file's lock, so another run's values recorded meanwhile are kept. Nothing is written (and
    no lock taken) when every value is recorded as it is already. Raises `ClaimFileError` for a
    snapshot file that cannot be read and `UsageError` when it cannot be written. Temporaries
    that killed writers left beside it are swept (`remove_stale_temporaries`)."""
    remove_stale_temporaries(path.parent)
    preview = merge(read_snapshot(path), updates)
    if not (preview.written or preview.changed):
        return preview
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            claims = read_snapshot(path)
            counts = merge(claims, updates)
            if counts.written or counts.changed:
                write_snapshot(path, claims)
    except OSError as error:
        raise _cannot_write(path, error) from None
    return counts


def _cannot_write(path: Path, error: OSError) -> UsageError:
    why = error.strerror or type(error).__name__
    return UsageError(f"cannot write the snapshot file {_shown(path)}: {why}; make the folder "
                      f"{_shown(path.parent)} writable and run --snapshot-update again (the "
                      f"snapshot file was left as it was)")


def _shown(path: Path) -> str:
    """``path`` as the user sees it: relative to the working folder when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        relative = str(path)
    return printable(str(path) if relative.startswith("..") else relative)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` beside ``path`` (where there is no
    ``fcntl``, e.g. on Windows: no lock). The lock file is removed on release; a waiter that
    locked a file removed meanwhile locks the new one instead."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        handle = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            _wait_for(fcntl, handle, deadline, path, lock)
            if _is_current(handle, lock):
                break
        except BaseException:
            os.close(handle)
            raise
        os.close(handle)  # removed by the run that held it: lock the file there now
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(handle)


def _wait_for(fcntl: Any, handle: int, deadline: float, path: Path, lock: Path) -> None:
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise UsageError(
                    f"another run has been updating {_shown(path)} for more than "
                    f"{LOCK_TIMEOUT:g} s (it holds the lock {_shown(lock)}); wait for "
                    f"it to finish or stop it, then run --snapshot-update again") from None
            time.sleep(0.02)


def _is_current(handle: int, lock: Path) -> bool:
    try:
        info = os.stat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle)
    return (info.st_dev, info.st_ino) == (mine.st_dev, mine.st_ino)


@dataclass
class SnapshotStore:
    """The snapshot files of a run: read once per hypothesis file; with `--snapshot-update`
    the values recorded (`record`) are merged into the files at the end of the run (`flush`).
    """

    _files: dict[Path, Claims] = field(default_factory=dict)
    _updates: dict[Path, dict[tuple[str, str], Recorded]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # files `flush` could not update

    def load(self, hypothesis_file: str | os.PathLike[str]) -> Claims:
        """The recorded values of ``hypothesis_file`` (raises `ClaimFileError` for a bad
        snapshot file)."""
        path = snapshot_path(hypothesis_file)
        if path not in self._files:
            self._files[path] = read_snapshot(path)
        return self._files[path]

    def recorded(self, hypothesis_file: str | os.PathLike[str], claim_id: str,
                 head: str) -> Recorded | None:
        return self.load(hypothesis_file).get(claim_id, {}).get(head)

    def record(self, hypothesis_file: str | os.PathLike[str], claim_id: str, head: str,
               recorded: Recorded) -> None:
        """Record a value (merged into its file by `flush`)."""
        rounded = Recorded(round(recorded.value, _DIGITS), recorded.n,
                           recorded.model_fingerprint, recorded.sentences_sha256)
        updates = self._updates.setdefault(snapshot_path(hypothesis_file), {})
        updates[(claim_id, head)] = rounded

    def flush(self) -> list[tuple[Path, UpdateCounts]]:
        """Merge the recorded values into their files; ``(path, counts)`` of each file updated.
        A file that could not be updated is left as it was and its error (one line) goes to
        `errors`; the others are updated all the same."""
        done = []
        for path, updates in self._updates.items():
            try:
                done.append((path, update_snapshot(path, updates)))
            except HeadprobeError as error:
                self.errors.append(printable(str(error)))
        self._updates.clear()
        return done
