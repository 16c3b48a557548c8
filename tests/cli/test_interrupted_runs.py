"""A run that did not finish never looks green: Ctrl-C (SIGINT) while `headprobe check`
evaluates, a usage error found mid-run, an internal error. Each writes its report in its own
folder, saying how the run ended (report.json's ``status``, ``exit_status``, ``interrupted``; a
banner at the top of index.html), and leaves ``reports/latest`` on the last run that finished.

The Ctrl-C test runs the real console command on the planted tiny checkpoint: a hypothesis file
and a Python test pass (the entropy of the planted uniform head: exactly 1), then a test measures
a claim over a large sentence set again and again until SIGINT arrives; the test writes a file
when it starts, so the signal is sent while headprobe is evaluating, never before.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from check_runner import CheckRun, _environment, check_subprocess, headprobe_command, write_project

from headprobe.report import store

PLAIN = ["The cat sat on the mat.", "A dog sat."]

CLAIMS = f"""
sentences:
  plain: [{PLAIN[0]}, {PLAIN[1]}]
hypotheses:
  - id: uniform
    claim: "L1H1: token"
    measure: entropy
    over: plain
    expect: ">= 0.9"
"""

# 4 x 5 x 4 x 2 x 2 = 320 sentences of 14 tokens with [CLS] and [SEP] (the model takes 16).
LONG_TESTS = f'''
import itertools
import pathlib
import time

PLAIN = {PLAIN!r}
SENTENCES = [f"the {{a}} sat on the {{t}} and the {{b}} {{v}} {{s}}."
             for a, t, b, v, s in itertools.product(
                 ["cat", "dog", "horse", "zebra"], ["mat", "rug", "table", "carpet", "road"],
                 ["cat", "dog", "horse", "zebra"], ["moved", "sat"], ["slowly", "quickly"])]


def test_a_python_claim(headprobe_model):
    assert headprobe_model.claim("L1H1: token").over(PLAIN).entropy() >= 0.9


def test_b_long_measurement(headprobe_model):
    assert headprobe_model.claim("L1H1: token").over(PLAIN).entropy() >= 0.9
    pathlib.Path("evaluating").touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until interrupted
        headprobe_model.claim("L1H1: token").over(SENTENCES).entropy()


def test_c_never_reached():
    pass
'''


def _previous_run(folder: Path) -> Path:
    """A finished earlier run in ``folder/reports``, which ``latest`` shows."""
    earlier = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    report = {"headprobe_version": "0", "started": store.utc_timestamp(earlier), "results": [],
              "summary": {"passed": 0, "failed": 0, "errors": 0}}
    return store.write_report(folder / "reports", report, now=earlier)


def _interrupt_while_evaluating(folder: Path, cache_dir: Path) -> CheckRun:
    """``headprobe check`` in ``folder``, sent SIGINT (as Ctrl-C sends it to the terminal's
    process group) once the long test has started."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([*headprobe_command(), "check", "-p", "no:cacheprovider"],
                                   cwd=folder, env=_environment(cache_dir), stdout=stdout,
                                   stderr=stderr, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not (folder / "evaluating").exists():
                assert process.poll() is None, err.read_text() + out.read_text()
                assert time.monotonic() < deadline, "the long test never started"
                time.sleep(0.1)
            time.sleep(1.0)  # well inside the loop of measurements
            os.killpg(process.pid, signal.SIGINT)
            rc = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return CheckRun(rc, out.read_text(), err.read_text(), folder)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, planted_model, check_cache) -> tuple[CheckRun, Path]:
    folder = write_project(tmp_path_factory.mktemp("interrupted"),
                           {"hypotheses/planted.yaml": CLAIMS,
                            "hypotheses/test_long.py": LONG_TESTS},
                           settings=f'model = "{planted_model}"\n')
    previous = _previous_run(folder)
    return _interrupt_while_evaluating(folder, check_cache), previous


def _own_report(run: CheckRun, previous: Path) -> tuple[Path, dict]:
    (folder,) = [d for d in run.report_dirs() if d.resolve() != previous.resolve()]
    return folder, json.loads((folder / "report.json").read_text("utf-8"))


def test_sigint_mid_run_exits_2_and_leaves_latest_on_the_last_finished_run(interrupted):
    run, previous = interrupted
    assert run.rc == 2, run
    assert (run.cwd / "reports" / "latest").resolve() == previous.resolve(), run
    assert "KeyboardInterrupt" in run.output, run
    assert "Traceback" not in run.output, run


def test_the_interrupted_run_writes_a_report_that_says_so(interrupted):
    run, previous = interrupted
    _, report = _own_report(run, previous)
    assert (report["status"], report["exit_status"], report["interrupted"]) == (
        "interrupted", 2, True), report
    assert report["reason"] == "KeyboardInterrupt (Ctrl-C or SIGINT)"
    # The YAML claim and the first Python test finished; the long test did not, the last never
    # started.
    assert {i["nodeid"]: i["outcome"] for i in report["items"]} == {
        "hypotheses/planted.yaml::uniform[L1H1]": "passed",
        "hypotheses/test_long.py::test_a_python_claim": "passed"}, report["items"]
    assert report["summary"]["not_run"] == 2 and report["summary"]["items"] == 2
    unfinished = [r for r in report["results"] if r["item"].endswith("test_b_long_measurement")]
    assert unfinished and {r["outcome"] for r in unfinished} == {"interrupted"}


def test_the_interrupted_runs_page_says_so_at_the_top(interrupted):
    run, previous = interrupted
    folder, _ = _own_report(run, previous)
    page = (folder / "index.html").read_text("utf-8")
    banner = page.index('id="run-status"')
    assert banner < page.index("<h1>"), page[:2000]
    assert "INTERRUPTED: This run did not finish: interrupted (exit status 2)" in page
    assert "2 tests ran, 2 selected tests did not" in page


def test_the_terminal_says_the_run_did_not_finish(interrupted):
    run, _ = interrupted
    assert "headprobe: This run did not finish: interrupted (exit status 2)" in run.output, run


# ---- other ways a run ends early ---------------------------------------------------------------

USAGE_ERROR_MID_RUN = f'''
PLAIN = {PLAIN!r}


def test_a_python_claim(headprobe_model):
    assert headprobe_model.claim("L1H1: token").over(PLAIN).entropy() >= 0.9


def test_b_a_model_nobody_has(headprobe_load):
    headprobe_load("nobody/no-such-model")
'''

INTERNAL_ERROR_MID_RUN = '''
def pytest_runtest_logfinish(nodeid, location):
    if nodeid.endswith("test_b_a_model_nobody_has"):
        raise RuntimeError("a plugin's bug")
'''


def _ended_early(folder: Path, cache_dir: Path) -> tuple[CheckRun, dict, Path]:
    previous = _previous_run(folder)
    run = check_subprocess(folder, "test_claims.py", "-p", "no:cacheprovider",
                           cache_dir=cache_dir)
    _, report = _own_report(run, previous)
    return run, report, previous


def test_a_usage_error_mid_run_leaves_a_report_that_is_not_green(tmp_path, planted_model,
                                                                 check_cache):
    write_project(tmp_path, {"test_claims.py": USAGE_ERROR_MID_RUN},
                  settings=f'model = "{planted_model}"\n')
    run, report, previous = _ended_early(tmp_path, check_cache)
    assert run.rc == 4, run
    assert (report["status"], report["exit_status"], report["interrupted"]) == (
        "usage error", 4, True), report
    assert "model 'nobody/no-such-model' could not be found" in report["reason"]
    assert report["summary"]["passed"] == 1 and report["summary"]["not_run"] == 1
    assert (tmp_path / "reports" / "latest").resolve() == previous.resolve()
    assert "This run did not finish: usage error (exit status 4)" in run.output, run


def test_an_internal_error_mid_run_leaves_a_report_that_is_not_green(tmp_path, planted_model,
                                                                     check_cache):
    write_project(tmp_path, {"test_claims.py": USAGE_ERROR_MID_RUN.replace(
        'headprobe_load("nobody/no-such-model")', "pass"),
        "conftest.py": INTERNAL_ERROR_MID_RUN}, settings=f'model = "{planted_model}"\n')
    run, report, previous = _ended_early(tmp_path, check_cache)
    assert run.rc == 3, run
    assert (report["status"], report["exit_status"], report["interrupted"]) == (
        "internal error", 3, True), report
    assert report["reason"] == "internal error: RuntimeError: a plugin's bug"
    assert (tmp_path / "reports" / "latest").resolve() == previous.resolve()


def test_a_run_stopped_by_pytest_exit_with_status_0_is_not_green(tmp_path, planted_model,
                                                                 check_cache):
    write_project(tmp_path, {"test_claims.py": USAGE_ERROR_MID_RUN.replace(
        'headprobe_load("nobody/no-such-model")', 'pytest.exit("stopped early", returncode=0)')
        .replace("PLAIN =", "import pytest\nPLAIN =")}, settings=f'model = "{planted_model}"\n')
    run, report, previous = _ended_early(tmp_path, check_cache)
    assert run.rc == 0, run
    assert (report["status"], report["exit_status"], report["interrupted"]) == (
        "interrupted", 0, True), report
    assert report["reason"] == "stopped early"
    assert (tmp_path / "reports" / "latest").resolve() == previous.resolve()
    assert "This run did not finish" in run.output, run
