"""How a report says its run ended: report.json's status fields, the banner at the top of
index.html, and ``latest`` moved only for a run that finished."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from headprobe.report import status, store

NOW = dt.datetime(2026, 11, 23, 10, 0, 0, tzinfo=dt.timezone.utc)


def report(exit_status: int | None, reason: str | None = None) -> dict:
    data = {"headprobe_version": "0.1.0", "started": store.utc_timestamp(NOW), "results": [],
            "items": [], "summary": {"passed": 3, "failed": 0, "errors": 0, "not_run": 4,
                                     "items": 3, "results": 3}}
    if exit_status is not None:
        data.update(status.run_status(exit_status, reason))
    return data


@pytest.mark.parametrize(("code", "word", "interrupted"), [
    (0, "passed", False), (1, "failed", False), (2, "interrupted", True),
    (3, "internal error", True), (4, "usage error", True), (7, "exit status 7", True)])
def test_every_exit_status_has_a_status_word_and_only_0_and_1_finished(code, word, interrupted):
    fields = status.run_status(code, reason="why")
    assert (fields["status"], fields["exit_status"], fields["interrupted"]) == (
        word, code, interrupted)
    assert ("reason" in fields) is interrupted  # a finished run needs no reason


def test_an_interrupted_run_leaves_latest_on_the_last_finished_run(tmp_path):
    finished = store.write_report(tmp_path, report(0), now=NOW)
    stopped = store.write_report(tmp_path, report(2, "KeyboardInterrupt"), now=NOW)
    assert (tmp_path / "latest").resolve() == finished.resolve()
    written = json.loads((stopped / "report.json").read_text("utf-8"))
    assert (written["status"], written["interrupted"], written["reason"]) == (
        "interrupted", True, "KeyboardInterrupt")


def test_a_report_without_an_exit_status_is_taken_as_finished(tmp_path):
    run_dir = store.write_report(tmp_path, report(None), now=NOW)
    assert (tmp_path / "latest").resolve() == run_dir.resolve()


def test_an_unfinished_runs_page_leads_with_a_banner_that_says_so(tmp_path):
    run_dir = store.write_report(tmp_path, report(4, "model <x> could not be found"), now=NOW)
    page = (run_dir / "index.html").read_text("utf-8")
    body = page.index("<body")
    banner = page.index('<div id="run-status"')
    assert body < banner < page.index("<h1>")
    assert ("USAGE ERROR: This run did not finish: usage error (exit status 4): "
            "model &lt;x&gt; could not be found. Its results are partial: 3 tests ran, "
            "4 selected tests did not.") in page
    assert "model <x>" not in page


def test_a_finished_runs_page_has_no_banner(tmp_path):
    for code in (0, 1):
        run_dir = store.write_report(tmp_path, report(code), now=NOW)
        assert 'id="run-status"' not in (run_dir / "index.html").read_text("utf-8")


def test_a_page_that_shows_the_status_itself_gets_no_second_banner():
    page = '<html><body><p id="run-status">interrupted</p></body></html>'
    assert status.with_banner(page, report(2)) == page
