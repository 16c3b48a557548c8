"""Snapshot files of ``expect: unchanged`` claims under stress, through the real ``headprobe
check`` command (SPEC §10): runs updating one file at once, the order of heads in the file, claims
with nothing recorded, names no file system or terminal likes, folders that cannot be written,
temporaries left by killed writers, and hostile snapshot files.

The model is the planted tiny checkpoint made wider (12 heads, so L1H10 exists); one session
cache keeps every run after the first free of compilation.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import time

import pytest
from check_runner import CheckRun, _environment, check_inprocess, headprobe_command, write_project

HEADS = 12
CLAIMS = """
sentences:
  s:
    - The cat sat on the mat.
    - A dog sat on the red rug.
hypotheses:
  - id: next-token
    claim: "L1H2: token -> next"
    over: s
    expect: unchanged
  - id: whole-model
    claim: "L1H*: token -> cls"
    measure: mass
    over: s
    expect: unchanged
"""
SNAPSHOT = "hyp/__snapshots__/heads.yaml.json"

# A project conftest.py: with BARRIER_ME/BARRIER_OTHER set, a run waits at the end of its
# session (before headprobe writes snapshots) until the other run got there too, so that two
# runs update the snapshot file at the same moment, whatever the machine's speed.
BARRIER = '''
import os, time
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    me, other = os.environ.get("BARRIER_ME"), os.environ.get("BARRIER_OTHER")
    if me:
        open(me, "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(other) and time.monotonic() < deadline:
            time.sleep(0.01)


def pytest_terminal_summary(terminalreporter):
    import sys
    terminalreporter.write_line(f"IMPORTED jax={'jax' in sys.modules} "
                                f"matplotlib={'matplotlib' in sys.modules}")
'''


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """The planted checkpoint with 12 heads of dimension 2."""
    from fixtures_models import write_planted_checkpoint

    return write_planted_checkpoint(tmp_path_factory.mktemp("wide-model"),
                                    num_attention_heads=HEADS, hidden_size=2 * HEADS)


def _project(folder, model, claims: str = CLAIMS, name: str = "heads.yaml"):
    return write_project(folder, {f"hyp/{name}": claims, "conftest.py": BARRIER},
                         settings=f'model = "{model}"\n')


def _check(folder, cache, *args: str) -> CheckRun:
    """``headprobe check hyp ARGS`` in ``folder``; output bytes that are not UTF-8 (pytest
    echoes a surrogate-escaped name as the byte it stands for) shown as U+FFFD."""
    done = subprocess.run([*headprobe_command(), "check", "hyp", "-p", "no:cacheprovider",
                           *args], cwd=folder, env=_environment(cache), capture_output=True,
                          text=True, errors="replace", timeout=300)
    return CheckRun(done.returncode, done.stdout, done.stderr, folder)


def _recorded(folder) -> dict:
    return json.loads((folder / SNAPSHOT).read_text("utf-8"))


@pytest.fixture
def recorded_project(tmp_path, wide_model, check_cache):
    """A project whose two claims are recorded (13 values)."""
    folder = _project(tmp_path, wide_model)
    run = _check(folder, check_cache, "--snapshot-update")
    assert run.rc == 0 and "13 written, 0 changed, 0 left alone" in run.output, run
    return folder


# ---- 1. two updates at once ------------------------------------------------------------------

def test_two_runs_updating_different_claims_of_one_file_at_once_both_land(recorded_project,
                                                                         check_cache):
    folder = recorded_project
    truth = _recorded(folder)["claims"]
    stale = _recorded(folder)
    stale["claims"]["next-token"]["L1H2"]["value"] = 0.5
    stale["claims"]["whole-model"]["L1H1"]["value"] = 0.5
    (folder / SNAPSHOT).write_text(json.dumps(stale, indent=2) + "\n", encoding="utf-8")
    runs = []
    for me, other, claim in (("a", "b", "next-token"), ("b", "a", "whole-model")):
        env = dict(_environment(check_cache), BARRIER_ME=str(folder / f"at-end-{me}"),
                   BARRIER_OTHER=str(folder / f"at-end-{other}"))
        runs.append(subprocess.Popen(
            [*headprobe_command(), "check", "hyp", "-p", "no:cacheprovider", "--no-report",
             "--snapshot-update", "-k", claim], cwd=folder, env=env, text=True,
            errors="replace", stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert "0 written, 1 changed, 0 left alone" in outputs[0], outputs[0]
    assert "0 written, 1 changed, 11 left alone" in outputs[1], outputs[1]
    after = _recorded(folder)["claims"]
    assert after["next-token"]["L1H2"] == truth["next-token"]["L1H2"]
    assert after["whole-model"]["L1H1"] == truth["whole-model"]["L1H1"]
    assert after == truth
    assert sorted(p.name for p in (folder / SNAPSHOT).parent.iterdir()) == ["heads.yaml.json"]


# ---- 2. the order of heads ---------------------------------------------------------------------

def test_heads_are_in_numeric_order_in_the_file(recorded_project):
    text = (recorded_project / SNAPSHOT).read_text("utf-8")
    data = json.loads(text)
    assert list(data["claims"]["whole-model"]) == [f"L1H{h}" for h in range(1, HEADS + 1)]
    assert list(data) == ["claims", "format", "version"]
    assert text == json.dumps(data, indent=2) + "\n"  # one value a line, as before


def test_a_file_in_the_older_text_order_reads_and_is_rewritten_in_numeric_order(
        recorded_project, check_cache):
    folder = recorded_project
    data = _recorded(folder)
    older = json.dumps(data, indent=2, sort_keys=True) + "\n"
    heads = older.split('"whole-model"')[1]
    assert heads.index('"L1H10"') < heads.index('"L1H2"')  # L1H1, L1H10, L1H11, L1H12, L1H2
    (folder / SNAPSHOT).write_text(older, encoding="utf-8")
    left = _check(folder, check_cache, "--snapshot-update")
    assert left.rc == 0 and "0 written, 0 changed, 13 left alone" in left.output, left
    assert (folder / SNAPSHOT).read_text("utf-8") == older  # nothing moved: not rewritten
    data["claims"]["whole-model"]["L1H3"]["value"] = 0.5
    (folder / SNAPSHOT).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    changed = _check(folder, check_cache, "--snapshot-update")
    assert "0 written, 1 changed, 12 left alone" in changed.output, changed
    assert list(_recorded(folder)["claims"]["whole-model"]) == \
        [f"L1H{h}" for h in range(1, HEADS + 1)]


# ---- 3. nothing recorded -----------------------------------------------------------------------

def test_a_claim_with_nothing_recorded_fails_in_one_line_unmeasured(tmp_path, wide_model):
    folder = _project(tmp_path, wide_model)
    run = _check(folder, tmp_path / "fresh-cache")  # a cold cache: measuring would import JAX
    assert run.rc == 1, run
    assert "13 failed" in run.output
    after = run.stdout.split(" FAILURES ")[1].splitlines()[1:]
    body = list(itertools.takewhile(lambda line: not line.startswith(("=", "IMPORTED ")), after))
    lines = [line for line in body if line and not line.startswith("____")]
    assert len(lines) == 13 and all(line.startswith("not recorded: ") for line in lines), body
    assert lines[0] == ("not recorded: no value recorded for next-token on L1H2 in "
                        "hyp/__snapshots__/heads.yaml.json; record it with `headprobe check "
                        "hyp/heads.yaml --snapshot-update`, then review the snapshot file and "
                        "commit it")
    if int(pytest.__version__.split(".")[0]) >= 8:  # pytest 7 skips the rootdir conftest here
        assert "IMPORTED jax=False matplotlib=False" in run.output  # no forward pass, no figures
    assert not (tmp_path / "fresh-cache" / "jax").exists()  # no program stored: none compiled
    assert not list(folder.glob("reports/**/*.png"))
    # The report lists them as failures, so a run where nothing is recorded is never green.
    report = json.loads((folder / "reports" / "latest" / "report.json").read_text("utf-8"))
    assert report["summary"]["failed"] == 13 and len(report["results"]) == 13
    first = report["results"][0]
    assert (first["passed"], first["value"], first["recorded"]) == (False, None, None)
    assert first["failure"] == lines[0]
    assert f"FAILED {first['item']}: not recorded: " in run.output


def test_only_the_unrecorded_claims_of_a_file_fail_unmeasured(recorded_project, check_cache):
    folder = recorded_project
    data = _recorded(folder)
    del data["claims"]["whole-model"]["L1H10"]
    (folder / SNAPSHOT).write_text(json.dumps(data, indent=2), encoding="utf-8")
    run = _check(folder, check_cache, "--model", str(_model_of(folder)))
    assert run.rc == 1 and "1 failed, 12 passed" in run.output, run
    assert "not recorded: no value recorded for whole-model on L1H10" in run.output
    assert "--snapshot-update --model " in run.output  # the command records the same model
    assert run.results()["next-token[L1H2]"]["change"] == 0.0


def _model_of(folder) -> str:
    return (folder / "pyproject.toml").read_text("utf-8").split('"')[1]


# ---- 4. names, folders and temporaries -------------------------------------------------------

@pytest.mark.parametrize("where", ["claim id", "file name"])
def test_a_lone_surrogate_in_a_claim_id_or_file_name_is_refused_before_any_snapshot(
        tmp_path, wide_model, check_cache, where):
    """No test id, snapshot key or report can hold a lone surrogate: the claim's id (a YAML
    escape) is a located error of the file, a file name that is not UTF-8 a usage error; no
    traceback, and no snapshot is written."""
    if where == "claim id":  # YAML's escape: the id holds U+DCFF
        folder = _project(tmp_path, wide_model, CLAIMS.replace("id: next-token",
                                                               'id: "next\\udcff"'))
    else:  # a file name of bytes that are not UTF-8, read with surrogateescape
        folder = _project(tmp_path, wide_model, name=os.fsdecode(b"heads\xff.yaml"))
    run = _check(folder, check_cache, "--snapshot-update")
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    if where == "claim id":
        assert run.rc == 2 and "id: U+DCFF (a lone surrogate" in run.output, run
    else:
        assert run.rc == 4 and "its name is not UTF-8 text" in run.output, run
    assert not (folder / "hyp" / "__snapshots__").exists()


@contextlib.contextmanager
def _read_only(folder):
    """``folder`` made unwritable, for root too (chattr +i), or the test is skipped."""
    folder.chmod(0o555)
    immutable = False
    try:
        if os.access(folder, os.W_OK):  # root: permissions do not stop it
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
            if done.returncode != 0:
                pytest.skip("cannot make a folder read-only for this user")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("existing", [True, False], ids=["existing file", "no file"])
def test_a_read_only_snapshot_folder_is_one_error_line_and_the_report_is_kept(
        tmp_path, wide_model, check_cache, existing):
    folder = _project(tmp_path, wide_model)
    snapshots = folder / "hyp" / "__snapshots__"
    snapshots.mkdir()
    if existing:
        assert _check(folder, check_cache, "--snapshot-update").rc == 0
        data = _recorded(folder)
        data["claims"]["next-token"]["L1H2"]["value"] = 0.5
        (folder / SNAPSHOT).write_text(json.dumps(data, indent=2), encoding="utf-8")
    before = sorted(p.name for p in snapshots.iterdir())
    with _read_only(snapshots):
        run = _check(folder, check_cache, "--snapshot-update")
    assert run.rc == 4, run
    assert "Traceback" not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR: cannot write the snapshot file hyp/__snapshots__/heads.yaml.json: "
        + ("Operation not permitted" if "Operation not permitted" in errors[0]
           else "Permission denied")
        + "; make the folder hyp/__snapshots__ writable and run --snapshot-update again (the "
          "snapshot file was left as it was)"], run
    assert sorted(p.name for p in snapshots.iterdir()) == before
    newest = run.report_dirs()[-1] / "report.json"  # the run's report is written all the same
    assert len(json.loads(newest.read_text("utf-8"))["results"]) == 13
    assert len(run.report_dirs()) == (2 if existing else 1)


def test_temporaries_left_by_killed_writers_are_swept_and_live_ones_kept(recorded_project,
                                                                        check_cache):
    folder = recorded_project
    snapshots = folder / "hyp" / "__snapshots__"
    dead = snapshots / ".tmp-999999999-1-0.json"  # killed at the rename two hours ago
    live = snapshots / f".tmp-{os.getpid()}-1-0.json"  # a writer at work now
    users = snapshots / ".tmp-notes.json"  # not a name headprobe gives: the user's own file
    for path in (dead, live, users):
        path.write_text("{", encoding="utf-8")
    hours_ago = time.time() - 2 * 3600
    os.utime(dead, (hours_ago, hours_ago))
    os.utime(users, (hours_ago, hours_ago))
    run = _check(folder, check_cache, "--snapshot-update", "-k", "next-token")
    assert run.rc == 0, run
    assert not dead.exists() and live.exists() and users.exists()


# ---- 5. hostile snapshot files ---------------------------------------------------------------

def _hostile(kind: str) -> bytes:
    entry = {"model_fingerprint": "sha256:x", "n": 7, "sentences_sha256": "y", "value": 0.5}
    if kind == "400-digit value":
        text = json.dumps({"claims": {"next-token": {"L1H2": {**entry, "value": "VALUE"}}},
                           "format": "headprobe-snapshot", "version": 1})
        return text.replace('"VALUE"', "9" * 400).encode()
    if kind == "nesting 200,000 deep":
        return b'{"claims": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    if kind == "not UTF-8":
        return b'{"format": "headprobe-snapshot", "claims": {"\xff": {}}}'
    return b'{"claims": {}, "pad": "' + b"x" * 40_000 + b'"}'  # over a 0.02 MiB cap


@pytest.mark.parametrize("kind, words", [
    ("400-digit value", "next-token L1H2: a value, count or digest of the wrong type or out of "
                        "range"),
    ("nesting 200,000 deep", "the snapshot file is not JSON (nested too deeply)"),
    ("not UTF-8", "byte 0xff at line 1"),
    ("huge file", "larger than 0.02 MiB"),
])
def test_a_hostile_snapshot_file_is_a_located_error_naming_it(tmp_path, wide_model, check_cache,
                                                              monkeypatch, capfd, kind, words):
    folder = _project(tmp_path, wide_model)
    (folder / SNAPSHOT).parent.mkdir()
    (folder / SNAPSHOT).write_bytes(_hostile(kind))
    if kind == "huge file":
        monkeypatch.setenv("HEADPROBE_MAX_FILE_MB", "0.02")
    # The CLI entry in this process: a collection error loads no model.
    run = check_inprocess(folder, "hyp", "-p", "no:cacheprovider", "--snapshot-update",
                          cache_dir=check_cache, monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 2, run  # a collection error, as for any unusable snapshot file
    for crash in ("Traceback", "RecursionError", "OverflowError", "UnicodeDecodeError"):
        assert crash not in run.output, run
    assert f"{SNAPSHOT}" in run.output and words in run.output, run
    assert (folder / SNAPSHOT).read_bytes() == _hostile(kind)
