"""Sentences drawn from templates with the hypothesis library, and shrinking of counterexamples.

A template set with ``generate: N`` draws up to N sentences from its slots (seeded, so the same seed
gives the same sentences). Each slot is a ``sampled_from`` over its values ordered simplest first
(shortest, then alphabetical), so hypothesis shrinks a failing sentence toward the shortest values.

Shrinking replays the same seeded search with a predicate ("this sentence fails the claim"): the
generation order is the same as the draw's, so the search meets the failures the evaluation found,
and hypothesis shrinks the first one to the simplest failing sentence. Failing examples are kept in
hypothesis's example database (under the cache directory) and are tried first on the next run; the
database only speeds the search up and is never the source of truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

from headprobe.cachefiles import private_folder
from headprobe.claims.sentences import expand_template, render_template
from headprobe.claims.spec import Sentence, Template


def simplest_first(values: tuple[str, ...]) -> tuple[str, ...]:
    """Slot values ordered as hypothesis should shrink them: fewest words, shortest, then a-z."""
    return tuple(sorted(dict.fromkeys(values), key=lambda v: (len(v.split()), len(v), v)))


def distinct_sentences(template: Template) -> int:
    """How many different combinations of slot values ``template`` has."""
    return math.prod(len(set(values)) for _, values in template.slots)


def template_strategy(template: Template, origin: str = ""):
    """A hypothesis strategy of `Sentence` from a template; a slot used twice gets one value."""
    from hypothesis import strategies as st


    names = [name for name, _ in template.slots]
    per_slot = [st.sampled_from(simplest_first(values)) for _, values in template.slots]

    @st.composite  # not .map(): hypothesis then shows the sentence in its failing example
    def sentences(draw) -> Sentence:
        chosen = [draw(values) for values in per_slot]
        return render_template(template.template, dict(zip(names, chosen)), origin)

    return sentences()


@contextlib.contextmanager
def hypothesis_storage(directory: Path | None) -> Iterator[None]:
    """Point hypothesis's own storage (its ``.hypothesis/`` folder: cached constants, the default
    example database) at ``directory`` while drawing or shrinking, so that a run leaves nothing
    in the user's working directory; restored afterwards."""
    if directory is None:
        yield
        return
    from hypothesis import configuration


    try:  # the examples it keeps are sentences: owner-only, as the rest of the cache
        private_folder(directory)
    except OSError:
        pass  # hypothesis reports a folder it cannot use
    previous = getattr(configuration, "__hypothesis_home_directory", None)
    configuration.set_hypothesis_home_dir(directory)
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(previous)


def _settings(max_examples: int, database=None, shrink: bool = False):
    from hypothesis import HealthCheck, Phase, settings

    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    default = settings.default
    if default is None:  # hypothesis loads its default profile when imported
        raise RuntimeError("hypothesis has no default settings profile")
    return settings(max_examples=max(1, max_examples), database=database, deadline=None,
                    phases=phases if shrink else [Phase.generate],
                    suppress_health_check=list(HealthCheck), derandomize=False,
                    print_blob=False, verbosity=default.verbosity)


def draw_sentences(template: Template, seed: int, origin: str = "", *,
                   storage_dir: Path | None = None) -> list[Sentence]:
    """Up to ``template.generate`` distinct sentences, the same ones for the same seed.

    ``storage_dir``: where hypothesis may keep its own files (see `hypothesis_storage`)."""
    from hypothesis import given
    from hypothesis import seed as hypothesis_seed

    count = template.generate or 0
    if count >= distinct_sentences(template):  # every combination: no need to draw
        slots = [(name, tuple(dict.fromkeys(values))) for name, values in template.slots]
        return expand_template(template.template, slots, origin)
    drawn: dict[str, Sentence] = {}

    def collect(sentence: Sentence) -> None:
        if len(drawn) < count:
            drawn.setdefault(sentence.text, sentence)

    strategy = template_strategy(template, origin)
    test = hypothesis_seed(seed)(_settings(count)(given(strategy)(collect)))
    with hypothesis_storage(storage_dir):
        test()
    return list(drawn.values())


class _Counterexample(Exception):
    pass


def shrink_counterexample(template: Template, seed: int, fails: Callable[[Sentence], bool], *,
                          database_dir: Path | None, key: str, origin: str = "",
                          max_examples: int | None = None) -> Sentence | None:
    """The simplest sentence of ``template`` for which ``fails`` is true, or None if none is met.

    ``key`` names this claim and head in the example database (so each remembers its own).
    The database lives in ``database_dir``; hypothesis's other files go beside it.
    """
    from hypothesis import given
    from hypothesis import seed as hypothesis_seed
    from hypothesis.database import DirectoryBasedExampleDatabase

    failing: list[Sentence] = []

    def check(sentence: Sentence) -> None:
        if fails(sentence):
            failing.append(sentence)
            raise _Counterexample(sentence.text)

    check._hypothesis_internal_add_digest = hashlib.sha256(key.encode()).digest()  # type: ignore[attr-defined]
    database = DirectoryBasedExampleDatabase(str(database_dir)) if database_dir else None
    budget = max_examples or max(template.generate or 0, 100)
    # The settings go outermost: ``@seed`` drops the database of settings applied inside it.
    test = _settings(budget, database, shrink=True)(hypothesis_seed(seed)(
        given(template_strategy(template, origin))(check)))
    try:
        with hypothesis_storage(database_dir.parent if database_dir else None):
            test()
    except _Counterexample:
        return failing[-1]  # hypothesis replays the shrunk example last
    return None
