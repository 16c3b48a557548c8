"""`Recorder`: the plugin object that keeps what a run produced, as pytest's junitxml keeps its
``LogXML``: the claims' results (YAML claims and Python-API claims) with their figures, every
test's outcome as pytest counts it, how the run ended (its exit status, and what interrupted it),
the report (report.json and index.html, written at the end of the session) and the terminal
summary. A run that did not finish (Ctrl-C, ``pytest.exit``, an internal error) writes its report
in its own folder, saying so, and leaves ``latest`` where it was (`headprobe.report.status`).

It is registered in ``pytest_configure`` (`register`) for every pytest run, so this module
imports nothing heavy; a run that records no claim writes no report.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
from collections import Counter
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headprobe._version import __version__
from headprobe.errors import UsageError

if TYPE_CHECKING:  # numpy and the claim modules: imported when a claim is recorded
    from headprobe.claims.spec import ClaimSpec
    from headprobe.evaluation.results import ClaimResult
    from headprobe.options import CheckOptions

_KEY = pytest.StashKey["Recorder"]()
#: pytest's outcome categories, most telling first: an item's outcome is the first it had.
OUTCOMES = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


def register(config: pytest.Config) -> None:
    """Make the run's `Recorder` and register it as a plugin (from ``pytest_configure``)."""
    made = Recorder(config)
    config.stash[_KEY] = made
    config.pluginmanager.register(made, "headprobe-recorder")


def recorder(config: pytest.Config) -> Recorder:
    """The run's `Recorder`."""
    if _KEY not in config.stash:  # a config whose plugin was not configured (rare in tests)
        register(config)
    return config.stash[_KEY]


class Recorder:
    """Results by test, outcomes by test, and the report written from them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.recorded: list[tuple[str, ClaimResult]] = []
        self.outcomes: dict[str, str] = {}  # node id -> its outcome (see OUTCOMES)
        self.counts: Counter[str] = Counter()  # pytest's categories, as its last line counts
        self.current: str | None = None  # the node id of the test being run
        self._in_property = False  # the current test is a @given test
        self._options: CheckOptions | None = None
        self._run_dir: Path | None = None
        self._written: Path | None = None
        self._snapshots: list[tuple[Path, Any]] = []  # snapshot files written, with counts
        self._snapshot_errors: list[str] = []  # snapshot files that could not be written
        self.selected = 0  # items selected to run (after deselection)
        self.reason: str | None = None  # what stopped the run before it finished, if known
        self.stopped = False  # Ctrl-C or pytest.exit(...), whatever exit status it chose
        self.exit_status = 0

    @property
    def options(self) -> CheckOptions:
        if self._options is None:
            from headprobe.checkrun import options  # settings are read once a claim needs them

            self._options = options(self.config)
        return self._options

    @property
    def expected_failures(self) -> set[str]:
        """Node ids whose outcome is xfailed (failing as expected)."""
        return {nodeid for nodeid, outcome in self.outcomes.items() if outcome == "xfailed"}

    # ---- what the run produced ---------------------------------------------------------------
    def run_dir(self) -> Path:
        """This run's report folder (made on first use)."""
        if self._run_dir is None:
            from headprobe.report.store import new_run_dir

            self._run_dir = new_run_dir(self.options.report_dir)
        return self._run_dir

    def record(self, nodeid: str, result: ClaimResult) -> None:
        """A YAML claim's result."""
        self.recorded.append((nodeid, result))

    def record_measured(self, measured: Any, spec: ClaimSpec, result: ClaimResult) -> None:
        """A claim decided in a Python test (`headprobe.engine.claim_api`): it goes into the
        report."""
        from headprobe.evaluation.verdict import FEW_SOURCES
        from headprobe.report.terminal import reproduce_command

        nodeid = self.current or spec.id
        entry = dataclasses.replace(result, file=self._shown_file(result.file),
                                    reproduce=None if result.passed
                                    else reproduce_command(nodeid))
        if self._in_property:
            # Each example of a @given test is one sentence by design: "few sources" is no news.
            few = f"(fewer than {FEW_SOURCES})"
            entry = dataclasses.replace(entry, warnings=tuple(
                w for w in entry.warnings if few not in w))
            # A later example of a @given test replaces an earlier one.
            same = (entry.claim, entry.head, entry.expect)
            for i, (recorded_id, recorded) in enumerate(self.recorded):
                if recorded_id == nodeid and (recorded.claim, recorded.head,
                                              recorded.expect) == same:
                    self.recorded[i] = (nodeid, entry)
                    return
        self.recorded.append((nodeid, entry))

    def explain(self, measured: Any) -> list[str]:
        """Lines for a failing ``assert measured >= x``, with the diagrams it drew."""
        from headprobe.checkrun import forward_cache
        from headprobe.engine.evaluate import with_figures
        from headprobe.report.terminal import measured_line

        result = measured.decided
        if self.options.write_report:
            result = with_figures(measured.model, measured.spec, measured.sentences,
                                  result, display_file=self._shown_file(result.file),
                                  folder=self.run_dir(), cache=forward_cache(self.config))
        for i, (nodeid, recorded) in enumerate(self.recorded):
            if recorded.id == result.id and recorded.head == result.head and \
                    recorded.expect == result.expect and not recorded.figures:
                self.recorded[i] = (nodeid, dataclasses.replace(recorded,
                                                                figures=result.figures))
        lines = [f"claim {measured.spec.claim_text!r} failed on {result.head}",
                 measured_line(result)]
        lines += [f"figure: {os.path.relpath(self.run_dir() / f)}" for f in result.figures]
        return lines

    def _shown_file(self, file: str) -> str:
        return os.path.relpath(file, self.config.rootpath) if os.path.isabs(file) else file

    # ---- hooks ---------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.current = item.nodeid
        # A @given test runs its body once per example: only its last example (for a failure,
        # the shrunk one, which hypothesis replays last) goes into the report.
        self._in_property = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test",
                                         False))
        try:
            return (yield)
        finally:
            self.current = None
            self._in_property = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        category = self.config.hook.pytest_report_teststatus(report=report,
                                                              config=self.config)[0]
        if category not in OUTCOMES:
            return  # a passing setup or teardown
        self.counts[category] += 1
        known = self.outcomes.get(report.nodeid)
        if known is None or OUTCOMES.index(category) < OUTCOMES.index(known):
            self.outcomes[report.nodeid] = category

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.counts["deselected"] += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = len(session.items)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C (SIGINT) or ``pytest.exit(...)``: the run stops here."""
        self.stopped = True
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.reason = "KeyboardInterrupt (Ctrl-C or SIGINT)"
        else:
            self.reason = str(getattr(excinfo.value, "msg", "") or excinfo.value) or None

    def pytest_internalerror(self, excrepr: Any,
                             excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.reason = f"internal error: {excinfo.exconly().strip()}"

    def pytest_assertrepr_compare(self, config: pytest.Config, op: str, left: Any,
                                  right: Any) -> list[str] | None:
        if type(left).__name__ != "Measured" or left.decided is None:
            return None  # not a claim (checked by name: importing claim_api costs numpy)
        return self.explain(left)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        checkrun = sys.modules.get("headprobe.checkrun")  # None: headprobe made nothing
        cache = checkrun.forward_cache_if_any(self.config) if checkrun is not None else None
        if cache is not None:
            cache.close()  # checkpoints SQLite's write-ahead log into the file
        store = checkrun.snapshots_if_any(self.config) if checkrun is not None else None
        if store is not None and not self.stopped and exitstatus not in (
                                                    pytest.ExitCode.INTERRUPTED,
                                                    pytest.ExitCode.USAGE_ERROR,
                                                    pytest.ExitCode.INTERNAL_ERROR):
            self._snapshots = store.flush()
            if store.errors:  # a snapshot file that could not be written: a usage error
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                self._snapshot_errors = store.errors
        self.exit_status = int(getattr(session, "exitstatus", exitstatus))  # as the command ends
        if not self.recorded:
            return  # nothing evaluated (collection errors, nothing selected): claim nothing
        if not self.options.write_report:
            return
        from headprobe.report.store import REPORT_JSON, finish_run

        # Only a run that finished moves `latest`; any other writes its report in its own folder.
        try:
            self._written = finish_run(self.run_dir(), self.options.report_dir, self.report())
        except UsageError as error:  # e.g. `latest` is not a link headprobe may move
            # Not raised from this hook: older pluggy wraps an exception raised here in a
            # warning. The report is written; the run ends as a usage error saying why.
            self._written = self.run_dir() / REPORT_JSON
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            sys.stderr.write(f"ERROR: {error}\n")
            sys.stderr.flush()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for path, counts in self._snapshots:
            shown = os.path.relpath(path) if path.is_absolute() else path
            terminalreporter.write_line(
                f"headprobe snapshots: {counts.written} written, {counts.changed} changed, "
                f"{counts.unchanged} left alone: {shown}")
        for error in self._snapshot_errors:
            terminalreporter.write_line(f"ERROR: {error}", red=True, bold=True)
        if not self.recorded:
            return
        from headprobe.report.terminal import summary_lines

        for line in summary_lines(self.recorded, self._written,
                                  expected_failures=self.expected_failures):
            terminalreporter.write_line(line)
        from headprobe.report.status import finished, not_finished_text

        if not finished(self.report()):
            terminalreporter.write_line(f"headprobe: {not_finished_text(self.report())}",
                                        red=True, bold=True)

    def report(self) -> dict[str, Any]:
        """The report.json of what was recorded (SPEC §5): how the run ended, results with their
        item and its outcome, the items, and the outcomes counted as pytest counts them."""
        from headprobe.report.status import run_status

        ended = run_status(self.exit_status, self.reason, stopped=self.stopped)
        results = []
        per_item: Counter[str] = Counter()
        for nodeid, result in self.recorded:
            entry = result.to_json()
            entry["item"] = nodeid
            unfinished = "interrupted" if ended["interrupted"] else None  # its test never ended
            entry["outcome"] = self.outcomes.get(nodeid, unfinished or (
                "passed" if result.passed else "failed"))
            per_item[nodeid] += 1
            results.append(entry)
        items = [{"nodeid": nodeid, "outcome": outcome, "results": per_item[nodeid]}
                 for nodeid, outcome in self.outcomes.items()]
        summary = {key: self.counts[key] for key in ("passed", "failed", "skipped", "xfailed",
                                                     "xpassed")}
        summary["errors"] = self.counts["error"]
        if self.counts["deselected"]:
            summary["deselected"] = self.counts["deselected"]
        if self.selected > len(items):
            summary["not_run"] = self.selected - len(items)  # -x, or a run that did not finish
        summary["items"] = len(items)
        summary["results"] = len(results)
        return {"headprobe_version": __version__, "started": self.started, **ended,
                "results": results, "items": items, "summary": summary}
