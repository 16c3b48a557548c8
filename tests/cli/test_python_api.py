"""Claims written in Python: the ``headprobe_model`` fixture, ``claim(...).over(...).argmax()``,
`Measured` comparisons, ``@given(from_template(...))`` — in this process on the planted tiny
checkpoint, and as users run them: under ``headprobe check`` and under plain ``python -m pytest``.
"""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
from check_runner import CheckRun, check_subprocess, run_command, write_project

PLAIN = ["The cat sat on the mat.", "A dog sat."]
ZEBRAS = ["The zebra sat on the mat.", "A zebra sat."]
N = 11  # sources (`token`) in PLAIN, and in ZEBRAS
# L1H1 is uniform on PLAIN: each of a row's 9 (6) tied positions gets 1/9 (1/6) of the argmax hit.
UNIFORM_SHARE = (7 / 9 + 4 / 6) / N

TEST_FILE = '''
from hypothesis import given, settings
from headprobe.strategies import from_template

PLAIN = ["The cat sat on the mat.", "A dog sat."]
ZEBRAS = ["The zebra sat on the mat.", "A zebra sat."]


def test_planted_head_looks_at_zebra(headprobe_model):
    assert headprobe_model.claim("L1H1: token -> word:zebra").over(ZEBRAS).argmax() >= 0.9


def test_uniform_head_looks_at_next(headprobe_model):
    result = headprobe_model.claim("L1H1: token -> next").over(PLAIN).argmax()
    assert result >= 0.5


@settings(max_examples=40, deadline=None, database=None)
@given(from_template("The {animal} sat on the {thing}.",
                     animal=["horse", "cat", "zebra", "dog"],
                     thing=["red carpet", "table", "rug", "mat", "big red carpet"]))
def test_no_animal_draws_the_eye(headprobe_model, sentence):
    # uniform rows give [CLS] 1/len >= 1/16 of the argmax hit; a zebra takes all of it
    assert headprobe_model.claim("L1H1: token -> cls").over([sentence]).argmax() >= 0.05
'''


# ---- in this process --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe(planted_model):
    import headprobe
    recorded = []
    model = headprobe.load(str(planted_model), compilation_cache=False).with_recorder(
        lambda measured, spec, result: recorded.append(result))
    model.recorded = recorded
    return model


def test_measured_shows_value_interval_and_n(probe):
    result = probe.claim("L1H1: token -> word:zebra").over(ZEBRAS).argmax()
    assert (result.value, result.n, result.left_out, result.head) == (1.0, N, 0, "L1H1")
    assert float(result) == 1.0
    assert repr(result) == ("<L1H1: token -> word:zebra on L1H1: argmax = 1.000, 95% CI "
                            "[0.741, 1.000], n=11, left out 0>")


def test_comparisons_decide_and_record_the_claim(probe):
    probe.recorded.clear()
    result = probe.claim("L1H1: token -> next").over(PLAIN).mass()
    assert result < 0.2 and not result >= 0.2
    assert result <= 0.2 and not result > 0.2
    assert [r.expect for r in probe.recorded] == ["< 0.2", ">= 0.2", "<= 0.2", "> 0.2"]
    assert [r.passed for r in probe.recorded] == [True, False, True, False]
    assert result.decided.expect == "> 0.2" and result.decided.passed is False


def test_topk_counts_a_target_among_the_k_most_attended(probe):
    # Uniform rows: every position ties, so 2 of a row's len places go to chance: 2/len each.
    top2 = probe.claim("L1H1: token -> cls").over(PLAIN).topk(2)
    assert top2.value == pytest.approx(2 * UNIFORM_SHARE)
    # "A dog sat.": 6 positions, 2 places: each source's previous position is in with 1/3.
    assert probe.claim("L1H1: token -> previous").over(["A dog sat."]).topk(2).value == \
        pytest.approx(1 / 3)
    top2_zebra = probe.claim("L1H*: token -> word:zebra").over(ZEBRAS).topk(2)
    assert top2_zebra.results[0].value == 1.0


def test_several_heads_each_must_meet_the_bound(probe):
    result = probe.claim("L1H*: token -> word:zebra").over(ZEBRAS).argmax()
    assert [r.head for r in result.results] == ["L1H1", "L1H2", "L1H3"]
    assert not result >= 0.9  # L1H2 and L1H3 are random heads
    assert result.decided.head != "L1H1"
    any_head = probe.claim("L1H*: token -> word:zebra", quantifier="any").over(ZEBRAS).argmax()
    assert any_head >= 0.9 and any_head.decided.head == "L1H1"


def test_annotated_sentences_and_spans(probe):
    result = probe.claim("L1H1: span:subj -> cls").over(["The [cat]{subj} sat.",
                                                           "A [dog]{subj} sat."]).argmax()
    assert (result.n, result.value) == (2, pytest.approx(1 / 6))  # uniform over 6 positions


def test_entropy_of_a_uniform_head_is_1_and_needs_no_target(probe):
    result = probe.claim("L1H1: token").over(PLAIN).entropy()
    assert result.value == pytest.approx(1.0) and result.n == N and result >= 0.99


def test_sentence_average_weighs_each_sentence_the_same(probe):
    # A uniform row gives its previous position 1/len of the argmax hit: each sentence scores
    # 1 / its length (9 and 6), pooled over 7 and 4 sources.
    pooled = probe.claim("L1H1: token -> previous").over(PLAIN).argmax()
    averaged = probe.claim("L1H1: token -> previous", average="sentence").over(PLAIN).argmax()
    assert pooled.value == pytest.approx(UNIFORM_SHARE)
    assert averaged.value == pytest.approx((1 / 9 + 1 / 6) / 2)


@pytest.mark.parametrize("call, message", [
    (lambda p: p.claim("L1H1: token").over(PLAIN).argmax(), "has no target"),
    (lambda p: p.claim("L1H1: token -> cls").over(PLAIN).entropy(), "needs no target"),
    (lambda p: p.claim("L1H1: token", average="mean"), "average: expected one of"),
    (lambda p: p.claim("L1H1: token -> cls").argmax(), "call .over([...]) before measuring"),
    (lambda p: p.claim("L1H1: token -> cls", level="wrod"), "did you mean 'word'?"),
    (lambda p: p.claim("L1H1: token -> cls").over(PLAIN).topk(0), "positive integer K"),
    (lambda p: p.claim("L9H1: token -> cls").over(PLAIN).argmax(), "layers 1..2"),
])
def test_bad_use_is_a_headprobe_error(probe, call, message):
    from headprobe.errors import HeadprobeError

    with pytest.raises(HeadprobeError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.").replace("[", r"\[").replace("?", r"\?")):
        call(probe)


def test_from_template_draws_sentences_with_spans_and_validates_slots(tmp_path, monkeypatch):
    from hypothesis import given, settings

    from headprobe.errors import UsageError
    from headprobe.strategies import from_template

    monkeypatch.chdir(tmp_path)  # hypothesis keeps its own files in ./.hypothesis
    seen = []

    @settings(max_examples=15, database=None, deadline=None)
    @given(from_template("The {animal} [sat]{verb}.", animal=["cat", "big dog"]))
    def collect(sentence):
        seen.append(sentence)

    collect()
    assert {s.text for s in seen} == {"The cat sat.", "The big dog sat."}
    assert all(s.spans[0].label == "verb" and s.text[s.spans[0].start:s.spans[0].end] == "sat"
               for s in seen)
    with pytest.raises(UsageError, match="from_template"):
        from_template("The {animal} sat.", animl=["cat"])


# ---- as users run it --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def under_check(tmp_path_factory, planted_model) -> CheckRun:
    folder = write_project(tmp_path_factory.mktemp("api"), {"test_claims.py": TEST_FILE},
                           settings=f'model = "{planted_model}"\n')
    return check_subprocess(folder, "test_claims.py", "-p", "no:cacheprovider",
                            cache_dir=tmp_path_factory.mktemp("cache"))


def test_failing_python_claim_shows_value_interval_n_and_figures(under_check):
    run = under_check
    assert run.rc == 1, run
    assert "2 failed, 1 passed" in run.output, run
    assert "claim 'L1H1: token -> next' failed on L1H1" in run.output
    assert "argmax = 0.131, CI [0.030, 0.423], expected >= 0.5 (n=11, left out 0)" in run.output
    figures = [line.split("figure: ", 1)[1].strip() for line in run.output.splitlines()
               if "figure: " in line]
    assert figures and all((run.cwd / f).is_file() for f in figures), figures


def test_given_claim_shrinks_to_the_simplest_failing_sentence(under_check):
    # hypothesis < 6.169 says "Falsifying example:", later releases "Failing test case:".
    assert re.search(r"(Falsifying example|Failing test case): test_no_animal_draws_the_eye\(",
                     under_check.output), under_check
    assert "text='The zebra sat on the mat.'" in under_check.output, under_check


def test_python_claims_land_in_the_report_once_per_test(under_check):
    results = under_check.report()["results"]
    by_id = {r["id"]: r for r in results}
    assert len(results) == 3 and set(by_id) == {
        "test_planted_head_looks_at_zebra", "test_uniform_head_looks_at_next",
        "test_no_animal_draws_the_eye"}
    assert by_id["test_planted_head_looks_at_zebra"]["passed"] is True
    failed = by_id["test_uniform_head_looks_at_next"]
    assert (failed["passed"], failed["value"], failed["n"], failed["expect"]) == (
        False, round(UNIFORM_SHARE, 6), N, ">= 0.5")
    assert failed["file"] == "test_claims.py" and failed["figures"]
    run_dir = under_check.report_dirs()[-1]
    assert all((run_dir / f).is_file() for f in failed["figures"])
    shrunk = by_id["test_no_animal_draws_the_eye"]  # the last example: the shrunk one
    assert (shrunk["passed"], shrunk["value"], shrunk["n"]) == (False, 0.0, 7)


def test_plain_pytest_runs_the_same_file_with_headprobe_model_option(tmp_path, planted_model,
                                                                      check_cache):
    write_project(tmp_path, {"test_claims.py": TEST_FILE})
    run = run_command([sys.executable, "-m", "pytest", "test_claims.py", "-p",
                       "no:cacheprovider", f"--headprobe-model={planted_model}",
                       "--headprobe-report-dir=out"], tmp_path, check_cache)
    assert run.rc == 1, run
    assert "2 failed, 1 passed" in run.output, run
    assert "argmax = 0.131, CI [0.030, 0.423], expected >= 0.5 (n=11, left out 0)" in run.output
    assert len(run.report("out")["results"]) == 3


def test_fixture_without_a_model_that_can_be_had_is_a_usage_error(tmp_path, check_cache):
    write_project(tmp_path, {"test_one.py": textwrap.dedent('''
        def test_one(headprobe_model):
            assert headprobe_model.num_layers
        ''')}, settings='model = "nobody/no-such-model"\n')
    run = check_subprocess(tmp_path, "test_one.py", cache_dir=check_cache)
    assert run.rc == 4, run
    assert "headprobe_model: model 'nobody/no-such-model' could not be found" in run.output, run
    assert "Looked in:" in run.output and not run.report_dirs(), run


def test_a_mass_over_one_sentence_shows_that_it_has_no_interval(probe):
    result = probe.claim("L1H1: token -> next").over(PLAIN[:1]).mass()
    assert result.ci is None and result.ci_note
    assert f"CI n/a ({result.ci_note})" in repr(result)
