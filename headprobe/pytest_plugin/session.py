"""`HeadprobeSession`: headprobe's state for one pytest run, in one object, as pytest's junitxml
plugin keeps its ``LogXML``: made in ``pytest_configure`` (`start`), kept in ``config.stash``
under `SESSION`, registered as a plugin (its hooks record what the run produced and write the
report), and unregistered in ``pytest_unconfigure`` (`end`). `headprobe_session` gives it to the
collectors, items and fixtures.

Its parts are made when first asked for, so a pytest run without hypothesis files or headprobe
fixtures reads no options and makes none of them, and this module imports nothing heavy:

- `options`: the resolved `CheckOptions` (command line over ``[tool.headprobe]``);
- `models`: the `ModelRegistry` (each model resolved once, loaded at most once);
- `sentence_sets`: each sentence set expanded and checked against its model once;
- `forward_cache`: the run's one `ForwardCache`;
- `snapshots`: the snapshot files of the run's ``expect: unchanged`` claims;
- `results`: the claims' results, every collected claim evaluated when the first item asks
  (`result_of`);
- `recorder`: what the run produced (`Recorder`), the report's content.

Collection notes here what ends the run as a usage error once it is over (`model_requests`,
`outside`, `not_utf8`). Failure diagrams, of YAML claims and of Python-API claims alike, go
where `figures` says.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Generator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headprobe import interrupts
from headprobe.pytest_plugin.options import CheckOptions
from headprobe.pytest_plugin.recorder import Recorder

if TYPE_CHECKING:  # imported when first used
    from headprobe.cache.entries import ForwardCache
    from headprobe.claims.jobs import ClaimJob
    from headprobe.engine.models import ModelRegistry
    from headprobe.errors import FileOutsideProject
    from headprobe.evaluation.results import ClaimResult
    from headprobe.pytest_plugin.collect import ClaimItem
    from headprobe.pytest_plugin.evaluation import ClaimResults, SentenceSets
    from headprobe.regression.snapshots import SnapshotStore


class HeadprobeSession:
    """One pytest run's options, models, caches, snapshots, results and report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.recorder = Recorder(Path(config.rootpath))
        #: Which claims (``file:line (id)``) asked for each model that cannot be had.
        self.model_requests: defaultdict[str, list[str]] = defaultdict(list)
        #: Sentence files outside the project that hypothesis files named.
        self.outside: list[FileOutsideProject] = []
        #: Hypothesis files whose path in the project is not UTF-8: no test id can name them
        #: (pytest's own cache of test ids, report.json and terminals all need text).
        self.not_utf8: list[Path] = []
        self._run_dir: Path | None = None
        self.owns_interrupts = False  # whether this run installed headprobe's SIGINT handler

    # ---- parts, each made on first use ---------------------------------------------------------
    @cached_property
    def options(self) -> CheckOptions:
        return CheckOptions.from_config(self.config)

    @cached_property
    def models(self) -> ModelRegistry:
        from headprobe.engine.models import ModelRegistry

        return ModelRegistry(memo_root=self.options.memo_root, programs=self.options.programs,
                             tokenizer=self.options.tokenizer)

    @cached_property
    def sentence_sets(self) -> SentenceSets:
        from headprobe.pytest_plugin.evaluation import SentenceSets

        return SentenceSets(self.options)

    @cached_property
    def forward_cache(self) -> ForwardCache:
        from headprobe.cache.entries import ForwardCache

        return ForwardCache(self.options.cache_dir, enabled=self.options.cache_enabled)

    @cached_property
    def snapshots(self) -> SnapshotStore:
        from headprobe.regression.snapshots import SnapshotStore

        return SnapshotStore()

    @cached_property
    def results(self) -> ClaimResults:
        from headprobe.pytest_plugin.evaluation import ClaimResults

        return ClaimResults(self)

    def made(self, part: str) -> Any:
        """The part named ``part`` if something made it, else None (without making it)."""
        return self.__dict__.get(part)

    def __dir__(self) -> list[str]:
        """Every name but the parts': pytest before 8.3.3 reads each attribute that ``dir()``
        names on a registered plugin, looking for fixtures, which would make every part (and
        read the settings, open the cache) in every pytest run."""
        parts = {name for name, value in vars(HeadprobeSession).items()
                 if isinstance(value, cached_property)}
        return [name for name in super().__dir__() if name not in parts]

    # ---- what items and fixtures ask for -------------------------------------------------------
    def result_of(self, item: ClaimItem) -> ClaimResult:
        """``item``'s result; the first ask evaluates every collected claim item's job."""
        return self.results.result_of(item)

    def unrecorded(self, job: ClaimJob) -> str | None:
        """Why an ``expect: unchanged`` job fails unmeasured (no snapshot value); else None."""
        return self.results.unrecorded(job)

    def run_dir(self) -> Path:
        """This run's report folder (made on first use)."""
        if self._run_dir is None:
            from headprobe.report.store import new_run_dir

            self._run_dir = new_run_dir(self.options.report_dir)
        return self._run_dir

    def figures(self) -> Callable[[], Path] | None:
        """Where failure diagrams go: the report folder (`run_dir`, made when the first is
        drawn); None with ``--no-report``: none are drawn."""
        return self.run_dir if self.options.write_report else None

    def explain(self, measured: Any) -> list[str]:
        """Lines for a failing ``assert measured >= x`` of a Python test, with the diagrams it
        drew."""
        from headprobe.report.terminal import measured_line

        result = measured.decided
        folder = self.figures()
        if folder is not None and measured.spec.measure.kind == "effect":
            from headprobe.engine.effect_claims import with_effect_figures

            result = with_effect_figures(measured.model, measured.spec, measured.sentences,
                                         result, folder=folder(),
                                         display_file=self.recorder.shown_file(result.file))
        elif folder is not None:
            from headprobe.engine.evaluate import with_figures

            result = with_figures(measured.model, measured.spec, measured.sentences, result,
                                  display_file=self.recorder.shown_file(result.file),
                                  folder=folder(), cache=self.forward_cache)
        self.recorder.add_figures(result)
        lines = [f"claim {measured.spec.claim_text!r} failed on {result.head}",
                 measured_line(result)]
        lines += [f"figure: {os.path.relpath(self.run_dir() / f)}" for f in result.figures]
        return lines

    # ---- hooks ---------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        record = self.recorder
        record.current = item.nodeid
        # A @given test runs its body once per example: only its last example (for a failure,
        # the shrunk one, which hypothesis replays last) goes into the report.
        record.in_property = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test",
                                          False))
        try:
            return (yield)
        finally:
            record.current = None
            record.in_property = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        status = self.config.hook.pytest_report_teststatus(report=report, config=self.config)
        self.recorder.outcome(report.nodeid, status[0])

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.recorder.counts["deselected"] += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.recorder.selected = len(session.items)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C (SIGINT) or ``pytest.exit(...)``: the run stops here."""
        self.recorder.stopped = True
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.recorder.reason = "KeyboardInterrupt (Ctrl-C or SIGINT)"
        else:
            self.recorder.reason = str(getattr(excinfo.value, "msg", "") or excinfo.value) or None

    def pytest_internalerror(self, excrepr: Any,
                             excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.recorder.reason = f"internal error: {excinfo.exconly().strip()}"

    def pytest_assertrepr_compare(self, config: pytest.Config, op: str, left: Any,
                                  right: Any) -> list[str] | None:
        if type(left).__name__ != "Measured" or left.decided is None:
            return None  # not a claim (checked by name: importing claim_api costs numpy)
        return self.explain(left)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from headprobe.pytest_plugin.ending import finish

        finish(self, session, exitstatus)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from headprobe.pytest_plugin.ending import summarize

        summarize(self.recorder, terminalreporter)


#: Where `start` keeps the run's session.
SESSION = pytest.StashKey[HeadprobeSession]()


def start(config: pytest.Config) -> HeadprobeSession:
    """Make the run's session, keep it in ``config.stash`` and register it as a plugin (from
    ``pytest_configure``)."""
    session = HeadprobeSession(config)
    config.stash[SESSION] = session
    config.pluginmanager.register(session, "headprobe-session")
    # Ctrl-C inside JAX's gc callback is not lost; a run inside another keeps the outer's handler.
    session.owns_interrupts = interrupts.install()
    return session


def end(config: pytest.Config) -> None:
    """Forget the run's session and unregister it (from ``pytest_unconfigure``)."""
    session = config.stash.get(SESSION, None)
    if session is not None:
        del config.stash[SESSION]
        config.pluginmanager.unregister(session)
        if session.owns_interrupts:
            interrupts.uninstall()


def headprobe_session(config: pytest.Config) -> HeadprobeSession:
    """The run's session (made here for a config whose plugin was not configured)."""
    session = config.stash.get(SESSION, None)
    return session if session is not None else start(config)
