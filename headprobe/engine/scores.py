"""The score cache: each claim's per-sentence numbers, kept in the forward cache's entries.

The forward cache (`headprobe.cache.entries`) spares a re-run the model; the scores spare it the
scoring too. An unchanged re-run of ``headprobe check`` finds every (claim, sentence) pair here
and neither runs the model nor reads the sentence's attention.

What is stored. In the header of the sentence's forward-cache entry, a ``scores`` object: a
format version, the digest of the scoring code and, per *scoring key*, the `SentenceNumbers` a
`ClaimAccumulator` keeps: counted and left-out sources, hits per head and hits per baseline
offset, and for a claim with heads of local layers the same counts per window (``windowed``).
The scoring key is everything the numbers depend on besides the run: level, source,
target, measure, the sentence's spans, the ordered heads and whether baseline offsets are needed.
Floats are stored as ``float.hex`` so a cached number equals the fresh one bit for bit. A write
keeps the entries of other keys already there (claim A, then claim B, then both: everything
cached). The header is sealed with its key (`headprobe.cache.entries`), so damaged numbers are
never used.

The scoring-code digest hashes the source of the modules that compute the numbers, so editing
the scoring invalidates every entry's scores instead of serving stale numbers (the attention
stays valid). Scores from other scoring code are ignored, and rewritten with the entry.

Whole claims. A claim whose every sentence was scored is also kept as one row of the forward
cache's ``claims`` table (`ScoreCache.get_claim` / `put_claim`): the numbers of all its sentences
in order, as raw little-endian int64 and float64 arrays, under the SHA-256 of the scoring key's
claim part, the scoring-code digest and every sentence's entry key and spans. An unchanged
re-run reads one row per claim instead of one entry per sentence; the row's header names its
fields and the data's SHA-256 and is sealed with its key (`ForwardCache.claim_data`), and the
arrays are checked for shape and range before use, so a damaged row is a miss, never a number.
A claim with heads of local layers (ModernBERT) is not kept as a row: its per-window counts stay in
the sentences' entries.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.cache.entries import CacheStats, EntryKey, ForwardCache, ScoresUpdate
from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation.accumulate import SentenceNumbers, WindowNumbers
from headprobe.evaluation.measures import BASELINE_OFFSETS
from headprobe.heads import Head

FORMAT_VERSION = 3
# The modules whose code decides a sentence's numbers (relative to the headprobe package).
_SCORING_MODULES = ("evaluation/accumulate.py", "evaluation/positions.py",
                    "evaluation/measures.py", "runs.py", "engine/scores.py")


@functools.lru_cache(maxsize=1)
def scoring_digest() -> str:
    """SHA-256 over the source of the modules that compute `SentenceNumbers`."""
    package = Path(__file__).resolve().parent.parent  # the headprobe package
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
              "target": None if spec.claim.target is None else asdict(spec.claim.target),
              "measure": asdict(spec.measure),
              "heads": [[h.layer, h.head] for h in heads],
              "baseline": spec.baseline == "offset"}
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text[:-1] + ',"spans":'


def claim_fields(spec: ClaimSpec, heads: Sequence[Head], count: int) -> dict[str, Any]:
    """What a whole claim's row names in its header (checked on every read)."""
    return {"version": FORMAT_VERSION, "scoring": scoring_digest(),
            "claim": _claim_part(spec, tuple(heads)), "sentences": count,
            "heads": len(heads), "baseline": spec.baseline == "offset"}


def claim_key(fields: Mapping[str, Any], sentences: Sequence[Sentence],
              keys: Sequence[EntryKey]) -> str:
    """SHA-256 (hex) of a whole claim: its fields and, in order, each sentence's entry key and
    spans."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=True).encode("ascii"))
    for sentence, key in zip(sentences, keys, strict=True):
        spans = [[s.label, s.start, s.end] for s in sentence.spans]
        digest.update(b"\0" + key.digest.encode("ascii") + b"\0"
                      + json.dumps(spans, ensure_ascii=True).encode("ascii"))
    return digest.hexdigest()


def encode_claim_numbers(numbers: Sequence[SentenceNumbers], heads: int,
                         baseline: bool) -> bytes:
    """The numbers of every sentence, in order: n and left-out (int64), hits ``[sentence,
    head]`` and, with ``baseline``, hits per offset ``[sentence, offset]`` (float64)."""
    parts = [np.array([x.n for x in numbers], dtype="<i8"),
             np.array([x.left_out for x in numbers], dtype="<i8"),
             np.stack([x.hits for x in numbers]).astype("<f8").reshape(len(numbers), heads)]
    if baseline:
        parts.append(np.array([x.baseline for x in numbers], dtype="<f8"))
    return b"".join(part.tobytes() for part in parts)


def claim_bytes(count: int, heads: int, baseline: bool) -> int:
    """The size of `encode_claim_numbers`'s output."""
    return 8 * count * (2 + heads + (len(BASELINE_OFFSETS) if baseline else 0))


def decode_claim_numbers(data: bytes, count: int, heads: int,
                         baseline: bool) -> list[SentenceNumbers] | None:
    """`encode_claim_numbers`'s numbers, or None unless they have its size and sane values."""
    if len(data) != claim_bytes(count, heads, baseline):
        return None
    flat = np.frombuffer(data, dtype="<i8", count=2 * count)
    n, left_out = flat[:count], flat[count:]
    rest = np.frombuffer(data, dtype="<f8", offset=16 * count)
    hits = rest[:count * heads].reshape(count, heads)
    offsets = rest[count * heads:].reshape(count, -1) if baseline else None
    if (n < 0).any() or (left_out < 0).any() or not np.isfinite(rest).all():
        return None
    return [SentenceNumbers(int(n[i]), int(left_out[i]), hits[i].copy(),
                            None if offsets is None else tuple(float(v) for v in offsets[i]))
            for i in range(count)]


def _hexes(values: Sequence[float] | None) -> list[str] | None:
    return None if values is None else [float(v).hex() for v in values]


def encode_numbers(numbers: SentenceNumbers) -> dict[str, Any]:
    return {"n": numbers.n, "left_out": numbers.left_out,
            "hits": [float(h).hex() for h in numbers.hits],
            "baseline": _hexes(numbers.baseline),
            "windowed": [[w.n, w.left_out, _hexes(w.baseline)] for w in numbers.windowed]}


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
        windowed = []
        for count, dropped, offsets in entry.get("windowed", []):
            if type(count) is not int or type(dropped) is not int or count < 0 or dropped < 0:
                return None
            windowed.append(WindowNumbers(count, dropped, None if offsets is None
                                          else tuple(float.fromhex(b) for b in offsets)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return SentenceNumbers(n, left_out, hits, baseline, tuple(windowed))


class ScoreCache:
    """The scores kept in the forward cache's entries (`ForwardCache`). ``enabled`` follows it:
    with ``--no-cache`` nothing is read or written."""

    def __init__(self, forward: ForwardCache) -> None:
        self.forward = forward
        self.stats = CacheStats()

    @property
    def enabled(self) -> bool:
        return self.forward.enabled

    def _valid(self, scores: Any) -> bool:
        return (isinstance(scores, dict) and scores.get("version") == FORMAT_VERSION
                and scores.get("scoring") == scoring_digest()
                and isinstance(scores.get("entries"), dict))

    def get(self, key: EntryKey, keys: Sequence[str]) -> list[SentenceNumbers] | None:
        """The numbers of every scoring key, in order, if the sentence's entry holds them all;
        else None. Scores from other scoring code count as ``invalid``."""
        if not self.enabled:
            return None
        header = self.forward.header(key)
        scores = None if header is None else header.get("scores")
        if scores is not None and not self._valid(scores):
            self.stats.invalid += 1
            scores = None
        entries = None if scores is None else scores["entries"]
        found = []
        for scoring in keys:
            numbers = decode_numbers(entries[scoring]) if entries and scoring in entries else None
            if numbers is None:
                self.stats.misses += 1
                return None
            found.append(numbers)
        self.stats.hits += 1
        return found

    def get_claim(self, spec: ClaimSpec, heads: Sequence[Head], sentences: Sequence[Sentence],
                  keys: Sequence[EntryKey]) -> list[SentenceNumbers] | None:
        """The numbers of every sentence of a whole claim, in order, if its row is stored."""
        if not self.enabled or not sentences:
            return None
        fields = claim_fields(spec, heads, len(sentences))
        baseline = bool(fields["baseline"])
        data = self.forward.claim_data(claim_key(fields, sentences, keys), fields,
                                       claim_bytes(len(sentences), len(heads), baseline))
        if data is None:
            return None
        numbers = decode_claim_numbers(data, len(sentences), len(heads), baseline)
        if numbers is None:  # sealed, yet not numbers put_claim writes: damage all the same
            self.forward.problems.damaged("forward cache", self.forward.path,
                                          "a claim's numbers out of shape or range")
        return numbers

    def put_claim(self, spec: ClaimSpec, heads: Sequence[Head], sentences: Sequence[Sentence],
                  keys: Sequence[EntryKey], numbers: Sequence[SentenceNumbers]) -> None:
        """Keep a whole claim's numbers (``numbers[i]`` of ``sentences[i]``) as one row."""
        if not self.enabled or not sentences:
            return
        fields = claim_fields(spec, heads, len(sentences))
        if not all(np.isfinite(x.hits).all() and x.n >= 0 and x.left_out >= 0
                   and np.isfinite(np.asarray(x.baseline or (), dtype=np.float64)).all()
                   for x in numbers):
            return  # not numbers a row may hold: the sentences' entries keep them instead
        self.forward.put_claim_data(
            claim_key(fields, sentences, keys), fields,
            encode_claim_numbers(numbers, len(heads), bool(fields["baseline"])))

    def update(self, numbers: Mapping[str, SentenceNumbers]) -> ScoresUpdate:
        """For `ForwardCache.put`: the entry's scores with ``numbers`` written in by scoring key,
        keeping the other keys of valid old scores."""
        encoded = {key: encode_numbers(value) for key, value in numbers.items()}

        def updated(old: Any) -> dict[str, Any]:
            entries = dict(old["entries"]) if self._valid(old) else {}
            entries.update(encoded)
            return {"version": FORMAT_VERSION, "scoring": scoring_digest(), "entries": entries}

        return updated

    def put(self, key: EntryKey, numbers: Mapping[str, SentenceNumbers],
            heads: Sequence[tuple[int, int]], attentions: np.ndarray, *, max_heads: int) -> None:
        """Write the sentence's entry once: ``attentions`` [head, q, k] of ``heads`` (0-based
        pairs) with ``numbers`` by scoring key, keeping what a valid entry already holds."""
        if not self.enabled:
            return
        self.forward.put(key, heads, attentions, scores=self.update(numbers),
                         max_heads=max_heads)
        self.stats.writes += 1
