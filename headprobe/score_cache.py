"""The score cache: each claim's per-sentence numbers, per (model, sentence), on disk.

The forward cache (`headprobe.cache`) spares a re-run the model; this one spares it the scoring
too. An unchanged re-run of ``headprobe check`` finds every (claim, sentence) pair here and
neither runs the model nor reads a forward-cache entry for that sentence.

What is stored. One file per (model fingerprint, sentence text, scoring-code digest, format
version) — hashed with SHA-256 into the file name — holding the digest of the sentence's
tokenization and, per *scoring key*, the `SentenceNumbers` a `ClaimAccumulator` keeps: counted
and left-out sources, hits per head and hits per baseline offset. The scoring key is everything
the numbers depend on besides the run: level, source, target, measure, the sentence's spans, the
ordered heads and whether baseline offsets are needed. Floats are stored as ``float.hex`` so a
cached number equals the fresh one bit for bit. A write keeps the entries of other keys already
in the file (claim A, then claim B, then both: everything cached).

The scoring-code digest hashes the source of the modules that compute the numbers, so editing
the scoring invalidates every entry instead of serving stale numbers.

Layout. ``cache_root()/scores/ab/cdef....hps``: a JSON object. Writes are atomic
(`headprobe.atomic.write_atomic`). A corrupt or foreign file (another key inside, other tokens)
is counted in `CacheStats.invalid`, ignored, and rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.atomic import write_atomic
from headprobe.cache import CacheStats
from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.accumulate import SentenceNumbers
from headprobe.heads import Head

FORMAT_VERSION = 1
SUFFIX = ".hps"
# The modules whose code decides a sentence's numbers (relative to the headprobe package).
_SCORING_MODULES = ("evaluation/accumulate.py", "evaluation/positions.py",
                    "evaluation/measures.py", "runs.py", "score_cache.py")


@functools.lru_cache(maxsize=1)
def scoring_digest() -> str:
    """SHA-256 over the source of the modules that compute `SentenceNumbers`."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _SCORING_MODULES:
        digest.update(name.encode("utf-8") + b"\0" + (package / name).read_bytes() + b"\0")
    return digest.hexdigest()


def scoring_key(spec: ClaimSpec, heads: Sequence[Head], sentence: Sentence) -> str:
    """The canonical text of what a claim's numbers on ``sentence`` depend on, besides its run."""
    spans = [[s.label, s.start, s.end] for s in sentence.spans]
    return _claim_part(spec, tuple(heads)) + json.dumps(spans, ensure_ascii=False,
                                                        separators=(",", ":")) + "}"


@functools.lru_cache(maxsize=4096)
def _claim_part(spec: ClaimSpec, heads: tuple[Head, ...]) -> str:
    """`scoring_key` up to its last field (the sentence's spans), once per claim."""
    fields = {"level": spec.level, "source": asdict(spec.claim.source),
              "target": asdict(spec.claim.target), "measure": asdict(spec.measure),
              "heads": [[h.layer, h.head] for h in heads],
              "baseline": spec.baseline == "offset"}
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text[:-1] + ',"spans":'


def encoding_digest(encoding: Any) -> str:
    """SHA-256 of a tokenizer encoding's tokens, ids, word ids and offsets (what a run is
    built on besides the weights)."""
    payload = json.dumps([list(encoding.tokens), np.asarray(encoding.input_ids).tolist(),
                          list(encoding.word_ids),
                          [list(o) for o in encoding.offsets]], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def encode_numbers(numbers: SentenceNumbers) -> dict[str, Any]:
    return {"n": numbers.n, "left_out": numbers.left_out,
            "hits": [float(h).hex() for h in numbers.hits],
            "baseline": None if numbers.baseline is None
            else [float(b).hex() for b in numbers.baseline]}


def decode_numbers(entry: Any) -> SentenceNumbers | None:
    """The numbers in a stored entry, or None if it is malformed."""
    try:
        n, left_out = entry["n"], entry["left_out"]
        if type(n) is not int or type(left_out) is not int:
            return None
        hits = np.array([float.fromhex(h) for h in entry["hits"]], dtype=np.float64)
        baseline = entry["baseline"]
        if baseline is not None:
            baseline = tuple(float.fromhex(b) for b in baseline)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return SentenceNumbers(n, left_out, hits, baseline)


class ScoreCache:
    """Files under ``root/scores``. ``enabled=False`` (``--no-cache``) reads and writes nothing."""

    def __init__(self, root: str | os.PathLike[str], *, enabled: bool = True) -> None:
        self.folder = Path(root) / "scores"
        self.enabled = enabled
        self.stats = CacheStats()
        # (fingerprint, text) whose file this process found missing: nothing to merge on `put`.
        self._absent: set[tuple[str, str]] = set()

    def _fields(self, fingerprint: str, text: str) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "scoring": scoring_digest(),
                "fingerprint": fingerprint, "text": text}

    def path_for(self, fingerprint: str, text: str) -> Path:
        payload = json.dumps(self._fields(fingerprint, text), sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / (digest[2:] + SUFFIX)

    def _read(self, fingerprint: str, text: str, tokens: str, *,
              count: bool = True) -> dict[str, Any] | None:
        """The file's entries (scoring key -> stored numbers) if it is whole and ours."""
        try:
            blob = self.path_for(fingerprint, text).read_bytes()
        except OSError:
            self._absent.add((fingerprint, text))
            return None
        try:
            stored = json.loads(blob.decode("utf-8"))
            if any(stored.get(k) != v for k, v in self._fields(fingerprint, text).items()) \
                    or stored.get("tokens") != tokens or not isinstance(stored["entries"], dict):
                raise ValueError("foreign entry")
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            if count:
                self.stats.invalid += 1
            return None
        return stored["entries"]

    def get(self, fingerprint: str, text: str, tokens: str,
            keys: Sequence[str]) -> list[SentenceNumbers] | None:
        """The numbers of every key, in order, if the file holds them all; else None."""
        if not self.enabled:
            return None
        entries = self._read(fingerprint, text, tokens)
        found = []
        for key in keys:
            numbers = decode_numbers(entries[key]) if entries and key in entries else None
            if numbers is None:
                self.stats.misses += 1
                return None
            found.append(numbers)
        self.stats.hits += 1
        return found

    def put(self, fingerprint: str, text: str, tokens: str,
            numbers: Mapping[str, SentenceNumbers]) -> None:
        """Store ``numbers`` by scoring key, keeping the other keys a valid file already has."""
        if not self.enabled:
            return
        # As in `ForwardCache.put`: a file found missing a moment ago is not read again.
        absent = (fingerprint, text) in self._absent
        entries = {} if absent else dict(self._read(fingerprint, text, tokens, count=False) or {})
        self._absent.discard((fingerprint, text))
        entries.update({key: encode_numbers(value) for key, value in numbers.items()})
        stored = {**self._fields(fingerprint, text), "tokens": tokens, "entries": entries}
        blob = json.dumps(stored, sort_keys=True, ensure_ascii=False).encode("utf-8")
        write_atomic(self.path_for(fingerprint, text), blob)
        self.stats.writes += 1
