"""Hypothesis files (SPEC §2): YAML in, a validated `HypothesisFile` out.

The YAML is composed into nodes (``yaml.compose``) so that every error can say
``file:line: field: what was wrong, the bad value, what is valid``. Nothing here needs the model:
heads are checked against the model's size, and sentences against its tokenizer, at collection.

Top-level keys: ``model``, ``level``, ``slots`` (named value lists for templates),
``sentences`` (named sets) and ``hypotheses`` (the list of claims). See docs/hypothesis-files.md.

This module reads the file and its top-level keys, then passes what it read step to step:
`headprobe.claims.yaml_document` composes the text, `headprobe.claims.yaml_fields` reads typed
fields, `headprobe.claims.file_sets` the slots and sentence sets, `headprobe.claims.file_claims`
the hypotheses, and `headprobe.claims.mistakes` keeps every independent mistake of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from yaml.nodes import Node

from headprobe.claims.file_claims import CLAIM_KEYS, DEFAULT_TOLERANCE, read_claims
from headprobe.claims.file_sets import MAX_GENERATE, SET_KEYS, FileSets, read_sets, read_slots
from headprobe.claims.mistakes import Mistakes
from headprobe.claims.spec import LEVELS, ClaimSpec, HypothesisFile
from headprobe.claims.textfile import TextFileProblem, check_printable, read_user_text
from headprobe.claims.yaml_document import MAX_DEPTH, compose
from headprobe.claims.yaml_fields import MAX_MERGED_KEYS, Fields
from headprobe.errors import ClaimFileError, collected

__all__ = [
    "CLAIM_KEYS",
    "DEFAULT_TOLERANCE",
    "MAX_DEPTH",
    "MAX_GENERATE",
    "MAX_MERGED_KEYS",
    "SET_KEYS",
    "TOP_LEVEL_KEYS",
    "UNKNOWN_WORDS",
    "HypothesisFile",
    "load_hypothesis_file",
    "load_hypothesis_file_partly",
    "looks_like_hypothesis_file",
    "parse_hypothesis_text",
]

TOP_LEVEL_KEYS = ("model", "level", "slots", "sentences", "hypotheses", "unknown_words")
UNKNOWN_WORDS: tuple[Literal["error", "allow"], ...] = ("error", "allow")
_TOP_LEVEL_HYPOTHESES = re.compile(r"^[\"']?hypotheses[\"']?[ \t]*:", re.MULTILINE)


def load_hypothesis_file(path: str | os.PathLike[str],
                         files_under: Sequence[Path] | None = None) -> HypothesisFile:
    """Read and validate one hypothesis file; raises `ClaimFileError` located at the bad spot
    (`ClaimFileErrors` for several). ``files_under``: see `load_hypothesis_file_partly`."""
    hfile, errors = load_hypothesis_file_partly(path, files_under)
    if errors:
        raise collected(errors)
    return hfile


def load_hypothesis_file_partly(path: str | os.PathLike[str],
                                files_under: Sequence[Path] | None = None,
                                ) -> tuple[HypothesisFile, list[ClaimFileError]]:
    """The file with every claim that reads well, and the mistakes of the others, so that a
    collector can check the good claims against the model and report every mistake at once.
    A file whose structure cannot be read at all raises `ClaimFileError`.

    ``files_under``: the resolved folders sentence files must lie in (symbolic links resolved;
    `check_sentence_file_place`), or None for any file (the user's own choice, not a file's)."""
    shown = os.fspath(path)
    try:
        text = read_user_text(path)
    except FileNotFoundError:
        raise ClaimFileError("no such hypothesis file; check the path", file=shown) from None
    except TextFileProblem as problem:
        raise ClaimFileError(str(problem), file=shown, line=problem.line or 1) from None
    except OSError as error:
        raise ClaimFileError(f"cannot read the hypothesis file: {error.strerror}",
                             file=shown) from None
    return _parse(text, shown, Path(path).parent, files_under)


def parse_hypothesis_text(text: str, file: str, base_dir: str | os.PathLike[str] = ".",
                          files_under: Sequence[Path] | None = None) -> HypothesisFile:
    """Validate the YAML ``text`` of a hypothesis file called ``file`` (used in errors);
    sentence-file paths are relative to ``base_dir`` (and must lie under ``files_under``)."""
    hfile, errors = _parse(text, file, base_dir, files_under)
    if errors:
        raise collected(errors)
    return hfile


def looks_like_hypothesis_file(path: str | os.PathLike[str]) -> bool:
    """Cheap test for the pytest plugin: a ``hypotheses:`` key at the start of a line (the
    top level of a YAML mapping), in a readable UTF-8 text file.

    A file that is not valid YAML counts when it has that line (so that its error is reported);
    unreadable, oversized and special files do not.
    """
    try:
        text = read_user_text(path)
    except (OSError, TextFileProblem):
        return False
    return _TOP_LEVEL_HYPOTHESES.search(text) is not None


def _parse(text: str, file: str, base_dir: str | os.PathLike[str],
           files_under: Sequence[Path] | None = None,
           ) -> tuple[HypothesisFile, list[ClaimFileError]]:
    try:
        check_printable(text)
    except TextFileProblem as problem:
        raise ClaimFileError(str(problem), file=file, line=problem.line) from None
    root = compose(text, file)
    mistakes = Mistakes()
    hfile = _read(Fields(file), mistakes, root, Path(base_dir),
                  None if files_under is None else tuple(files_under))
    return hfile, mistakes.errors


def _read(fields: Fields, mistakes: Mistakes, root: Node, base_dir: Path,
          files_under: tuple[Path, ...] | None) -> HypothesisFile:
    """The whole file: its top-level keys in order, then its sets, then its claims. A top level
    that is not a mapping of known keys, or ``hypotheses:`` that is not a list, raises."""
    top = fields.mapping(root, None, "a mapping with 'sentences:' and 'hypotheses:' at the top "
                                     "of the file", TOP_LEVEL_KEYS)
    attempt, read = mistakes.attempt, fields.optional
    model = attempt(lambda: read(top, "model",
                                 lambda n: fields.string(n, "model", "bert-base-uncased")))
    level = attempt(lambda: read(top, "level", lambda n: fields.choice(n, "level", LEVELS))) \
        or "token"
    unknown_words = attempt(lambda: read(
        top, "unknown_words", lambda n: fields.choice(n, "unknown_words", UNKNOWN_WORDS)))
    slots = (attempt(lambda: read_slots(fields, top["slots"][1])) or {}) if "slots" in top \
        else {}
    sets = FileSets({}, {}, frozenset()) if "sentences" not in top \
        else read_sets(fields, mistakes, top["sentences"][1], slots, base_dir, files_under)
    if "hypotheses" not in top:
        mistakes.add(fields.error(root, "hypotheses", "missing: a hypothesis file needs "
                                                      "a 'hypotheses:' list of claims"))
        claims: tuple[ClaimSpec, ...] = ()
    else:
        claims = read_claims(fields, mistakes, top["hypotheses"][1], level, sets)
    return HypothesisFile(path=fields.file, model=model, level=level, sets=sets.sets,
                          claims=claims, unknown_words=unknown_words or "error")
