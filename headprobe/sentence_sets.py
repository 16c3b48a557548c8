"""The sentences `profile`, `diff` and `discover` run on: a user's sentence file, or headprobe's
bundled English sentence set.

The bundled set (``headprobe/data/english.txt``, shipped in the package) is 576 sentences of 5
to 40 words written for the project: declaratives, questions, imperatives and exclamations,
subordinate and relative clauses, passives, lists, parentheticals, quoted speech, numbers,
possessives, contractions, hyphenated words, semicolons, colons and dashes, on everyday topics.
A sentence file is read as in hypothesis files: one sentence a line, blank lines and lines
starting with ``#`` ignored, ``[text]{label}`` spans allowed.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from headprobe.claims.sentences import Location, read_sentence_file
from headprobe.claims.spec import Sentence
from headprobe.errors import ClaimFileError, UsageError

BUNDLED = "english.txt"
BUNDLED_LABEL = "the bundled English sentence set"


def bundled_path() -> Path:
    """Where the bundled English sentence set is installed."""
    return Path(str(resources.files("headprobe") / "data" / BUNDLED))


def load_sentences(path: str | os.PathLike[str] | None) -> tuple[list[Sentence], str]:
    """``(sentences, what they are)`` from ``path``, or the bundled set when it is None. A file
    that cannot be read, or a bad sentence in it, is a `UsageError` naming file and line."""
    if path is None:
        source, label = bundled_path(), BUNDLED_LABEL
    else:
        source, label = Path(path), str(path)
    try:
        sentences = read_sentence_file(source, Location(field="--sentences"))
    except ClaimFileError as error:
        raise UsageError(str(error)) from None
    return sentences, label
