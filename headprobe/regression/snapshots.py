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

Keys are sorted and every value sits on a line of its own, so a git diff of a snapshot shows
exactly which claim on which head moved. ``sentences_sha256`` is the SHA-256 of the JSON array
of the evaluated sentence texts in order (as in profiles). A file is written atomically; a
claim not updated keeps its recorded values. Reading is bounded and checked: a file that is not
a snapshot of this format and version is a `ClaimFileError` naming it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headprobe.atomic import write_atomic
from headprobe.claims.textfile import TextFileProblem, read_user_text
from headprobe.errors import ClaimFileError

FORMAT = "headprobe-snapshot"
VERSION = 1
FOLDER = "__snapshots__"
_DIGITS = 6


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


def snapshot_path(hypothesis_file: str | os.PathLike[str]) -> Path:
    """Where the snapshots of ``hypothesis_file`` live."""
    path = Path(hypothesis_file)
    return path.parent / FOLDER / f"{path.name}.json"


def read_snapshot(path: Path) -> dict[str, dict[str, Recorded]]:
    """``{claim id: {head: Recorded}}`` from a snapshot file (empty when there is none)."""
    shown = str(path)
    try:
        text = read_user_text(path)
    except FileNotFoundError:
        return {}
    except (OSError, TextFileProblem) as error:
        raise ClaimFileError(f"cannot read the snapshot file: {error}", file=shown) from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ClaimFileError(f"the snapshot file is not JSON ({error}); restore it from version "
                             f"control, or delete it and record again with --snapshot-update",
                             file=shown, line=getattr(error, "lineno", None)) from None
    return _claims(data, shown)


def _claims(data: Any, shown: str) -> dict[str, dict[str, Recorded]]:
    def bad(what: str) -> ClaimFileError:
        return ClaimFileError(f"not a headprobe snapshot file: {what}; restore it from version "
                              f"control, or delete it and record again with --snapshot-update",
                              file=shown)

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"expected a JSON object with \"format\": \"{FORMAT}\"")
    if data.get("version") != VERSION:
        raise bad(f"format version {data.get('version')!r}, this headprobe reads version "
                  f"{VERSION}")
    claims = data.get("claims")
    if not isinstance(claims, dict):
        raise bad("'claims' must map claim ids to heads")
    out: dict[str, dict[str, Recorded]] = {}
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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or isinstance(n, bool) or not isinstance(n, int) or \
            not isinstance(fingerprint, str) or not isinstance(digest, str):
        raise bad(f"{where}: a value, count or digest of the wrong type")
    return Recorded(float(value), n, fingerprint, digest)


def write_snapshot(path: Path, claims: dict[str, dict[str, Recorded]]) -> None:
    """Write ``claims`` as a snapshot file at ``path`` (atomically; keys sorted)."""
    data = {"format": FORMAT, "version": VERSION,
            "claims": {claim_id: {head: recorded.to_json() for head, recorded in heads.items()}
                       for claim_id, heads in claims.items()}}
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"), mode=0o644)


@dataclass
class UpdateCounts:
    written: int = 0  # new claims/heads recorded
    changed: int = 0  # recorded values replaced
    unchanged: int = 0  # left alone: recorded exactly as they are


class SnapshotStore:
    """The snapshot files of a run: read once per hypothesis file, updated in memory with
    `--snapshot-update`, written at the end of the run (`flush`)."""

    def __init__(self) -> None:
        self._files: dict[Path, dict[str, dict[str, Recorded]]] = {}
        self._dirty: dict[Path, UpdateCounts] = {}

    def load(self, hypothesis_file: str | os.PathLike[str]) -> dict[str, dict[str, Recorded]]:
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
        """Record a value (written by `flush`)."""
        path = snapshot_path(hypothesis_file)
        counts = self._dirty.setdefault(path, UpdateCounts())
        old = self.load(hypothesis_file).get(claim_id, {}).get(head)
        rounded = Recorded(round(recorded.value, _DIGITS), recorded.n,
                           recorded.model_fingerprint, recorded.sentences_sha256)
        if old is None:
            counts.written += 1
        elif old == rounded:
            counts.unchanged += 1
        else:
            counts.changed += 1
        self._files[path].setdefault(claim_id, {})[head] = rounded

    def flush(self) -> list[tuple[Path, UpdateCounts]]:
        """Write every updated snapshot file; ``(path, counts)`` of each."""
        written = []
        for path, counts in self._dirty.items():
            if counts.written or counts.changed or not path.exists():
                write_snapshot(path, self._files[path])
            written.append((path, counts))
        self._dirty.clear()
        return written
