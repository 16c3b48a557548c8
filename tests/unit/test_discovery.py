"""The discovery pieces on their own: the catalogue's criteria on hand-made profile numbers, the
thresholds of written claims, the ranking for ``--for``, and the written file reading back as
written whatever names and paths it holds."""

from __future__ import annotations

import numpy as np
import pytest

from headprobe.claims.files import load_hypothesis_file
from headprobe.discovery.catalogue import (
    ARGMAX_CRITERION,
    CATALOGUE,
    behaviour,
    closest,
    find_behaviours,
    strongest,
)
from headprobe.discovery.margins import FOLDS, Margin, lowest, parts_of
from headprobe.discovery.ranking import rank_heads, threshold
from headprobe.discovery.writer import Provenance, WrittenClaim, hypothesis_file, slug
from headprobe.evaluation.profile_stats import TARGETS, SentenceNumbers
from headprobe.evaluation.results import Baseline, ClaimResult
from headprobe.heads import Head

HEADS = (Head(1, 1), Head(1, 2), Head(1, 3))


def sentence(sources: int, argmax: dict[str, list[float]], mass: dict[str, list[float]],
             entropy: list[float]) -> SentenceNumbers:
    """One sentence of ``sources`` tokens, every target counted for every token; hits given
    as shares per head (multiplied by ``sources``)."""
    a = np.zeros((len(TARGETS), len(HEADS)))
    m = np.zeros((len(TARGETS), len(HEADS)))
    for name, shares in argmax.items():
        a[TARGETS.index(name)] = np.array(shares) * sources
    for name, shares in mass.items():
        m[TARGETS.index(name)] = np.array(shares) * sources
    return SentenceNumbers(argmax=a, mass=m, counted=np.full(len(TARGETS), sources),
                           entropy=np.array(entropy) * sources, sources=sources)


def numbers(count: int = 60, **kwargs) -> tuple[SentenceNumbers, ...]:
    return tuple(sentence(20, **kwargs) for _ in range(count))


def test_argmax_criterion_is_judged_on_the_lower_bound_not_the_estimate():
    # L1H1: 0.95 of 1200 tokens (lower bound ~0.937) shows `previous`; L1H2: 0.905 (lower bound
    # ~0.888) does not, though its estimate is above 0.9; L1H3 none.
    found = find_behaviours(numbers(argmax={"previous": [0.95, 0.905, 0.1]}, mass={},
                                    entropy=[0.2, 0.2, 0.2]), HEADS)
    assert [(f.behaviour.name, str(f.head), f.measure) for f in found] == \
        [("previous", "L1H1", "argmax")]
    assert found[0].ci[0] >= ARGMAX_CRITERION and found[0].n == 1200 and found[0].sentences == 60


def test_a_behaviour_no_head_shows_names_its_closest_head_with_value_and_interval():
    # punct: no head meets either criterion; L1H2's argmax (0.85) is nearer 0.9 than any mass
    # is to 0.5, so it is the closest, with its own value and interval.
    profile = numbers(argmax={"punct": [0.2, 0.85, 0.5]}, mass={"punct": [0.3, 0.3, 0.42]},
                      entropy=[0.5, 0.6, 0.7])
    assert not [f for f in find_behaviours(profile, HEADS) if f.behaviour.name == "punct"]
    near = closest(profile, HEADS, behaviour("punct"))
    assert near is not None and (str(near.head), near.measure) == ("L1H2", "argmax")
    assert near.value == pytest.approx(0.85) and near.ci[0] < 0.85 < near.ci[1]
    assert near.ci[0] < ARGMAX_CRITERION and near.n == 1200
    broad = closest(profile, HEADS, behaviour("broad"))
    assert broad is not None and (str(broad.head), broad.measure) == ("L1H3", "entropy")


def test_mass_criterion_applies_when_argmax_does_not_and_argmax_wins_when_both_do():
    found = find_behaviours(numbers(argmax={"cls": [0.99, 0.3, 0.0]},
                                    mass={"cls": [0.7, 0.8, 0.45]}, entropy=[0.5, 0.5, 0.5]),
                            HEADS)
    assert [(str(f.head), f.measure) for f in found] == [("L1H1", "argmax"), ("L1H2", "mass")]


def test_broad_heads_by_entropy_and_the_figure_label_is_the_first_in_catalogue_order():
    found = find_behaviours(numbers(argmax={"next": [0.97, 0.0, 0.0]}, mass={},
                                    entropy=[0.95, 0.97, 0.85]), HEADS)
    assert {(f.behaviour.name, str(f.head)) for f in found} == {
        ("next", "L1H1"), ("broad", "L1H1"), ("broad", "L1H2")}
    labels = {str(head): f.behaviour.name for head, f in strongest(found).items()}
    assert labels == {"L1H1": "next", "L1H2": "broad"}
    assert [entry.name for entry in CATALOGUE][-1] == "broad"


@pytest.mark.parametrize("low, value, expected", [
    (0.85, 0.9, 0.85), (0.8499999, 0.9, 0.8), (0.9997, 1.0, 0.95), (0.04, 0.06, 0.0),
    (0.7000000000000001, 0.8, 0.7), (0.93, 0.91, 0.9),  # never above the value itself
])
def test_threshold_is_the_lower_bound_rounded_down_to_005(low, value, expected):
    got = threshold(low, value)
    assert got == expected and got <= min(low, value)
    assert repr(got) == repr(expected)  # prints as written: 0.85, not 0.8500000000000001


def result(head: str, value: float | None, ci, baseline: float | None = 0.5) -> ClaimResult:
    return ClaimResult(file="f", id="i", head=head, claim="c", measure="argmax", level="word",
                       model="m", model_fingerprint="sha256:x", expect=">= 0", value=value,
                       ci=ci, n=40, left_out=0, passed=True,
                       baseline=None if baseline is None else Baseline(1, baseline))


def test_ranking_proposes_heads_whose_lower_bound_beats_the_baseline():
    ranked = rank_heads([result("L1H1", 0.6, (0.45, 0.72)), result("L1H2", 0.8, (0.66, 0.9)),
                         result("L1H3", None, None), result("L2H1", 0.7, (0.55, 0.8))], top=3)
    assert [(r.rank, r.result.head, r.proposed) for r in ranked] == [
        (1, "L1H2", True), (2, "L2H1", True), (3, "L1H1", False), (4, "L1H3", False)]
    only_one = rank_heads([result("L1H2", 0.8, (0.66, 0.9)), result("L2H1", 0.7, (0.55, 0.8))],
                          top=1)
    assert [r.proposed for r in only_one] == [True, False] and only_one[1].beats_baseline


@pytest.mark.parametrize("model, path, label", [
    ("sentence-transformers/all-MiniLM-L6-v2", "discovered.sentences.txt", "the bundled set"),
    ('we"ird: model # name', "../data/with space/and 'quotes'.txt", "a: file # with \\ stuff"),
    ("модель/ünïcode", "données/phrases.txt", "  two  spaces  "),
])
def test_written_file_reads_back_as_written(tmp_path, model, path, label):
    target = tmp_path / "out" / "found.yaml"
    target.parent.mkdir()
    sentence_file = (target.parent / path).resolve()
    sentence_file.parent.mkdir(parents=True, exist_ok=True)
    sentence_file.write_text("[The]{det} [cat]{noun} sat on the mat.\n", encoding="utf-8")
    why = (f"headprobe discover: cls (attends to [CLS] (a sink)). argmax 0.999, 95% CI [0.998, "
           f"1.000], n=11041, 576 sentences of {label}; criterion: >= 90% of tokens.")
    claims = [WrittenClaim("cls-L4H5", "L4H5: token -> cls", "argmax", 0.95, why),
              WrittenClaim("broad-L1H8", "L1H8: token", "entropy", 0.9, why * 3),
              WrittenClaim(slug("span:det -> span:noun") + "-L4H2", "L4H2: span:det -> span:noun",
                           "argmax", 0.6, why, baseline=True)]
    text = hypothesis_file(Provenance(model=model, level="word", sentences_path=path,
                                      sentences_label=label, sentence_count=576,
                                      date="2026-12-01", command="headprobe discover -o x.yaml",
                                      unknown_words=3), claims)
    target.write_text(text, encoding="utf-8")
    read = load_hypothesis_file(target)
    assert read.model == model and read.level == "word" and read.unknown_words == "allow"
    assert [(c.id, c.claim_text, c.why, str(c.measure), str(c.expect), c.baseline)
            for c in read.claims] == [
        (c.id, c.claim, c.why, c.measure, f">= {c.expect:g}", "offset" if c.baseline else None)
        for c in claims]
    assert read.sets["discovery"].sentences[0].text == "The cat sat on the mat."
    assert max(len(line) for line in text.splitlines() if "why" not in line) <= 100


@pytest.mark.parametrize("count", [1, 2, 3])
def test_mass_and_entropy_find_nothing_from_too_few_sentences_for_a_bootstrap(count):
    # A bootstrap over 1-3 sentences has no spread (check reports no interval): every sentence
    # at mass 0.8 on [CLS] and entropy 0.95 is no finding, though the values would be.
    few = numbers(count, argmax={}, mass={"cls": [0.8, 0.8, 0.8]}, entropy=[0.95] * 3)
    assert find_behaviours(few, HEADS) == []
    assert [f.measure for f in find_behaviours(numbers(4, argmax={}, mass={"cls": [0.8] * 3},
                                                       entropy=[0.2] * 3), HEADS)] == ["mass"] * 3


def test_parts_are_disjoint_folds_and_length_groups_that_never_split_a_length():
    lengths = [5, 9, 9, 9, 12, 30, 7, 9, 20, 14, 6, 25]
    parts = parts_of(lengths)
    folds = [p for p in parts if p.name.startswith("fold")]
    groups = [p for p in parts if not p.name.startswith("fold")]
    assert len(folds) == FOLDS and sorted(i for p in folds for i in p.members) == list(range(12))
    assert sorted(i for p in groups for i in p.members) == list(range(12))
    for group in groups:  # every sentence of a length in one group
        inside = {lengths[i] for i in group.members}
        assert all(lengths[i] not in inside for other in groups if other is not group
                   for i in other.members)
    assert groups[0].name.startswith("short sentences (5-") and "tokens" in groups[0].name


def test_the_margin_is_the_lowest_bound_less_the_spread_of_the_parts():
    margin = lowest(0.80, {"a": 0.76, "b": float("nan"), "c": 0.79},
                    {"a": 0.78, "b": float("nan"), "c": 0.83})
    assert (margin.where, margin.bound) == ("a", 0.76)
    assert margin.spread == pytest.approx(0.05) and margin.low == pytest.approx(0.71)
    assert threshold(margin.low, 0.81) == 0.7
    assert lowest(0.5, {}, {}) == Margin(0.5, "all", 0.5, 0.0)


def test_a_subset_of_an_accumulator_equals_the_claim_over_those_sentences_alone():
    from headprobe.claims.language import parse_claim
    from headprobe.claims.spec import ClaimSpec, Expectation, Measure
    from headprobe.evaluation.accumulate import ClaimAccumulator
    from headprobe.evaluation.accumulate import SentenceNumbers as Numbers

    spec = ClaimSpec(file="f", line=1, id="x", claim=parse_claim("L1H1,L1H2: token -> next"),
                     over=("s",), expect=Expectation(">=", 0.5), measure=Measure("mass"))
    rng = np.random.default_rng(3)
    rows = [Numbers(10, 0, rng.random(2) * 10, None) for _ in range(40)]
    whole = ClaimAccumulator(spec, (Head(1, 1), Head(1, 2)))
    alone = ClaimAccumulator(spec, (Head(1, 1), Head(1, 2)))
    for index, numbers in enumerate(rows):
        whole.record(index, f"s{index}", numbers)
        if index % 3 == 0:
            alone.record(index, f"s{index}", numbers)
    part = whole.subset(range(0, 40, 3))
    assert part.head_results(model="m", fingerprint="f") == \
        alone.head_results(model="m", fingerprint="f")
    assert part.counts() == {i: 10 for i in range(0, 40, 3)}
