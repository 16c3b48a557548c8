"""`Recorder`: the plugin object that keeps what a run's claims produced, as pytest's junitxml
keeps its ``LogXML``: the results (YAML claims and Python-API claims), their figures, the report
(report.json and index.html, written at the end of the session) and the terminal summary.

It is made and registered with pytest the first time a run needs it (`recorder`): a pytest run
without claims never registers it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from headprobe._version import __version__
from headprobe.claims.spec import ClaimSpec
from headprobe.evaluation.results import ClaimResult
from headprobe.evaluation.verdict import FEW_SOURCES
from headprobe.options import CheckOptions

_KEY = pytest.StashKey["Recorder"]()


def recorder(config: pytest.Config) -> Recorder:
    """The run's `Recorder`, made and registered as a plugin on first use."""
    if _KEY not in config.stash:
        from headprobe.checkrun import options  # the run's options: read once, when needed

        made = Recorder(config, options(config))
        config.stash[_KEY] = made
        config.pluginmanager.register(made, "headprobe-recorder")
    return config.stash[_KEY]


class Recorder:
    """Results by test, and the report written from them at the end of the session."""

    def __init__(self, config: pytest.Config, options: CheckOptions) -> None:
        self.config = config
        self.options = options
        self.started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.recorded: list[tuple[str, ClaimResult]] = []
        self.expected_failures: set[str] = set()  # node ids marked xfail (terminal wording)
        self.errors = 0
        self.current: str | None = None  # the node id of the test being run
        self._in_property = False  # the current test is a @given test
        self._run_dir: Path | None = None
        self._written: Path | None = None

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

    def note_error(self) -> None:
        self.errors += 1

    def record_measured(self, measured: Any, spec: ClaimSpec, result: ClaimResult) -> None:
        """A claim decided in a Python test (`headprobe.pyapi`): it goes into the report."""
        entry = dataclasses.replace(result, file=self._shown_file(result.file))
        nodeid = self.current or spec.id
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
            result = with_figures(measured.probe.model, measured.spec, measured.sentences,
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
        if item.get_closest_marker("xfail") is not None:
            self.expected_failures.add(item.nodeid)
        try:
            return (yield)
        finally:
            self.current = None
            self._in_property = False

    def pytest_assertrepr_compare(self, config: pytest.Config, op: str, left: Any,
                                  right: Any) -> list[str] | None:
        from headprobe.pyapi import Measured

        if not isinstance(left, Measured) or left.decided is None:
            return None
        return self.explain(left)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from headprobe.checkrun import forward_cache_if_any

        cache = forward_cache_if_any(self.config)
        if cache is not None:
            cache.close()  # checkpoints SQLite's write-ahead log into the file
        if not self.options.write_report or not self.recorded:
            return  # nothing evaluated (collection errors, nothing selected): claim nothing
        if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            return
        from headprobe.report.store import finish_run

        self._written = finish_run(self.run_dir(), self.options.report_dir, self._report())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from headprobe.report.terminal import summary_lines

        for line in summary_lines(self.recorded, self._written,
                                  expected_failures=self.expected_failures):
            terminalreporter.write_line(line)

    def _report(self) -> dict[str, Any]:
        results = []
        for nodeid, result in self.recorded:
            entry = result.to_json()
            if nodeid in self.expected_failures and not result.passed:
                entry["outcome"] = "xfailed"  # marked xfail: failing as expected
            results.append(entry)
        passed = sum(1 for r in results if r["passed"])
        return {"headprobe_version": __version__, "started": self.started, "results": results,
                "summary": {"passed": passed, "failed": len(results) - passed,
                            "errors": self.errors}}
