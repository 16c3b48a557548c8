"""A hypothesis file may name sentence files inside the project only (docs/hypothesis-files.md).

A hypothesis file in a pull request is untrusted input in CI, and a sentence set's lines end up
in report.json and index.html (``per: sentence``). So a sentence file must resolve, symbolic
links followed, inside the project (pytest's rootdir) or a folder the user allowed on the command
line (``--allow-files-under DIR``) or in ``[tool.headprobe]`` (``files_under``). Anything else is
a usage error (exit 4) at collection that names the YAML line, the resolved path and how to
allow it, and nothing of the file is read. ``--sentences FILE`` of profile, diff and discover is
the user's own choice and stays allowed anywhere (tests/cli/test_discover.py).
"""

from __future__ import annotations

import re

import pytest
from check_runner import check_inprocess, check_subprocess, write_project

SECRET = "The zebra sat on the red carpet."  # in the planted model's vocabulary


def _claims(model, path: str) -> str:
    return f"""
model: {model}
sentences:
  secret: {path}
hypotheses:
  - id: per-sentence
    claim: "L1H1: token -> cls"
    over: secret
    expect: ">= 0.0"
    per: sentence
"""


def _refused(run, written: str, resolved: str) -> None:
    """Exit 4, an ERROR at the YAML line naming the path and how to allow it; no report."""
    assert run.rc == 4, run
    assert "Traceback" not in run.output, run
    message = re.search(r"^ERROR: \S*claims\.yaml:3: sentences\.secret: (.*)$", run.stderr,
                        re.M)
    assert message, run
    assert f"sentence file {written!r} is outside the project" in message.group(1), run
    assert f"it resolves to {resolved!r}" in message.group(1), run
    assert "--allow-files-under" in message.group(1) and "files_under" in message.group(1)
    assert not list((run.cwd / "reports").rglob("report.json")), run


def test_etc_passwd_as_a_sentence_file_is_refused_and_never_read(tmp_path, planted_model,
                                                                  check_cache):
    project = write_project(tmp_path / "project",
                            {"claims.yaml": _claims(planted_model, "/etc/passwd")})
    run = check_subprocess(project, "claims.yaml", "-p", "no:cacheprovider",
                           cache_dir=check_cache)
    _refused(run, "/etc/passwd", "/etc/passwd")
    assert "root:" not in run.output, run


def test_a_link_inside_the_project_to_a_file_outside_is_refused(tmp_path, planted_model,
                                                                check_cache):
    outside = tmp_path / "elsewhere" / "private.txt"
    outside.parent.mkdir()
    outside.write_text(SECRET + "\n", encoding="utf-8")
    project = write_project(tmp_path / "project",
                            {"claims.yaml": _claims(planted_model, "data/sentences.txt")})
    (project / "data").mkdir()
    (project / "data" / "sentences.txt").symlink_to(outside)
    run = check_subprocess(project, "claims.yaml", "-p", "no:cacheprovider",
                           cache_dir=check_cache)
    _refused(run, "data/sentences.txt", str(outside.resolve()))
    assert "zebra" not in run.output, run


@pytest.mark.parametrize("how", ["command line", "pyproject.toml"])
def test_a_folder_the_user_allows_may_hold_sentence_files(tmp_path, planted_model, check_cache,
                                                          monkeypatch, capfd, how):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "private.txt").write_text(SECRET + "\n", encoding="utf-8")
    project = write_project(tmp_path / "project",
                            {"claims.yaml": _claims(planted_model, str(shared / "private.txt"))},
                            settings='files_under = ["../shared"]\n'
                            if how == "pyproject.toml" else "")
    allow = ("--allow-files-under", str(shared)) if how == "command line" else ()
    run = check_inprocess(project, "claims.yaml", *allow, "-p", "no:cacheprovider",
                          cache_dir=check_cache, monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 0, run
    assert [r["sentences"] for r in run.report()["results"]] == [1], run.report()


def test_sentence_files_anywhere_inside_the_project_stay_allowed(tmp_path, planted_model,
                                                                 check_cache, monkeypatch,
                                                                 capfd):
    project = write_project(tmp_path / "project", {
        "hypotheses/claims.yaml": _claims(planted_model, "../data/sentences.txt"),
        "data/sentences.txt": SECRET + "\n"})
    (project / "hypotheses" / "linked.txt").symlink_to(project / "data" / "sentences.txt")
    run = check_inprocess(project, "hypotheses/claims.yaml", "-p", "no:cacheprovider",
                          cache_dir=check_cache, monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 0, run
    linked = project / "hypotheses" / "claims.yaml"
    linked.write_text(_claims(planted_model, "linked.txt"), encoding="utf-8")
    run = check_inprocess(project, "hypotheses/claims.yaml", "-p", "no:cacheprovider",
                          cache_dir=check_cache, monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 0, run


def test_files_under_in_pyproject_must_be_a_list_of_folders(tmp_path):
    from headprobe.errors import UsageError
    from headprobe.settings import read_settings

    (tmp_path / "pyproject.toml").write_text('[tool.headprobe]\nfiles_under = "/etc"\n',
                                             encoding="utf-8")
    with pytest.raises(UsageError, match=r"files_under: expected a list of folders"):
        read_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.headprobe]\nfiles_under = ["../s"]\n',
                                             encoding="utf-8")
    assert read_settings(tmp_path).files_under == ("../s",)
