"""The hypothesis file ``discover -o FILE.yaml`` writes (SPEC §12). Pure: text out.

One claim per finding (or proposed head), each with an ``id``, an ``expect`` (a lower bound
rounded down to a multiple of 0.05: `ranking.threshold`; for catalogue findings the lowest over
the set's parts, `headprobe.discovery.margins`), and a ``why:`` with the measured value,
interval, n and sentence count. The sentence set is a path relative to the written file. Every
string is written as a JSON string (a YAML double-quoted scalar), so whatever a model name, path
or sentence-file name holds, the file reads back as written; the command reads it back with the
hypothesis-file reader before saving it.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from headprobe._version import __version__
from headprobe.evaluation.results import format_value

SET_NAME = "discovery"
_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_WIDTH = 96


@dataclass(frozen=True)
class WrittenClaim:
    """One claim of the written file."""

    id: str
    claim: str
    measure: str
    expect: float
    why: str
    baseline: bool = False
    op: str = ">="  # ``<=`` for a head found removable (SPEC §14.4)
    fields: tuple[tuple[str, str], ...] = ()  # more plain fields, as ``("effect", "kl")``


@dataclass(frozen=True)
class Provenance:
    """Where the claims come from, for the file's header and its top-level keys."""

    model: str
    level: str
    sentences_path: str  # relative to the written file, with '/' separators
    sentences_label: str  # how the command names the set ("the bundled English sentence set")
    sentence_count: int
    date: str
    command: str  # the discover command line, for the header
    unknown_words: int = 0  # sentences with words the vocabulary cannot spell ([UNK])


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def interval_text(ci: tuple[float, float] | None) -> str:
    return "no interval" if ci is None else f"95% CI [{format_value(ci[0])}, {format_value(ci[1])}]"


def slug(text: str, limit: int = 40) -> str:
    """An id fragment: letters, digits and '-' ('span:det -> span:noun' -> 'span-det-span-noun')."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].strip("-") or "claim"


def hypothesis_file(provenance: Provenance, claims: Sequence[WrittenClaim]) -> str:
    """The text of the hypothesis file (YAML), header comments first."""
    header = [
        f"Claims found by `headprobe discover` (headprobe {__version__}) on "
        f"{provenance.date}, for {provenance.model}, on {provenance.sentence_count} sentences "
        f"of {provenance.sentences_label}, level {provenance.level}:",
        f"    {provenance.command}",
        "Each expectation is the lowest 95% lower bound over the discovery set and its parts "
        "(disjoint folds, sentence-length groups) rounded down to a multiple of 0.05, so that "
        "it holds on other sentences of the same kind, not only on these; 'why:' says which "
        "part set it. Review every claim, keep what you believe, and check it on sentences it "
        "was not found on (point 'sentences:' at them) before you commit it.",
    ]
    lines = []
    for paragraph in header:
        indent = " " * (len(paragraph) - len(paragraph.lstrip(" ")))
        lines += ["#" + (" " if line[:1] != " " else "") + line for line in textwrap.wrap(
            paragraph.strip(), _WIDTH - 2, initial_indent=indent,
            subsequent_indent=indent + "  " if indent else "",
            break_long_words=False, break_on_hyphens=False)]
    lines += [f"model: {_q(provenance.model)}",
              f"level: {provenance.level}"]
    if provenance.unknown_words:
        lines += [f"# {provenance.unknown_words} of the sentences have words the vocabulary "
                  f"cannot spell ([UNK]).",
                  "unknown_words: allow"]
    lines += ["sentences:",
              f"  {SET_NAME}: {_q(provenance.sentences_path)}",
              "",
              "hypotheses:"]
    for claim in claims:
        lines += [f"  - id: {claim.id if _PLAIN_ID.fullmatch(claim.id) else _q(claim.id)}",
                  f"    claim: {_q(claim.claim)}",
                  f"    over: {SET_NAME}",
                  f"    measure: {claim.measure}",
                  f"    expect: {_q(f'{claim.op} {claim.expect:g}')}"]
        lines += [f"    {key}: {value}" for key, value in claim.fields]
        if claim.baseline:
            lines.append("    baseline: offset")
        lines += folded("why", claim.why, "    ")
    return "\n".join(lines) + "\n"


def folded(key: str, text: str, indent: str) -> list[str]:
    """``key: "text"`` as a YAML double-quoted scalar over several lines when it is long: a line
    break inside one folds back into a single space, so lines break only where the text has a
    single space (a text with two spaces in a row stays on one line)."""
    quoted = _q(text)
    first = f"{indent}{key}: "
    if len(first) + len(quoted) <= _WIDTH or "  " in quoted or "\\" in quoted:
        return [first + quoted]
    return textwrap.wrap(quoted, _WIDTH, initial_indent=first,
                         subsequent_indent=indent + "  ", break_long_words=False,
                         break_on_hyphens=False)
