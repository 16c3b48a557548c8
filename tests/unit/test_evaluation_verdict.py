"""Verdicts: pooling, per-sentence checks, confidence, baselines, quantifiers, health warnings and
the report.json form of a result, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from headprobe.claims.spec import Claim, ClaimSpec, Expectation, Measure, Sentence, Source, Target
from headprobe.evaluation import Baseline, ClaimAccumulator, ClaimResult
from headprobe.evaluation.intervals import bootstrap_ratio, wilson
from headprobe.evaluation.verdict import judge
from headprobe.heads import Head, HeadPattern
from headprobe.runs import Run

NO_BASELINE: dict[int, float] = {}
NO_CI = "1 sentence, the bootstrap needs 4"


def make_spec(expect: Expectation = Expectation(">=", 0.8), *, target: str = "next",
              **options) -> ClaimSpec:
    claim = Claim(heads=(HeadPattern(1, None),), source=Source("token"), target=Target(target))
    return ClaimSpec(file="hyp/a.yaml", line=4, id="next-token", claim=claim, over=("s",),
                     expect=expect, claim_text="L1H*: token -> next", **options)


def verdict(spec: ClaimSpec, counts, hits, left_out=None, texts=None, baseline=NO_BASELINE):
    counts = np.array(counts)
    texts = texts or [f"sentence {i}" for i in range(len(counts))]
    left_out = np.zeros_like(counts) if left_out is None else np.array(left_out)
    return judge(spec, counts, left_out, np.array(hits, dtype=float), texts,
                 list(range(100, 100 + len(counts))), baseline)


# --- per: pool -----------------------------------------------------------------------------

@pytest.mark.parametrize("expect, passed", [
    (Expectation(">=", 0.8), True),          # 0.8 exactly meets >= 0.8
    (Expectation(">", 0.8), False),
    (Expectation("<=", 0.8), True),
    (Expectation("<", 0.8), False),
    (Expectation("between", 0.5, 0.8), True),
    (Expectation("between", 0.85, 0.9), False),
])
def test_pooled_value_is_hits_over_all_sources(expect, passed):
    outcome = verdict(make_spec(expect), counts=[6, 4], hits=[5, 3])
    assert (outcome.value, outcome.n, outcome.passed) == (0.8, 10, passed)
    assert outcome.ci == pytest.approx(wilson(8, 10))


def test_confidence_requires_the_whole_interval_to_meet_the_expectation():
    loose = verdict(make_spec(), counts=[10], hits=[9])
    strict = verdict(make_spec(confidence=0.95), counts=[10], hits=[9])
    assert loose.passed and not strict.passed            # Wilson 95%: [0.596, 0.982]
    assert strict.ci == pytest.approx(wilson(9, 10, 0.95))
    half = verdict(make_spec(confidence=0.5), counts=[10], hits=[9])
    assert half.passed and half.ci == pytest.approx(wilson(9, 10, 0.5))   # [0.818, 0.948]


def test_mass_interval_is_the_sentence_bootstrap():
    spec = make_spec(Expectation(">=", 0.3), measure=Measure("mass"))
    outcome = verdict(spec, counts=[2, 3, 1, 2], hits=[0.5, 1.5, 0.25, 0.75])
    assert outcome.value == pytest.approx(3.0 / 8)
    assert outcome.ci == bootstrap_ratio(np.array([0.5, 1.5, 0.25, 0.75]),
                                         np.array([2, 3, 1, 2]))


# --- per: sentence -------------------------------------------------------------------------

def test_per_sentence_fails_on_any_failing_sentence_and_lists_counterexamples():
    texts = ["a much longer sentence here", "tiny", "mid length", "no sources", "also tiny"]
    outcome = verdict(make_spec(per="sentence"), counts=[4, 2, 5, 0, 4], hits=[1, 1, 5, 0, 2],
                      texts=texts)
    assert not outcome.passed
    assert outcome.sentences == 4  # the sentence without sources is not checked
    # Simplest first: shorter text, then lower value ("tiny" 0.5 vs "also tiny" 0.5: shorter).
    assert outcome.counterexamples == ("tiny", "also tiny", "a much longer sentence here")
    assert outcome.value == pytest.approx(9 / 15)


def test_per_sentence_counterexamples_of_equal_length_go_lowest_value_first():
    outcome = verdict(make_spec(per="sentence"), counts=[4, 4, 4], hits=[3, 1, 4],
                      texts=["bbb", "aaa", "ccc"])
    assert outcome.counterexamples == ("aaa", "bbb")


def test_per_sentence_passes_when_every_sentence_holds_even_if_the_pooled_interval_does_not():
    spec = make_spec(Expectation(">=", 0.9), per="sentence", confidence=0.95)
    outcome = verdict(spec, counts=[2, 2], hits=[2, 2])
    assert outcome.passed and outcome.counterexamples == () and outcome.sentences == 2
    assert outcome.ci[0] < 0.9                           # the pooled Wilson interval is wide


# --- baseline ------------------------------------------------------------------------------

@pytest.mark.parametrize("margin, passed", [(0.0, True), (0.2, True), (0.3, False)])
def test_baseline_must_be_beaten_strictly_by_the_margin(margin, passed):
    spec = make_spec(Expectation(">=", 0.5), baseline="offset", margin=margin)
    outcome = verdict(spec, counts=[6, 4], hits=[5, 3], baseline={-1: 5.0, 1: 3.0, 2: 5.0})
    assert outcome.baseline == Baseline(-1, 0.5)         # 0.8 > 0.5 + 0.3 is false
    assert outcome.baseline.to_json() == {"offset": -1, "value": 0.5}
    assert outcome.passed is passed


def test_a_claim_equal_to_its_baseline_fails():
    spec = make_spec(Expectation(">=", 0.5), baseline="offset")
    outcome = verdict(spec, counts=[10], hits=[8], baseline={3: 8.0})
    assert outcome.baseline == Baseline(3, 0.8) and not outcome.passed


def test_no_baseline_without_the_option():
    assert verdict(make_spec(), counts=[10], hits=[8], baseline={1: 8.0}).baseline is None


# --- health and emptiness ------------------------------------------------------------------

def test_few_sources_earn_a_warning_and_twenty_do_not():
    few = verdict(make_spec(), counts=[19], hits=[19])
    enough = verdict(make_spec(), counts=[20], hits=[20])
    assert few.warnings == ("only 19 source(s) counted (fewer than 20): the value rests on "
                            "little evidence — add sentences",)
    assert enough.warnings == ()


def test_more_than_half_left_out_earns_a_warning_exactly_half_does_not():
    most = verdict(make_spec(), counts=[20, 1], hits=[20, 1], left_out=[15, 7])
    half = verdict(make_spec(), counts=[21], hits=[21], left_out=[21])
    assert most.warnings == ("22 of 43 'token' sources were left out (more than half) because "
                             "they had no 'next' target in their sentence",)
    assert (most.left_out, half.warnings) == (22, ())


@pytest.mark.parametrize("per", ["pool", "sentence"])
def test_zero_counted_sources_fail_without_a_value(per):
    outcome = verdict(make_spec(Expectation("<=", 1.0), per=per), counts=[0, 0], hits=[0, 0],
                      left_out=[3, 1])
    assert (outcome.value, outcome.ci, outcome.n, outcome.left_out, outcome.passed) == \
        (None, None, 0, 4, False)
    assert outcome.warnings[0].startswith("no source was counted: all 4 'token' sources in 2 "
                                          "sentence(s) were left out")


@pytest.mark.parametrize("expect, worst", [
    (Expectation(">=", 0.5), (101, 103, 104)),           # lowest values first, then by index
    (Expectation("<", 0.5), (100, 102, 101)),
    (Expectation("between", 0.2, 0.4), (100, 102, 101)),  # furthest from the middle 0.3
])
def test_worst_sentences_are_furthest_from_the_expectation(expect, worst):
    outcome = verdict(make_spec(expect), counts=[1, 2, 1, 1, 1, 0], hits=[1, 0, 1, 0, 0, 0])
    assert outcome.worst == worst


# --- quantifiers through the accumulator ---------------------------------------------------

def make_run() -> Run:
    """The text "a b c" as [CLS] a b c [SEP]; 1 layer, 4 heads. L1H1 puts 0.6 on the next
    position; L1Hh for h = 2, 3, 4 puts 0.1 * h on it (the rest spread evenly)."""
    attentions = np.zeros((1, 4, 5, 5))  # [layer, head, query, key]
    attentions[0, 0] = np.full((5, 5), 0.1) + 0.5 * np.eye(5, k=1)
    attentions[0, 0, 4] = [0.1, 0.1, 0.1, 0.1, 0.6]
    for h in (1, 2, 3):
        attentions[0, h] = np.full((5, 5), (1 - 0.1 * (h + 1)) / 4)
        attentions[0, h][np.arange(4), np.arange(1, 5)] = 0.1 * (h + 1)
    return Run(text="a b c", tokens=["[CLS]", "a", "b", "c", "[SEP]"],
               input_ids=np.arange(5, dtype=np.int32), word_ids=(None, 0, 1, 2, None),
               offsets=((0, 0), (0, 1), (2, 3), (4, 5), (0, 0)),
               attentions=attentions.astype(np.float32))


HEADS = [Head(1, 1), Head(1, 2), Head(1, 3), Head(1, 4)]
# token -> next mass per head: 0.6, 0.2, 0.3, 0.4.


def accumulated(expect: Expectation, quantifier: str, **options) -> list[ClaimResult]:
    spec = make_spec(expect, measure=Measure("mass"), quantifier=quantifier, **options)
    accumulator = ClaimAccumulator(spec, HEADS)
    accumulator.add(7, Sentence("a b c"), make_run())
    return accumulator.results(model="tiny", fingerprint="sha256:abc")


def test_each_gives_one_result_per_head():
    results = accumulated(Expectation(">=", 0.35), "each")
    assert [r.head for r in results] == ["L1H1", "L1H2", "L1H3", "L1H4"]
    assert [r.value for r in results] == pytest.approx([0.6, 0.2, 0.3, 0.4])
    assert [r.passed for r in results] == [True, False, False, True]
    assert all(r.worst == (7,) for r in results)


@pytest.mark.parametrize("expect, head, passed", [
    (Expectation(">=", 0.35), "L1H1", True),             # the passing head with the highest value
    (Expectation("<=", 0.35), "L1H2", True),             # ... with the lowest value
    (Expectation("between", 0.2, 0.45), "L1H3", True),   # ... closest to the middle 0.325
    (Expectation(">=", 0.9), "L1H1", False),             # none passes: the closest to passing
    (Expectation("<", 0.1), "L1H2", False),
])
def test_any_reports_the_best_head(expect, head, passed):
    (result,) = accumulated(expect, "any")
    assert (result.head, result.passed) == (head, passed)


@pytest.mark.parametrize("expect, head, passed", [
    (Expectation(">=", 0.9), "L1H1", True),              # nobody passes; L1H1 came closest
    (Expectation(">=", 0.5), "L1H1", False),             # L1H1 is the offending head
])
def test_none_passes_only_when_no_head_does(expect, head, passed):
    (result,) = accumulated(expect, "none")
    assert (result.head, result.passed) == (head, passed)


# --- the report.json form ------------------------------------------------------------------

def test_result_json_has_exactly_the_spec_keys_in_order():
    (result,) = accumulated(Expectation(">=", 0.35, text=">= 35%"), "any")
    assert result.to_json() == {
        "file": "hyp/a.yaml", "id": "next-token", "head": "L1H1",
        "claim": "L1H*: token -> next", "measure": "mass", "level": "token", "model": "tiny",
        "model_fingerprint": "sha256:abc", "expect": ">= 35%", "value": 0.6,
        "ci": None, "n": 3, "left_out": 0, "passed": True, "figures": [],
        "ci_note": NO_CI,  # a bootstrap over one sentence has no spread
        "quantifier": "any",
        "heads": [  # every matched head, best first
            {"head": "L1H1", "value": 0.6, "ci": None, "n": 3, "left_out": 0,
             "passed": True, "ci_note": NO_CI},
            {"head": "L1H4", "value": 0.4, "ci": None, "n": 3, "left_out": 0,
             "passed": True, "ci_note": NO_CI},
            {"head": "L1H3", "value": 0.3, "ci": None, "n": 3, "left_out": 0,
             "passed": False, "ci_note": NO_CI},
            {"head": "L1H2", "value": 0.2, "ci": None, "n": 3, "left_out": 0,
             "passed": False, "ci_note": NO_CI}],
        "warnings": ["only 3 source(s) counted (fewer than 20): the value rests on little "
                     "evidence — add sentences"]}
    assert list(result.to_json())[:15] == ["file", "id", "head", "claim", "measure", "level",
                                           "model", "model_fingerprint", "expect", "value", "ci",
                                           "n", "left_out", "passed", "figures"]


def test_result_json_adds_per_sentence_and_baseline_fields_and_rounds():
    (result,) = accumulated(Expectation(">=", 0.2), "each", per="sentence",
                            baseline="offset")[1:2]
    data = result.to_json()
    assert data["value"] == 0.2 and data["passed"] is False     # the baseline (+1) scores 1.0
    assert data["sentences"] == 1 and data["counterexamples"] == []
    assert data["baseline"] == {"offset": 1, "value": 1.0} and data["baseline_beaten"] is False
    assert data["ci"] is None and data["ci_note"] == NO_CI
