"""``word:REGEX`` patterns, compiled with RE2 so that matching takes time linear in the word.

A user's pattern runs against every word of every sentence, so it must not be able to hang a run:
Python's backtracking engine takes minutes on ``(a+)+b`` against 30 ``a``s, RE2 (the
``google-re2`` binding) never backtracks. The syntax is RE2's, which is Python's without
backreferences and lookaround (``\\1``, ``(?=...)``, ``(?<=...)``): those are refused with the
reason. Matching is case-insensitive (Unicode case folding) and against the whole word. Classes
such as ``\\w`` and ``\\d`` are ASCII in RE2; write ``\\pL`` for any letter.

Bounds: a pattern has at most `MAX_PATTERN_CHARS` characters and repetition counts up to
`MAX_REPEAT` (RE2's own limit, checked here first: RE2 accepts counts that overflow its
integers), and
the compiled program may use at most `MAX_PROGRAM_BYTES` of memory.
"""

from __future__ import annotations

import functools
import re
from typing import Protocol

import re2

MAX_PATTERN_CHARS = 500
MAX_REPEAT = 1000
MAX_PROGRAM_BYTES = 8 << 20
_COUNT = re.compile(r"(?<!\\)((?:\\\\)*)\{\s*([0-9]+)\s*(?:,\s*([0-9]*)\s*)?\}")


class WordPattern(Protocol):
    """What `compile_word_regex` returns: ``fullmatch(word)`` is truthy when the whole word
    matches."""

    def fullmatch(self, text: str) -> object: ...


class WordRegexError(ValueError):
    """A ``word:`` pattern that cannot be used; the message says why."""


@functools.lru_cache(maxsize=256)
def compile_word_regex(pattern: str) -> WordPattern:
    """The compiled ``word:REGEX`` (case-insensitive; use ``.fullmatch(word)``).

    Raises `WordRegexError` for a pattern that is too long, repeats too often, or is not valid
    RE2 syntax.
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise WordRegexError(f"the pattern has {len(pattern):,} characters, more than "
                             f"{MAX_PATTERN_CHARS}")
    for match in _COUNT.finditer(pattern):
        counts = [c for c in match.group(2, 3) if c]
        if any(len(c) > 4 or int(c) > MAX_REPEAT for c in counts):
            shown = match.group(0)[len(match.group(1)):]
            raise WordRegexError(f"the repetition {shown} counts past {MAX_REPEAT}, the most "
                                 f"RE2 allows")
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise WordRegexError(f"{reason} (patterns are RE2 syntax: no backreferences or "
                             f"lookaround)") from None
