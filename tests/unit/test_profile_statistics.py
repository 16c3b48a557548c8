"""Profile statistics (headprobe/evaluation/profile_stats.py): every head and statistic in one pass,
equal to evaluating each one as a claim, and entropy equal to a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headprobe.claims.spec import Claim, ClaimSpec, Expectation, Measure, Sentence, Source
from headprobe.evaluation.accumulate import ClaimAccumulator
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile_stats import (
    ALL_STATISTICS,
    ATTENTION_STATISTICS,
    STATISTICS,
    TARGETS,
    ProfileAccumulator,
    target_of,
)
from headprobe.heads import Head
from headprobe.runs import Run

# Distinct sizes: 2 layers, 3 heads, 9 tokens (a word of two pieces, punctuation).
TOKENS = ["[CLS]", "the", "un", "##real", "cat", ",", "sat", ".", "[SEP]"]
WORD_IDS = (None, 0, 1, 1, 2, 3, 4, 5, None)
OFFSETS = ((0, 0), (0, 3), (4, 6), (6, 10), (11, 14), (14, 15), (16, 19), (19, 20), (0, 0))
HEADS = tuple(Head(layer, head) for layer in (1, 2) for head in (1, 2, 3))


def _run(seed: int) -> Run:
    rng = np.random.default_rng(seed)
    attentions = rng.dirichlet(np.ones(9), size=(2, 3, 9)).astype(np.float32)
    return Run(text="the unreal cat, sat.", tokens=TOKENS, input_ids=np.arange(9, dtype=np.int32),
               word_ids=WORD_IDS, offsets=OFFSETS, attentions=attentions)


def test_statistics_are_named_as_spec_11_and_14_say():
    assert ATTENTION_STATISTICS[0] == "argmax:previous" and ATTENTION_STATISTICS[-1] == "entropy"
    assert len(ATTENTION_STATISTICS) == 2 * 11 + 1
    assert (*ATTENTION_STATISTICS, "output-norm") == STATISTICS
    assert (*STATISTICS, "effect:hidden") == ALL_STATISTICS
    assert {s.split(":", 1)[1] for s in ATTENTION_STATISTICS[:-1]} == set(TARGETS) == {
        "previous", "next", "self", "offset:-2", "offset:+2", "offset:-3", "offset:+3", "cls",
        "sep", "punct", "same-word"}


@pytest.mark.parametrize("level", ["token", "word"])
def test_every_statistic_equals_the_same_claim_evaluated_on_its_own(level):
    runs = [_run(seed) for seed in range(3)]
    profile = ProfileAccumulator(HEADS)
    for run in runs:
        profile.add(level_view(run, level))
    values = profile.values()
    for s, statistic in enumerate(ATTENTION_STATISTICS[:-1]):
        measure, target = statistic.split(":", 1)
        spec = ClaimSpec(file="f", line=1, id="x",
                         claim=Claim(heads=(), source=Source("token"), target=target_of(target)),
                         over=("s",), expect=Expectation(">=", 0.0), measure=Measure(measure),
                         level=level)  # type: ignore[arg-type]
        claim = ClaimAccumulator(spec, HEADS)
        for index, run in enumerate(runs):
            claim.add(index, Sentence(run.text), run)
        for h, result in enumerate(claim.results(model="m", fingerprint="f")):
            if result.value is None:
                assert math.isnan(values[h, s]), (statistic, h)
            else:
                assert values[h, s] == pytest.approx(result.value, abs=1e-12), (statistic, h)


def test_entropy_is_the_mean_of_each_source_row_entropy_over_log_length():
    run = _run(7)
    profile = ProfileAccumulator(HEADS)
    profile.add(level_view(run, "token"))
    sources = [1, 2, 3, 4, 5, 6, 7]  # every position but [CLS] and [SEP]
    for h, head in enumerate(HEADS):
        layer, index = head.index
        rows = run.attentions[layer, index].astype(np.float64)[sources]
        by_hand = np.mean([-(r * np.log(r)).sum() / np.log(9) for r in rows])
        assert profile.values()[h, -1] == pytest.approx(by_hand, abs=1e-12)


def test_uniform_rows_have_entropy_1_and_one_hot_rows_0():
    uniform = np.full((1, 1, 5, 5), 0.2, dtype=np.float32)
    one_hot = np.zeros((1, 1, 5, 5), dtype=np.float32)
    one_hot[..., 0] = 1.0
    tokens = ["[CLS]", "a", "b", "c", "[SEP]"]
    for attentions, expected in ((uniform, 1.0), (one_hot, 0.0)):
        run = Run(text="a b c", tokens=tokens, input_ids=np.arange(5, dtype=np.int32),
                  word_ids=(None, 0, 1, 2, None), offsets=((0, 0), (0, 1), (2, 3), (4, 5),
                                                           (0, 0)), attentions=attentions)
        profile = ProfileAccumulator((Head(1, 1),))
        profile.add(level_view(run, "token"))
        assert profile.values()[0, -1] == pytest.approx(expected, abs=1e-7)


def test_per_sentence_values_pool_to_the_profile_when_sentences_count_alike():
    profile = ProfileAccumulator(HEADS)
    for seed in range(4):
        profile.add(level_view(_run(seed), "token"))
    per = profile.per_sentence()
    assert per.shape == (4, len(HEADS), len(ATTENTION_STATISTICS))
    # every sentence has the same tokens, so each target counts alike: the mean of the
    # per-sentence values is the pooled value
    np.testing.assert_allclose(np.nanmean(per, axis=0), profile.values(), atol=1e-12)
