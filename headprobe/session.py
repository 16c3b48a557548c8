"""One `headprobe check` run: models, sentences, evaluation, figures and the report.

State lives in a `CheckContext` stored on the pytest config. Collection asks it for model
information (config and tokenizer only, no JAX) and for each claim's sentences; the first claim item
to run triggers `evaluate`, which loads each model once, runs each distinct sentence once per model
(streamed in batches, so memory stays flat) and feeds every run to the accumulators of the claims
that use it. Failing results get their figures; `finish` writes report.json and index.html.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headprobe._version import __version__
from headprobe.claims.spec import ClaimSpec, HypothesisFile, Sentence
from headprobe.errors import HeadprobeError
from headprobe.settings import Settings, read_settings
from headprobe.terminal import format_value

if TYPE_CHECKING:  # pragma: no cover
    from headprobe.collect import ClaimItem
    from headprobe.evaluation import ClaimResult
    from headprobe.modelinfo import ModelInfo

DEFAULT_MODEL = "bert-base-uncased"
_KEY = pytest.StashKey["CheckContext"]()
MAX_FIGURES_PER_RESULT = 3


def get_context(config: pytest.Config) -> "CheckContext":
    context = config.stash.get(_KEY, None)
    if context is None:
        context = CheckContext(config)
        config.stash[_KEY] = context
    return context


def context_if_any(config: pytest.Config) -> "CheckContext | None":
    return config.stash.get(_KEY, None)


class CheckContext:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = read_settings(_settings_root(config))
        self.started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._infos: dict[str, ModelInfo | None] = {}
        self._fingerprints: dict[str, Any] = {}  # spec -> Future of its Fingerprint
        self._model_errors: dict[str, HeadprobeError] = {}
        self._models: dict[str, Any] = {}
        self._results: dict[str, ClaimResult] = {}
        self._recorded: list[tuple[str, ClaimResult]] = []
        self._errors = 0
        self._run_dir: Path | None = None
        self._sentence_cache: dict[tuple[str, str], list[Sentence]] = {}
        self.current_nodeid: str | None = None
        self.current_is_property = False
        self.expected_failures: set[str] = set()  # nodeids marked xfail (terminal wording)
        self.forward_cache = None  # one per session, made on first use (`_forward_cache`)
        self.score_cache = None  # with it: the scores in its entries (headprobe.cache.scores)

    # ---- settings ----------------------------------------------------------------------------
    @property
    def report_dir(self) -> Path:
        option = self.config.getoption("headprobe_report_dir", None)
        base = Path(self.config.invocation_params.dir)
        return base / (option or self.settings.report_dir or "reports")

    @property
    def seed(self) -> int:
        option = self.config.getoption("headprobe_seed", None)
        return int(option if option is not None else (self.settings.seed or 0))

    def model_spec_for(self, declared: str | None) -> str:
        override = self.config.getoption("headprobe_model", None)
        return override or declared or self.settings.model or DEFAULT_MODEL

    # ---- models (collection: config + tokenizer only) ------------------------------------------
    def model_info(self, spec: str) -> "ModelInfo | None":
        if spec not in self._infos:
            from headprobe.modelinfo import inspect_model

            try:
                self._infos[spec] = inspect_model(spec)
            except HeadprobeError as error:
                self._infos[spec] = None
                self._model_errors[spec] = error
            else:
                from headprobe.cache.fingerprints import start_fingerprint

                # Hashed while collection goes on; the cache lookups need it first.
                self._fingerprints[spec] = start_fingerprint(
                    self._infos[spec].folder, memo_root=self._fingerprint_memo)
        return self._infos[spec]

    def raise_model_errors(self) -> None:
        if self._model_errors:
            raise pytest.UsageError("\n".join(str(e) for e in self._model_errors.values()))

    def load_model(self, spec: str):
        if spec not in self._models:
            import headprobe
            from headprobe.model.api import compilation_cache_disabled

            # JAX's compiled programs live under the same cache dir as the forward cache.
            jax_cache = False if compilation_cache_disabled() else self.cache_dir / "jax"
            self._models[spec] = headprobe.load(spec, compilation_cache=jax_cache)
            # JAX, Flax and the weights are hundreds of thousands of long-lived objects that
            # every full garbage collection would walk again (~50 ms each, ~0.5 s per check of
            # 1,000 sentences, and pytest collects five times more at exit): move everything
            # alive now out of the collector's reach (`gc.freeze`).
            gc.freeze()
        return self._models[spec]

    def probe_model(self, spec: str | None):
        """A `ProbeModel` for ``spec`` (None: the configured default) that records its claims."""
        from headprobe.pyapi import ProbeModel

        spec = self.model_spec_for(spec)
        try:
            model = self.load_model(spec)
        except HeadprobeError as error:
            # A model that cannot be had ends the whole run as a usage error (exit 4), as it
            # does for hypothesis files, instead of failing every test that uses the fixture.
            pytest.exit(f"headprobe_model: {error}", returncode=int(error.exit_code))

        def record(measured, claim_spec, result) -> None:
            self.record_python(self.current_nodeid or claim_spec.id, result)

        return ProbeModel(model, recorder=record)

    def explain_python_failure(self, measured) -> list[str]:
        """Lines for a failing ``assert measured >= x``, with the diagrams it drew."""
        from headprobe.terminal import measured_line

        result = measured.decided
        file = os.path.relpath(result.file, self.config.rootpath) if os.path.isabs(
            result.file) else result.file
        result = self.with_figures(measured.probe.model, measured.spec, measured.sentences,
                                   result, file)
        for i, (nodeid, recorded) in enumerate(self._recorded):
            if recorded.id == result.id and recorded.head == result.head and \
                    recorded.expect == result.expect and not recorded.figures:
                self._recorded[i] = (nodeid, dataclasses.replace(recorded, figures=result.figures))
        lines = [f"claim {measured.spec.claim_text!r} failed on {result.head}",
                 measured_line(result)]
        lines += [f"figure: {os.path.relpath(self.run_dir() / f)}" for f in result.figures]
        return lines

    # ---- sentences -----------------------------------------------------------------------------
    def sentences_for(self, spec: ClaimSpec, hfile: HypothesisFile,
                      info: "ModelInfo") -> list[Sentence]:
        sentences: list[Sentence] = []
        for name in spec.over:
            key = (hfile.path + "::" + name, info.spec)
            if key not in self._sentence_cache:
                sentence_set = hfile.sets[name]
                if sentence_set.template is not None and sentence_set.template.generate:
                    from headprobe.generate import draw_sentences

                    members = draw_sentences(sentence_set.template, seed=self.seed,
                                             storage_dir=self.cache_dir / "hypothesis")
                else:
                    members = list(sentence_set.sentences)
                info.check_sentences(members, file=hfile.path, set_name=name,
                                     line=sentence_set.line)
                self._sentence_cache[key] = members
            sentences.extend(self._sentence_cache[key])
        return sentences

    # ---- evaluation ----------------------------------------------------------------------------
    def result_for(self, item: "ClaimItem") -> "ClaimResult":
        if item.nodeid not in self._results:
            self.evaluate(item.session)
        result = self._results[item.nodeid]
        self._recorded.append((item.nodeid, result))
        return result

    def evaluate(self, session: pytest.Session) -> None:
        from headprobe.collect import ClaimItem

        pending = [i for i in session.items if isinstance(i, ClaimItem)
                   and i.nodeid not in self._results
                   and not any(m.name == "skip" for m in i.iter_markers())]
        by_model: dict[str, list[ClaimItem]] = defaultdict(list)
        for item in pending:
            by_model[item.model_spec].append(item)
        for spec, items in by_model.items():
            self._evaluate_model(spec, items)

    def _evaluate_model(self, model_spec: str, items: list["ClaimItem"]) -> None:
        from headprobe.cache.runs import head_pairs, stored_attentions
        from headprobe.cache.scores import ScoreCache, scoring_key
        from headprobe.evaluation import ClaimAccumulator

        model = self._deferred_model(model_spec)  # weights load only if the cache misses
        # One accumulator per claim, over the heads of its selected items.
        groups: dict[tuple[str, str], list[ClaimItem]] = defaultdict(list)
        for item in items:
            groups[(str(item.path), item.spec.id)].append(item)
        accumulators = []
        # Per text: (accumulator, sentence index, sentence, scoring key) of every claim using it.
        users: dict[str, list[tuple[Any, int, Sentence, str]]] = defaultdict(list)
        for group in groups.values():
            heads = []
            for item in group:
                heads.extend(h for h in item.heads if h not in heads)
            accumulator = ClaimAccumulator(group[0].spec, heads)
            accumulators.append((accumulator, group))
            for index, sentence in enumerate(group[0].sentences):
                key = scoring_key(accumulator.spec, accumulator.heads, sentence)
                users[sentence.text].append((accumulator, index, sentence, key))
        heads = list(dict.fromkeys(h for _, group in accumulators for item in group
                                   for h in item.heads))
        self.score_cache = ScoreCache(self._forward_cache())  # the scores live in its entries
        pending, keys = self._cached_scores(model, users)
        pairs = head_pairs(heads)
        most = model.num_layers * model.num_heads
        # Each sentence's cache entry (its heads' attention and its claims' numbers) is put
        # once, after scoring; entries go to disk many to a transaction.
        try:
            for index, run in self._runs(model, pending, heads):
                text = pending[index]
                numbers = {}
                for accumulator, sentence_index, sentence, key in users[text]:
                    scored = accumulator.score(sentence, run)
                    accumulator.record(sentence_index, sentence.text, scored)
                    numbers[key] = scored
                if self.score_cache.enabled:
                    self.score_cache.put(keys[text], numbers, pairs, stored_attentions(run, pairs),
                                         max_heads=most)
        finally:
            self.forward_cache.flush()
        for accumulator, group in accumulators:
            results = accumulator.results(model=model_spec, fingerprint=model.fingerprint)
            for item in group:
                result = dataclasses.replace(_result_for_item(item, results),
                                             file=item.display_file)
                if not result.passed:
                    result = self._shrunk(model, item, result)
                    result = self.with_figures(model, item.spec, item.sentences, result,
                                               item.display_file)
                self._results[item.nodeid] = result

    def _cached_scores(self, model, users) -> tuple[list[str], dict[str, Any]]:
        """Record the score cache's numbers of every text whose (claim, sentence) pairs all hit;
        return the texts that still need a run, and each text's forward-cache key."""
        from headprobe.cache.runs import entry_key

        texts = list(users)
        if not self.score_cache.enabled or not texts:
            return texts, {}
        pending, keys = [], {}
        for text, encoding in zip(texts, model.tokenize(texts)):
            keys[text] = entry_key(model.fingerprint, encoding)
            pairs = users[text]
            found = self.score_cache.get(keys[text], [key for *_, key in pairs])
            if found is None:
                pending.append(text)
                continue
            for (accumulator, sentence_index, sentence, _), numbers in zip(pairs, found):
                accumulator.record(sentence_index, sentence.text, numbers)
        return pending, keys

    def _deferred_model(self, spec: str):
        """The model for ``spec`` as a `DeferredModel`: its fingerprint and tokenizer come from
        its files, and the weights (and JAX) load only when something needs the forward pass."""
        from headprobe.cache.deferred import DeferredModel

        info = self.model_info(spec)
        if info is None or spec in self._models:
            return self.load_model(spec)
        return DeferredModel(lambda: self.load_model(spec), folder=info.folder,
                             tokenizer=info.tokenizer, num_layers=info.num_layers,
                             num_heads=info.num_heads,
                             memo_root=self._fingerprint_memo,
                             background=self._fingerprints.get(spec))

    @property
    def _fingerprint_memo(self) -> Path | None:
        """Where model fingerprints are remembered (`model_fingerprint`); None: not at all."""
        return self.cache_dir if self.cache_enabled else None

    def _runs(self, model, texts: Sequence[str], heads):
        """The runs of ``texts`` through the forward cache, which they do not write:
        `_evaluate_model` writes each entry with its scores."""
        from headprobe.cache.runs import forward_runs

        show_progress = len(texts) > 200 and self.config.getoption("verbose", 0) >= 0
        iterator = forward_runs(texts, heads, fingerprint=model.fingerprint,
                                encode=model.tokenize, num_layers=model.num_layers,
                                num_heads=model.num_heads,
                                load_model=lambda: model, cache=self._forward_cache(),
                                write=False)
        if not show_progress:
            yield from iterator
            return
        from headprobe.progress import Progress

        with Progress(total=len(texts), label="forward") as progress:
            for pair in iterator:
                progress.advance()
                yield pair

    @property
    def cache_enabled(self) -> bool:
        """False with ``--no-cache``: neither the forward nor the score cache is read or written."""
        return not self.config.getoption("headprobe_no_cache", False)

    @property
    def cache_dir(self) -> Path:
        from headprobe.paths import cache_root

        return cache_root(self.config.getoption("headprobe_cache_dir", None)
                          or self.settings.cache_dir)

    def _shrunk(self, model, item: "ClaimItem", result: "ClaimResult") -> "ClaimResult":
        """For ``per: sentence`` over generated sets: put hypothesis's simplest failing
        sentence first among the counterexamples."""
        from headprobe.evaluation import score_sentence
        from headprobe.generate import shrink_counterexample
        from headprobe.heads import parse_head

        if item.spec.per != "sentence" or not item.templates:
            return result
        head = parse_head(result.head)
        expect = item.spec.expect

        def fails(sentence: Sentence) -> bool:
            (run,) = model.run([sentence.text], hidden_states=False, mlm_logits=False,
                               num_layers=head.layer)
            score = score_sentence(item.spec, head, sentence, run)
            return score.value is not None and not expect.holds(score.value)

        found = []
        for template in item.templates:
            key = f"{item.display_file}::{item.spec.id}::{head}::{model.fingerprint}"
            shrunk = shrink_counterexample(template, self.seed, fails, key=key,
                                           database_dir=self.cache_dir / "hypothesis" / "examples")
            if shrunk is not None:
                found.append(shrunk.text)
        if not found:
            return result
        rest = [t for t in (result.counterexamples or ()) if t not in found]
        return dataclasses.replace(result, counterexamples=tuple(found + rest))

    # ---- figures -------------------------------------------------------------------------------
    def run_dir(self) -> Path:
        if self._run_dir is None:
            from headprobe.report.store import new_run_dir

            self._run_dir = new_run_dir(self.report_dir)
        return self._run_dir

    def with_figures(self, model, spec: ClaimSpec, sentences: Sequence[Sentence],
                     result: "ClaimResult", display_file: str) -> "ClaimResult":
        """``result`` with PNG diagrams of its worst sentences written into this run's folder."""
        from headprobe.evaluation import attention_view
        from headprobe.evaluation.views import windowed
        from headprobe.heads import parse_head
        from headprobe.report.figures import attention_figure, save_png

        if self.config.getoption("headprobe_no_report", False) or not result.worst:
            return result
        head = parse_head(result.head)
        chosen = [sentences[i] for i in result.worst[:MAX_FIGURES_PER_RESULT]]
        runs = self._figure_runs(model, [s.text for s in chosen], head)
        paths = []
        problems = []
        stem = _safe_name(f"{Path(display_file).stem}_{spec.id}_{head}")
        for rank, (sentence, run) in enumerate(zip(chosen, runs), start=1):
            view = windowed(attention_view(spec, head, sentence, run))
            title = (f"{spec.claim_text}   [{head}]\n"
                     f"{spec.measure} = {format_value(view.value)} on this sentence; "
                     f"overall "
                     f"{format_value(result.value)} (n={result.n}), expected {spec.expect}"
                     f"{_baseline_note(result, spec)}\n"
                     f"model: {result.model}" + (f"\n{view.note}" if view.note else ""))
            relative = Path("figures") / f"{stem}_{rank}.png"
            try:
                figure = attention_figure(view.matrix, view.labels, expected=view.expected,
                                          actual=view.actual, title=title,
                                          col_labels=view.column_labels)
                save_png(figure, self.run_dir() / relative)
            except Exception as error:  # noqa: BLE001 - a figure is never worth the result
                problems.append(f"figure {rank} could not be drawn ({type(error).__name__}: "
                                f"{error})")
                continue
            paths.append(relative.as_posix())
        return dataclasses.replace(result, figures=tuple(paths),
                                   warnings=tuple(result.warnings) + tuple(problems))

    def _figure_runs(self, model, texts: list[str], head) -> list:
        """Runs for figures of ``head``, from the forward cache when it has them."""
        if not hasattr(model, "tokenize") or not hasattr(model, "fingerprint"):
            return model.run(texts, hidden_states=False, mlm_logits=False, num_layers=head.layer)
        from headprobe.cache.runs import forward_runs

        runs = dict(forward_runs(texts, [head], fingerprint=model.fingerprint,
                                 encode=model.tokenize, num_layers=model.num_layers,
                                 num_heads=model.num_heads,
                                 load_model=lambda: model, cache=self._forward_cache()))
        return [runs[i] for i in range(len(texts))]

    def _forward_cache(self):
        """The session's one `ForwardCache` (one database connection per session)."""
        if self.forward_cache is None:
            from headprobe.cache.entries import ForwardCache

            self.forward_cache = ForwardCache(self.cache_dir, enabled=self.cache_enabled)
        return self.forward_cache

    # ---- terminal ------------------------------------------------------------------------------
    def failure_text(self, item: "ClaimItem", result: "ClaimResult") -> str:
        from headprobe.terminal import failure_text

        return failure_text(item, result, self.run_dir() if result.figures else None,
                            Path(self.config.invocation_params.dir), seed=self.seed)

    def terminal_summary(self, reporter) -> None:
        from headprobe.terminal import summary_lines

        for line in summary_lines(self._recorded, self._written_report,
                                  expected_failures=self.expected_failures):
            reporter.write_line(line)

    # ---- report --------------------------------------------------------------------------------
    _written_report: Path | None = None

    def record_python(self, nodeid: str, result: "ClaimResult") -> None:
        """A claim decided in a Python test (`headprobe.pyapi`): it goes into the report."""
        file = os.path.relpath(result.file, self.config.rootpath) if os.path.isabs(
            result.file) else result.file
        entry = (nodeid, dataclasses.replace(result, file=file))
        if self.current_is_property:
            # Each example of a @given test is one sentence by design: "few sources" is no news.
            from headprobe.evaluation.verdict import FEW_SOURCES

            few = f"(fewer than {FEW_SOURCES})"
            entry = (nodeid, dataclasses.replace(entry[1], warnings=tuple(
                w for w in result.warnings if few not in w)))
            # A later example of a @given test replaces an earlier one.
            same = (result.claim, result.head, result.expect)
            for i, (recorded_id, recorded) in enumerate(self._recorded):
                if recorded_id == nodeid and (recorded.claim, recorded.head,
                                              recorded.expect) == same:
                    self._recorded[i] = entry
                    return
        self._recorded.append(entry)

    def note_error(self) -> None:
        self._errors += 1

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.forward_cache is not None:
            self.forward_cache.close()  # checkpoints SQLite's write-ahead log into the file
        if self.config.getoption("headprobe_no_report", False):
            return
        if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            return
        if not self._recorded:
            return  # nothing evaluated (collection errors, nothing selected): claim nothing
        from headprobe.report.store import finish_run

        results = []
        for nodeid, result in self._recorded:
            entry = result.to_json()
            if nodeid in self.expected_failures and not result.passed:
                entry["outcome"] = "xfailed"  # marked xfail: failing as expected
            results.append(entry)
        passed = sum(1 for r in results if r["passed"])
        report = {
            "headprobe_version": __version__,
            "started": self.started,
            "results": results,
            "summary": {"passed": passed, "failed": len(results) - passed,
                        "errors": self._errors},
        }
        self._written_report = finish_run(self.run_dir(), self.report_dir, report)


def _result_for_item(item: "ClaimItem", results: Sequence["ClaimResult"]) -> "ClaimResult":
    if item.spec.quantifier == "each":
        (head,) = item.heads
        for result in results:
            if result.head == str(head):
                return result
        raise RuntimeError(f"no result for {head} among {[r.head for r in results]}")
    (result,) = results
    return result


def _baseline_note(result: "ClaimResult", spec: ClaimSpec) -> str:
    """``; must beat offset k=-1 (0.500) by 0.1`` when a baseline decided (part of) the verdict."""
    if result.baseline is None:
        return ""
    margin = f" by {spec.margin:g}" if spec.margin else ""
    return (f"; must beat offset k={result.baseline.offset:+d} "
            f"({format_value(result.baseline.value)}){margin}")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


def _settings_root(config: pytest.Config) -> Path:
    inipath = getattr(config, "inipath", None)
    if inipath is not None and Path(inipath).name == "pyproject.toml":
        return Path(inipath).parent
    return Path(config.rootpath)
