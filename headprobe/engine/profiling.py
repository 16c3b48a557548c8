"""Profiles of a model (SPEC §11): every sentence through the forward cache (or the model, for
what the cache misses: a profile of a model already in the cache never runs it) at full depth,
every head's statistics computed in one vectorised pass per sentence
(`headprobe.evaluation.profile_stats`) and pooled into a `headprobe.regression.profiles.Profile`.
"""

from __future__ import annotations

from collections.abc import Sequence

from headprobe.cache.cached_runs import forward_runs
from headprobe.cache.entries import ForwardCache
from headprobe.claims.spec import LEVELS
from headprobe.engine.models import ModelHandle
from headprobe.errors import UsageError
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile_stats import ProfileAccumulator, SentenceNumbers
from headprobe.heads import Head
from headprobe.progress import ProgressFactory, bar_or_none
from headprobe.regression.profiles import Profile, sentences_digest


def compute_profile(model: ModelHandle, texts: Sequence[str], *, level: str = "token",
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
    with bar_or_none(progress, len(texts), "profile") as bar:
        for index, run in runs:
            numbers[index] = accumulator.add(level_view(run, level))
            bar.advance()
    ordered = tuple(numbers[i] for i in range(len(texts)))
    accumulator.sentences[:] = list(ordered)
    return Profile(model=model.name, fingerprint=model.fingerprint, level=level,
                   count=len(texts), sentences_sha256=sentences_digest(texts), heads=heads,
                   values=accumulator.values(), texts=tuple(texts), per_sentence=ordered)
