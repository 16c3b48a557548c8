"""Sources, targets, levels, measures and attention views against hand-computed values.

The run: "unreal cat, [MASK]" as 7 wordpieces (a two-piece word, punctuation, [MASK]) through a
model of 2 layers x 3 heads (distinct sizes, so a swapped axis fails):

    position  0      1    2       3    4  5       6
    token     [CLS]  un   ##real  cat  ,  [MASK]  [SEP]
    word      -      0    0       1    2  3       -

L1H1 puts 0.7 on the next position (the last row on itself), L1H2 0.7 on the previous one (the
first row on itself), L1H3 0.4 on [CLS]; the rest of each row is spread evenly. Layer 2 is uniform.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from headprobe.claims.spec import (
    Claim,
    ClaimSpec,
    Expectation,
    Measure,
    Sentence,
    Source,
    Span,
    Target,
)
from headprobe.errors import ClaimFileError
from headprobe.evaluation import ClaimAccumulator, attention_view, score_sentence
from headprobe.evaluation.measures import (
    baseline_hits,
    best_baseline,
    source_hits,
)
from headprobe.evaluation.positions import level_view, select
from headprobe.heads import Head, HeadPattern
from headprobe.runs import Run

TEXT = "unreal cat, [MASK]"
TOKENS = ["[CLS]", "un", "##real", "cat", ",", "[MASK]", "[SEP]"]
WORD_IDS = (None, 0, 0, 1, 2, 3, None)
OFFSETS = ((0, 0), (0, 2), (2, 6), (7, 10), (10, 11), (12, 18), (0, 0))
SPANS = (Span("adj", 0, 6), Span("noun", 7, 10), Span("part", 3, 4))
SENTENCE = Sentence(TEXT, spans=SPANS)
L1H1, L1H2, L1H3, L2H1 = Head(1, 1), Head(1, 2), Head(1, 3), Head(2, 1)


def peaked(peaks: list[int], weight: float) -> np.ndarray:
    """``[query, key]``: row q has ``weight`` at ``peaks[q]``, the rest spread evenly."""
    size = len(peaks)
    rows = np.full((size, size), (1 - weight) / (size - 1))
    rows[np.arange(size), peaks] = weight
    return rows


def make_attentions() -> np.ndarray:
    attentions = np.full((2, 3, 7, 7), 1 / 7)  # [layer, head, query, key]
    attentions[0, 0] = peaked([1, 2, 3, 4, 5, 6, 6], 0.7)
    attentions[0, 1] = peaked([0, 0, 1, 2, 3, 4, 5], 0.7)
    attentions[0, 2] = peaked([0] * 7, 0.4)
    return attentions.astype(np.float32)


def make_run(**overrides) -> Run:
    fields = dict(text=TEXT, tokens=TOKENS, input_ids=np.arange(7, dtype=np.int32),
                  word_ids=WORD_IDS, offsets=OFFSETS, attentions=make_attentions())
    fields.update(overrides)
    return Run(**fields)


def part(text: str, cls):
    kind, _, arg = text.partition(":")
    if cls is Target and kind == "offset":
        return Target("offset", offset=int(arg))
    return cls(kind, arg or None)


def make_spec(source: str = "token", target: str = "next", *, heads=(HeadPattern(1, 1),),
              expect: Expectation = Expectation(">=", 0.5), **options) -> ClaimSpec:
    claim = Claim(heads=tuple(heads), source=part(source, Source), target=part(target, Target))
    return ClaimSpec(file="h.yaml", line=3, id="c", claim=claim, over=("s",), expect=expect,
                     claim_text=str(claim), **options)


def picked(source: str, target: str = "self", level: str = "token") -> tuple[list, list, int]:
    """Counted sources, their target positions, and the left-out count."""
    view = level_view(make_run(), level)
    selection = select(view, part(source, Source), part(target, Target), SPANS)
    targets = [np.flatnonzero(row).tolist() for row in selection.targets]
    return selection.sources.tolist(), targets, selection.left_out


# --- sources -------------------------------------------------------------------------------

@pytest.mark.parametrize("source, positions", [
    ("token", [1, 2, 3, 4, 5]),          # not [CLS]/[SEP]; [MASK] counts as a token
    ("mask", [5]),
    ("cls", [0]),
    ("sep", [6]),
    ("word:UNREAL", [1, 2]),             # the whole word, case-insensitive: both pieces
    ("word:unr", []),                    # a full match, not a prefix
    ("word:cat|,", [3, 4]),
    (r"word:\[cls\]", []),               # special tokens are never word sources
    (r"word:\[mask\]", [5]),
    ("span:adj", [1, 2]),
    ("span:part", [2]),                  # characters 3:4 overlap only "##real" (2:6)
    ("span:missing", []),
])
def test_token_level_sources_are_the_positions_the_spec_names(source, positions):
    assert picked(source)[0] == positions


@pytest.mark.parametrize("source, positions", [
    ("token", [1, 2, 3, 4]),             # words: [CLS] unreal cat , [MASK] [SEP]
    ("mask", [4]),
    ("word:unreal", [1]),
    ("span:part", [1]),                  # a word overlaps if any of its pieces does
    ("sep", [5]),
])
def test_word_level_sources_are_words(source, positions):
    assert picked(source, level="word")[0] == positions


def test_mask_is_a_token_source_even_when_the_run_marks_it_special():
    special = np.array([True, False, False, False, False, True, True])
    view = level_view(make_run(special_mask=special), "token")
    assert select(view, Source("token"), Target("self")).sources.tolist() == [1, 2, 3, 4, 5]


# --- targets -------------------------------------------------------------------------------

@pytest.mark.parametrize("target, targets, left_out", [
    ("next", [[2], [3], [4], [5], [6]], 0),             # the last word's next is [SEP]
    ("previous", [[0], [1], [2], [3], [4]], 0),         # the first word's previous is [CLS]
    ("self", [[1], [2], [3], [4], [5]], 0),
    ("offset:2", [[3], [4], [5], [6]], 1),              # 5 + 2 falls outside the sentence
    ("offset:-3", [[0], [1], [2]], 2),
    ("cls", [[0]] * 5, 0),
    ("sep", [[6]] * 5, 0),
    ("mask", [[5]] * 5, 0),
    ("punct", [[4]] * 5, 0),                            # only ","; not [MASK], not specials
    ("same-word", [[2], [1]], 3),                       # one-piece words have none
    ("word:un.*", [[1, 2]] * 5, 0),
    ("span:noun", [[3]] * 5, 0),
    ("span:missing", [], 5),
])
def test_token_level_targets_per_source(target, targets, left_out):
    _, found, dropped = picked("token", target)
    assert (found, dropped) == (targets, left_out)


@pytest.mark.parametrize("target, targets, left_out", [
    ("next", [[2], [3], [4], [5]], 0),                  # counted in words, not wordpieces
    ("offset:-2", [[0], [1], [2]], 1),
    ("same-word", [], 4),                               # always none at word level
    ("punct", [[3]] * 4, 0),
    ("span:adj", [[1]] * 4, 0),
])
def test_word_level_targets_are_counted_in_words(target, targets, left_out):
    _, found, dropped = picked("token", target, level="word")
    assert (found, dropped) == (targets, left_out)


def test_punct_needs_every_character_to_be_punctuation():
    text = "a ,. b;c"
    run = Run(text=text, tokens=["[CLS]", "a", ",.", "b;c", "[SEP]"],
              input_ids=np.arange(5, dtype=np.int32), word_ids=(None, 0, 1, 2, None),
              offsets=((0, 0), (0, 1), (2, 4), (5, 8), (0, 0)),
              attentions=np.full((1, 2, 5, 5), 0.2, dtype=np.float32))
    selection = select(level_view(run, "token"), Source("cls"), Target("punct"))
    assert np.flatnonzero(selection.targets[0]).tolist() == [2]


# --- measures ------------------------------------------------------------------------------

def test_argmax_ties_share_the_hit_among_the_tied_positions():
    rows = np.array([[0.1, 0.3, 0.2, 0.3, 0.1]])
    first = source_hits(rows, np.array([[0, 1, 0, 0, 0]], bool), Measure("argmax"))
    second = source_hits(rows, np.array([[0, 0, 0, 1, 0]], bool), Measure("argmax"))
    both = source_hits(rows, np.array([[0, 1, 0, 1, 0]], bool), Measure("argmax"))
    assert (first.tolist(), second.tolist(), both.tolist()) == ([0.5], [0.5], [1.0])


def test_argmax_hits_per_head_match_a_row_by_row_loop():
    rng = np.random.default_rng(11)
    rows = rng.integers(0, 3, size=(3, 7, 9)).astype(np.float32)  # [head, source, position]
    targets = rng.random((7, 9)) < 0.3  # [source, position], shared by the heads
    expected = [[float(targets[s][rows[h, s] == rows[h, s].max()].mean()) for s in range(7)]
                for h in range(3)]
    assert source_hits(rows, targets, Measure("argmax")) == pytest.approx(np.array(expected))
    assert source_hits(rows[:, :0], targets[:0], Measure("argmax")).shape == (3, 0)


def test_topk_shares_a_tied_kth_place_among_the_tied_positions():
    rows = np.array([[0.3, 0.2, 0.2, 0.2, 0.1]])
    target_two = np.array([[0, 0, 1, 0, 0]], bool)
    # one place left for three tied positions: 1/3; two places: 1 - (2/3)(1/2) = 2/3
    assert source_hits(rows, target_two, Measure("topk", 2)).tolist() == pytest.approx([1 / 3])
    assert source_hits(rows, target_two, Measure("topk", 3)).tolist() == pytest.approx([2 / 3])
    assert source_hits(rows, np.array([[1, 0, 0, 0, 0]], bool),
                       Measure("topk", 2)).tolist() == [1.0]


def test_measures_score_every_head_of_a_stacked_row_block():
    rows = np.array([[[0.5, 0.3, 0.2]], [[0.2, 0.3, 0.5]]])  # [head, source, position]
    targets = np.array([[False, False, True]])
    assert source_hits(rows, targets, Measure("argmax")).tolist() == [[0.0], [1.0]]
    assert source_hits(rows, targets, Measure("topk", 2)).tolist() == [[0.0], [1.0]]
    assert source_hits(rows, targets, Measure("mass")) == pytest.approx(np.array([[0.2], [0.5]]))


def test_mass_sums_attention_over_all_targets():
    rows = np.array([[0.1, 0.3, 0.2, 0.4], [0.5, 0.25, 0.125, 0.125]])
    targets = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], bool)
    assert source_hits(rows, targets, Measure("mass")).tolist() == pytest.approx([0.3, 0.5])


@pytest.mark.parametrize("head, measure, value", [
    (L1H1, Measure("argmax"), 1.0),
    (L1H2, Measure("argmax"), 0.0),
    (L2H1, Measure("argmax"), 1 / 7),    # a uniform row: 1/7 of the hit to each position
    (L1H1, Measure("mass"), 0.7),
    (L1H2, Measure("mass"), 0.05),
    (L2H1, Measure("mass"), 1 / 7),
    (L1H3, Measure("topk", 2), 1 / 6),   # [CLS], then one place for 6 tied positions
    (L1H3, Measure("topk", 3), 1 / 3),   # two places for 6 tied: 1 - (5/6)(4/5)
])
def test_score_sentence_token_next(head, measure, value):
    score = score_sentence(make_spec(measure=measure), head, SENTENCE, make_run())
    assert (score.n, score.left_out) == (5, 0)
    assert score.value == pytest.approx(value)
    assert score.hits == pytest.approx(value * 5)


def test_word_rows_are_piece_means_and_word_columns_are_piece_sums():
    matrix = level_view(make_run(), "word").matrix(L1H1)
    # "unreal" = pieces 1 and 2: rows (0.7 at 2) and (0.7 at 3), 0.05 elsewhere.
    assert matrix.shape == (6, 6)
    assert matrix[1] == pytest.approx([0.05, 0.425, 0.375, 0.05, 0.05, 0.05])
    assert matrix[2] == pytest.approx([0.05, 0.1, 0.05, 0.7, 0.05, 0.05])
    assert matrix.sum(axis=1) == pytest.approx(np.ones(6))


def test_when_every_word_is_one_piece_word_matrices_are_the_token_matrices_exactly():
    rng = np.random.default_rng(3)
    attentions = rng.random((2, 3, 6, 6), dtype=np.float32)
    attentions /= attentions.sum(axis=-1, keepdims=True)
    run = make_run(text="real cat, [MASK]", tokens=["[CLS]", "real", "cat", ",", "[MASK]", "[SEP]"],
                   input_ids=np.arange(6, dtype=np.int32), word_ids=(None, 0, 1, 2, 3, None),
                   offsets=((0, 0), (0, 4), (5, 8), (8, 9), (10, 16), (0, 0)),
                   attentions=attentions)
    words = level_view(run, "word").rows((L1H2, L2H1), np.arange(6))
    assert words.dtype == np.float64
    assert words.tobytes() == attentions[[0, 1], [1, 0]].astype(np.float64).tobytes()
    # the general formula gives the same numbers, bit for bit
    membership = np.eye(6)
    general = membership.T @ attentions[[0, 1], [1, 0]].astype(np.float64) @ membership
    assert words.tobytes() == general.tobytes()


@pytest.mark.parametrize("measure, value", [
    (Measure("argmax"), 0.75),           # "unreal" looks mostly at itself (0.425)
    (Measure("mass"), (0.375 + 3 * 0.7) / 4),
])
def test_score_sentence_at_word_level(measure, value):
    spec = make_spec(measure=measure, level="word")
    score = score_sentence(spec, L1H1, SENTENCE, make_run())
    assert (score.n, score.value) == (4, pytest.approx(value))


def test_span_claim_and_same_word_claim():
    spans = score_sentence(make_spec("span:adj", "span:noun"), L1H1, SENTENCE, make_run())
    same = score_sentence(make_spec("token", "same-word"), L1H2, SENTENCE, make_run())
    assert (spans.n, spans.value) == (2, 0.5)        # only "##real" looks at "cat"
    assert (same.n, same.left_out, same.value) == (2, 3, 0.5)


def test_no_counted_source_scores_no_value():
    score = score_sentence(make_spec("token", "span:missing"), L1H1, SENTENCE, make_run())
    assert (score.n, score.left_out, score.hits, score.value) == (0, 5, 0.0, None)


# --- baseline ------------------------------------------------------------------------------

def test_baseline_counts_sources_whose_offset_position_is_a_target():
    selection = select(level_view(make_run(), "token"), Source("word", "cat"),
                       Target("word", "unreal|,"))
    hits = baseline_hits(selection.sources, selection.targets)
    assert hits == {-1: 1.0, 1: 1.0, -2: 1.0, 2: 0.0, -3: 0.0, 3: 0.0}
    assert best_baseline(hits, 1) == (-1, 1.0)       # ties: smaller |k|, then negative k


@pytest.mark.parametrize("hits, best", [
    ({1: 2.0, 2: 2.0}, (1, 0.5)),
    ({-2: 3.0, 2: 3.0, 3: 1.0}, (-2, 0.75)),
    ({3: 4.0}, (3, 1.0)),
    ({}, (-1, 0.0)),
])
def test_best_baseline_is_the_highest_value_with_tie_rules(hits, best):
    assert best_baseline(hits, 4) == best


def test_best_baseline_without_sources_is_none():
    assert best_baseline({1: 0.0}, 0) is None


# --- attention views -----------------------------------------------------------------------

def test_attention_view_marks_expected_targets_and_argmax_cells():
    view = attention_view(make_spec(target="previous"), L1H1, SENTENCE, make_run())
    assert view.matrix.dtype == np.float32 and view.matrix.shape == (7, 7)
    assert view.labels == tuple(TOKENS)
    assert view.expected == ((1, 0), (2, 1), (3, 2), (4, 3), (5, 4))
    assert view.actual == ((1, 2), (2, 3), (3, 4), (4, 5), (5, 6))
    assert view.value == 0.0


def test_attention_view_topk_marks_the_top_cells_and_word_level_labels_words():
    spec = make_spec("mask", "cls", measure=Measure("topk", 2), level="word")
    view = attention_view(spec, L1H3, SENTENCE, make_run())
    assert view.labels == ("[CLS]", "unreal", "cat", ",", "[MASK]", "[SEP]")
    assert view.matrix.shape == (6, 6)
    assert view.expected == ((4, 0),)
    assert view.actual == ((4, 0), (4, 1))            # "unreal" sums two pieces: 0.2
    assert view.value == 1.0


# --- errors and caching --------------------------------------------------------------------

def test_head_outside_the_run_is_a_claim_error_naming_the_range():
    with pytest.raises(ClaimFileError, match=r"L3H1 is out of range.*layers 1\.\.2.*heads 1\.\.3"):
        score_sentence(make_spec(), Head(3, 1), SENTENCE, make_run())


def test_invalid_word_regex_is_a_claim_error():
    with pytest.raises(ClaimFileError, match=r"word:\(cat is not a valid regular expression"):
        score_sentence(make_spec("word:(cat"), L1H1, SENTENCE, make_run())


def test_attentions_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 6, 6\)"):
        level_view(make_run(attentions=np.zeros((2, 3, 6, 6), np.float32)), "token")


def test_views_are_shared_per_run_and_level_and_word_matrices_made_per_head():
    run = make_run()
    spec = make_spec(level="word")
    score_sentence(spec, L1H2, SENTENCE, run)
    view = level_view(run, "word")
    assert view is level_view(run, "word") and view is not level_view(run, "token")
    assert list(view._matrices) == [L1H2]


def test_accumulator_does_not_keep_the_run_alive():
    accumulator = ClaimAccumulator(make_spec(baseline="offset"), [L1H1, L1H2])
    run = make_run()
    accumulator.add(0, SENTENCE, run)
    gone = weakref.ref(run)
    del run
    gc.collect()
    assert gone() is None
    assert [r.value for r in accumulator.results(model="m", fingerprint="f")] == [1.0, 0.0]
