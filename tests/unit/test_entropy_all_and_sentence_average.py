"""SPEC §13 against computations written out here, loop by loop: ``measure: entropy``,
``source: all`` and ``average: sentence``, and their exact relation to Clark et al. (2019)'s
per-head averages and TransformerLens's head-detector scores.

The runs are random: sentences of 4 to 12 tokens (``[CLS]``, words, ``[SEP]``), each attention
row drawn from a Dirichlet distribution, some rows made one-hot so that ``0 log 0`` occurs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from headprobe.claims.language import parse_claim
from headprobe.claims.spec import ClaimSpec, Expectation, Measure, Sentence
from headprobe.evaluation import ClaimAccumulator
from headprobe.heads import Head
from headprobe.runs import Run

LAYERS, HEADS = 2, 3
ALL_HEADS = tuple(Head(layer, head) for layer in range(1, LAYERS + 1)
                  for head in range(1, HEADS + 1))


def random_runs(count: int = 9, seed: int = 7) -> list[tuple[Sentence, Run]]:
    rng = np.random.default_rng(seed)
    made = []
    for index in range(count):
        words = int(rng.integers(2, 11))
        text = " ".join(f"w{index}x{i}" for i in range(words))
        tokens = ["[CLS]", *text.split(), "[SEP]"]
        size = len(tokens)
        offsets, start = [(0, 0)], 0
        for word in text.split():
            offsets.append((start, start + len(word)))
            start += len(word) + 1
        offsets.append((0, 0))
        attentions = rng.dirichlet(np.full(size, 0.3), size=(LAYERS, HEADS, size))
        attentions[0, 0, 1] = np.eye(size)[0]  # a one-hot row: entropy 0, terms 0 log 0
        made.append((Sentence(text), Run(
            text=text, tokens=tokens, input_ids=np.arange(size, dtype=np.int32),
            word_ids=(None, *range(words), None), offsets=tuple(offsets),
            attentions=attentions.astype(np.float32))))
    return made


RUNS = random_runs()


def evaluate(claim: str, measure: str = "argmax", average: str = "pool",
             baseline: str | None = None) -> dict[Head, tuple[float, tuple[float, float], int]]:
    kind, _, k = measure.partition(":")
    spec = ClaimSpec(file="t.yaml", line=1, id="t", claim=parse_claim(claim), over=("s",),
                     expect=Expectation(">=", 0.0), claim_text=claim,
                     measure=Measure(kind, int(k) if k else None),  # type: ignore[arg-type]
                     average=average, baseline=baseline)  # type: ignore[arg-type]
    heads = ALL_HEADS
    accumulator = ClaimAccumulator(spec, heads)
    for index, (sentence, run) in enumerate(RUNS):
        accumulator.add(index, sentence, run)
    results = accumulator.results(model="m", fingerprint="f")
    return {head: (r.value, r.ci, r.n) for head, r in zip(heads, results)}


def rows_of(run: Run, head: Head, sources: str) -> np.ndarray:
    matrix = run.attentions[head.layer - 1, head.head - 1].astype(np.float64)
    if sources == "all":
        return matrix
    return matrix[1:-1]  # token: every position but [CLS] and [SEP]


def entropy_by_hand(row: np.ndarray) -> float:
    total = 0.0
    for p in row:
        if p > 0:
            total -= p * math.log(p)
    return total / math.log(len(row))


@pytest.mark.parametrize("sources", ["token", "all"])
@pytest.mark.parametrize("average", ["pool", "sentence"])
def test_entropy_is_the_mean_normalised_row_entropy(sources, average):
    measured = evaluate(f"L*H*: {sources}", "entropy", average)
    for head in ALL_HEADS:
        per_sentence = [[entropy_by_hand(row) for row in rows_of(run, head, sources)]
                        for _, run in RUNS]
        if average == "pool":
            expected = sum(map(sum, per_sentence)) / sum(map(len, per_sentence))
        else:
            expected = sum(sum(s) / len(s) for s in per_sentence) / len(per_sentence)
        value, ci, n = measured[head]
        assert value == pytest.approx(expected, abs=1e-6)
        assert n == sum(map(len, per_sentence))
        assert ci[0] <= value <= ci[1]


def test_entropy_of_one_hot_and_uniform_rows_is_0_and_1():
    size = 6
    run = Run(text="a b c d", tokens=["[CLS]", "a", "b", "c", "d", "[SEP]"],
              input_ids=np.arange(size, dtype=np.int32), word_ids=(None, 0, 1, 2, 3, None),
              offsets=((0, 0), (0, 1), (2, 3), (4, 5), (6, 7), (0, 0)),
              attentions=np.stack([np.eye(size), np.full((size, size), 1 / size)])[None]
              .astype(np.float32))
    for head, expected in ((Head(1, 1), 0.0), (Head(1, 2), 1.0)):
        spec = ClaimSpec(file="t.yaml", line=1, id="t", claim=parse_claim("L1H1: all"),
                         over=("s",), expect=Expectation(">=", 0.0), measure=Measure("entropy"))
        accumulator = ClaimAccumulator(spec, (head,))
        accumulator.add(0, Sentence("a b c d"), run)
        (result,) = accumulator.results(model="m", fingerprint="f")
        assert result.value == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("target, keys", [
    ("cls", lambda i, size: [0]),
    ("sep", lambda i, size: [size - 1]),
    ("next", lambda i, size: [i + 1] if i + 1 < size else []),
    ("previous", lambda i, size: [i - 1] if i >= 1 else []),
])
@pytest.mark.parametrize("average", ["pool", "sentence"])
def test_source_all_counts_every_row_including_cls_and_sep(target, keys, average):
    measured = evaluate(f"L*H*: all -> {target}", "mass", average)
    for head in ALL_HEADS:
        per_sentence = []
        for _, run in RUNS:
            matrix = rows_of(run, head, "all")
            size = len(matrix)
            masses = [sum(matrix[i, k] for k in keys(i, size)) for i in range(size)
                      if keys(i, size)]
            per_sentence.append(masses)
        if average == "pool":
            expected = sum(map(sum, per_sentence)) / sum(map(len, per_sentence))
        else:
            expected = sum(sum(s) / len(s) for s in per_sentence) / len(per_sentence)
        value, _, n = measured[head]
        assert value == pytest.approx(expected, abs=1e-6)
        assert n == sum(map(len, per_sentence))


def test_argmax_averaged_over_sentences_weighs_each_sentence_the_same():
    measured = evaluate("L*H*: token -> next", "argmax", "sentence")
    for head in ALL_HEADS:
        shares = []
        for _, run in RUNS:
            matrix = rows_of(run, head, "all")
            hits = [int(np.argmax(matrix[i])) == i + 1 for i in range(1, len(matrix) - 1)]
            shares.append(sum(hits) / len(hits))
        assert measured[head][0] == pytest.approx(sum(shares) / len(shares), abs=1e-9)


def test_sentence_average_interval_is_a_bootstrap_over_sentences_not_wilson():
    pooled = evaluate("L*H*: token -> next", "argmax", "pool")
    averaged = evaluate("L*H*: token -> next", "argmax", "sentence")
    for head in ALL_HEADS:
        value, (low, high), _ = averaged[head]
        assert low <= value <= high
        assert (low, high) != pooled[head][1]


def clark_average(target: str, head: Head) -> float:
    """Clark et al.'s per-head average, as their General_Analysis notebook computes it: per
    example, ``(attns * selector).sum(-1).sum(-1) / n_tokens`` (every row, rows without a target
    add 0), averaged over the examples."""
    total = 0.0
    for _, run in RUNS:
        attns = run.attentions[head.layer - 1, head.head - 1].astype(np.float64)
        n_tokens = attns.shape[-1]
        tokens = run.tokens
        seps = np.array([t == "[SEP]" for t in tokens], dtype=float)
        clss = np.array([t == "[CLS]" for t in tokens], dtype=float)
        selector = {"cls": np.tile(clss[None], [n_tokens, 1]),
                    "sep": np.tile(seps[None], [n_tokens, 1]),
                    "next": np.eye(n_tokens, n_tokens, 1),
                    "self": np.eye(n_tokens)}[target]
        total += (attns * selector).sum() / n_tokens
    return total / len(RUNS)


@pytest.mark.parametrize("target", ["cls", "sep", "self"])
def test_mass_from_all_sources_averaged_over_sentences_equals_clark_et_al(target):
    """Targets every row has: equal, exactly as docs/measures.md says."""
    measured = evaluate(f"L*H*: all -> {target}", "mass", "sentence")
    for head in ALL_HEADS:
        assert measured[head][0] == pytest.approx(clark_average(target, head), abs=1e-6)


def test_clark_next_counts_the_last_row_as_zero_which_headprobe_leaves_out():
    """For 'next' the last row ([SEP]) has no target: Clark's average is headprobe's per-sentence
    value times (n - 1) / n, as docs/measures.md says."""
    measured = evaluate("L*H*: all -> next", "mass", "sentence")
    for head in ALL_HEADS:
        ours_per_sentence = []
        for _, run in RUNS:
            matrix = rows_of(run, head, "all")
            size = len(matrix)
            ours_per_sentence.append(sum(matrix[i, i + 1] for i in range(size - 1)) / (size - 1))
        assert measured[head][0] == pytest.approx(np.mean(ours_per_sentence), abs=1e-6)
        rescaled = np.mean([value * (len(run.tokens) - 1) / len(run.tokens)
                            for value, (_, run) in zip(ours_per_sentence, RUNS)])
        assert rescaled == pytest.approx(clark_average("next", head), abs=1e-6)


def transformer_lens_score(head: Head, pattern: str) -> float:
    """TransformerLens's ``detect_head`` with ``error_measure="mul"`` over a list of prompts:
    per prompt ``(attention * detection).sum() / attention.sum()``, then the mean over prompts.
    (Its detection patterns are lower triangular, for causal models; the arithmetic is the same
    for any 0/1 pattern.)"""
    scores = []
    for _, run in RUNS:
        attention = run.attentions[head.layer - 1, head.head - 1].astype(np.float64)
        size = attention.shape[0]
        detection = np.zeros((size, size))
        if pattern == "previous":
            detection[1:, :-1] = np.eye(size - 1)
        else:  # cls: the first column, as a "BOS" pattern
            detection[:, 0] = 1
        scores.append((attention * detection).sum() / attention.sum())
    return float(np.mean(scores))


def test_transformer_lens_scores_relate_exactly():
    cls = evaluate("L*H*: all -> cls", "mass", "sentence")
    previous = evaluate("L*H*: all -> previous", "mass", "sentence")
    for head in ALL_HEADS:
        assert cls[head][0] == pytest.approx(transformer_lens_score(head, "cls"), abs=1e-6)
        # previous: TransformerLens's first row has no target and adds 0 to a mean over n rows
        ours = [sum(rows_of(run, head, "all")[i, i - 1] for i in range(1, len(run.tokens)))
                / (len(run.tokens) - 1) for _, run in RUNS]
        assert previous[head][0] == pytest.approx(np.mean(ours), abs=1e-6)
        scaled = np.mean([v * (len(run.tokens) - 1) / len(run.tokens)
                          for v, (_, run) in zip(ours, RUNS)])
        assert scaled == pytest.approx(transformer_lens_score(head, "previous"), abs=1e-6)


def baseline_of(average: str):
    spec = ClaimSpec(file="t.yaml", line=1, id="t", claim=parse_claim("L1H1: token -> cls"),
                     over=("s",), expect=Expectation(">=", 0.0), average=average,  # type: ignore
                     baseline="offset")
    accumulator = ClaimAccumulator(spec, (Head(1, 1),))
    for index, (sentence, run) in enumerate(RUNS):
        accumulator.add(index, sentence, run)
    (result,) = accumulator.results(model="m", fingerprint="f")
    return result.baseline


def test_baseline_with_sentence_average_is_averaged_per_sentence_too():
    """Always looking one back finds [CLS] only from the first word: 1 of a sentence's n words."""
    words = [len(run.tokens) - 2 for _, run in RUNS]
    pooled, averaged = baseline_of("pool"), baseline_of("sentence")
    assert pooled.offset == averaged.offset == -1
    assert pooled.value == pytest.approx(len(words) / sum(words))
    assert averaged.value == pytest.approx(np.mean([1 / n for n in words]))
    assert pooled.value != pytest.approx(averaged.value)
