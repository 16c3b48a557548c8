"""A ``[tool.headprobe]`` table that cannot be used is a usage error (exit 4, one ``ERROR:`` line
naming pyproject.toml, the key and what is expected), as docs/cli-check.md says: the project's
configuration is wrong, not a hypothesis file (a collection error, exit 2), and it is reported
before anything is collected, for ``headprobe check`` and for plain pytest alike."""

from __future__ import annotations

import sys

import pytest
from check_runner import check_inprocess, run_command, write_project

CLAIMS = """\
model: {model}
sentences:
  s:
    - The cat sat on the mat.
hypotheses:
  - id: a
    claim: "L1H1: token -> cls"
    over: s
    expect: ">= 0.0"
"""

BAD = {
    "seed text": ('seed = "x"', "seed: expected an integer, got 'x'"),
    "seed true": ("seed = true", "seed: expected an integer, got True"),
    "files_under text": ('files_under = "/etc"', "files_under: expected a list of folders"),
    "unknown key": ("sead = 1", "unknown key(s) sead"),
    "model number": ("model = 3", "model: expected text such as"),
    "report_dir list": ('report_dir = ["r"]', "report_dir: expected text such as"),
    "not TOML": ("seed = = 1", "Invalid value (at line 2"),  # pytest reads the file first
}


def _assert_usage_error(run, project, words: str) -> None:
    assert run.rc == 4, run
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run
    assert errors[0].startswith(f"ERROR: {project / 'pyproject.toml'}: "), run
    assert words in errors[0], (words, run)
    assert "collected" not in run.output, run  # before collection


# pytest 7 raises its own error for a pyproject.toml that is not TOML inside an old-style
# hook wrapper, which pluggy also reports as a warning: not headprobe's, and not an error here.
@pytest.mark.filterwarnings("ignore::pluggy.PluggyTeardownRaisedWarning")
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_setting_is_a_usage_error_before_collection(tmp_path, planted_model, check_cache,
                                                          monkeypatch, capfd, case):
    setting, words = BAD[case]
    project = write_project(tmp_path / "p", {"h.yaml": CLAIMS.format(model=planted_model)},
                            settings=setting + "\n")
    run = check_inprocess(project, "h.yaml", "-p", "no:cacheprovider", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_usage_error(run, project, words)


def test_a_bad_setting_is_a_usage_error_under_plain_pytest_too(tmp_path, check_cache):
    project = write_project(tmp_path / "p", {
        "test_model.py": "def test_uses_the_model(headprobe_model):\n    pass\n"},
        settings='seed = "x"\n')
    run = run_command([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                       "test_model.py"], project, check_cache)
    _assert_usage_error(run, project, "seed: expected an integer, got 'x'")
