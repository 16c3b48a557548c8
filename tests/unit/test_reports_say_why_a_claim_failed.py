"""A report can be read without the hypothesis file open: the expectation as written is in the
HTML table, and a ``per: sentence`` failure says how many sentences missed and by how much —
in the summary line, the failure text, report.json's ``failure`` and the HTML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headprobe.claims.jobs import ClaimJob
from headprobe.claims.spec import Claim, ClaimSpec, Expectation, Sentence, Source, Target
from headprobe.evaluation.accumulate import ClaimAccumulator, SentenceNumbers
from headprobe.evaluation.results import ClaimResult
from headprobe.heads import Head, HeadPattern
from headprobe.report.html import format_expected, render_index_html
from headprobe.report.terminal import failure_text, measured_line, summary_lines

HEAD = Head(2, 5)
WHY = "2 of 12 sentences below 0.8 (worst 0.610)"


def spec(expect: Expectation = Expectation(">=", 0.8, text=">= 0.8"), **options) -> ClaimSpec:
    claim = Claim(heads=(HeadPattern(2, 5),), source=Source("token"), target=Target("next"))
    return ClaimSpec(file="hyp/a.yaml", line=4, id="next-token", claim=claim, over=("s",),
                     expect=expect, claim_text="L2H5: token -> next", **options)


def per_sentence_result(hits: list[int], expect: Expectation = Expectation(">=", 0.8,
                                                                          text=">= 0.8"),
                        **options) -> ClaimResult:
    """One head, a sentence of 100 counted sources per entry of ``hits``."""
    accumulator = ClaimAccumulator(spec(expect, per="sentence", **options), [HEAD])
    for index, count in enumerate(hits):
        accumulator.record(index, f"sentence {index}",
                           SentenceNumbers(100, 0, np.array([float(count)])))
    (result,) = accumulator.results(model="m", fingerprint="sha256:abc")
    return result


TWO_BELOW = [90] * 5 + [61] + [90] * 5 + [75]  # 12 sentences, 0.61 and 0.75 below 0.8


def test_a_per_sentence_failure_says_how_many_sentences_miss_and_the_worst():
    result = per_sentence_result(TWO_BELOW)
    assert not result.passed and result.value == pytest.approx(1036 / 1200)
    assert (result.failure, result.sentences_failed) == (WHY, 2)
    assert result.to_json()["failure"] == WHY


def test_the_summary_line_of_a_per_sentence_failure_leads_with_the_sentences_that_miss():
    result = per_sentence_result(TWO_BELOW)
    line = measured_line(result)
    assert line.startswith(f"argmax: {WHY}, expected >= 0.8 in every sentence; over all "
                           f"sentences 0.863, CI ["), line
    assert line.endswith("(n=1200, left out 0)")
    (_, _, failed) = summary_lines([("hyp/a.yaml::next-token[L2H5]", result)], None)
    assert failed == f"FAILED hyp/a.yaml::next-token[L2H5]: {line}"


def test_the_failure_text_says_it_once():
    result = per_sentence_result(TWO_BELOW)
    job = ClaimJob(key="k", spec=spec(per="sentence"), heads=(HEAD,), model_spec="m",
                   sentences=tuple(Sentence(f"sentence {i}") for i in range(12)))
    text = failure_text(job, result, None, Path.cwd())
    assert text.count(WHY) == 1, text


@pytest.mark.parametrize("expect, hits, why", [
    (Expectation(">", 0.8), [80, 90, 81], "1 of 3 sentences at or below 0.8 (worst 0.800)"),
    (Expectation("<=", 0.2), [30, 10, 25], "2 of 3 sentences above 0.2 (worst 0.300)"),
    (Expectation("<", 0.2), [20, 10, 5], "1 of 3 sentences at or above 0.2 (worst 0.200)"),
    (Expectation("between", 0.2, 0.5), [10, 30, 70],
     "2 of 3 sentences outside 0.2 to 0.5 (worst 0.700)"),
    (Expectation(">=", 0.5), [40], "1 of 1 sentence below 0.5 (worst 0.400)"),
])
def test_the_wording_follows_the_expectation(expect, hits, why):
    assert per_sentence_result(hits, expect).failure == why


def test_a_passing_per_sentence_claim_has_no_failure():
    result = per_sentence_result([90, 85, 80])
    assert result.passed and result.failure is None and result.sentences_failed == 0
    assert "failure" not in result.to_json()


def test_a_failure_only_on_the_baseline_keeps_the_usual_line():
    accumulator = ClaimAccumulator(spec(per="sentence", baseline="offset"), [HEAD])
    for index in range(4):
        accumulator.record(index, f"s{index}", SentenceNumbers(
            100, 0, np.array([90.0]), baseline=(100.0, 0.0, 0.0, 0.0, 0.0, 0.0)))
    (result,) = accumulator.results(model="m", fingerprint="sha256:abc")
    assert not result.passed and result.failure is None
    assert "(not beaten: that is why it fails)" in measured_line(result)


# --- HTML ----------------------------------------------------------------------------------

def row(**extra) -> dict:
    base = {"file": "hyp/a.yaml", "id": "next-token", "head": "L2H5",
            "claim": "L2H5: token -> next", "measure": "argmax", "level": "token", "model": "m",
            "expect": ">= 0.8", "value": 0.863, "ci": [0.84, 0.88], "n": 1200, "left_out": 0,
            "passed": True, "figures": []}
    base.update(extra)
    return base


def page(*results: dict) -> str:
    return render_index_html({"headprobe_version": "0", "started": "2026-01-01T00:00:00Z",
                              "results": list(results), "summary": {}})


def test_the_html_table_has_the_expectation_as_written():
    html = page(row())
    assert '<th data-col="7" title="click to sort">expected</th>' in html
    assert "<td>&gt;= 0.8</td>" in html
    assert format_expected(row(expect="unchanged", tolerance=0.02)) == "unchanged ± 0.02"
    assert format_expected(row(expect="between 0.2 and 0.5")) == "between 0.2 and 0.5"
    assert format_expected(row(sentences=12)) == ">= 0.8 in every sentence"


def test_the_html_says_why_a_per_sentence_claim_failed_in_the_table_and_the_details():
    result = per_sentence_result(TWO_BELOW).to_json()
    html = page(result)
    table = html.split('<table id="results">')[1].split("</table>")[0]
    assert f'failed<br><small class="reason">{WHY}</small>' in table
    details = html.split("<h2>Failures</h2>")[1]
    assert f"<dt>why it failed</dt><dd>{WHY}</dd>" in details
    assert "<dd>&gt;= 0.8 in every sentence</dd>" in details


def test_an_unchanged_failure_keeps_its_long_reason_out_of_the_table():
    html = page(row(expect="unchanged", tolerance=0.02, passed=False,
                    failure="changed by +0.030: ... fingerprints"))
    table = html.split('<table id="results">')[1].split("</table>")[0]
    assert "changed by" not in table and "unchanged ± 0.02" in table
    assert "<dt>why it failed</dt><dd>changed by +0.030: ... fingerprints</dd>" in html
