"""`headprobe check` on broken input: collection errors (exit 2) that name file, line and field;
a model that cannot be had (exit 4, says where it looked); nothing collected (exit 5).

None of them prints a Python traceback or writes a report.json claiming results. Most cases run
`headprobe.cli.main` in this process (collection loads no model, only its tokenizer); the first
and the model-not-found case run the real console command.
"""

from __future__ import annotations

import re

import pytest
from check_runner import CheckRun, check_inprocess, check_subprocess, write_project

GOOD_SET = """\
sentences:
  s:
    - The cat sat on the mat.
    - A dog sat.
"""


def _claims(model: str, body: str, sets: str = GOOD_SET) -> str:
    return f"model: {model}\n{sets}hypotheses:\n{body}"


def _assert_clean_failure(run: CheckRun, rc: int) -> None:
    assert run.rc == rc, run
    assert "Traceback" not in run.output, run
    assert not list((run.cwd / "reports").glob("*/report.json")), run


def _located(run: CheckRun, file: str, line: int, field: str) -> str:
    """The error line ``.../FILE:LINE: FIELD: ...`` (asserting that there is one)."""
    pattern = re.compile(rf"^\S*{re.escape(file)}:{line}: {re.escape(field)}: .*$", re.M)
    match = pattern.search(run.output)
    assert match, f"no '{file}:{line}: {field}:' error in\n{run}"
    return match.group(0)


# (name, YAML body after the sets, line, field, words the message must contain)
CASES = [
    ("unknown-field",
     '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expct: ">= 0.5"\n',
     10, "expct", ["unknown field 'expct'", "did you mean 'expect'?"]),
    ("claim-does-not-parse",
     '  - id: a\n    claim: "L1H1: token -> nxt"\n    over: s\n    expect: ">= 0.5"\n',
     8, "claim", ["column 16", "did you mean 'next'?", "^"]),
    ("head-out-of-range",
     '  - id: a\n    claim: "L3H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n',
     8, "claim", ["layer 3", "layers 1..2", "counted from 1"]),
    ("head-number-out-of-range",
     '  - id: a\n    claim: "L2H4: token -> cls"\n    over: s\n    expect: ">= 0.5"\n',
     8, "claim", ["head 4", "heads 1..3"]),
    ("unknown-set",
     '  - id: a\n    claim: "L1H1: token -> cls"\n    over: [s, ss]\n    expect: ">= 0.5"\n',
     9, "over", ["'ss'", "did you mean 's'?"]),
    ("bad-regex",
     '  - id: a\n    claim: "L1H1: word:(ca -> cls"\n    over: s\n    expect: ">= 0.5"\n',
     8, "claim", ["'(ca' is not a valid regular expression", "column 12"]),
    ("unknown-span-label",
     '  - id: a\n    claim: "L1H1: span:subj -> cls"\n    over: s\n    expect: ">= 0.5"\n',
     8, "claim", ["unknown span label 'subj'"]),
    ("expectation-outside-0-1",
     '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 1.5"\n',
     10, "expect", ["1.5 is outside [0, 1]"]),
    ("duplicate-id",
     '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
     '  - id: a\n    claim: "L1H1: token -> sep"\n    over: s\n    expect: ">= 0.5"\n',
     11, "id", ["duplicate id 'a'", "line 7"]),
]


@pytest.mark.parametrize("name, body, line, field, words", CASES, ids=[c[0] for c in CASES])
def test_collection_error_names_file_line_and_field(tmp_path, planted_model, check_cache,
                                                    monkeypatch, capfd, name, body, line,
                                                    field, words):
    sets = GOOD_SET if name != "unknown-span-label" else \
        'sentences:\n  s:\n    - "The [cat]{animal} sat."\n    - A dog sat.\n'
    write_project(tmp_path, {f"{name}.yaml": _claims(planted_model, body, sets)})
    run = check_inprocess(tmp_path, f"{name}.yaml", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 2)
    message = _located(run, f"{name}.yaml", line, field)
    for word in words:
        assert word in run.output, f"{word!r} not in {message!r}"


def test_malformed_yaml_is_a_collection_error_with_its_line(tmp_path, check_cache,
                                                            monkeypatch, capfd):
    write_project(tmp_path, {"broken.yaml": """
        hypotheses:
          - id: a
            claim: "L1H1: token -> cls"
            over: [s
        """})
    run = check_inprocess(tmp_path, "broken.yaml", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 2)
    assert re.search(r"broken\.yaml:\d+: not valid YAML: .*expected ','", run.output), run


@pytest.mark.parametrize("entry, words", [
    ("missing.txt", ["'missing.txt'", "does not exist", "relative to the folder"]),
    ("empty.txt", ["'empty.txt'", "has no sentences"]),
])
def test_missing_or_empty_sentence_file_is_located(tmp_path, planted_model, check_cache,
                                                   monkeypatch, capfd, entry, words):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "empty.txt").write_text("# only a comment\n\n", encoding="utf-8")
    sets = f"sentences:\n  s: [The cat sat.]\n  everyday: data/{entry}\n"
    body = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: everyday\n    expect: ">= 0.5"\n'
    write_project(tmp_path, {"files.yaml": _claims(planted_model, body, sets)})
    run = check_inprocess(tmp_path, "files.yaml", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 2)
    _located(run, "files.yaml", 4, "sentences.everyday")
    for word in words:
        assert word.replace("'", "") in run.output.replace("'", "").replace("data/", ""), run


def test_sentence_longer_than_the_model_takes_points_at_the_sentence(tmp_path, planted_model,
                                                                    check_cache, monkeypatch,
                                                                    capfd):
    long = "The cat sat on the mat and the dog sat on the rug and the horse sat."
    sets = f"sentences:\n  s:\n    - The cat sat.\n    - {long}\n"
    body = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
    write_project(tmp_path, {"long.yaml": _claims(planted_model, body, sets)})
    run = check_inprocess(tmp_path, "long.yaml", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 2)
    message = _located(run, "long.yaml", 5, "sentences.s")
    assert "20 tokens" in message and "at most 16" in message, message


def test_a_word_the_vocabulary_cannot_spell_is_a_collection_error(tmp_path, planted_model,
                                                                   check_cache, monkeypatch,
                                                                   capfd):
    sets = "sentences:\n  s:\n    - The cat sat.\n    - The gnu sat.\n"
    body = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
    write_project(tmp_path, {"unk.yaml": _claims(planted_model, body, sets)})
    run = check_inprocess(tmp_path, "unk.yaml", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 2)
    assert "'gnu'" in _located(run, "unk.yaml", 5, "sentences.s")


def test_one_broken_file_stops_the_run_before_any_claim_is_evaluated(tmp_path, planted_model,
                                                                     check_cache):
    """The real command: a good file beside a broken one; nothing is evaluated, no report."""
    good = '  - id: fine\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
    bad = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expct: ">= 0.5"\n'
    write_project(tmp_path, {"hypotheses/good.yaml": _claims(planted_model, good),
                             "hypotheses/bad.yaml": _claims(planted_model, bad)})
    run = check_subprocess(tmp_path, cache_dir=check_cache)  # default PATH: hypotheses/
    _assert_clean_failure(run, 2)
    _located(run, "bad.yaml", 10, "expct")
    assert "did you mean 'expect'?" in run.output
    assert "Interrupted: 1 error during collection" in run.output, run
    assert "PASSED" not in run.output and "passed" not in run.output.splitlines()[-1]


def test_model_that_cannot_be_had_is_a_usage_error_saying_where_it_looked(tmp_path,
                                                                          check_cache):
    body = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
    write_project(tmp_path, {"h.yaml": _claims("nobody/no-such-model", body)})
    run = check_subprocess(tmp_path, "h.yaml", f"--cache-dir={check_cache}",
                           cache_dir=check_cache)
    _assert_clean_failure(run, 4)
    assert "ERROR: model 'nobody/no-such-model' could not be found" in run.stderr, run
    assert "Looked in:" in run.stderr and "Hugging Face cache" in run.stderr, run
    assert "HF_HUB_OFFLINE" in run.stderr, run


def test_nothing_selected_exits_5_and_writes_no_report(tmp_path, planted_model, check_cache,
                                                       monkeypatch, capfd):
    body = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'
    write_project(tmp_path, {"h.yaml": _claims(planted_model, body)})
    run = check_inprocess(tmp_path, "h.yaml", "-k", "nomatch", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    _assert_clean_failure(run, 5)
    assert "1 deselected" in run.output, run


def test_unknown_headprobe_option_value_is_a_usage_error(tmp_path, check_cache, monkeypatch,
                                                         capfd):
    run = check_inprocess(tmp_path, "--model", cache_dir=check_cache,
                          monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 4, run
    assert "ERROR: --model expects a value" in run.stderr, run
    assert "Traceback" not in run.output
