"""The claim language: claims, measures and expectations, parsed into `headprobe.claims.spec`.

Pure: no files, no model. Every error is a `ClaimFileError` without a location; the caller
(`headprobe.claims.yaml_fields`, for hypothesis files) adds ``file:line: field:`` with
`ClaimFileError.located`.

Grammar of a claim (SPEC §3)::

    claim   := heads ":" source ("->" target)?    # no target: only for measure entropy
    heads   := pattern ("," pattern)*            # L3H10, L3H*, L*H10, L*H* (from 1)
    source  := "token" | "all" | "mask" | "cls" | "sep" | "word:" REGEX | "span:" LABEL
    target  := "next" | "previous" | "self" | "offset:" SIGN? INT | "cls" | "sep" | "mask"
             | "punct" | "same-word" | "word:" REGEX | "span:" LABEL
    SIGN    := "+" | "-"                         # offset:2 means offset:+2
    LABEL   := [A-Za-z0-9_-]+
    REGEX   := a regular expression in RE2 syntax (`headprobe.claims.wordregex`: Python's
               without backreferences or lookaround), matched case-insensitively against the
               whole word; a source REGEX runs up to the first "->" (or to the end of a claim
               without a target), a target REGEX to the end of the claim

Keywords are case-insensitive; whitespace between tokens is free. ``next``, ``previous`` and
``self`` are the offsets +1, -1 and 0 (``Target.offset``), so ``offset:0`` measures what ``self``
measures.

Measures::

    measure := "argmax" | "mass" | "topk:" K | "entropy" | "effect"  # K a positive integer

Whether a claim has a target is checked against its measure where both are known
(`headprobe.claims.claim_checks`, `headprobe.engine.claim_api`): ``entropy`` takes none, every
other measure one.

Expectations (numbers in [0, 1]; a number may be written as a percentage, ``80%`` = 0.8)::

    expect  := OP NUMBER | NUMBER | "between" NUMBER "and" NUMBER | "unchanged"
    OP      := ">=" | ">" | "<=" | "<" | "≥" | "≤"

A bare number (``0.8``, ``"80%"``, or a YAML number) means ``>= NUMBER``; ``between`` bounds are
inclusive.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from headprobe.claims.spec import (
    SOURCE_KINDS,
    TARGET_KINDS,
    Claim,
    Expectation,
    Measure,
    Source,
    Target,
)
from headprobe.claims.textfile import describe_character
from headprobe.claims.wordregex import WordRegexError, compile_word_regex
from headprobe.errors import ClaimFileError, did_you_mean
from headprobe.heads import HeadPattern, parse_head_patterns

__all__ = [
    "compile_word_regex",
    "effect_measure",
    "parse_claim",
    "parse_expectation",
    "parse_measure",
    "parse_source",
    "parse_target",
]

_STEPS = {"next": 1, "previous": -1, "self": 0}
_WITH_ARG = ("word", "span")
_KEYWORD = re.compile(r"[A-Za-z](?:[A-Za-z_]|-(?!>))*")
_LABEL = re.compile(r"[A-Za-z0-9_-]+\Z")
_OFFSET = re.compile(r"[+-]?[0-9]{1,6}\Z")
MAX_CLAIM_CHARS = 1000
_NUMBER = re.compile(r"(?P<number>[+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<percent>%?)\Z")


@dataclass(frozen=True)
class _Cursor:
    """The text being parsed and a 0-based column into it; errors point at the column."""

    text: str
    column: int = 0

    def at(self, column: int) -> _Cursor:
        return _Cursor(self.text, column)

    def skip_space(self) -> _Cursor:
        column = self.column
        while column < len(self.text) and self.text[column].isspace():
            column += 1
        return self.at(column)

    @property
    def rest(self) -> str:
        return self.text[self.column:]

    def error(self, what: str, kind: str = "claim") -> ClaimFileError:
        """``what`` at this column, with the text and a caret under the bad spot."""
        return ClaimFileError(
            f"cannot parse the {kind} at column {self.column + 1}: {what}\n"
            f"    {self.text}\n    {' ' * self.column}^")


# --- claims -------------------------------------------------------------------------------


def parse_claim(text: str) -> Claim:
    """Parse ``"L2H5: token -> next"`` (or ``"L1H1: token"``, without a target) into a `Claim`;
    errors point at the column."""
    if not isinstance(text, str):
        raise ClaimFileError(f"expected a claim string such as 'L2H5: token -> next', got "
                             f"{text!r} of type {type(text).__name__}")
    if not text.strip():
        raise ClaimFileError("the claim is empty; write it as 'HEADS: SOURCE -> TARGET', "
                             "e.g. 'L2H5: token -> next'")
    _check_length(text, "claim")
    cursor = _Cursor(text)
    heads, cursor = _heads(cursor)
    source, after = _source(cursor)
    target = None if after is None else _target(after)
    return Claim(heads=heads, source=source, target=target)


def parse_source(text: str) -> Source:
    """Parse a source alone (the ``from:`` field): ``token``, ``word:REGEX``, ``span:LABEL``..."""
    cursor = _Cursor(_require_text(text, "source", "token"))
    source, _ = _source(cursor, standalone=True)
    return source


def parse_target(text: str) -> Target:
    """Parse a target alone (the ``to:`` field): ``next``, ``offset:-2``, ``span:LABEL``..."""
    return _target(_Cursor(_require_text(text, "target", "next")), kind="target")


def _require_text(text: object, what: str, example: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ClaimFileError(f"expected a {what} such as {example!r}, got {text!r} of type "
                             f"{type(text).__name__}")
    _check_length(text, what)
    return text


def _check_length(text: str, what: str) -> None:
    """A claim (or its source, or target) is not too long and holds printable characters."""
    if len(text) > MAX_CLAIM_CHARS:
        raise ClaimFileError(f"the {what} is {len(text):,} characters long, more than "
                             f"{MAX_CLAIM_CHARS:,}; write a shorter one (a word: pattern such as "
                             f"'word:the|a' lists alternatives)")
    for column, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cs") and char != "\t":
            raise _Cursor(text, column).error(f"{describe_character(char)}; remove it",
                                              "claim" if what == "claim" else what)


def _heads(cursor: _Cursor) -> tuple[tuple[HeadPattern, ...], _Cursor]:
    colon = cursor.text.find(":")
    end = colon if colon >= 0 else len(cursor.text)
    patterns: list[HeadPattern] = []
    start = 0
    for part in cursor.text[:end].split(","):
        column = start + len(part) - len(part.lstrip())
        words = part.split()
        if len(words) > 1:  # 'L2H5 token -> next': the colon is missing
            gap = column + len(words[0])
            raise cursor.at(gap).error("expected ':' after the heads, as in 'L2H5: token -> next'")
        try:
            patterns.extend(parse_head_patterns(part))
        except ClaimFileError as error:
            raise cursor.at(column).error(error.message) from None
        start += len(part) + 1
    if colon < 0:
        raise cursor.at(len(cursor.text)).error(
            "expected ':' after the heads, as in 'L2H5: token -> next'")
    return tuple(patterns), cursor.at(colon + 1)


def _keyword(cursor: _Cursor, role: str, kinds: tuple[str, ...],
             other: tuple[str, ...], kind: str) -> tuple[str, _Cursor]:
    """Read a source or target keyword; explain a misspelt or misplaced one."""
    cursor = cursor.skip_space()
    match = _KEYWORD.match(cursor.text, cursor.column)
    valid = ", ".join(kinds)
    if not match:
        found = repr(cursor.rest[:12]) if cursor.rest else "the end"
        raise cursor.error(f"expected a {role} ({valid}), found {found}", kind)
    word = match.group().lower()
    if word not in kinds:
        if word in other:
            other_role = "target" if role == "source" else "source"
            raise cursor.error(f"{word!r} is a {other_role}, not a {role}; a {role} is one of "
                               f"{valid}", kind)
        raise cursor.error(f"unknown {role} {match.group()!r}{did_you_mean(word, kinds)}; "
                           f"a {role} is one of {valid}", kind)
    return word, cursor.at(match.end())


def _source(cursor: _Cursor, standalone: bool = False) -> tuple[Source, _Cursor | None]:
    """The source and a cursor after its "->" (None when the claim ends without a target)."""
    kind_text = "source" if standalone else "claim"
    word, cursor = _keyword(cursor, "source", SOURCE_KINDS, TARGET_KINDS, kind_text)
    if word in _WITH_ARG:
        cursor = _colon(cursor, word, kind_text)
        arrow = -1 if standalone else cursor.text.find("->", cursor.column)
        end = len(cursor.text) if arrow < 0 else arrow
        arg = _argument(cursor, end, word, kind_text)
        after = None if arrow < 0 else cursor.at(end + 2)
        return Source(word, arg), after  # type: ignore[arg-type]
    if standalone:
        _expect_end(cursor, "after the source", kind_text)
        return Source(word), None  # type: ignore[arg-type]
    cursor = cursor.skip_space()
    if not cursor.rest:  # 'L1H1: token': no target (measure: entropy)
        return Source(word), None  # type: ignore[arg-type]
    if not cursor.rest.startswith("->"):
        raise cursor.error(f"expected '->' after the source {word!r}, found "
                           f"{cursor.rest[:12]!r}", kind_text)
    return Source(word), cursor.at(cursor.column + 2)  # type: ignore[arg-type]


def _target(cursor: _Cursor, kind: str = "claim") -> Target:
    word, cursor = _keyword(cursor, "target", TARGET_KINDS, SOURCE_KINDS, kind)
    if word in _STEPS:
        _expect_end(cursor, "after the target", kind)
        return Target(word, offset=_STEPS[word])  # type: ignore[arg-type]
    if word == "offset":
        cursor = _colon(cursor, word, kind).skip_space()
        text = cursor.rest.strip()
        if not _OFFSET.match(text):
            raise cursor.error(f"expected a whole number of positions after 'offset:', such as "
                               f"+2 or -1 (at most 6 digits), found {text or 'nothing'!r}",
                               kind)
        return Target("offset", offset=int(text))
    if word in _WITH_ARG:
        cursor = _colon(cursor, word, kind)
        return Target(word, _argument(cursor, len(cursor.text), word, kind))  # type: ignore
    _expect_end(cursor, "after the target", kind)
    return Target(word)  # type: ignore[arg-type]


def _colon(cursor: _Cursor, word: str, kind: str) -> _Cursor:
    if not cursor.rest.startswith(":"):
        example = "word:the|a" if word == "word" else ("offset:+2" if word == "offset"
                                                          else "span:adv")
        raise cursor.error(f"expected ':' right after {word!r}, as in {example!r}", kind)
    return cursor.at(cursor.column + 1)


def _argument(cursor: _Cursor, end: int, word: str, kind: str) -> str:
    """The REGEX of ``word:`` or the LABEL of ``span:``, validated."""
    raw = cursor.text[cursor.column:end]
    arg = raw.strip()
    start = cursor.at(cursor.column + len(raw) - len(raw.lstrip()))
    if not arg:
        what = "a regular expression" if word == "word" else "a span label"
        raise start.error(f"expected {what} after '{word}:'", kind)
    if word == "span" and not _LABEL.match(arg):
        raise start.error(f"span label {arg!r} may only contain letters, digits, '_' and '-'",
                          kind)
    if word == "word":
        try:
            compile_word_regex(arg)
        except WordRegexError as error:
            raise start.error(f"{arg!r} is not a valid regular expression ({error}); write one "
                              f"such as 'word:the|a'", kind) from None
    return arg


def _expect_end(cursor: _Cursor, where: str, kind: str) -> None:
    cursor = cursor.skip_space()
    if cursor.rest:
        raise cursor.error(f"unexpected {cursor.rest!r} {where}", kind)


# --- measures -------------------------------------------------------------------------------


def parse_measure(value: object) -> Measure:
    """``"argmax"``, ``"mass"``, ``"topk:K"`` (K a positive integer), ``"entropy"`` or
    ``"effect"`` (with SPEC §14.2's defaults: mean ablation, hidden effect, heads alone)."""
    if not isinstance(value, str):
        raise ClaimFileError(f"expected a measure ('argmax', 'mass', 'topk:K', 'entropy' or "
                             f"'effect'), got {value!r} of type {type(value).__name__}")
    text = value.strip().lower()
    if text in ("argmax", "mass", "entropy"):
        return Measure(text)  # type: ignore[arg-type]
    if text == "effect":
        return effect_measure()
    name, colon, k = text.partition(":")
    if name.strip() == "topk":
        k = k.strip()
        if not colon or not re.fullmatch(r"[0-9]{1,6}", k) or int(k) < 1:
            raise ClaimFileError(f"measure {value!r}: topk needs a positive whole number K "
                                 f"(at most 6 digits), as in 'topk:3'")
        return Measure("topk", k=int(k))
    raise ClaimFileError(f"unknown measure {value!r}"
                         f"{did_you_mean(name, ('argmax', 'mass', 'topk', 'entropy', 'effect'))}"
                         f"; a measure is 'argmax' (default), 'mass', 'topk:K' such as 'topk:3', "
                         f"'entropy' or 'effect'")


def effect_measure(ablation: str | None = None, effect: str | None = None,
                   together: bool | None = None) -> Measure:
    """``measure: effect`` with its options, defaults filled in (SPEC §14.2)."""
    return Measure("effect", ablation=ablation or "mean",  # type: ignore[arg-type]
                   effect=effect or "hidden",  # type: ignore[arg-type]
                   together=bool(together))


# --- expectations ---------------------------------------------------------------------------

_OPS = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "≥": ">=", "≤": "<="}
MAX_EXPECT_CHARS = 100
_EXPECT_HELP = ("write '>= 0.8', '> 0.5', '<= 0.2', '< 0.1', '80%', 'between 0.2 and 0.5' "
                "(numbers in [0, 1]) or 'unchanged' (compared with a snapshot)")


def parse_expectation(value: object) -> Expectation:
    """``">= 0.8"``, ``"< 10%"``, ``"between 0.2 and 0.5"``; a bare number means ``>=``.

    ``Expectation.text`` keeps the text as written (a YAML number ``0.8`` becomes ``">= 0.8"``).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ClaimFileError(f"expected an expectation string, got {value!r} of type "
                             f"{type(value).__name__}; {_EXPECT_HELP}")
    if not isinstance(value, str):
        try:
            written = str(value)
        except ValueError:  # an int with more digits than str() converts
            raise ClaimFileError(f"the expectation is a number with thousands of digits; "
                                 f"{_EXPECT_HELP}") from None
        return Expectation(">=", _bound(written, value), text=f">= {written}")
    text = " ".join(value.split())
    if not text:
        raise ClaimFileError(f"the expectation is empty; {_EXPECT_HELP}")
    if text.lower() == "unchanged":
        return Expectation("unchanged", 0.0, text="unchanged")
    if len(text) > MAX_EXPECT_CHARS:
        raise ClaimFileError(f"the expectation is {len(text):,} characters long; {_EXPECT_HELP}")
    lowered = text.lower()
    if lowered.startswith("between"):
        return _between(text, value)
    for symbol in sorted(_OPS, key=len, reverse=True):
        if text.startswith(symbol):
            return Expectation(_OPS[symbol], _bound(text[len(symbol):], value),  # type: ignore
                               text=text)
    if text[0] in "=!":
        raise ClaimFileError(f"expectation {value!r}: unknown comparison; {_EXPECT_HELP}")
    return Expectation(">=", _bound(text, value), text=text)


def _between(text: str, value: str) -> Expectation:
    match = re.fullmatch(r"between\s+(\S+(?:\s*%)?)\s+and\s+(\S+(?:\s*%)?)", text, re.IGNORECASE)
    if not match:
        raise ClaimFileError(f"expectation {value!r}: expected 'between LOW and HIGH', as in "
                             f"'between 0.2 and 0.5'")
    low, high = _bound(match.group(1), value), _bound(match.group(2), value)
    if low > high:
        raise ClaimFileError(f"expectation {value!r}: the lower bound {low:g} is above the upper "
                             f"bound {high:g}; write 'between {high:g} and {low:g}'")
    return Expectation("between", low, high, text=text)


def _bound(number: str, value: object) -> float:
    """A number in [0, 1], from ``0.8`` or ``80%``."""
    match = _NUMBER.match(number.strip())
    if not match:
        raise ClaimFileError(f"expectation {value!r}: {number.strip() or 'nothing'!r} is not a "
                             f"number; {_EXPECT_HELP}")
    bound = float(match.group("number"))
    if match.group("percent"):
        bound /= 100
    if not (math.isfinite(bound) and 0.0 <= bound <= 1.0):
        hint = " (write percentages with '%', as in '80%')" if 1 < bound <= 100 else ""
        raise ClaimFileError(f"expectation {value!r}: {number.strip()} is outside [0, 1]; every "
                             f"measure is a share or an attention mass between 0 and 1{hint}")
    return bound
