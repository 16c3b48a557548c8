"""Profiles (SPEC §11): every head's standard statistics over a sentence set, and their JSON file.

`compute_profile` runs every sentence through the forward cache (or the model, for what the
cache misses: a profile of a model already in the cache never runs it) at full depth, computes
all heads' statistics in one vectorised pass per sentence (`headprobe.evaluation.profile`), and
pools them. A `Profile` keeps each sentence's numbers in memory (for diff's diagrams and for
discover's intervals); its JSON file holds the pooled values only::

    {"headprobe_version": "...", "model": "...", "model_fingerprint": "sha256:...",
     "level": "token", "sentences": {"count": 500, "sha256": "..."},
     "statistics": ["argmax:previous", ..., "entropy"],
     "heads": {"L1H1": {"argmax:previous": 0.12, ..., "entropy": 0.71}, ...}}

``sentences.sha256`` is the SHA-256 of the JSON array of the sentence texts in order (compact,
UTF-8): two profiles are over the same sentences exactly when their counts and digests agree.
`read_profile` reads a user's profile file within bounds and checks it against this schema.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headprobe._version import __version__
from headprobe.cache.entries import ForwardCache
from headprobe.cache.runs import forward_runs
from headprobe.claims.textfile import TextFileProblem, read_user_text
from headprobe.engine.evaluate import ProgressFactory
from headprobe.engine.models import ModelLike
from headprobe.errors import UsageError
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile import STATISTICS, ProfileAccumulator, SentenceNumbers
from headprobe.heads import Head, parse_head

LEVELS = ("token", "word")
_DIGITS = 6


def sentences_digest(texts: Sequence[str]) -> str:
    """The SHA-256 of the JSON array of ``texts`` in order (compact, UTF-8)."""
    payload = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, eq=False)
class Profile:
    """Every head's statistics over a sentence set.

    Attributes:
      model, fingerprint: the model as given and its ``sha256:`` fingerprint.
      level: ``token`` or ``word``.
      count, sentences_sha256: the sentence set (see `sentences_digest`).
      heads: the heads in order, layer by layer.
      values: float64 ``[head, statistic]`` in the order of `STATISTICS` (NaN: nothing counted).
      texts: the sentences, when computed here (not read from a file).
      per_sentence: each sentence's numbers, when computed here.
    """

    model: str
    fingerprint: str
    level: str
    count: int
    sentences_sha256: str
    heads: tuple[Head, ...]
    values: np.ndarray
    texts: tuple[str, ...] = ()
    per_sentence: tuple[SentenceNumbers, ...] = field(default=(), repr=False)

    @property
    def num_layers(self) -> int:
        return max(h.layer for h in self.heads)

    @property
    def num_heads(self) -> int:
        return max(h.head for h in self.heads)

    def value(self, head: Head, statistic: str) -> float:
        return float(self.values[self.heads.index(head), STATISTICS.index(statistic)])

    def to_json(self) -> dict[str, Any]:
        return {"headprobe_version": __version__, "model": self.model,
                "model_fingerprint": self.fingerprint, "level": self.level,
                "sentences": {"count": self.count, "sha256": self.sentences_sha256},
                "statistics": list(STATISTICS),
                "heads": {str(head): {name: _rounded(self.values[h, s])
                                      for s, name in enumerate(STATISTICS)}
                          for h, head in enumerate(self.heads)}}


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), _DIGITS)


def compute_profile(model: ModelLike, texts: Sequence[str], *, level: str = "token",
                    cache: ForwardCache | None = None,
                    progress: ProgressFactory | None = None) -> Profile:
    """The profile of ``model`` over ``texts`` (see the module docstring)."""
    if level not in LEVELS:
        raise UsageError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if not texts:
        raise UsageError("a profile needs at least one sentence")
    heads = tuple(Head(layer, head) for layer in range(1, model.num_layers + 1)
                  for head in range(1, model.num_heads + 1))
    accumulator = ProfileAccumulator(heads)
    numbers: dict[int, SentenceNumbers] = {}
    runs = forward_runs(texts, heads, fingerprint=model.fingerprint, encode=model.tokenize,
                        num_layers=model.num_layers, num_heads=model.num_heads,
                        load_model=lambda: model, cache=cache)
    with (progress(len(texts), "profile") if progress else _no_bar()) as bar:
        for index, run in runs:
            numbers[index] = accumulator.add(level_view(run, level))
            bar.advance()
    ordered = tuple(numbers[i] for i in range(len(texts)))
    accumulator.sentences[:] = list(ordered)
    return Profile(model=model.name, fingerprint=model.fingerprint, level=level,
                   count=len(texts), sentences_sha256=sentences_digest(texts), heads=heads,
                   values=accumulator.values(), texts=tuple(texts), per_sentence=ordered)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, count: int = 1) -> None:
        return None


def _no_bar() -> _NoBar:
    return _NoBar()


def write_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write the profile's JSON to ``path`` atomically."""
    from headprobe.atomic import write_atomic

    target = Path(path)
    text = json.dumps(profile.to_json(), indent=1, ensure_ascii=False) + "\n"
    try:
        write_atomic(target, text.encode("utf-8"), mode=0o644)
    except OSError as error:
        raise UsageError(f"cannot write the profile to {str(target)!r}: "
                         f"{error.strerror or error}") from None
    return target


def looks_like_profile(path: str | os.PathLike[str]) -> bool:
    """A JSON file (by name) that exists: `diff` reads such a side as a profile, not a model."""
    candidate = Path(path)
    return candidate.suffix.lower() == ".json" and candidate.is_file()


def read_profile(path: str | os.PathLike[str]) -> Profile:
    """A profile file written by `write_profile`; a clear `UsageError` for anything else."""
    shown = os.fspath(path)
    try:
        data = json.loads(read_user_text(path))
    except (OSError, TextFileProblem) as error:
        raise UsageError(f"{shown}: cannot read the profile: {error}") from None
    except ValueError as error:
        raise UsageError(f"{shown}: not a profile: not JSON ({error})") from None
    return profile_from_json(data, shown)


def profile_from_json(data: Any, shown: str) -> Profile:
    """The `Profile` of a profile file's JSON, checked against the schema."""
    def bad(what: str) -> UsageError:
        return UsageError(f"{shown}: not a headprobe profile: {what}; write one with "
                          f"'headprobe profile -o FILE.json'")

    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    for key in ("model", "model_fingerprint", "level", "sentences", "statistics", "heads"):
        if key not in data:
            raise bad(f"no {key!r}")
    sentences = data["sentences"]
    if not isinstance(sentences, dict) or not isinstance(sentences.get("count"), int) \
            or not isinstance(sentences.get("sha256"), str):
        raise bad("'sentences' must be {\"count\": N, \"sha256\": \"...\"}")
    if data["statistics"] != list(STATISTICS):
        raise bad(f"its statistics are not this headprobe's ({', '.join(STATISTICS[:3])}, ...)")
    if data["level"] not in LEVELS:
        raise bad(f"level {data['level']!r} is not one of {', '.join(LEVELS)}")
    heads_json = data["heads"]
    if not isinstance(heads_json, dict) or not heads_json:
        raise bad("'heads' must map head names to statistics")
    heads: list[Head] = []
    rows = []
    for name, stats in heads_json.items():
        try:
            head = parse_head(str(name))
        except Exception:  # a ClaimFileError about the name: say it our way
            raise bad(f"{name!r} is not a head name such as 'L3H10'") from None
        if not isinstance(stats, dict) or set(stats) != set(STATISTICS):
            raise bad(f"{name} must have exactly the statistics {', '.join(STATISTICS[:2])}, ...")
        row = []
        for statistic in STATISTICS:
            value = stats[statistic]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise bad(f"{name} {statistic}: {value!r} is not a number")
            row.append(math.nan if value is None else float(value))
        heads.append(head)
        rows.append(row)
    order = sorted(range(len(heads)), key=lambda i: (heads[i].layer, heads[i].head))
    ordered = tuple(heads[i] for i in order)
    layers, per_layer = max(h.layer for h in ordered), max(h.head for h in ordered)
    if len(ordered) != layers * per_layer or len(set(ordered)) != len(ordered):
        raise bad(f"its heads are not every head of a {layers}-layer, {per_layer}-head model")
    return Profile(model=str(data["model"]), fingerprint=str(data["model_fingerprint"]),
                   level=str(data["level"]), count=sentences["count"],
                   sentences_sha256=sentences["sha256"], heads=ordered,
                   values=np.array([rows[i] for i in order], dtype=np.float64))
