"""The end of a pytest run, for `HeadprobeSession`'s hooks: `finish` closes the forward cache,
writes the snapshot files of the selected ``expect: unchanged`` claims and writes report.json and
index.html; `summarize` adds headprobe's lines to pytest's terminal summary.

Only a run that finished moves the report folder's ``latest``; any other (Ctrl-C,
``pytest.exit``, an internal error) writes its report in its own folder, saying so
(`headprobe.report.status`). A run that recorded no claim writes no report; one that stopped or
ended as a usage error writes no snapshot file.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from headprobe.errors import UsageError

if TYPE_CHECKING:
    from headprobe.pytest_plugin.recorder import Recorder
    from headprobe.pytest_plugin.session import HeadprobeSession

#: Exit statuses after which no snapshot file is written.
_NO_SNAPSHOTS = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR,
                 pytest.ExitCode.INTERNAL_ERROR)


def finish(run: HeadprobeSession, session: pytest.Session, exitstatus: int) -> None:
    """What ``pytest_sessionfinish`` does for headprobe (the report's exit status is
    ``session.exitstatus`` as the command ends; a snapshot file or a report that cannot be
    written makes it a usage error)."""
    record = run.recorder
    cache = run.made("forward_cache")  # None: headprobe made nothing
    if cache is not None:
        cache.close()  # checkpoints SQLite's write-ahead log into the file
    store = run.made("snapshots")
    if store is not None and not record.stopped and exitstatus not in _NO_SNAPSHOTS:
        record.snapshots = store.flush()
        if store.errors:  # a snapshot file that could not be written: a usage error
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            record.snapshot_errors = store.errors
    record.exit_status = int(getattr(session, "exitstatus", exitstatus))  # as the command ends
    if not record.recorded:
        return  # nothing evaluated (collection errors, nothing selected): claim nothing
    if not run.options.write_report:
        return
    from headprobe.report.store import REPORT_JSON, finish_run

    # Only a run that finished moves `latest`; any other writes its report in its own folder.
    try:
        record.written = finish_run(run.run_dir(), run.options.report_dir, record.report())
    except UsageError as error:  # e.g. `latest` is not a link headprobe may move
        # Not raised from this hook: older pluggy wraps an exception raised here in a
        # warning. The report is written; the run ends as a usage error saying why.
        record.written = run.run_dir() / REPORT_JSON
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        sys.stderr.write(f"ERROR: {error}\n")
        sys.stderr.flush()


def summarize(record: Recorder, terminalreporter: Any) -> None:
    """What ``pytest_terminal_summary`` writes for headprobe: the snapshot files written, one
    line per failing or weak claim, where the report went, and whether the run finished."""
    for path, counts in record.snapshots:
        shown = os.path.relpath(path) if path.is_absolute() else path
        terminalreporter.write_line(
            f"headprobe snapshots: {counts.written} written, {counts.changed} changed, "
            f"{counts.unchanged} left alone: {shown}")
    for error in record.snapshot_errors:
        terminalreporter.write_line(f"ERROR: {error}", red=True, bold=True)
    if not record.recorded:
        return
    from headprobe.report.terminal import summary_lines

    for line in summary_lines(record.recorded, record.written,
                              expected_failures=record.expected_failures):
        terminalreporter.write_line(line)
    from headprobe.report.status import finished, not_finished_text

    if not finished(record.report()):
        terminalreporter.write_line(f"headprobe: {not_finished_text(record.report())}",
                                    red=True, bold=True)
