"""Through the real commands, on the planted checkpoint (tests/fixtures_models.py), whose head L1H1
attends exactly uniformly to a sentence without "zebra" and almost only to "zebra" otherwise:

- a uniform row's argmax is tied among all its positions, so [CLS] gets 1/len of the hit, not all
  of it — in ``headprobe check``, ``headprobe profile``'s ``argmax:cls`` and ``headprobe
  discover`` alike;
- a bootstrap over one sentence gives no interval (``ci`` null, ``CI n/a (...)``), and
  ``confidence`` then fails, saying why;
- a ``per: sentence`` failure says how many sentences miss, in the summary line, report.json and
  the HTML, which also shows every claim's expectation.
"""

from __future__ import annotations

import json

import pytest
from check_runner import CheckRun, check_subprocess, headprobe_command, run_command, write_project

PLAIN = ["The cat sat on the mat.", "A dog sat."]
LENGTHS = [9, 6]  # with [CLS] and [SEP]
SOURCES = [n - 2 for n in LENGTHS]
UNIFORM_SHARE = sum(s / n for s, n in zip(SOURCES, LENGTHS)) / sum(SOURCES)  # 0.131
TOP2_SHARE = 2 * UNIFORM_SHARE  # two of len tied places: 2/len per source
MIXED = [*PLAIN, "The zebra sat on the mat.", "A zebra sat."]
NO_CI = "1 sentence, the bootstrap needs 4"
WHY = "2 of 4 sentences below 0.1 (worst 0.000)"

CLAIMS = f"""
sentences:
  plain: [{", ".join(PLAIN)}]
  one: [{PLAIN[0]}]
  mixed: [{", ".join(MIXED)}]
hypotheses:
  - id: uniform-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: ">= 0.9"
  - id: uniform-cls-top2
    claim: "L1H1: token -> cls"
    measure: topk:2
    over: plain
    expect: ">= 0.9"
  - id: one-sentence-mass
    claim: "L1H1: token -> cls"
    measure: mass
    over: one
    expect: ">= 0.1"
  - id: one-sentence-confident
    claim: "L1H1: token -> cls"
    measure: mass
    confidence: 0.95
    over: one
    expect: ">= 0.1"
  - id: every-sentence
    claim: "L1H1: token -> cls"
    per: sentence
    over: mixed
    expect: ">= 0.1"
  - id: steady
    claim: "L1H1: token -> cls"
    over: plain
    expect: "between 0.1 and 0.2"
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, planted_model, check_cache) -> CheckRun:
    folder = write_project(tmp_path_factory.mktemp("ties"), {"claims.yaml": CLAIMS})
    return check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                            cache_dir=check_cache)


def test_a_uniform_head_is_not_a_cls_head(run):
    results = run.results()
    assert run.rc == 1, run
    uniform = results["uniform-cls[L1H1]"]
    assert (uniform["value"], uniform["n"], uniform["passed"]) == (round(UNIFORM_SHARE, 6), 11,
                                                                  False)
    top2 = results["uniform-cls-top2[L1H1]"]
    assert (top2["value"], top2["passed"]) == (round(TOP2_SHARE, 6), False)
    assert "FAILED claims.yaml::uniform-cls[L1H1]: argmax = 0.131, CI [" in run.output
    assert results["steady[L1H1]"]["passed"] is True


def test_one_sentence_gives_no_interval_and_the_value_decides(run):
    mass = run.results()["one-sentence-mass[L1H1]"]
    assert (mass["value"], mass["ci"], mass["ci_note"], mass["passed"]) == (
        round(1 / 9, 6), None, NO_CI, True)


def test_confidence_without_an_interval_fails_and_says_why(run):
    confident = run.results()["one-sentence-confident[L1H1]"]
    assert (confident["ci"], confident["passed"]) == (None, False)
    assert confident["failure"] == (f"confidence 0.95 needs the whole interval to meet the "
                                    f"expectation, and there is none ({NO_CI}): add sentences "
                                    f"or drop confidence")
    assert (f"FAILED claims.yaml::one-sentence-confident[L1H1]: mass = 0.111, CI n/a ({NO_CI}), "
            f"expected >= 0.1 (n=7, left out 0); confidence 0.95 needs") in run.output


def test_a_per_sentence_failure_says_how_many_sentences_miss(run):
    every = run.results()["every-sentence[L1H1]"]
    assert (every["passed"], every["sentences"], every["failure"]) == (False, 4, WHY)
    assert (f"FAILED claims.yaml::every-sentence[L1H1]: argmax: {WHY}, expected >= 0.1 in every "
            f"sentence; over all sentences") in run.output
    assert sorted(every["counterexamples"]) == sorted(MIXED[2:])


def test_the_html_shows_expectations_missing_intervals_and_reasons(run):
    page = (run.report_dirs()[-1] / "index.html").read_text("utf-8")
    table = page.split('<table id="results">')[1].split("</table>")[0]
    assert ">expected</th>" in table and "<td>between 0.1 and 0.2</td>" in table
    assert "<td>&gt;= 0.1 in every sentence</td>" in table
    assert f"<td>n/a ({NO_CI})</td>" in table
    assert f'failed<br><small class="reason">{WHY}</small>' in table


def test_profile_and_discover_share_ties_as_check_does(tmp_path, planted_model, check_cache):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(PLAIN) + "\n", encoding="utf-8")
    common = ["--model", str(planted_model), "--sentences", str(sentences), "-q"]
    profile = run_command([*headprobe_command(), "profile", *common, "-o", "p.json"], tmp_path,
                          check_cache)
    assert profile.rc == 0, profile
    values = json.loads((tmp_path / "p.json").read_text("utf-8"))["heads"]["L1H1"]
    assert values["argmax:cls"] == pytest.approx(UNIFORM_SHARE, abs=1e-6)
    assert values["argmax:next"] == pytest.approx(UNIFORM_SHARE, abs=1e-6)
    many = tmp_path / "many.txt"  # 8 x 7 sources: a Wilson lower bound above 0.9 at 1.0
    many.write_text("\n".join([PLAIN[0]] * 8) + "\n", encoding="utf-8")
    discover = run_command([*headprobe_command(), "discover", "--model", str(planted_model),
                            "--sentences", str(many), "-q", "-o", "found.yaml"], tmp_path,
                           check_cache)
    assert discover.rc == 0, discover
    found = (tmp_path / "found.yaml").read_text("utf-8")
    assert 'claim: "L1H1: token"' in found and "-> cls" not in found, found  # broad, not cls
