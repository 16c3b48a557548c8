"""`Recorder`: what a pytest run produced, kept by the run's `HeadprobeSession`: the claims'
results (YAML claims and Python-API claims) with their figures, every test's outcome as pytest
counts it, how the run ended (its exit status, and what interrupted it), and the report.json
made of them (SPEC §5; `report`). The session's hooks feed it; `headprobe.pytest_plugin.ending`
writes the report and the terminal summary from it.

A `Recorder` is made for every pytest run, so this module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headprobe._version import __version__

if TYPE_CHECKING:  # numpy and the claim modules: imported when a claim is recorded
    from headprobe.claims.spec import ClaimSpec
    from headprobe.evaluation.results import ClaimResult

#: pytest's outcome categories, most telling first: an item's outcome is the first it had.
OUTCOMES = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


class Recorder:
    """Results by test, outcomes by test, and the report.json made of them."""

    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath  # pytest's rootdir: report files are shown relative to it
        self.started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.recorded: list[tuple[str, ClaimResult]] = []
        self.outcomes: dict[str, str] = {}  # node id -> its outcome (see OUTCOMES)
        self.counts: Counter[str] = Counter()  # pytest's categories, as its last line counts
        self.current: str | None = None  # the node id of the test being run
        self.in_property = False  # the current test is a @given test
        self.selected = 0  # items selected to run (after deselection)
        self.reason: str | None = None  # what stopped the run before it finished, if known
        self.stopped = False  # Ctrl-C or pytest.exit(...), whatever exit status it chose
        self.exit_status = 0
        self.written: Path | None = None  # the report.json written, once written
        self.snapshots: list[tuple[Path, Any]] = []  # snapshot files written, with counts
        self.snapshot_errors: list[str] = []  # snapshot files that could not be written

    @property
    def expected_failures(self) -> set[str]:
        """Node ids whose outcome is xfailed (failing as expected)."""
        return {nodeid for nodeid, outcome in self.outcomes.items() if outcome == "xfailed"}

    # ---- results -------------------------------------------------------------------------------
    def record(self, nodeid: str, result: ClaimResult) -> None:
        """A YAML claim's result."""
        self.recorded.append((nodeid, result))

    def record_measured(self, measured: Any, spec: ClaimSpec, result: ClaimResult) -> None:
        """A claim decided in a Python test (`headprobe.engine.claim_api`): it goes into the
        report."""
        from headprobe.evaluation.verdict import FEW_SOURCES
        from headprobe.report.terminal import reproduce_command

        nodeid = self.current or spec.id
        entry = dataclasses.replace(result, file=self.shown_file(result.file),
                                    reproduce=None if result.passed
                                    else reproduce_command(nodeid))
        if self.in_property:
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

    def add_figures(self, result: ClaimResult) -> None:
        """The figures (and their views) drawn for a failing Python-API claim, onto its
        recorded result."""
        for i, (nodeid, recorded) in enumerate(self.recorded):
            if recorded.id == result.id and recorded.head == result.head and \
                    recorded.expect == result.expect and not recorded.figures:
                self.recorded[i] = (nodeid, dataclasses.replace(
                    recorded, figures=result.figures, views=result.views))

    def shown_file(self, file: str) -> str:
        """``file`` as the report shows it: relative to pytest's rootdir when absolute."""
        return os.path.relpath(file, self.rootpath) if os.path.isabs(file) else file

    # ---- outcomes ------------------------------------------------------------------------------
    def outcome(self, nodeid: str, category: str) -> None:
        """One report of a test in pytest's ``category`` (its teststatus); passing setups and
        teardowns (no category of `OUTCOMES`) are not counted."""
        if category not in OUTCOMES:
            return
        self.counts[category] += 1
        known = self.outcomes.get(nodeid)
        if known is None or OUTCOMES.index(category) < OUTCOMES.index(known):
            self.outcomes[nodeid] = category

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
