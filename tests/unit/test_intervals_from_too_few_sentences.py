"""A bootstrap over sentences needs sentences: with fewer than `bootstrap_sentences_needed` (4 at
95%) a result has no interval (``ci`` null, ``ci_note`` saying why, ``CI n/a (...)`` in text), the
verdict rests on the value, and ``confidence`` — which asks for the whole interval — fails."""

from __future__ import annotations

import numpy as np
import pytest

from headprobe.claims.spec import Claim, ClaimSpec, Expectation, Measure, Source, Target
from headprobe.evaluation.accumulate import ClaimAccumulator, SentenceNumbers
from headprobe.evaluation.intervals import bootstrap_ratio, bootstrap_sentences_needed, wilson
from headprobe.evaluation.results import ClaimResult
from headprobe.evaluation.verdict import judge
from headprobe.heads import Head, HeadPattern
from headprobe.report.html import render_index_html
from headprobe.report.terminal import head_line, measured_line

HEADS = (Head(1, 1), Head(1, 2))


def make_spec(measure: str = "mass", expect: Expectation = Expectation(">=", 0.2),
              **options) -> ClaimSpec:
    claim = Claim(heads=(HeadPattern(1, None),), source=Source("token"), target=Target("cls"))
    return ClaimSpec(file="hyp/a.yaml", line=4, id="to-cls", claim=claim, over=("s",),
                     expect=expect, claim_text="L1H*: token -> cls", measure=Measure(measure),
                     **options)


def outcome(spec: ClaimSpec, counts: list[int], hits: list[float]):
    counts_array = np.array(counts)
    return judge(spec, counts_array, np.zeros_like(counts_array), np.array(hits, dtype=float),
                 [f"s{i}" for i in range(len(counts))], list(range(len(counts))), {})


def results(spec: ClaimSpec, counts: list[int], hits: list[float]) -> list[ClaimResult]:
    accumulator = ClaimAccumulator(spec, HEADS)
    for index, (n, h) in enumerate(zip(counts, hits)):
        accumulator.record(index, f"s{index}", SentenceNumbers(n, 0, np.array([h, h / 2])))
    return accumulator.results(model="m", fingerprint="sha256:abc")


def test_how_many_sentences_a_bootstrap_needs():
    assert [bootstrap_sentences_needed(c) for c in (0.9, 0.95, 0.99, 0.999)] == [3, 4, 4, 5]
    # below that, the bounds are the extreme sentences' own values, not estimates:
    three = bootstrap_ratio(np.array([1.0, 2.0, 3.0]), np.array([10, 10, 10]))
    assert three == (pytest.approx(0.1), pytest.approx(0.3))
    assert bootstrap_ratio(np.array([2.15]), np.array([10])) == (0.215, 0.215)


@pytest.mark.parametrize("sentences", [1, 2, 3])
def test_mass_over_fewer_than_four_sentences_has_no_interval_and_says_why(sentences):
    noun = "sentence" if sentences == 1 else "sentences"
    found = outcome(make_spec(), [10] * sentences, [2.15] * sentences)
    assert found.value == pytest.approx(0.215) and found.ci is None and found.passed
    assert found.ci_note == f"{sentences} {noun}, the bootstrap needs 4"


def test_four_sentences_have_a_bootstrap_interval():
    found = outcome(make_spec(), [10, 10, 10, 10], [1.0, 2.0, 3.0, 2.0])
    assert found.ci is not None and found.ci[0] < found.value < found.ci[1]
    assert found.ci_note is None


def test_sentences_without_a_counted_source_do_not_count_towards_the_bootstrap():
    found = outcome(make_spec(), [10, 0, 0, 0, 10], [1.0, 0, 0, 0, 2.0])
    assert found.ci is None and found.ci_note == "2 sentences, the bootstrap needs 4"


@pytest.mark.parametrize("options", [{"average": "sentence"}, {"per": "sentence"}])
def test_every_sentence_bootstrap_is_held_to_the_same_rule(options):
    spec = make_spec("argmax", **options) if "average" in options else make_spec(**options)
    found = outcome(spec, [10], [3.0])
    assert found.ci is None and found.ci_note == "1 sentence, the bootstrap needs 4"


def test_shares_pooled_over_sources_keep_their_wilson_interval_from_one_sentence():
    found = outcome(make_spec("argmax"), [10], [9.0])
    assert found.ci == pytest.approx(wilson(9, 10)) and found.ci_note is None


def test_confidence_without_an_interval_fails_and_says_why():
    found = outcome(make_spec(confidence=0.95), [10], [2.15])
    assert found.value == pytest.approx(0.215) and not found.passed
    assert not found.meets_expectation
    assert found.failure == ("confidence 0.95 needs the whole interval to meet the expectation, "
                             "and there is none (1 sentence, the bootstrap needs 4): add "
                             "sentences or drop confidence")


def test_a_higher_confidence_needs_more_sentences():
    spec = make_spec(confidence=0.999)
    assert outcome(spec, [10] * 4, [2.0, 2.1, 2.2, 2.3]).ci_note == \
        "4 sentences, the bootstrap needs 5"
    assert outcome(spec, [10] * 5, [2.0, 2.1, 2.2, 2.3, 2.4]).ci is not None


def test_unchanged_with_confidence_is_left_to_the_snapshot():
    found = outcome(make_spec(expect=Expectation("unchanged", 0.0), confidence=0.95), [10],
                    [2.15])
    assert found.passed and found.failure is None


def test_report_json_terminal_and_html_say_the_interval_cannot_be_estimated():
    (result,) = results(make_spec(quantifier="any"), [10], [2.15])
    data = result.to_json()
    assert (data["value"], data["ci"], data["ci_note"]) == (0.215, None,
                                                           "1 sentence, the bootstrap needs 4")
    assert data["heads"][0]["ci"] is None and data["heads"][0]["ci_note"] == data["ci_note"]
    assert measured_line(result) == ("mass = 0.215, CI n/a (1 sentence, the bootstrap needs 4), "
                                     "expected >= 0.2 (n=10, left out 0)")
    assert head_line(result.heads[0]) == ("L1H1: 0.215, CI n/a (1 sentence, the bootstrap "
                                          "needs 4), n=10, left out 0 (meets the expectation)")
    page = render_index_html({"results": [data], "summary": {}})
    assert "<td>n/a (1 sentence, the bootstrap needs 4)</td>" in page


def test_the_confidence_failure_is_on_the_summary_line():
    (result,) = results(make_spec(confidence=0.95), [10], [2.15])[:1]
    assert not result.passed
    assert measured_line(result).endswith("(n=10, left out 0); " + result.failure)


def test_intervals_that_exist_are_rounded_in_report_json():
    (result,) = results(make_spec(), [10, 7, 9, 10], [2.15, 1.0, 3.3, 0.4])[:1]
    low, high = result.to_json()["ci"]
    assert (low, high) == (round(result.ci[0], 6), round(result.ci[1], 6)) and low < high
