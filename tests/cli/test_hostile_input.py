"""`headprobe check` on the inputs that once ended in a traceback, a hang or a silent wrong value:
each is now headprobe's own error at its file and line (exit 2, or 4 for a model without usable
weights), or, where the input means something, a run that does the right thing quickly.

Cases follow issue "Never a wrong number, never a traceback": YAML dates and tags, numbers with
thousands of digits, deep nesting, control characters, surrogates, bad bytes, regexes that
repeat past any limit or backtrack, mathtext in labels, sentence files that are not files or are
too large, ``generate`` beyond reason, models without weights, invisible sentences, figures of
long sentences."""

from __future__ import annotations

import os
import re
import stat
import time

import numpy as np
import pytest
from check_runner import CheckRun, check_inprocess, check_subprocess, write_project

SETS = """\
sentences:
  s:
    - The cat sat on the mat.
    - A dog sat.
"""
CLAIM = '  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: ">= 0.5"\n'


def _file(model, body: str = CLAIM, sets: str = SETS) -> str:
    return f"model: {model}\n{sets}hypotheses:\n{body}"


def _run(tmp_path, text: str | bytes, check_cache, monkeypatch, capfd, *extra) -> CheckRun:
    path = tmp_path / "h.yaml"
    write_project(tmp_path, {})
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return check_inprocess(tmp_path, "h.yaml", *extra, cache_dir=check_cache,
                           monkeypatch=monkeypatch, capfd=capfd)


def _assert_located(run: CheckRun, line: int, *words: str, rc: int = 2) -> None:
    assert run.rc == rc, run
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    assert re.search(rf"h\.yaml:{line}: ", run.output), run
    for word in words:
        assert word in run.output, (word, run)
    assert not list((run.cwd / "reports").glob("*/report.json")), run


BIG = "9" * 5000
CASES = {
    # (body replacing the claim, line of the error, words the message must hold)
    "expect a date": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                      '    expect: 2001-13-45\n', 10, ["'2001-13-45' is not a number"]),
    "expect !!int": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                     '    expect: !!int zz\n', 10, ["YAML tags such as '!!int'"]),
    "why !foo": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                 '    expect: ">= 0.5"\n    why: !foo bar\n', 11, ["YAML tags such as '!foo'"]),
    "skip !!python/name": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                           '    expect: ">= 0.5"\n    skip: !!python/name:os.system\n', 11,
                           ["'!!python/name:os.system'"]),
    "a head of 5000 digits": (f'  - id: a\n    claim: "L{BIG}H1: token -> cls"\n    over: s\n'
                              '    expect: ">= 0.5"\n', 8, ["5,017 characters long"]),
    "a head of 30 digits": (f'  - id: a\n    claim: "L{"9" * 30}H1: token -> cls"\n    over: s\n'
                            '    expect: ">= 0.5"\n', 8, ["at most 6 digits"]),
    "an offset of 30 digits": (f'  - id: a\n    claim: "L1H1: token -> offset:+{"9" * 30}"\n'
                               '    over: s\n    expect: ">= 0.5"\n', 8, ["at most 6 digits"]),
    "topk of 5000 digits": (f'  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                            f'    measure: topk:{BIG}\n    expect: ">= 0.5"\n', 10,
                            ["at most 6 digits"]),
    "topk superscript": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                         '    measure: "topk:²"\n    expect: ">= 0.5"\n', 10,
                         ["topk needs a positive whole number"]),
    "expect of 5000 digits": (f'  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                              f'    expect: {BIG}\n', 10, ["cannot read the value"]),
    "confidence of 5000 digits": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                                  f'    expect: ">= 0.5"\n    confidence: {BIG}\n', 11,
                                  ["cannot read the value"]),
    "confidence of 400 digits": ('  - id: a\n    claim: "L1H1: token -> cls"\n    over: s\n'
                                 f'    expect: ">= 0.5"\n    confidence: {"9" * 400}\n', 11,
                                 ["far too large"]),
    "a regex repeating 2^32 times": ('  - id: a\n    claim: "L1H1: word:a{4294967296} -> cls"\n'
                                     '    over: s\n    expect: ">= 0.5"\n', 8,
                                     ["counts past 1000"]),
    "1000 nested groups": ('  - id: a\n    claim: "L1H1: word:' + "(" * 1000 + "a" + ")" * 1000
                           + ' -> cls"\n    over: s\n    expect: ">= 0.5"\n', 8,
                           ["characters long"]),
    "a backreference": ('  - id: a\n    claim: "L1H1: word:(a)\\\\1 -> cls"\n    over: s\n'
                        '    expect: ">= 0.5"\n', 8, ["not a valid regular expression",
                                                      "RE2 syntax"]),
    "generate a billion": ("", 6, ["generate", "more than 10,000"]),
    "deep nesting": ("", 11, ["nested more than 32 levels"]),
    "a self-merging mapping": ("", 3, ["merge keys"]),
    "a lone surrogate in a sentence": ("", 4, ["U+D800 (a lone surrogate"]),
    "only zero-width characters": ("", 4, ["no visible character"]),
}


def _special_file(name: str, model) -> str:
    if name == "generate a billion":
        sets = ('sentences:\n  s:\n    template: "The {a} sat."\n    slots: {a: [cat, dog]}\n'
                '    generate: 1000000000\n')
        return _file(model, sets=sets)
    if name == "deep nesting":
        return _file(model) + "extra: " + "[" * 1200 + "]" * 1200 + "\n"
    if name == "a self-merging mapping":
        return _file(model, sets="sentences:\n  s: &e {<<: *e}\n")
    if name == "a lone surrogate in a sentence":
        return _file(model, sets='sentences:\n  s:\n    - "The \\ud800 cat."\n    - A dog sat.\n')
    if name == "only zero-width characters":
        return _file(model, sets='sentences:\n  s:\n    - "\\u200b\\u200b\\u2060"\n'
                                 '    - A dog sat.\n')
    return _file(model, CASES[name][0])


@pytest.mark.parametrize("name", CASES)
def test_hostile_yaml_is_a_located_collection_error(tmp_path, planted_model, check_cache,
                                                    monkeypatch, capfd, name):
    _, line, words = CASES[name]
    start = time.perf_counter()
    run = _run(tmp_path, _special_file(name, planted_model), check_cache, monkeypatch, capfd)
    _assert_located(run, line, *words)
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("insert, line, words", [
    ("\x00", 5, ["U+0000 (a control character)", "line 5"]),
    ("\x85", 5, []),  # NEL is a YAML line break: the file parses (the sentence is split)
    ("\x9f", 5, ["U+009F (a control character)"]),
])
def test_a_raw_control_character_in_the_file_is_located(tmp_path, planted_model, check_cache,
                                                        monkeypatch, capfd, insert, line, words):
    text = _file(planted_model).replace("A dog sat.", f"A dog{insert} sat.")
    run = _run(tmp_path, text, check_cache, monkeypatch, capfd, "--collect-only")
    if not words:
        assert "Traceback" not in run.output and run.rc in (0, 2), run
        return
    _assert_located(run, line, *words)


def test_a_file_that_is_not_utf8_is_located(tmp_path, planted_model, check_cache, monkeypatch,
                                            capfd):
    text = _file(planted_model).encode("utf-8").replace(b"A dog sat.", b"A d\xf6g sat.")
    run = _run(tmp_path, text, check_cache, monkeypatch, capfd)
    _assert_located(run, 5, "byte 0xf6 at line 5", "is not UTF-8")


def test_a_date_like_sentence_and_id_are_text(tmp_path, planted_model, check_cache,
                                              monkeypatch, capfd):
    sets = "sentences:\n  s:\n    - 2001-02-30\n    - A dog sat.\n"
    body = '  - id: 2024-02-30\n    claim: "L1H1: token -> cls"\n    over: s\n    expect: 0.5\n'
    run = _run(tmp_path, _file(planted_model, body, sets), check_cache, monkeypatch, capfd,
               "--collect-only")
    # Collected: the id is the text as written; the sentence is text, whose digits the tiny
    # vocabulary cannot spell (a located error about the sentence, not a date).
    assert "Traceback" not in run.output, run
    assert "sentence '2001-02-30'" in run.output and "cannot spell" in run.output, run


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "nul-in-path", "too-large"])
def test_a_sentence_file_that_is_not_a_small_regular_file_is_refused(
        tmp_path, planted_model, check_cache, monkeypatch, capfd, kind):
    data = tmp_path / "data.txt"
    path = "data.txt"
    if kind == "fifo":
        os.mkfifo(data)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", data)
    elif kind == "nul-in-path":
        path = '"data\\0.txt"'
    else:
        data.write_text("The cat sat.\n" * 200, encoding="utf-8")
        monkeypatch.setenv("HEADPROBE_MAX_FILE_MB", "0.001")
    sets = f"sentences:\n  s: {path}\n"
    start = time.perf_counter()
    run = _run(tmp_path, _file(planted_model, sets=sets), check_cache, monkeypatch, capfd)
    assert time.perf_counter() - start < 30
    words = {"fifo": ["a named pipe (FIFO) is not a regular file"],
             "dev-zero": ["a device is not a regular file"],
             "nul-in-path": ["NUL"],
             "too-large": ["larger than 0.001 MiB", "HEADPROBE_MAX_FILE_MB"]}[kind]
    _assert_located(run, 3, *words)


@pytest.mark.parametrize("field, written, words", [
    ("id", '"\\udcff"', ["U+DCFF (a lone surrogate", "character 1 of '\\udcff'"]),
    ("id", '"a\\x07b"', ["U+0007 (a control character) at character 2"]),
    ("why", '"because \\ud800"', ["U+D800 (a lone surrogate"]),
])
def test_an_escaped_character_no_file_may_hold_is_a_located_collection_error(
        tmp_path, planted_model, check_cache, field, written, words):
    """YAML escapes write characters the file itself may not hold; pytest's own cache
    (lastfailed, node ids) is on, as users run it, and must still be written."""
    claim = CLAIM.replace("id: a", f"id: {written}") if field == "id" else \
        CLAIM + f"    why: {written}\n"
    project = write_project(tmp_path / "p", {"h.yaml": _file(planted_model, claim)})
    run = check_subprocess(project, "h.yaml", cache_dir=check_cache)
    assert run.rc == 2, run
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    line = 7 if field == "id" else 11
    assert f"h.yaml:{line}: {field}: " in run.output, run
    for word in words:
        assert word in run.output, (word, run)
    assert (project / ".pytest_cache" / "v" / "cache" / "lastfailed").is_file(), run


def test_a_hypothesis_file_whose_name_is_not_utf8_is_a_usage_error(tmp_path, planted_model,
                                                                    check_cache):
    project = write_project(tmp_path / "p", {})
    name = os.fsdecode(b"h\xff.yaml")  # 'h\udcff.yaml': no test id, no report can hold it
    (project / name).write_text(_file(planted_model), encoding="utf-8")
    for args in ((name,), (".",)):
        run = check_subprocess(project, *args, cache_dir=check_cache)
        assert run.rc == 4, run
        assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
        assert run.stderr.strip().splitlines() == [
            f"ERROR: hypothesis file {project}/h\\xff.yaml: its name is not UTF-8 text, so no "
            f"test id can name it; rename it (letters, digits, '-', '_')"], run


def test_a_fifo_where_the_report_folder_keeps_latest_is_left_alone(tmp_path, planted_model,
                                                                    check_cache):
    project = write_project(tmp_path / "p", {"h.yaml": _file(planted_model)})
    (project / "reports").mkdir()
    latest = project / "reports" / "latest"
    os.mkfifo(latest)  # renaming the new link over it would replace the pipe
    run = check_subprocess(project, "h.yaml", "-p", "no:cacheprovider", cache_dir=check_cache)
    assert run.rc == 4, run
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run
    (error,) = run.stderr.strip().splitlines()
    assert error.startswith(f"ERROR: {latest} is a named pipe (FIFO), not the link"), run
    assert stat.S_ISFIFO(os.stat(latest).st_mode)
    assert len(list((project / "reports").glob("*/report.json"))) == 1  # the run's report


@pytest.mark.parametrize("files, words", [
    ({"pytorch_model.bin": b"\x80\x02pickle"}, ["only pytorch_model.bin found",
                                                "never unpickles"]),
    ({}, ["no weights found"]),
])
def test_a_model_without_usable_weights_is_a_usage_error_before_anything_runs(
        tmp_path, planted_model, check_cache, files, words):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json",
                 "special_tokens_map.json"):
        (folder / name).write_bytes((planted_model / name).read_bytes())
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    write_project(tmp_path / "p", {"h.yaml": _file(folder)})
    run = check_subprocess(tmp_path / "p", "h.yaml", cache_dir=check_cache)
    assert run.rc == 4, run
    assert "Traceback" not in run.output and "1 failed" not in run.output, run
    for word in words:
        assert word in run.stderr, run


def test_an_unexpected_error_while_collecting_is_a_collection_error_not_internal(
        tmp_path, planted_model, check_cache, monkeypatch, capfd):
    from headprobe.claims import files

    def broken(*args):
        raise RuntimeError("something headprobe did not foresee")

    monkeypatch.setattr(files, "check_printable", broken)
    run = _run(tmp_path, _file(planted_model), check_cache, monkeypatch, capfd)
    assert run.rc == 2, run
    assert "INTERNALERROR" not in run.output and "repr_failure" not in run.output, run
    assert "RuntimeError: something headprobe did not foresee" in run.output, run


def test_mathtext_in_a_failing_claim_is_drawn_as_text(tmp_path, planted_model, check_cache,
                                                      monkeypatch, capfd):
    body = ('  - id: math\n    claim: "L1H1: word:$\\\\frac$|the -> next"\n    over: s\n'
            '    expect: ">= 0.9"\n')
    sets = "sentences:\n  s:\n    - The cat sat on the mat.\n    - A dog sat.\n"
    run = _run(tmp_path, _file(planted_model, body, sets), check_cache, monkeypatch, capfd)
    assert run.rc == 1, run
    assert "Traceback" not in run.output, run
    (result,) = run.report()["results"]
    assert result["figures"] and not result["warnings"][1:], result
    run_dir = run.report_dirs()[-1]
    assert all((run_dir / f).stat().st_size > 0 for f in result["figures"])


def test_a_failing_claim_on_a_long_sentence_draws_a_bounded_readable_figure(
        tmp_path, check_cache, monkeypatch, capfd):
    from fixtures_models import write_planted_checkpoint
    from PIL import Image

    model = write_planted_checkpoint(tmp_path / "long-model", max_position_embeddings=512)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "red", "rug"]
    sentence = " ".join(words[i % len(words)] for i in range(500)) + "."
    sets = f"sentences:\n  s:\n    - {sentence}\n"
    body = '  - id: long\n    claim: "L1H1: token -> next"\n    over: s\n    expect: ">= 0.9"\n'
    start = time.perf_counter()
    run = _run(tmp_path, _file(model, body, sets), check_cache, monkeypatch, capfd)
    assert run.rc == 1, run
    assert time.perf_counter() - start < 60
    (result,) = run.report()["results"]
    (figure,) = result["figures"]
    with Image.open(run.report_dirs()[-1] / figure) as image:
        assert max(image.size) <= 2000, image.size
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # a grid was drawn, not an empty page
