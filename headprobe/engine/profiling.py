"""Profiles of a model (SPEC §11, §14.3): every sentence through the forward cache (or the
model, for what the cache misses: a profile of a model already in the cache never runs it) at
full depth, every head's statistics computed in one vectorised pass per sentence
(`headprobe.evaluation.profile_stats`) and pooled into a `headprobe.regression.profiles.Profile`.

``output-norm`` needs each head's output, which the forward cache does not keep: a sentence's
output-norm sums are kept in its cache entry's header beside the claims' numbers
(`headprobe.engine.scores`, scoring key `output_norm_key`), written with the entry when the
model runs it. A sentence whose entry lacks them runs through the model (all heads, output norms
on) and its entry is rewritten with both. ``effects=True`` adds ``effect:hidden``: every head
removed (mean ablation over the profile's sentences) on every sentence by
`headprobe.model.loaded.Model.iter_effects` — a pass per layer of heads, never cached.

An ONNX export (SPEC §15) has no output measures: its profile holds the attention statistics
only, and a diff against a checkpoint compares those (`headprobe.regression.diff`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from headprobe.cache.cached_runs import entry_key, forward_runs, head_pairs, stored_attentions
from headprobe.cache.entries import ForwardCache
from headprobe.cachefiles import source_digest
from headprobe.claims.spec import LEVELS
from headprobe.engine.models import ModelHandle
from headprobe.engine.scores import ScoreCache
from headprobe.errors import UsageError
from headprobe.evaluation.accumulate import SentenceNumbers as CachedNumbers
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile_stats import (
    ATTENTION_STATISTICS,
    EFFECT_HIDDEN,
    ProfileAccumulator,
    SentenceNumbers,
    statistics_of,
    token_sums,
)
from headprobe.heads import Head
from headprobe.model.export.runner import needs_checkpoint
from headprobe.progress import ProgressFactory, bar_or_none
from headprobe.regression.profiles import Profile, sentences_digest
from headprobe.runs import Encoding, Run

#: The modules that compute a sentence's output-norm sums (their digest is in the key).
_OUTPUT_NORM_CODE = ("model/encoder.py", "evaluation/profile_stats.py", "engine/profiling.py")


def output_norm_key() -> str:
    """The scoring key of a sentence's output-norm sums in its forward-cache entry: sums
    computed by other code are not read back."""
    return f"profile:output-norm:{source_digest(*_OUTPUT_NORM_CODE)[:16]}"


def compute_profile(model: ModelHandle, texts: Sequence[str], *, level: str = "token",
                    cache: ForwardCache | None = None,
                    progress: ProgressFactory | None = None,
                    effects: bool = False) -> Profile:
    """The profile of ``model`` over ``texts`` (see the module docstring)."""
    if level not in LEVELS:
        raise UsageError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if not texts:
        raise UsageError("a profile needs at least one sentence")
    heads = tuple(Head(layer, head) for layer in range(1, model.num_layers + 1)
                  for head in range(1, model.num_heads + 1))
    outputs = model.measures_outputs
    if effects and not outputs:
        raise UsageError(needs_checkpoint("--effects (effect:hidden)", model.name))
    statistics = statistics_of(effects) if outputs else ATTENTION_STATISTICS
    accumulator = ProfileAccumulator(heads, statistics=statistics)
    numbers: dict[int, SentenceNumbers] = {}
    encodings = model.tokenize(list(texts))
    with bar_or_none(progress, len(texts), "profile") as bar:
        if outputs:
            for index, run, norms in _runs_with_norms(model, texts, encodings, heads, cache):
                found = accumulator.add(level_view(run, level))
                numbers[index] = dataclasses.replace(found, output_norm=norms.hits,
                                                     tokens=norms.n)
                bar.advance()
        else:  # an ONNX export: attention statistics only (SPEC §15)
            for index, run in forward_runs(texts, heads, fingerprint=model.fingerprint,
                                           encode=model.tokenize, num_layers=model.num_layers,
                                           num_heads=model.num_heads, load_model=lambda: model,
                                           cache=cache):
                numbers[index] = accumulator.add(level_view(run, level))
                bar.advance()
    if effects:
        with bar_or_none(progress, len(texts), "effects") as bar:
            for index, values in model.iter_effects(texts, [h.index for h in heads],
                                                    ablation="mean", effect="hidden",
                                                    encodings=encodings):
                special = np.array([w is None for w in encodings[index].word_ids])
                sums, _ = token_sums(values, special)
                numbers[index] = dataclasses.replace(numbers[index], effect=sums)
                bar.advance()
    ordered = tuple(numbers[i] for i in range(len(texts)))
    accumulator.sentences[:] = list(ordered)
    return Profile(model=model.name, fingerprint=model.fingerprint, level=level,
                   count=len(texts), sentences_sha256=sentences_digest(texts), heads=heads,
                   values=accumulator.values(), texts=tuple(texts), per_sentence=ordered,
                   statistics=statistics)


Side = Profile | ModelHandle  # what `headprobe diff` compares: a profile, or a model


def check_sides(sides: Sequence[Side], names: Sequence[str], *, effects: bool,
                effects_option: str = "--effects",
                profile_effects: str = "'headprobe profile --effects'") -> None:
    """A diff's two sides can be compared before anything is profiled: models (or profiles)
    of one size, and, with ``effects``, no profile without ``effect:hidden`` (``names``: each
    side as the user named it; the options as the caller spells them)."""
    (la, ha), (lb, hb) = ((side.num_layers, side.num_heads) for side in sides)
    shown = [side.model if isinstance(side, Profile) else name
             for side, name in zip(sides, names)]
    if (la, ha) != (lb, hb):
        raise UsageError(f"cannot diff a {la}-layer, {ha}-head model ({shown[0]}) with a "
                         f"{lb}-layer, {hb}-head one ({shown[1]}): heads only correspond "
                         f"between models of one size")
    for side, name in zip(sides, names):
        if effects and isinstance(side, Profile) and EFFECT_HIDDEN not in side.statistics:
            raise UsageError(f"{effects_option}: {name} is a profile without effect:hidden, so "
                             f"there is nothing to compare the effects with; write it with "
                             f"{profile_effects}, or leave {effects_option} out")


def check_profile_level(profile: Profile, name: str, level: str) -> None:
    """A profile (one side of a diff) is at ``level``; else a `UsageError`."""
    if profile.level != level:
        raise UsageError(f"{name} is a profile at level {profile.level!r}, not {level!r}")


def check_profile_sentences(profile: Profile, name: str, texts: Sequence[str], label: str, *,
                            sentences_option: str = "--sentences") -> None:
    """A profile (one side of a diff) is over ``texts`` (``label``: what they are); else a
    `UsageError`."""
    if (profile.count, profile.sentences_sha256) != (len(texts), sentences_digest(texts)):
        raise UsageError(f"{name} is a profile over other sentences than {label}; profile "
                         f"the model on {label} or leave {sentences_option} out")


def _runs_with_norms(model: ModelHandle, texts: Sequence[str], encodings: Sequence[Encoding],
                     heads: Sequence[Head],
                     cache: ForwardCache | None) -> Iterator[tuple[int, Run, CachedNumbers]]:
    """``(index, run, output-norm sums over the tokens that are not special)`` per text: from
    the cache when its entry holds both, else from the model (whose entry is then written)."""
    scores = ScoreCache(cache) if cache is not None and cache.enabled else None
    keys = [entry_key(model.fingerprint, encoding) for encoding in encodings]
    kept: dict[int, CachedNumbers] = {}
    if scores is not None:
        for index, key in enumerate(keys):
            found = scores.get(key, [output_norm_key()])
            if found is not None:
                kept[index] = found[0]
    have = sorted(kept)
    if have:
        for position, run in forward_runs([texts[i] for i in have], heads,
                                          fingerprint=model.fingerprint,
                                          encode=model.tokenize, num_layers=model.num_layers,
                                          num_heads=model.num_heads, load_model=lambda: model,
                                          cache=cache):
            yield have[position], run, kept[have[position]]
    missing = [i for i in range(len(texts)) if i not in kept]
    if not missing:
        return
    pairs = head_pairs(heads)
    try:
        for position, run in model.iter_runs([texts[i] for i in missing], hidden_states=False,
                                             mlm_logits=False, copy=False,
                                             encodings=[encodings[i] for i in missing],
                                             output_norms=True):
            index = missing[position]
            assert run.output_norms is not None  # asked for
            sums, tokens = token_sums(run.output_norms, run.special_mask)
            norms = CachedNumbers(tokens, 0, sums)
            if scores is not None:
                scores.put(keys[index], {output_norm_key(): norms}, pairs,
                           stored_attentions(run, pairs), max_heads=len(pairs))
            yield index, run, norms
    finally:
        if cache is not None and cache.enabled:
            cache.flush()
