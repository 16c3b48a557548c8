"""How a run ended, as its report says it.

report.json carries the run's ``exit_status`` (pytest's exit code), a ``status`` word for it and
``interrupted``: true when the run stopped before it finished (Ctrl-C or SIGINT, ``pytest.exit``,
an internal error, a usage error found mid-run), with the ``reason`` when one is known. Only a run
that finished (exit status 0 or 1) moves ``REPORT_DIR/latest``; the folder of any other run says,
at the top of its index.html, that its results are partial.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

#: report.json's ``status`` for each exit status (pytest's exit codes, `headprobe.errors.ExitCode`).
STATUS = {0: "passed", 1: "failed", 2: "interrupted", 3: "internal error", 4: "usage error",
          5: "no tests collected"}
#: Exit statuses of runs that finished: only their reports move ``latest``.
FINISHED = (0, 1)
#: The id of the banner in index.html (a page that has one already gets no second).
BANNER_ID = "run-status"


def run_status(exit_status: int, reason: str | None = None, *,
               stopped: bool = False) -> dict[str, Any]:
    """The fields of report.json that say how the run ended. ``stopped``: the run was stopped
    (Ctrl-C, ``pytest.exit``) whatever exit status it then chose, even 0 or 1."""
    code = int(exit_status)
    interrupted = stopped or code not in FINISHED
    status = STATUS.get(code, f"exit status {code}") if code not in FINISHED or not stopped \
        else "interrupted"
    fields: dict[str, Any] = {"status": status, "exit_status": code,
                              "interrupted": interrupted}
    if fields["interrupted"] and reason:
        fields["reason"] = reason
    return fields


def finished(report: Mapping[str, Any]) -> bool:
    """Whether the report's run finished (a report without an exit status is taken as one)."""
    return int(report.get("exit_status", 0)) in FINISHED and not report.get("interrupted")


def not_finished_text(report: Mapping[str, Any]) -> str:
    """One sentence for a run that did not finish: what happened and what the report holds."""
    summary = report.get("summary") or {}
    status = report.get("status", "interrupted")
    reason = report.get("reason")
    text = (f"This run did not finish: {status} (exit status {report.get('exit_status', '?')})"
            + (f": {reason}" if reason else "") + ". ")
    ran, not_run = summary.get("items", "?"), summary.get("not_run")
    text += (f"Its results are partial: {ran} tests ran, {not_run} selected tests did not. "
             if not_run else f"{ran} tests ran. ")
    return text + "The report folder's 'latest' still shows the last run that finished."


def with_banner(page: str, report: Mapping[str, Any]) -> str:
    """``page`` (index.html) with a banner at the top of its body when the run did not finish."""
    if finished(report) or f'id="{BANNER_ID}"' in page:
        return page
    banner = (f'<div id="{BANNER_ID}" role="alert" style="background:#c62828;color:#fff;'
              f'padding:0.8em 1em;margin:0 0 1em;font-size:1.3em;font-weight:bold">'
              f'{html.escape(str(report.get("status", "interrupted")).upper())}: '
              f'{html.escape(not_finished_text(report))}</div>')
    body = re.search(r"<body[^>]*>", page)
    if body is None:
        return banner + page
    return page[:body.end()] + "\n" + banner + page[body.end():]
