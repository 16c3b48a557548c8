"""Profiles (SPEC §11): every head's standard statistics over a sentence set, and their JSON file.

`headprobe.engine.profiling.compute_profile` makes one (all heads' statistics in one
vectorised pass per sentence, `headprobe.evaluation.profile_stats`, pooled). A `Profile` keeps
each sentence's numbers in memory (for diff's diagrams and for discover's intervals); its JSON
file holds the pooled values only::

    {"headprobe_version": "...", "model": "...", "model_fingerprint": "sha256:...",
     "level": "token", "sentences": {"count": 500, "sha256": "..."},
     "statistics": ["argmax:previous", ..., "entropy", "output-norm"],
     "heads": {"L1H1": {"argmax:previous": 0.12, ..., "entropy": 0.71,
                        "output-norm": 0.31}, ...}}

``statistics`` is `STATISTICS`, `ALL_STATISTICS` (``profile --effects``: ``effect:hidden``
last) or, in files written before SPEC §14, `ATTENTION_STATISTICS` (still read).

``sentences.sha256`` is the SHA-256 of the JSON array of the sentence texts in order (compact,
UTF-8): two profiles are over the same sentences exactly when their counts and digests agree.
`read_profile` reads a user's profile file within the size cap of user files
(``$HEADPROBE_MAX_FILE_MB``) and checks it against this schema: every statistic null or a number
from 0 to 1, names printable text on one line, every head of a model once; anything else is a
`UsageError` naming the file and the field. ``output-norm`` and ``effect:hidden`` may exceed 1
(a head may write more than its layer's input): any finite number from 0 up.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headprobe import notebook
from headprobe._version import __version__
from headprobe.claims.spec import LEVELS
from headprobe.claims.textfile import TextFileProblem, describe_character, read_user_text
from headprobe.errors import UsageError, did_you_mean, printable
from headprobe.evaluation.profile_stats import (
    ALL_STATISTICS,
    ATTENTION_STATISTICS,
    STATISTICS,
    UNBOUNDED,
    SentenceNumbers,
)
from headprobe.heads import Head, parse_head
from headprobe.outputs import check_file, write_file

_DIGITS = 6
_MAX_NAME = 1000  # characters of a model name or fingerprint
_MAX_COUNT = 10**9  # sentences
_MAX_UNBOUNDED = 1e6  # an output norm or effect beyond this is no real model's
_KNOWN = (ATTENTION_STATISTICS, STATISTICS, ALL_STATISTICS)
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() splits at


def sentences_digest(texts: Sequence[str]) -> str:
    """The SHA-256 of the JSON array of ``texts`` in order (compact, UTF-8)."""
    payload = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_STRONGEST = "strongest argmax"  # `Profile.grid`'s default: each head's largest argmax


@dataclass(frozen=True, eq=False)
class Profile:
    """Every head's statistics over a sentence set.

    Attributes:
      model, fingerprint: the model as given and its ``sha256:`` fingerprint.
      level: ``token`` or ``word``.
      count, sentences_sha256: the sentence set (see `sentences_digest`).
      heads: the heads in order, layer by layer.
      values: float64 ``[head, statistic]`` in the order of ``statistics`` (NaN: nothing
        counted).
      texts: the sentences, when computed here (not read from a file).
      per_sentence: each sentence's numbers, when computed here.
      statistics: the statistics' names (see the module docstring).
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
    statistics: tuple[str, ...] = STATISTICS

    @property
    def num_layers(self) -> int:
        return max(h.layer for h in self.heads)

    @property
    def num_heads(self) -> int:
        return max(h.head for h in self.heads)

    def value(self, head: Head, statistic: str) -> float:
        return float(self.values[self.heads.index(head), self.statistics.index(statistic)])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile's JSON file (what ``headprobe profile -o`` writes) to ``path``,
        atomically; a path that cannot be written is a `UsageError` before anything is."""
        return write_profile(self, check_file(path, "save"))

    def __repr__(self) -> str:
        return (f"Profile({notebook.one_line(self.model)!r}, {len(self.heads)} heads, "
                f"{self.count} sentences, level {self.level!r})")

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16): what was profiled, and per head its strongest
        ``argmax`` target (`grid` shows any statistic)."""
        text, markup = self._display(_STRONGEST)
        return notebook.bundle(text, markup, include, exclude)

    def grid(self, statistic: str = _STRONGEST) -> notebook.Display:
        """A display of one statistic per head (``profile.grid("entropy")``); by default each
        head's strongest ``argmax`` target and its share."""
        if statistic != _STRONGEST and statistic not in self.statistics:
            raise UsageError(f"statistic: expected one of {', '.join(self.statistics)}, got "
                             f"{statistic!r}{did_you_mean(statistic, self.statistics)}")
        return notebook.Display(*self._display(statistic))

    def _display(self, statistic: str) -> tuple[str, str]:
        rows = [("model", self.model), ("fingerprint", notebook.short_fingerprint(
                    self.fingerprint)),
                ("sentences", f"{self.count:,} (sha256 {self.sentences_sha256[:12]}...)"),
                ("level", self.level),
                ("heads", f"{self.num_layers} layers x {self.num_heads} heads"),
                ("statistics", f"{len(self.statistics)}: {self.statistics[0]}, ..., "
                               f"{self.statistics[-1]}")]
        title = f"Profile of {self.model}"
        text, _ = notebook.described(title, rows)
        if statistic == _STRONGEST:
            caption = ("each head's strongest argmax target: the target most of its tokens "
                       "look at most, and the share of tokens that do; darker: a larger share")
        else:
            caption = f"{statistic} per head" + (" (darker: larger, relative to the largest)"
                                                 if statistic in UNBOUNDED else
                                                 " (darker: larger)")
        markup = notebook.page(title, notebook.facts(rows),
                               notebook.grid(self._cells(statistic), caption=caption))
        return text, markup

    def _cells(self, statistic: str) -> list[list[notebook.Cell | None]]:
        cells: list[list[notebook.Cell | None]] = [[None] * self.num_heads
                                                   for _ in range(self.num_layers)]
        if statistic == _STRONGEST:
            columns = [i for i, name in enumerate(self.statistics) if name.startswith("argmax:")]
            shown = np.nan_to_num(self.values[:, columns], nan=-1.0)
            best = shown.argmax(axis=1)
            values = self.values[np.arange(len(self.heads)), np.asarray(columns)[best]]
            notes = [self.statistics[columns[b]].partition(":")[2] for b in best.tolist()]
            top = 1.0
        else:
            values = self.values[:, self.statistics.index(statistic)]
            notes = [""] * len(self.heads)
            finite = values[np.isfinite(values)]
            top = 1.0 if statistic not in UNBOUNDED else max(float(finite.max(initial=0.0)),
                                                               1e-9)
        for head, value, said in zip(self.heads, values.tolist(), notes):
            counted = not math.isnan(value)
            cells[head.layer - 1][head.head - 1] = notebook.Cell(
                value=f"{value:.3f}" if counted else "n/a", note=said,
                shade=value / top if counted else None,
                title=f"{head}: {'argmax:' + said if said else statistic} = "
                      f"{f'{value:.3f}' if counted else 'n/a (nothing counted)'}")
        return cells

    def to_json(self) -> dict[str, Any]:
        return {"headprobe_version": __version__, "model": self.model,
                "model_fingerprint": self.fingerprint, "level": self.level,
                "sentences": {"count": self.count, "sha256": self.sentences_sha256},
                "statistics": list(self.statistics),
                "heads": {str(head): {name: _rounded(self.values[h, s])
                                      for s, name in enumerate(self.statistics)}
                          for h, head in enumerate(self.heads)}}


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), _DIGITS)


def write_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write the profile's JSON to ``path`` atomically (check the path first with
    `headprobe.outputs.check_file`)."""
    text = json.dumps(profile.to_json(), indent=1, ensure_ascii=False) + "\n"
    return write_file(Path(path), text.encode("utf-8"), what="profile")


def looks_like_profile(path: str | os.PathLike[str]) -> bool:
    """A JSON file (by name) that exists: `diff` reads such a side as a profile, not a model."""
    candidate = Path(path)
    return candidate.suffix.lower() == ".json" and candidate.is_file()


def read_profile(path: str | os.PathLike[str]) -> Profile:
    """A profile file written by `write_profile`; a `UsageError` naming the file (and the
    field) for anything else: a file over the size cap of user files, text that is not JSON or
    nests deeper than any JSON could, a value out of range, a name that is not printable."""
    shown = os.fspath(path)
    try:
        data = json.loads(read_user_text(path))
    except (OSError, TextFileProblem) as error:
        raise UsageError(f"{shown}: cannot read the profile: {error}") from None
    except RecursionError:
        raise UsageError(f"{shown}: not a profile: its JSON nests deeper than Python reads "
                         f"(a profile nests 3 levels deep)") from None
    except ValueError as error:
        raise UsageError(f"{shown}: not a profile: not JSON ({error})") from None
    return profile_from_json(data, shown)


class _NotAProfile(Exception):
    """What is wrong with a profile's JSON; ``profile_from_json`` says which file."""


def profile_from_json(data: Any, shown: str) -> Profile:
    """The `Profile` of a profile file's JSON, checked against the schema."""
    try:
        return _profile(data)
    except _NotAProfile as error:
        raise UsageError(f"{shown}: not a headprobe profile: {error}; write one with "
                         f"'headprobe profile -o FILE.json'") from None


def _profile(data: Any) -> Profile:
    if not isinstance(data, dict):
        raise _NotAProfile("expected a JSON object")
    for key in ("model", "model_fingerprint", "level", "sentences", "statistics", "heads"):
        if key not in data:
            raise _NotAProfile(f"no {key!r}")
    statistics = next((known for known in _KNOWN if data["statistics"] == list(known)), None)
    if statistics is None:
        raise _NotAProfile(f"statistics: not this headprobe's ({', '.join(STATISTICS[:3])}, "
                           f"..., {STATISTICS[-1]})")
    if data["level"] not in LEVELS:
        raise _NotAProfile(f"level: {_shown(data['level'])} is not one of {', '.join(LEVELS)}")
    count, digest = _sentences(data["sentences"])
    heads, values = _heads(data["heads"], statistics)
    return Profile(model=_name(data["model"], "model"),
                   fingerprint=_name(data["model_fingerprint"], "model_fingerprint"),
                   level=str(data["level"]), count=count, sentences_sha256=digest, heads=heads,
                   values=values, statistics=statistics)


def _name(value: Any, field: str, limit: int = _MAX_NAME) -> str:
    """A string of at most ``limit`` printable characters on one line."""
    if not isinstance(value, str) or not value.strip():
        raise _NotAProfile(f"{field}: expected a name, got {_shown(value)}")
    if len(value) > limit:
        raise _NotAProfile(f"{field}: {len(value):,} characters long; at most {limit:,}")
    bad = next((c for c in value if c in _LINE_BREAKS or printable(c) != c), None)
    if bad is not None:
        raise _NotAProfile(f"{field}: holds {describe_character(bad)}; a name is printable "
                           f"text on one line")
    return value


def _sentences(sentences: Any) -> tuple[int, str]:
    """``sentences``: ``{"count": N, "sha256": "..."}`` with 1 <= N <= `_MAX_COUNT`."""
    if not isinstance(sentences, dict) or not {"count", "sha256"} <= set(sentences):
        raise _NotAProfile('sentences: expected {"count": N, "sha256": "..."}')
    count = sentences["count"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_COUNT:
        raise _NotAProfile(f"sentences.count: expected a whole number from 1 to "
                           f"{_MAX_COUNT:,}, got {_shown(count)}")
    return count, _name(sentences["sha256"], "sentences.sha256", limit=128)


def _heads(heads_json: Any,
           statistics: tuple[str, ...]) -> tuple[tuple[Head, ...], np.ndarray]:
    """Every head of a model and its statistics, ordered layer by layer."""
    if not isinstance(heads_json, dict) or not heads_json:
        raise _NotAProfile("heads: expected a mapping of head names to statistics")
    rows: dict[Head, list[Any]] = {}
    for name, stats in heads_json.items():
        try:
            head = parse_head(name)
        except Exception:  # a ClaimFileError about the name: say it our way
            raise _NotAProfile(f"heads: {_shown(name)} is not a head name such as "
                               f"'L3H10'") from None
        if not isinstance(stats, dict) or set(stats) != set(statistics):
            raise _NotAProfile(f"heads.{name}: expected exactly the statistics "
                               f"{', '.join(statistics[:2])}, ..., {statistics[-1]}")
        rows[head] = [stats[s] for s in statistics]
    ordered = tuple(sorted(rows, key=lambda h: (h.layer, h.head)))
    layers, per_layer = max(h.layer for h in ordered), max(h.head for h in ordered)
    if len(ordered) != layers * per_layer or len(rows) != len(heads_json):
        raise _NotAProfile(f"heads: not every head of a {layers}-layer, {per_layer}-head "
                           f"model once ({len(heads_json):,} entries)")
    return ordered, _values([rows[h] for h in ordered], ordered, statistics)


def _values(rows: list[list[Any]], heads: tuple[Head, ...],
            statistics: tuple[str, ...]) -> np.ndarray:
    """float64 ``[head, statistic]``: each a number from 0 to 1, or null (NaN: nothing
    counted): a share, a mean attention or a normalised entropy; `UNBOUNDED` statistics any
    number from 0 to `_MAX_UNBOUNDED`."""
    top = np.array([_MAX_UNBOUNDED if s in UNBOUNDED else 1.0 for s in statistics])
    flat = [value for row in rows for value in row]
    values = None
    if set(map(type, flat)) <= {float, int, type(None)}:  # not bool: type() is exact
        try:
            values = np.array([math.nan if v is None else v for v in flat], dtype=np.float64)
        except OverflowError:  # an integer of hundreds of digits: located below
            pass
    if values is not None:
        counted = np.array([v is not None for v in flat])
        bounds = np.tile(top, len(rows))
        if not (counted & ~((values >= 0.0) & (values <= bounds))).any():
            return values.reshape(len(rows), len(statistics))
    for head, row in zip(heads, rows):  # the first bad value, for the message
        for statistic, value, most in zip(statistics, row, top.tolist()):  # Python floats:
            # they compare with an int of any size
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))
                                      or not 0.0 <= value <= most):
                raise _NotAProfile(f"heads.{head}.{statistic}: {_shown(value)} is not a "
                                   f"number from 0 to {most:g} (or null)")
    raise AssertionError("a bad value was not found")  # pragma: no cover


def _shown(value: Any) -> str:
    """``repr(value)``, shortened to fit in a message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text):,} characters)"
