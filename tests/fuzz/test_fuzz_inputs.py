"""Every input a user can write ends as headprobe's own located error or a valid parse: never a
crash, a hang, or an error without a place.

A few thousand generated inputs per run (``HEADPROBE_FUZZ_EXAMPLES`` per test, default 400);
``HEADPROBE_FUZZ_EXAMPLES=2500 python -m pytest tests/fuzz -p no:randomly`` tries over 10,000.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from fuzz.strategies import (
    any_text,
    claim_texts,
    expectations,
    hypothesis_files,
    measures,
    sentences,
)
from hypothesis import HealthCheck, given, settings

from headprobe.claims.files import parse_hypothesis_text
from headprobe.claims.language import (
    parse_claim,
    parse_expectation,
    parse_measure,
    parse_source,
    parse_target,
)
from headprobe.claims.sentences import parse_annotated
from headprobe.errors import ClaimFileError
from headprobe.evaluation.positions import level_view, select
from headprobe.runs import Run

EXAMPLES = int(os.environ.get("HEADPROBE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

pytestmark = pytest.mark.fuzz


@FUZZ
@given(claim_texts())
def test_a_claim_string_parses_or_is_a_claim_file_error(text):
    try:
        claim = parse_claim(text)
    except ClaimFileError as error:
        assert str(error).encode("utf-8")  # printable: no lone surrogates
        return
    _evaluate_on_a_run(claim.source, claim.target)


@FUZZ
@given(any_text)
def test_a_source_or_target_field_parses_or_is_a_claim_file_error(text):
    for parse in (parse_source, parse_target):
        try:
            parse(text)
        except ClaimFileError:
            pass


@FUZZ
@given(expectations, measures)
def test_an_expectation_and_a_measure_parse_or_are_claim_file_errors(expect, measure):
    try:
        parse_expectation(expect)
    except ClaimFileError:
        pass
    try:
        parse_measure(measure)
    except ClaimFileError:
        pass


@FUZZ
@given(sentences)
def test_a_sentence_parses_or_is_a_claim_file_error(text):
    try:
        sentence = parse_annotated(text)
    except ClaimFileError as error:
        assert str(error).encode("utf-8")
        return
    assert sentence.text and all(0 <= s.start < s.end <= len(sentence.text)
                                 for s in sentence.spans)


@FUZZ
@given(hypothesis_files())
def test_a_hypothesis_file_parses_or_is_an_error_naming_file_and_line(tmp_path_factory, text):
    base = tmp_path_factory.getbasetemp()
    try:
        parse_hypothesis_text(text, "fuzz.yaml", base)
    except ClaimFileError as error:
        assert error.file == "fuzz.yaml" and error.line is not None and error.line >= 1, error
        assert str(error).encode("utf-8")


# A run of "[CLS] the cat ' s sat . [SEP]" with made-up attention, to evaluate parsed claims on.
_TOKENS = ["[CLS]", "the", "cat", "'", "s", "sat", ".", "[SEP]"]
_RUN = Run(text="the cat's sat.", tokens=_TOKENS, input_ids=np.arange(8, dtype=np.int32),
           word_ids=(None, 0, 1, 2, 3, 4, 5, None),
           offsets=((0, 0), (0, 3), (4, 7), (7, 8), (8, 9), (10, 13), (13, 14), (0, 0)),
           attentions=np.random.default_rng(0).dirichlet(np.ones(8), size=(1, 1, 8))
           .astype(np.float32))


def _evaluate_on_a_run(source, target) -> None:
    for level in ("token", "word"):
        try:
            select(level_view(_RUN, level), source, target, ())
        except ClaimFileError:
            pass
