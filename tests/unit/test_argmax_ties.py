"""Ties of the largest weight share the argmax hit (and the top-K places) among the tied
positions, within a relative 1e-6, in claims, profiles and discovery alike: a uniform head does not
"look at [CLS]" because [CLS] comes first."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from headprobe.claims.spec import Claim, ClaimSpec, Expectation, Measure, Sentence, Source
from headprobe.discovery.catalogue import find_behaviours
from headprobe.evaluation.accumulate import ClaimAccumulator
from headprobe.evaluation.measures import TIE_RTOL, chosen_cells, source_hits
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile_stats import STATISTICS, ProfileAccumulator, target_of
from headprobe.heads import Head
from headprobe.runs import Run

TOKENS = ["[CLS]", "the", "un", "##real", "cat", ",", "sat", ".", "[SEP]"]
WORD_IDS = (None, 0, 1, 1, 2, 3, 4, 5, None)
OFFSETS = ((0, 0), (0, 3), (4, 6), (6, 10), (11, 14), (14, 15), (16, 19), (19, 20), (0, 0))
HEADS = (Head(1, 1), Head(1, 2), Head(1, 3))  # uniform, quantised (many ties), peaked on [CLS]


def make_run(seed: int) -> Run:
    rng = np.random.default_rng(seed)
    attentions = np.zeros((1, 3, 9, 9), dtype=np.float32)
    attentions[0, 0] = np.float32(1 / 9)  # a zeroed query: exactly uniform rows
    steps = rng.integers(1, 3, size=(9, 9)).astype(np.float32)  # weights of 1 or 2: ties
    attentions[0, 1] = steps / steps.sum(axis=-1, keepdims=True)
    attentions[0, 2] = 0.2 / 8
    attentions[0, 2, :, 0] = 0.8
    return Run(text="the unreal cat, sat.", tokens=TOKENS, input_ids=np.arange(9, dtype=np.int32),
               word_ids=WORD_IDS, offsets=OFFSETS, attentions=attentions)


def claim_values(runs: list[Run], target: str, measure: str = "argmax") -> list[float | None]:
    spec = ClaimSpec(file="f", line=1, id="x",
                     claim=Claim(heads=(), source=Source("token"), target=target_of(target)),
                     over=("s",), expect=Expectation(">=", 0.0), measure=Measure(measure))
    claim = ClaimAccumulator(spec, HEADS)
    for index, run in enumerate(runs):
        claim.add(index, Sentence(run.text), run)
    return [r.value for r in claim.results(model="m", fingerprint="f")]


# --- the measure ---------------------------------------------------------------------------

def test_a_uniform_row_gives_each_position_one_nth_of_the_argmax_hit():
    uniform = np.full((1, 7), 1 / 7, dtype=np.float32)
    cls = np.array([[1, 0, 0, 0, 0, 0, 0]], bool)
    assert source_hits(uniform, cls, Measure("argmax")).tolist() == pytest.approx([1 / 7])
    assert source_hits(uniform, cls, Measure("topk", 1)).tolist() == pytest.approx([1 / 7])
    every = np.ones((1, 7), bool)
    assert source_hits(uniform, every, Measure("argmax")).tolist() == [1.0]


def test_weights_within_one_millionth_of_the_maximum_tie_and_further_ones_do_not():
    assert TIE_RTOL == 1e-6
    target = np.array([[True, False, False]])
    near = np.array([[0.4, 0.4 * (1 + 5e-7), 0.2]], dtype=np.float32)  # a few float32 ulps
    far = np.array([[0.4, 0.4 * (1 + 1e-5), 0.2]], dtype=np.float32)
    assert near[0, 0] != near[0, 1]
    assert source_hits(near, target, Measure("argmax")).tolist() == [0.5]
    assert source_hits(far, target, Measure("argmax")).tolist() == [0.0]


def random_tie_break_chance(row: np.ndarray, targets: np.ndarray, k: int) -> float:
    """The share of the orders of ``row`` (largest first, ties in every possible order) that put
    a target among the first k."""
    orders = [order for order in itertools.permutations(range(row.size))
              if all(row[a] >= row[b] for a, b in itertools.pairwise(order))]
    return sum(bool(targets[list(order[:k])].any()) for order in orders) / len(orders)


def test_topk_is_the_chance_of_a_target_in_the_top_k_under_a_random_tie_break():
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 4, size=(2, 11, 6)).astype(np.float32)  # [head, source, position]
    targets = rng.random((11, 6)) < 0.3
    for k in (1, 2, 3, 5, 6, 8):
        expected = [[random_tie_break_chance(rows[h, s], targets[s], k) for s in range(11)]
                    for h in range(2)]
        got = source_hits(rows, targets, Measure("topk", k))
        assert got == pytest.approx(np.array(expected)), k
    argmax = source_hits(rows, targets, Measure("argmax"))
    assert argmax == pytest.approx(source_hits(rows, targets, Measure("topk", 1)))


def test_failure_diagrams_mark_every_tied_cell_as_looked_at():
    rows = np.array([[0.3, 0.2, 0.2, 0.2, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert chosen_cells(rows, Measure("argmax")).tolist() == [
        [True, False, False, False, False], [True] * 5]
    assert chosen_cells(rows, Measure("topk", 2)).tolist() == [
        [True, True, True, True, False], [True] * 5]


# --- claims, profiles and discovery agree --------------------------------------------------

def test_a_uniform_head_scores_one_over_length_on_cls_not_one():
    (uniform, _, peaked) = claim_values([make_run(0)], "cls")
    assert uniform == pytest.approx(1 / 9) and peaked == 1.0


def test_profile_argmax_statistics_share_ties_as_claims_do():
    runs = [make_run(seed) for seed in range(3)]
    profile = ProfileAccumulator(HEADS)
    for run in runs:
        profile.add(level_view(run, "token"))
    values = profile.values()
    assert values[0, STATISTICS.index("argmax:cls")] == pytest.approx(1 / 9, abs=1e-12)
    for s, statistic in enumerate(STATISTICS):
        if statistic.startswith("argmax:"):
            expected = claim_values(runs, statistic.split(":", 1)[1])
            assert values[:, s] == pytest.approx(np.array(expected, dtype=float), abs=1e-12,
                                                 nan_ok=True), statistic


def test_discovery_does_not_call_a_uniform_head_a_cls_head():
    profile = ProfileAccumulator(HEADS)
    for seed in range(8):  # 56 sources: enough for a Wilson lower bound above 0.9
        profile.add(level_view(make_run(seed), "token"))
    found = {(f.behaviour.name, str(f.head)) for f in find_behaviours(tuple(profile.sentences),
                                                                      HEADS)}
    assert ("cls", "L1H1") not in found and ("broad", "L1H1") in found
    assert ("cls", "L1H3") in found
