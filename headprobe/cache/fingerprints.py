"""A model's fingerprint from its files, remembered so that a re-run hashes nothing.

The fingerprint (``sha256:...`` over the weight files, then config.json; over an ONNX export's
file alone: what `Model.fingerprint` gives and report.json shows) is what every cache entry is
keyed by, so a wrong one would serve another model's numbers. It is remembered in
``CACHE/forward/fingerprints/<stamp digest>`` under the files' (path, size, modification time):
a JSON memo holding the stamp, the fingerprint and a seal (SHA-256 of both). A memo that is not
a small regular file, does not parse, or whose seal, stamp or fingerprint does not check out is
ignored (reported once as a `CacheWarning`), and the files are hashed again and the memo
rewritten.

`start_fingerprint` hashes in a daemon thread (hashing releases the GIL, so collection goes on
meanwhile) and returns a `concurrent.futures.Future`; `fingerprint_result` takes its value and
reports a damaged memo from the caller's thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from headprobe.atomic import write_atomic
from headprobe.cachefiles import (
    PROBLEMS,
    NotARegularFile,
    Problems,
    private_folder,
    read_cache_file,
    remove_stale_temporaries,
)
from headprobe.model import checkpoint

MEMO_VERSION = 2
MAX_MEMO_BYTES = 1 << 16
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")
_KIND = "model fingerprint memo"


@dataclass(frozen=True)
class Fingerprint:
    """A fingerprint, and why the memo it might have come from was not used (None: it was
    used, or there was none)."""

    value: str
    memo_problem: str | None = None
    memo: Path | None = None


def compute_fingerprint(folder: str | os.PathLike[str], *,
                        memo_root: str | os.PathLike[str] | None = None) -> Fingerprint:
    """The fingerprint of the model at ``folder`` (a checkpoint folder, or an ONNX export's
    file: `headprobe.model.checkpoint.hashed_files`), through the memo under ``memo_root``."""

    files = checkpoint.hashed_files(Path(folder))
    if memo_root is None:
        return Fingerprint(checkpoint.files_fingerprint(files))
    stamp = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    name = hashlib.sha256(json.dumps(stamp).encode("utf-8")).hexdigest()
    memo = Path(memo_root) / "forward" / "fingerprints" / name
    remembered, problem = _read_memo(memo, stamp)
    if remembered is not None:
        return Fingerprint(remembered)
    digest = checkpoint.files_fingerprint(files)
    remove_stale_temporaries(memo.parent)
    try:
        private_folder(memo.parent)
        write_atomic(memo, _memo_bytes(stamp, digest))
    except OSError:  # only a memo: the next run hashes again
        pass
    return Fingerprint(digest, problem, memo)


def model_fingerprint(folder: str | os.PathLike[str], *,
                      memo_root: str | os.PathLike[str] | None = None,
                      problems: Problems = PROBLEMS) -> str:
    """`compute_fingerprint`'s value; a damaged memo is reported through ``problems``."""
    return _reported(compute_fingerprint(folder, memo_root=memo_root), problems)


def start_fingerprint(folder: str | os.PathLike[str], *,
                      memo_root: str | os.PathLike[str] | None = None) -> Future[Fingerprint]:
    """`compute_fingerprint` in a daemon thread; the future holds its result or its error."""
    future: Future[Fingerprint] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(compute_fingerprint(folder, memo_root=memo_root))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=work, daemon=True, name="headprobe-fingerprint").start()
    return future


def fingerprint_result(future: Future[Fingerprint], problems: Problems = PROBLEMS) -> str:
    """The fingerprint a `start_fingerprint` future computed (waiting for it), or the error it
    raised; a damaged memo is reported here, in the caller's thread."""
    return _reported(future.result(), problems)


def _reported(found: Fingerprint, problems: Problems) -> str:
    if found.memo_problem is not None:
        problems.damaged(_KIND, found.memo or "?", found.memo_problem)
    return found.value


def _memo_bytes(stamp: list[list[object]], digest: str) -> bytes:
    return json.dumps({"version": MEMO_VERSION, "stamp": stamp, "fingerprint": digest,
                       "seal": _seal(stamp, digest)}).encode("utf-8")


def _seal(stamp: list[list[object]], digest: str) -> str:
    return hashlib.sha256(json.dumps([stamp, digest]).encode("utf-8")).hexdigest()


def _read_memo(memo: Path, stamp: list[list[object]]) -> tuple[str | None, str | None]:
    """``(fingerprint, None)`` from a sound memo; ``(None, why)`` from a damaged one; ``(None,
    None)`` when there is none."""
    try:
        data = read_cache_file(memo, MAX_MEMO_BYTES)
    except NotARegularFile:
        _remove(memo)
        return None, "not a regular file"
    except ValueError:
        return None, "larger than a memo can be"
    except OSError:
        return None, None
    if data is None or _FINGERPRINT.match(data.decode("ascii", "replace").strip()):
        return None, None  # none, or an older headprobe's bare memo: hash again, quietly
    try:
        content = json.loads(data.decode("utf-8"))
        digest = content["fingerprint"]
        sound = (content["version"] == MEMO_VERSION and content["stamp"] == stamp
                 and isinstance(digest, str) and _FINGERPRINT.match(digest) is not None
                 and content["seal"] == _seal(stamp, digest))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        sound = False
    if not sound:
        return None, "its contents do not match their seal"
    return digest, None


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
