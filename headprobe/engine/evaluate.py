"""Evaluate claim jobs: each model loaded at most once, each distinct sentence run at most once.

`evaluate(jobs, models, settings)` returns one `ClaimResult` per job. Per model, every
sentence is looked up in the score cache first (an unchanged re-run neither runs the model nor
scores); the rest stream through the forward cache or the model in batches, so memory stays
flat, and feed the accumulators of every claim that uses them. Each sentence's cache entry (its
heads' attention and its claims' numbers) is written once, after scoring. Failing results of
``per: sentence`` claims over generated sets are shrunk to the simplest failing sentence, and
failing results get their diagrams when ``settings.figures`` names a folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from headprobe.cache.cached_runs import (
    entry_key,
    forward_runs,
    head_pairs,
    stored_attentions,
    weighted_fingerprint,
)
from headprobe.cache.entries import EntryKey, ForwardCache
from headprobe.claims.jobs import ClaimJob
from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.engine.effect_claims import measure_effects, together_label, with_effect_figures
from headprobe.engine.failure_figures import draw_failure_figures, figure_requests
from headprobe.engine.models import ModelHandle
from headprobe.engine.scores import ScoreCache, scoring_key
from headprobe.errors import UsageError
from headprobe.evaluation import ClaimAccumulator, score_sentence
from headprobe.evaluation.accumulate import SentenceNumbers
from headprobe.evaluation.results import ClaimResult
from headprobe.generate import shrink_counterexample
from headprobe.heads import Head, parse_head, unique_heads
from headprobe.progress import ProgressFactory
from headprobe.regression.unchanged import unmeasured
from headprobe.runs import Run


@dataclass(frozen=True)
class EvaluationSettings:
    """How `evaluate` works (all optional).

    Attributes:
      cache: the forward cache (None or disabled: nothing read or written).
      seed: the seed of generated sentence sets (shrinking replays it).
      examples_dir: hypothesis's example database for shrinking (None: none kept).
      figures: the folder failure diagrams go to (its ``figures/``), as a callable that
        creates it on first use; None: no diagrams.
      progress: a progress bar factory for long forward passes; None: none.
      judge: a last word on each job's result before its diagrams are drawn (`headprobe
        check` compares ``expect: unchanged`` claims with their snapshots there); None: none.
    """

    cache: ForwardCache | None = None
    seed: int = 0
    examples_dir: Path | None = None
    figures: Callable[[], Path] | None = None
    progress: ProgressFactory | None = None
    judge: Callable[[ClaimJob, ClaimResult], ClaimResult] | None = None


# Per sentence text: (accumulator, index into the claim's sentences, sentence, scoring key).
_Users = dict[str, list[tuple[ClaimAccumulator, int, Sentence, str]]]
# Per accumulator (by id) still to be kept whole: its numbers by sentence index; None once it
# came whole from the cache.
_Collected = dict[int, dict[int, SentenceNumbers] | None]


def evaluate(jobs: Sequence[ClaimJob], models: Callable[[str], ModelHandle],
             settings: EvaluationSettings = EvaluationSettings()) -> dict[str, ClaimResult]:
    """One result per job, by ``job.key``. ``models(spec)`` gives the model of a spec (a
    deferred one, ideally: its weights load only when something misses the caches)."""
    by_model: dict[tuple[str, str], list[ClaimJob]] = defaultdict(list)
    for job in jobs:  # effect claims, and claims on norm weights, apart (SPEC §14)
        kind = "effect" if job.spec.measure.kind == "effect" else str(job.spec.weighting)
        by_model[job.model_spec, kind].append(job)
    results: dict[str, ClaimResult] = {}
    for (spec, kind), model_jobs in by_model.items():
        if kind == "effect":
            results.update(_evaluate_effects(models(spec), spec, model_jobs, settings))
        else:
            results.update(_evaluate_model(models(spec), spec, model_jobs, settings, kind))
    return results


def _evaluate_model(model: ModelHandle, model_spec: str, jobs: Sequence[ClaimJob],
                    settings: EvaluationSettings,
                    weighting: str = "attention") -> dict[str, ClaimResult]:
    groups: dict[tuple[str, str, str], list[ClaimJob]] = defaultdict(list)
    for job in jobs:
        groups[job.group].append(job)
    accumulators: list[tuple[ClaimAccumulator, list[ClaimJob]]] = []
    users: _Users = defaultdict(list)
    for group in groups.values():
        accumulator = ClaimAccumulator(group[0].spec, unique_heads(h for j in group
                                                                  for h in j.heads),
                                       windows=model.windows)
        accumulators.append((accumulator, group))
        for index, sentence in enumerate(group[0].sentences):
            key = scoring_key(accumulator.spec, accumulator.heads, sentence)
            users[sentence.text].append((accumulator, index, sentence, key))
    heads = unique_heads(h for job in jobs for h in job.heads)
    cache = settings.cache if settings.cache is not None and settings.cache.enabled else None
    scores = ScoreCache(cache) if cache is not None else None
    keys = _entry_keys(model, users, weighting) if scores is not None else {}
    collected: _Collected = {}
    if scores is not None:
        users = _whole_claims_cached(accumulators, users, keys, scores, collected)
    pending = _cached_scores(users, keys, scores, collected)
    _score_runs(model, pending, keys, heads, users, scores, settings, collected, weighting)
    if scores is not None:
        _keep_whole_claims(accumulators, keys, scores, collected)
    results: dict[str, ClaimResult] = {}
    for accumulator, group in accumulators:
        by_head = accumulator.results(model=model_spec, fingerprint=model.fingerprint)
        for job in group:
            result = dataclasses.replace(_result_of(job, by_head), file=job.display_file)
            if job.unknown_sentences:
                result = _with_unknown_words(result, job)
            if settings.judge is not None:
                result = settings.judge(job, result)
            if not result.passed:
                result = _shrunk(model, job, result, settings)
                if settings.figures is not None:
                    result = with_figures(model, job.spec, job.sentences, result,
                                          display_file=job.display_file,
                                          folder=settings.figures(), cache=cache)
            results[job.key] = result
    return results


def _evaluate_effects(model: ModelHandle, model_spec: str, jobs: Sequence[ClaimJob],
                      settings: EvaluationSettings) -> dict[str, ClaimResult]:
    """``measure: effect`` claims (SPEC §14.2): per claim, its heads removed (each alone, or
    together) over its sentences, in one pass of `Model.iter_effects` per claim (mean ablation's
    means come from the claim's own sentences). Not cached: the numbers of a sentence depend on
    the claim's whole sentence set through the means."""
    groups: dict[tuple[str, str, str], list[ClaimJob]] = defaultdict(list)
    for job in jobs:
        groups[job.group].append(job)
    results: dict[str, ClaimResult] = {}
    for group in groups.values():
        spec, sentences = group[0].spec, group[0].sentences
        heads = unique_heads(h for j in group for h in j.heads)
        together = bool(spec.measure.together)
        try:
            with _progress(settings.progress, len(sentences), "effects") as advance:
                accumulator = measure_effects(model, spec, sentences, heads, advance)
        except UsageError as error:  # this claim cannot be measured (kl without an MLM head)
            for job in group:
                results[job.key] = dataclasses.replace(
                    unmeasured(spec, _label(job), model_spec, str(error), tolerance=0.0),
                    file=job.display_file, tolerance=spec.tolerance)
            continue
        by_head = accumulator.results(model=model_spec, fingerprint=model.fingerprint)
        for job in group:
            result = by_head[0] if together else _result_of(job, by_head)
            result = dataclasses.replace(result, file=job.display_file)
            if job.unknown_sentences:
                result = _with_unknown_words(result, job)
            if settings.judge is not None:
                result = settings.judge(job, result)
            if not result.passed and settings.figures is not None:
                result = with_effect_figures(model, job.spec, job.sentences, result,
                                             folder=settings.figures(),
                                             display_file=job.display_file)
            results[job.key] = result
    return results


def _label(job: ClaimJob) -> str:
    """What a job's result is called: its head, the heads removed together, or its pattern."""
    if job.spec.measure.together:
        return together_label(job.heads)
    if job.spec.quantifier == "each":
        return str(job.heads[0])
    return ",".join(map(str, job.spec.claim.heads))


@contextlib.contextmanager
def _progress(progress: ProgressFactory | None, total: int,
              what: str) -> Iterator[Callable[[], None]]:
    """A function to call per item done: a bar's ``advance``, or nothing without one."""
    if progress is None:
        yield lambda: None
        return
    with progress(total, what) as bar:
        yield bar.advance


def _score_runs(model: ModelHandle, texts: list[str], keys: Mapping[str, EntryKey],
                heads: Sequence[Head], users: _Users, scores: ScoreCache | None,
                settings: EvaluationSettings, collected: _Collected,
                weighting: str = "attention") -> None:
    """Run ``texts`` (through the forward cache, which they do not write: each entry is
    written here once, with its scores) and score every claim that uses each."""
    pairs = head_pairs(heads)
    most = model.num_layers * model.num_heads
    cache = scores.forward if scores is not None else None
    try:
        for index, run in _runs(model, texts, heads, cache, settings.progress, weighting):
            text = texts[index]
            numbers: dict[str, SentenceNumbers] = {}
            for accumulator, sentence_index, sentence, key in users[text]:
                scored = accumulator.score(sentence, run)
                _record(accumulator, sentence_index, sentence, scored, collected)
                numbers[key] = scored
            if scores is not None:
                scores.put(keys[text], numbers, pairs, stored_attentions(run, pairs),
                           max_heads=most)
    finally:
        if cache is not None:
            cache.flush()


def _entry_keys(model: ModelHandle, users: _Users, weighting: str) -> dict[str, EntryKey]:
    """Each text's forward-cache key (its tokenization: the texts are tokenized once)."""
    texts = list(users)
    fingerprint = weighted_fingerprint(model.fingerprint, weighting)
    return {text: entry_key(fingerprint, encoding)
            for text, encoding in zip(texts, model.tokenize(texts))}


def _record(accumulator: ClaimAccumulator, index: int, sentence: Sentence,
            numbers: SentenceNumbers, collected: _Collected) -> None:
    """Record one sentence's numbers, and keep them for the claim's whole row."""
    accumulator.record(index, sentence.text, numbers)
    kept = collected.setdefault(id(accumulator), {})
    if kept is not None:
        kept[index] = numbers


def _whole_claims_cached(accumulators: Sequence[tuple[ClaimAccumulator, list[ClaimJob]]],
                         users: _Users, keys: Mapping[str, EntryKey], scores: ScoreCache,
                         collected: _Collected) -> _Users:
    """Record every claim whose whole row the score cache holds (one read per claim); return
    the users that still need their sentences' numbers."""
    done: set[int] = set()
    for accumulator, group in accumulators:
        if accumulator.windows:  # local heads' counts: kept per sentence only
            continue
        sentences = group[0].sentences
        found = scores.get_claim(accumulator.spec, accumulator.heads, sentences,
                                 [keys[s.text] for s in sentences])
        if found is None:
            continue
        for index, (sentence, numbers) in enumerate(zip(sentences, found)):
            accumulator.record(index, sentence.text, numbers)
        collected[id(accumulator)] = None
        done.add(id(accumulator))
    if not done:
        return users
    rest = {text: [user for user in pairs if id(user[0]) not in done]
            for text, pairs in users.items()}
    return defaultdict(list, {text: pairs for text, pairs in rest.items() if pairs})


def _keep_whole_claims(accumulators: Sequence[tuple[ClaimAccumulator, list[ClaimJob]]],
                       keys: Mapping[str, EntryKey], scores: ScoreCache,
                       collected: _Collected) -> None:
    """Write the whole row of every claim scored sentence by sentence in this run."""
    for accumulator, group in accumulators:
        kept = collected.get(id(accumulator))
        sentences = group[0].sentences
        if kept is None or len(kept) != len(sentences) or accumulator.windows:
            continue
        scores.put_claim(accumulator.spec, accumulator.heads, sentences,
                         [keys[s.text] for s in sentences],
                         [kept[i] for i in range(len(sentences))])
    scores.forward.flush()


def _cached_scores(users: _Users, keys: Mapping[str, EntryKey], scores: ScoreCache | None,
                   collected: _Collected) -> list[str]:
    """Record the score cache's numbers of every text whose (claim, sentence) pairs all hit;
    return the texts that still need a run."""
    texts = list(users)
    if scores is None or not texts:
        return texts
    pending: list[str] = []
    for text in texts:
        pairs = users[text]
        found = scores.get(keys[text], [key for *_, key in pairs])
        if found is None:
            pending.append(text)
            continue
        for (accumulator, sentence_index, sentence, _), numbers in zip(pairs, found):
            _record(accumulator, sentence_index, sentence, numbers, collected)
    return pending


def _runs(model: ModelHandle, texts: Sequence[str], heads: Sequence[Head],
          cache: ForwardCache | None, progress: ProgressFactory | None,
          weighting: str = "attention") -> Iterator[tuple[int, Run]]:
    """The runs of ``texts``, from the forward cache (not written here) or the model."""
    iterator = forward_runs(texts, heads, fingerprint=model.fingerprint, encode=model.tokenize,
                            num_layers=model.num_layers, num_heads=model.num_heads,
                            load_model=lambda: model, cache=cache, write=False,
                            weighting=weighting)
    if progress is None:
        yield from iterator
        return
    with progress(len(texts), "forward") as bar:
        for pair in iterator:
            bar.advance()
            yield pair


def _with_unknown_words(result: ClaimResult, job: ClaimJob) -> ClaimResult:
    """The count of sentences with [UNK] in the result, and a warning saying so."""
    warning = (f"{job.unknown_sentences} of {len(job.sentences)} sentences have words the "
               f"vocabulary cannot spell, read as [UNK] (unknown_words: allow)")
    return dataclasses.replace(result, unknown_sentences=job.unknown_sentences,
                               warnings=(*result.warnings, warning))


def _result_of(job: ClaimJob, results: Sequence[ClaimResult]) -> ClaimResult:
    """A job's result among its claim's: its head's (``each``), or the claim's one."""
    if job.spec.quantifier == "each":
        (head,) = job.heads
        for result in results:
            if result.head == str(head):
                return result
        raise RuntimeError(f"no result for {head} among {[r.head for r in results]}")
    (result,) = results
    return result


def _shrunk(model: ModelHandle, job: ClaimJob, result: ClaimResult,
            settings: EvaluationSettings) -> ClaimResult:
    """For ``per: sentence`` over generated sets: put hypothesis's simplest failing sentence
    first among the counterexamples."""

    if job.spec.per != "sentence" or not job.templates or job.spec.measure.kind == "effect":
        return result
    head = parse_head(result.head)
    expect = job.spec.expect

    def fails(sentence: Sentence) -> bool:
        (run,) = model.run([sentence.text], hidden_states=False, mlm_logits=False,
                           num_layers=head.layer, weighting=job.spec.weighting)
        score = score_sentence(job.spec, head, sentence, run, model.windows[head.layer - 1])
        return score.value is not None and not expect.holds(score.value)

    found = []
    for template in job.templates:
        key = f"{job.display_file}::{job.spec.id}::{head}::{model.fingerprint}"
        shrunk = shrink_counterexample(template, settings.seed, fails, key=key,
                                       database_dir=settings.examples_dir)
        if shrunk is not None:
            found.append(shrunk.text)
    if not found:
        return result
    rest = [t for t in (result.counterexamples or ()) if t not in found]
    return dataclasses.replace(result, counterexamples=tuple(found + rest))


def with_figures(model: ModelHandle, spec: ClaimSpec, sentences: Sequence[Sentence],
                 result: ClaimResult, *, display_file: str, folder: Path,
                 cache: ForwardCache | None = None) -> ClaimResult:
    """``result`` with diagrams of its worst sentences (and, for any/none, of its next best
    heads) saved under ``folder``, their runs read from ``cache`` when it has them."""
    requests = figure_requests(result, sentences)
    if not requests:
        return result
    texts = list(dict.fromkeys(s.text for r in requests for s in r.sentences))
    runs = dict(forward_runs(texts, [r.head for r in requests], fingerprint=model.fingerprint,
                             encode=model.tokenize, num_layers=model.num_layers,
                             num_heads=model.num_heads, load_model=lambda: model,
                             cache=cache, weighting=spec.weighting))
    by_text = {text: runs[i] for i, text in enumerate(texts)}
    return draw_failure_figures(
        spec, result, [(r, [by_text[s.text] for s in r.sentences]) for r in requests],
        folder=folder, display_file=display_file, windows=model.windows)
