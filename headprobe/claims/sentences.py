"""Sentences: span annotations, templates and sentence files, turned into `Sentence` objects.

Pure except `read_sentence_file`, which reads one text file, and `check_sentence_file_place`,
which resolves its path and looks at what kind of file it is. Errors are `ClaimFileError`s;
those about a sentence's text point at the column with a caret.

Annotations (SPEC §2)::

    [text]{label}   marks the characters of ``text`` with ``label`` (letters, digits, '_', '-');
                    the brackets and the label are removed, `Span` offsets index the cleaned text
    [MASK]          not followed by '{': the literal mask token, also inside a span:
                    ``[[MASK]]{obj}`` labels the mask token (``[MASK]{obj}`` is an error)
    \\[ \\] \\{ \\} \\\\    a literal bracket, brace or backslash

Templates: ``{slot}`` (letters, digits, '_', '-') is replaced by each value of the slot, in every
combination (`itertools.product`, slots in the order they first appear); a slot may be used more
than once (the same value each time) and inside a span (``[{adverb}]{adv}``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from headprobe.claims.spec import Sentence, Span
from headprobe.claims.textfile import (
    TextFileProblem,
    describe_character,
    read_user_text,
    stat_regular,
)
from headprobe.errors import ClaimFileError, FileOutsideProject, did_you_mean

__all__ = [
    "MAX_EXPANDED",
    "Location",
    "check_sentence_file_place",
    "check_slot_values",
    "check_template",
    "expand_template",
    "parse_annotated",
    "read_sentence_file",
    "render_template",
    "template_slot_names",
]

MAX_EXPANDED = 10_000
"""A template without ``generate:`` may expand to at most this many sentences."""

_MASK = "[MASK]"
_ESCAPABLE = "[]{}\\"
_LABEL_REF = re.compile(r"\{([A-Za-z0-9_-]*)(\}?)")
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # control, zero-width/format, spaces

Slots = Mapping[str, Sequence[str]] | Sequence[tuple[str, Sequence[str]]]


@dataclass(frozen=True)
class Location:
    """Where in a hypothesis file something was written, for errors about it."""

    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = (self.file or "") + (f":{self.line}" if self.line else "")
        return where + (f" ({self.field})" if self.field else "")

    def error(self, message: str) -> ClaimFileError:
        return ClaimFileError(message, file=self.file, line=self.line, field=self.field)


def _point(text: str, column: int, what: str, kind: str = "sentence") -> ClaimFileError:
    return ClaimFileError(f"cannot read the {kind} at column {column + 1}: {what}\n"
                          f"    {text}\n    {' ' * column}^")


# --- annotated sentences -------------------------------------------------------------------


def parse_annotated(text: str, origin: str = "") -> Sentence:
    """``"The cat [moved]{verb} across the [MASK]."`` → `Sentence` with a ``verb`` span."""
    if not isinstance(text, str):
        raise ClaimFileError(f"expected a sentence (a string), got {text!r} of type "
                             f"{type(text).__name__}")
    text = text.strip()
    if not text:
        raise ClaimFileError("the sentence is empty; write some text, or remove the entry")
    _check_characters(text)
    if "[" not in text and "]" not in text and "\\" not in text:  # plain text: nothing to parse
        return Sentence(text=text, spans=(), origin=origin)
    out: list[str] = []
    spans: list[Span] = []
    opened: int | None = None  # column of the '[' of the open span
    start = 0  # where the open span starts in ``out``
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append(text[i + 1])
            i += 2
        elif text.startswith(_MASK, i) and not text.startswith("{", i + len(_MASK)):
            out.append(_MASK)
            i += len(_MASK)
        elif char == "[":
            if opened is not None:
                raise _point(text, i, f"'[' inside the span opened at column {opened + 1}; "
                                      f"spans cannot be nested (write \\[ for a literal '[')")
            opened, start = i, len(out)
            i += 1
        elif char == "]":
            if opened is None:
                raise _point(text, i, "']' without a matching '[' (write \\] for a literal ']')")
            span, i = _close_span(text, i, opened, "".join(out[start:]), len("".join(out[:start])))
            spans.append(span)
            opened = None
        else:
            out.append(char)
            i += 1
    if opened is not None:
        raise _point(text, opened, "this '[' is never closed; mark a span as [text]{label} "
                                   "(write \\[ for a literal '[')")
    return Sentence(text="".join(out), spans=tuple(spans), origin=origin)


def _check_characters(text: str) -> None:
    """A sentence is printable text with something visible in it: no NUL, other control
    characters (tabs and line breaks are spaces) or lone surrogates, and not only zero-width
    and space characters."""
    if text.isascii() and text.isprintable() and not text.isspace() and text:
        return  # the common case, at C speed: printable ASCII with a visible character
    for column, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs" or (category == "Cc" and char not in "\t\n\r"):
            raise _point(text, column, f"{describe_character(char)}; remove it (a sentence is "
                                       f"printable text)")
    if all(unicodedata.category(char) in _INVISIBLE for char in text):
        raise ClaimFileError(f"the sentence {text!r} has no visible character (only zero-width, "
                             f"control or space characters); write some text, or remove it")


def _close_span(text: str, i: int, opened: int, inner: str, begin: int) -> tuple[Span, int]:
    """The span closed by the ']' at ``i``; returns it and the index after its ``{label}``."""
    label = _LABEL_REF.match(text, i + 1)
    bracketed = text[opened:i + 1]
    if label is None:
        raise _point(text, i + 1, f"{bracketed!r} is not followed by a label; mark a span as "
                                  f"[text]{{label}} (write \\[ and \\] for literal brackets)")
    if not label.group(2):
        raise _point(text, i + 1, "the span label must be letters, digits, '_' or '-' closed by "
                                  "'}', as in [slowly]{adv}")
    if not label.group(1):
        raise _point(text, i + 1, "the span label is empty; write it as [slowly]{adv}")
    if bracketed == _MASK:
        raise _point(text, opened, f"'[MASK]{{{label.group(1)}}}' would label the word 'MASK'; "
                                   f"to label the mask token write '[[MASK]]{{{label.group(1)}}}'")
    if not inner.strip():
        raise _point(text, opened, "the span has no text; write it as [slowly]{adv}")
    return Span(label.group(1), begin, begin + len(inner)), label.end()


# --- templates -----------------------------------------------------------------------------


def _slot_refs(template: str) -> Iterator[tuple[str, int, int]]:
    """``(name, start, end)`` of every ``{slot}`` (a ``{...}`` right after ']' is a label)."""
    i = 0
    while i < len(template):
        char = template[i]
        if char == "\\" and i + 1 < len(template) and template[i + 1] in _ESCAPABLE:
            i += 2
            continue
        if char == "{" and not (i > 0 and template[i - 1] == "]" and not _escaped(template, i - 1)):
            ref = _LABEL_REF.match(template, i)
            if ref is None or not ref.group(1) or not ref.group(2):
                raise _point(template, i, "'{' must start a slot such as {animal} (letters, "
                                          "digits, '_', '-'); write \\{ for a literal '{'",
                             "template")
            yield ref.group(1), i, ref.end()
            i = ref.end()
            continue
        i += 1


def _escaped(text: str, i: int) -> bool:
    backslashes = 0
    while i - 1 - backslashes >= 0 and text[i - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def template_slot_names(template: str) -> tuple[str, ...]:
    """Slot names in the order they first appear in ``template``."""
    return tuple(dict.fromkeys(name for name, _, _ in _slot_refs(template)))


def check_template(template: str, slots: Slots) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Validate a template against its slots; returns the slots in order of first appearance.

    Every ``{name}`` needs a slot, every slot must be used, every slot has at least one value,
    values are plain text or ``[MASK]`` (no brackets, braces, backslashes), and the first
    combination is a valid sentence (then every combination is: plain values cannot change the
    annotation structure).
    """
    if not isinstance(template, str) or not template.strip():
        raise ClaimFileError(f"expected a template string such as 'The {{animal}} sat.', got "
                             f"{template!r}")
    given = dict(slots)
    names = template_slot_names(template)
    for name in names:
        if name not in given:
            listed = ", ".join(given) or "none"
            raise ClaimFileError(f"the template uses {{{name}}} but no slot is called {name!r}"
                                 f"{did_you_mean(name, given)}; slots given: {listed}")
    for name in given:
        if name not in names:
            raise ClaimFileError(f"slot {name!r} is never used in the template {template!r}; "
                                 f"add {{{name}}} to the template or remove the slot")
    ordered = tuple((name, check_slot_values(name, given[name])) for name in names)
    render_template(template, {name: values[0] for name, values in ordered})
    return ordered


def check_slot_values(name: str, values: Sequence[str]) -> tuple[str, ...]:
    """The values of slot ``name``: a non-empty list of plain text (or ``[MASK]``)."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ClaimFileError(f"slot {name!r} needs a non-empty list of values, got {values!r}")
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ClaimFileError(f"slot {name!r}: every value must be non-empty text, got "
                                 f"{value!r}")
        if any(char in _ESCAPABLE for char in value.replace(_MASK, "")):
            raise ClaimFileError(f"slot {name!r}: value {value!r} contains a bracket, brace or "
                                 f"backslash; slot values are plain text or [MASK] (put spans in "
                                 f"the template, as in [{{{name}}}]{{label}})")
    return tuple(values)


def render_template(template: str, values: Mapping[str, str], origin: str = "") -> Sentence:
    """One sentence of ``template`` with ``values`` (one value per slot) filled in."""
    parts, last = [], 0
    for name, start, end in _slot_refs(template):
        parts += [template[last:start], values[name]]
        last = end
    parts.append(template[last:])
    rendered = "".join(parts)
    used = tuple((name, values[name]) for name in template_slot_names(template))
    try:
        sentence = parse_annotated(rendered, origin)
    except ClaimFileError as error:
        filled = ", ".join(f"{name}={value!r}" for name, value in used)
        with_values = f" (with {filled})" if filled else ""
        raise ClaimFileError(f"template {template!r}{with_values}: {error.message}") from None
    return Sentence(sentence.text, sentence.spans, origin, slot_values=used)


def expand_template(template: str, slots: Slots, origin: str = "") -> list[Sentence]:
    """Every combination of slot values, in `itertools.product` order of first appearance."""
    ordered = check_template(template, slots)
    count = 1
    for _, values in ordered:
        count *= len(values)
    if count > MAX_EXPANDED:
        raise ClaimFileError(f"the template expands to {count:,} sentences (more than "
                             f"{MAX_EXPANDED:,}); add 'generate: N' to draw N of them instead")
    names = [name for name, _ in ordered]
    return [render_template(template, dict(zip(names, combination)), origin)
            for combination in itertools.product(*(values for _, values in ordered))]


# --- sentence files ------------------------------------------------------------------------


def check_sentence_file_place(path: str | os.PathLike[str], files_under: Sequence[Path],
                              origin: Location, written: str) -> Path:
    """``path`` with every symbolic link resolved, if it lies under one of ``files_under``
    (resolved folders: the project and those the user allowed): read that path, not ``path``,
    so a link changed meanwhile is not followed elsewhere. Else `FileOutsideProject` (located
    at ``origin``). ``written`` is the path as the hypothesis file wrote it. The file is not
    read, so nothing of it can leak into an error or a report.

    A path no file could be read from wherever it lies (one with a NUL, a FIFO, a device) is
    a `ClaimFileError` at ``origin`` saying so first, as `read_sentence_file` would."""
    try:
        stat_regular(path)
    except TextFileProblem as problem:
        raise origin.error(f"sentence file {str(path)!r}: {problem}") from None
    except OSError:
        pass  # missing or unreadable: its place decides first, then reading says what is wrong
    resolved = Path(os.path.realpath(path))
    if any(resolved.is_relative_to(root) for root in files_under):
        return resolved
    folders = " or ".join(str(root) for root in files_under)
    folder = str(resolved.parent)
    raise FileOutsideProject(
        f"sentence file {written!r} is outside the project: it resolves to {str(resolved)!r}, "
        f"and a hypothesis file may only name files under {folders}. If you trust this file, "
        f"allow its folder: headprobe check --allow-files-under {shlex.quote(folder)} (or "
        f"files_under = [{json.dumps(folder)}] under [tool.headprobe] in pyproject.toml); "
        f"else copy the sentences into the project.",
        file=origin.file, line=origin.line, field=origin.field)


def read_sentence_file(path: str | os.PathLike[str], origin_for_errors: Location) -> list[Sentence]:
    """One sentence a line; blank lines and lines starting with '#' are ignored.

    ``path`` is already resolved; ``origin_for_errors`` is the YAML entry that named it. A
    missing, unreadable or empty file is an error located there; a bad sentence is an error
    located at its own line of the text file.
    """
    path = Path(path)
    shown = str(path)
    try:
        text = read_user_text(path)
    except TextFileProblem as problem:
        if problem.line is not None:
            raise ClaimFileError(f"{problem}\n(this file is used by {origin_for_errors})",
                                 file=shown, line=problem.line) from None
        raise origin_for_errors.error(f"sentence file {shown!r}: {problem}") from None
    except FileNotFoundError:
        base = ("the folder of the hypothesis file" if origin_for_errors.file
                else "the current folder")
        raise origin_for_errors.error(
            f"sentence file {shown!r} does not exist (looked for {str(path.absolute())!r}; paths "
            f"are relative to {base}); fix the path or create the file") from None
    except IsADirectoryError:
        raise origin_for_errors.error(f"{shown!r} is a folder; expected a text file with one "
                                      f"sentence a line") from None
    except OSError as error:
        raise origin_for_errors.error(f"cannot read sentence file {shown!r}: {error.strerror}"
                                      ) from None
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            sentences.append(parse_annotated(line, origin=f"{shown}:{number}"))
        except ClaimFileError as error:
            raise ClaimFileError(f"{error.message}\n(this file is used by {origin_for_errors})",
                                 file=shown, line=number) from None
    if not sentences:
        raise origin_for_errors.error(f"sentence file {shown!r} has no sentences (blank lines "
                                      f"and lines starting with '#' are ignored); add one "
                                      f"sentence a line")
    return sentences
