"""Wilson and sentence-bootstrap intervals against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from headprobe.evaluation.intervals import bootstrap_ratio, bootstrap_ratios, wilson


@pytest.mark.parametrize("hits, n, confidence, interval", [
    (8, 10, 0.95, (0.490162, 0.943318)),     # the textbook Wilson example
    (9, 10, 0.95, (0.595850, 0.982124)),
    (9, 10, 0.50, (0.817639, 0.947550)),     # a lower level gives a narrower interval
    (0, 5, 0.95, (0.0, 0.434482)),           # exactly 0 at the lower end
    (4, 4, 0.95, (0.510109, 1.0)),
])
def test_wilson_interval(hits, n, confidence, interval):
    assert wilson(hits, n, confidence) == pytest.approx(interval, abs=1e-6)


def test_wilson_without_sources_has_no_interval():
    assert wilson(0, 0) is None


def test_bootstrap_of_one_hit_and_one_miss_spans_everything():
    # Resamples of two sentences give 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    assert bootstrap_ratio(np.array([1.0, 0.0]), np.array([1, 1])) == (0.0, 1.0)


def test_bootstrap_of_one_sentence_is_its_value():
    assert bootstrap_ratio(np.array([1.5]), np.array([3])) == (0.5, 0.5)


def test_bootstrap_weights_sentences_by_their_source_counts():
    # Whatever the resample, total mass / total n is 0.25 when every sentence has ratio 0.25.
    assert bootstrap_ratio(np.array([0.25, 1.0, 0.5]), np.array([1, 4, 2])) == \
        pytest.approx((0.25, 0.25))


def test_bootstrap_is_deterministic_and_ignores_sentences_without_sources():
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 9, size=11)
    hits = rng.random(11) * counts
    first = bootstrap_ratio(hits, counts)
    again = bootstrap_ratio(np.append(hits, 0.0), np.append(counts, 0))
    pooled = hits.sum() / counts.sum()
    assert first == again
    assert first[0] < pooled < first[1]
    narrow = bootstrap_ratio(hits, counts, 0.5)
    assert first[0] < narrow[0] < narrow[1] < first[1]


def test_bootstrap_without_counted_sentences_has_no_interval():
    assert bootstrap_ratio(np.array([0.0]), np.array([0])) is None


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_confidence_outside_zero_one_is_rejected(confidence):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        wilson(1, 2, confidence)


def test_bootstrap_of_several_columns_equals_one_column_at_a_time():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 6, size=9)
    hits = rng.random((9, 4)) * counts[:, None]  # [sentence, head]
    together = bootstrap_ratios(hits, counts, 0.9)
    alone = [bootstrap_ratio(hits[:, h], counts, 0.9) for h in range(4)]
    assert np.array(together) == pytest.approx(np.array(alone))
