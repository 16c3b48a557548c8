"""The claims' results of one pytest run, parts of its `HeadprobeSession`.

`ClaimResults` evaluates the jobs of every collected claim item together when the first item
asks for its result (`headprobe.engine.evaluate`), so that every model is loaded once and every
distinct sentence is run once; ``expect: unchanged`` results are judged against their snapshots
there (and, with ``--snapshot-update``, recorded). A job whose snapshot has no value to compare
with is not evaluated (`ClaimResults.unrecorded` says why it fails). `SentenceSets` expands each
sentence set and checks it against its model once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headprobe.claims.jobs import ClaimJob
from headprobe.claims.spec import HypothesisFile, Sentence, SentenceSet
from headprobe.engine.effect_claims import together_label
from headprobe.engine.evaluate import EvaluationSettings, ProgressFactory, evaluate
from headprobe.evaluation.results import ClaimResult
from headprobe.model.info import ModelInfo
from headprobe.pytest_plugin.options import CheckOptions
from headprobe.regression.profiles import sentences_digest
from headprobe.regression.snapshots import Recorded, snapshot_path
from headprobe.regression.unchanged import judge_unchanged, not_recorded

if TYPE_CHECKING:
    from headprobe.pytest_plugin.collect import ClaimItem
    from headprobe.pytest_plugin.session import HeadprobeSession


class SentenceSets:
    """Each (file, set, model) expanded once: drawn from its template for ``generate:``, and
    checked against the model's tokenizer (lengths, unknown words)."""

    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self._sets: dict[tuple[str, str, str], list[Sentence]] = {}
        self._unknown: dict[tuple[str, str, str], int] = {}  # sentences with [UNK], per set

    def sentences(self, hfile: HypothesisFile, names: tuple[str, ...],
                  info: ModelInfo) -> list[Sentence]:
        """The sentences of the sets ``names`` of ``hfile``, in order, for ``info``'s model."""
        sentences: list[Sentence] = []
        for name in names:
            key = (hfile.path, name, info.spec)
            if key not in self._sets:
                self._sets[key], self._unknown[key] = self._expand(
                    hfile.sets[name], hfile.path, info, hfile.unknown_words == "allow")
            sentences.extend(self._sets[key])
        return sentences

    def unknown(self, hfile: HypothesisFile, names: tuple[str, ...], info: ModelInfo) -> int:
        """How many sentences of those sets have words the vocabulary cannot spell (only with
        ``unknown_words: allow``; expanded by `sentences` first)."""
        return sum(self._unknown.get((hfile.path, name, info.spec), 0) for name in names)

    def _expand(self, sentence_set: SentenceSet, file: str, info: ModelInfo,
                allow_unknown: bool) -> tuple[list[Sentence], int]:
        template = sentence_set.template
        if template is not None and template.generate:
            from headprobe.generate import draw_sentences  # imports hypothesis: only to draw

            members = draw_sentences(template, seed=self.options.seed,
                                     storage_dir=self.options.cache_dir / "hypothesis")
        else:
            members = list(sentence_set.sentences)
        unknown = info.check_sentences(members, file=file, set_name=sentence_set.name,
                                       line=sentence_set.line, allow_unknown=allow_unknown)
        return members, unknown


class ClaimResults:
    """The run's claim results by job, all evaluated when the first is asked for."""

    def __init__(self, session: HeadprobeSession) -> None:
        self.session = session
        self._results: dict[str, ClaimResult] = {}

    def result_of(self, item: ClaimItem) -> ClaimResult:
        """``item``'s result; the first ask evaluates the jobs of every selected claim item not
        skipped and not `unrecorded`, along with it."""
        claim_item = type(item)  # `ClaimItem`, which imports this module's session
        if item.job.key not in self._results:
            jobs = [i.job for i in item.session.items if isinstance(i, claim_item)
                    and i.job.key not in self._results
                    and not any(m.name == "skip" for m in i.iter_markers())
                    and self.unrecorded(i.job) is None]
            self._results.update(evaluate(jobs, self.session.models.handle, self.settings()))
        return self._results[item.job.key]

    def settings(self) -> EvaluationSettings:
        """How this run evaluates claims: its forward cache, seed, example database, progress
        bar; failure diagrams where the session's `figures` says."""
        session = self.session
        run = session.options
        return EvaluationSettings(cache=session.forward_cache, seed=run.seed,
                                  examples_dir=run.cache_dir / "hypothesis" / "examples",
                                  figures=session.figures(), progress=self._progress(),
                                  judge=self._judge_against_snapshot)

    def unrecorded(self, job: ClaimJob) -> str | None:
        """Why an ``expect: unchanged`` job fails unmeasured: its snapshot has no value for its
        head (and this run does not record one); one line. None for any other job."""
        spec = job.spec
        run = self.session.options
        if not spec.expect.is_unchanged or run.snapshot_update:
            return None
        recorded = self.session.snapshots.load(spec.file).get(spec.id, {})
        names = [together_label(job.heads)] if spec.measure.together else map(str, job.heads)
        missing = [name for name in names if name not in recorded]
        if not missing:
            return None
        return not_recorded(spec.id, missing[0], str(snapshot_path(job.display_file)),
                            job.display_file, run.model_override)

    def _judge_against_snapshot(self, job: ClaimJob, result: ClaimResult) -> ClaimResult:
        """An ``expect: unchanged`` result compared with its snapshot (and, with
        ``--snapshot-update``, recorded); other results as they are."""
        spec = job.spec
        if not spec.expect.is_unchanged:
            return result
        store = self.session.snapshots
        file = job.spec.file
        recorded = store.recorded(file, spec.id, result.head)
        digest = sentences_digest([s.text for s in job.sentences])
        update = self.session.options.snapshot_update
        judged = judge_unchanged(result, recorded, digest, spec.tolerance or 0.0, update=update,
                                 snapshot=str(snapshot_path(job.display_file)))
        if update and result.value is not None:
            store.record(file, spec.id, result.head,
                         Recorded(result.value, result.n, result.model_fingerprint, digest))
        return judged

    def _progress(self) -> ProgressFactory | None:
        """tqdm bars on the terminal, written with pytest's capture suspended (unless -q, not a
        terminal, or CI)."""
        from headprobe.progress import progress_bars

        capture = self.session.config.pluginmanager.getplugin("capturemanager")
        return progress_bars(self.session.options.verbosity,
                             suspended=capture.global_and_fixture_disabled if capture else None)
