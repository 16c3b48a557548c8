"""The parts of one pytest run that headprobe keeps, each in ``config.stash`` under its own key:

- `options`: the resolved `CheckOptions`;
- `models`: the `ModelRegistry` (each model resolved once, loaded at most once);
- `sentence_sets`: each sentence set expanded and checked against its model once;
- `forward_cache`: the run's one `ForwardCache`;
- `evaluation_settings`: how the run evaluates claims (`headprobe.engine.evaluate`).

The `Recorder` (`headprobe.recorder`) is the plugin object that keeps what the run produced;
`headprobe.collect` evaluates the collected claims.
Each part is made when first asked for, so a pytest run without hypothesis files or headprobe
fixtures reads no settings and makes none of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from headprobe.cache.entries import ForwardCache
from headprobe.claims.jobs import ClaimJob
from headprobe.claims.spec import HypothesisFile, Sentence, SentenceSet
from headprobe.engine.evaluate import EvaluationSettings, ProgressFactory
from headprobe.engine.models import ModelRegistry
from headprobe.evaluation.results import ClaimResult
from headprobe.model.info import ModelInfo
from headprobe.options import CheckOptions
from headprobe.regression.profiles import sentences_digest
from headprobe.regression.snapshots import Recorded, SnapshotStore, snapshot_path
from headprobe.regression.unchanged import judge_unchanged, not_recorded

T = TypeVar("T")


def _part(key: pytest.StashKey[T],
          make: Callable[[pytest.Config], T]) -> Callable[[pytest.Config], T]:
    def get(config: pytest.Config) -> T:
        if key not in config.stash:
            config.stash[key] = make(config)
        return config.stash[key]

    get.__doc__ = f"The run's one {key!r} (made on first use)."
    return get


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


def evaluation_settings(config: pytest.Config,
                        figures: Callable[[], Path] | None) -> EvaluationSettings:
    """How this run evaluates claims: its forward cache, seed, example database, progress bar;
    failure diagrams into ``figures()`` (None: none)."""
    run = options(config)
    return EvaluationSettings(cache=forward_cache(config), seed=run.seed,
                              examples_dir=run.cache_dir / "hypothesis" / "examples",
                              figures=figures, progress=_progress(config),
                              judge=partial(_judge_against_snapshot, config))


def _judge_against_snapshot(config: pytest.Config, job: ClaimJob,
                            result: ClaimResult) -> ClaimResult:
    """An ``expect: unchanged`` result compared with its snapshot (and, with
    ``--snapshot-update``, recorded); other results as they are."""
    spec = job.spec
    if not spec.expect.is_unchanged:
        return result
    store = snapshots(config)
    file = job.spec.file
    recorded = store.recorded(file, spec.id, result.head)
    digest = sentences_digest([s.text for s in job.sentences])
    update = options(config).snapshot_update
    judged = judge_unchanged(result, recorded, digest, spec.tolerance or 0.0, update=update,
                             snapshot=str(snapshot_path(job.display_file)))
    if update and result.value is not None:
        store.record(file, spec.id, result.head,
                     Recorded(result.value, result.n, result.model_fingerprint, digest))
    return judged


def unrecorded(config: pytest.Config, job: ClaimJob) -> str | None:
    """Why an ``expect: unchanged`` job fails unmeasured: its snapshot has no value for its
    head (and this run does not record one); one line. None for any other job."""
    spec = job.spec
    if not spec.expect.is_unchanged or options(config).snapshot_update:
        return None
    recorded = snapshots(config).load(spec.file).get(spec.id, {})
    missing = [str(head) for head in job.heads if str(head) not in recorded]
    if not missing:
        return None
    return not_recorded(spec.id, missing[0], str(snapshot_path(job.display_file)),
                        job.display_file, options(config).model_override)


def _progress(config: pytest.Config) -> ProgressFactory | None:
    """tqdm bars on the terminal, written with pytest's capture suspended (unless -q, not a
    terminal, or CI)."""
    from headprobe.progress import progress_bars

    capture = config.pluginmanager.getplugin("capturemanager")
    return progress_bars(options(config).verbosity,
                         suspended=capture.global_and_fixture_disabled if capture else None)


_OPTIONS = pytest.StashKey[CheckOptions]()
_MODELS = pytest.StashKey[ModelRegistry]()
_SENTENCES = pytest.StashKey[SentenceSets]()
_FORWARD = pytest.StashKey[ForwardCache]()
_REQUESTS = pytest.StashKey[defaultdict[str, list[str]]]()
_SNAPSHOTS = pytest.StashKey[SnapshotStore]()

options = _part(_OPTIONS, CheckOptions.from_config)
models = _part(_MODELS, lambda c: ModelRegistry(memo_root=options(c).memo_root,
                                                programs=options(c).programs))
sentence_sets = _part(_SENTENCES, lambda c: SentenceSets(options(c)))
forward_cache = _part(_FORWARD, lambda c: ForwardCache(options(c).cache_dir,
                                                        enabled=options(c).cache_enabled))


model_requests = _part(_REQUESTS, lambda c: defaultdict(list))
snapshots = _part(_SNAPSHOTS, lambda c: SnapshotStore())
"""The snapshot files of the run's ``expect: unchanged`` claims."""
"""Which claims (``file:line (id)``) asked for each model that cannot be had."""


def models_if_any(config: pytest.Config) -> ModelRegistry | None:
    """The run's model registry if something made it."""
    return config.stash.get(_MODELS, None)


def snapshots_if_any(config: pytest.Config) -> SnapshotStore | None:
    """The run's snapshot store if something made it."""
    return config.stash.get(_SNAPSHOTS, None)


def forward_cache_if_any(config: pytest.Config) -> ForwardCache | None:
    """The run's forward cache if something made it."""
    return config.stash.get(_FORWARD, None)
