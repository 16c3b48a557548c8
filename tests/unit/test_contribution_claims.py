"""Claims on what heads contribute (SPEC §14): `weighting`, `measure: effect` and its fields in
hypothesis files, located errors for fields that do not go together, and the per-sentence
numbers of effect claims at each level."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from headprobe.claims.files import parse_hypothesis_text
from headprobe.claims.language import parse_claim
from headprobe.claims.spec import ClaimSpec, Expectation, Measure, Sentence
from headprobe.errors import ClaimFileError
from headprobe.evaluation.effects import effect_numbers, effect_run
from headprobe.runs import Encoding

HEAD = """\
model: m
sentences:
  s:
    - The cat sat.
hypotheses:
"""


def _claims(entries: str):
    return parse_hypothesis_text(HEAD + textwrap.indent(textwrap.dedent(entries), "  "),
                                 "h.yaml").claims


def test_an_effect_claim_reads_its_fields_and_defaults():
    plain, chosen = _claims("""\
        - id: a
          claim: "L2H9: token"
          measure: effect
          over: s
          expect: ">= 0.05"
        - id: b
          claim: "L2H*: token"
          measure: effect
          ablation: zero
          effect: embedding
          together: true
          over: s
          expect: "<= 0.01"
        """)
    assert plain.measure == Measure("effect", ablation="mean", effect="hidden", together=False)
    assert chosen.measure == Measure("effect", ablation="zero", effect="embedding",
                                     together=True)
    assert str(chosen.measure) == "effect:embedding (zero ablation, heads together)"
    assert plain.weighting == "attention"


def test_weighting_norm_goes_with_attention_measures():
    (claim,) = _claims("""\
        - id: a
          claim: "L2H9: token -> next"
          weighting: norm
          measure: mass
          over: s
          expect: ">= 0.5"
        """)
    assert claim.weighting == "norm" and claim.measure == Measure("mass")


@pytest.mark.parametrize("extra, field, words", [
    ("ablation: zero", "ablation", "goes with 'measure: effect' only"),
    ("together: true", "together", "goes with 'measure: effect' only"),
    ("effect: kl", "effect", "goes with 'measure: effect' only"),
    ("weighting: normal", "weighting", "expected one of attention, norm"),
])
def test_contribution_fields_without_their_measure_are_located_errors(extra, field, words):
    with pytest.raises(ClaimFileError) as raised:
        _claims(f"""\
            - id: a
              claim: "L2H9: token -> next"
              {extra}
              over: s
              expect: ">= 0.5"
            """)
    error = raised.value
    assert error.line == 8 and error.field == field and words in error.message, error


@pytest.mark.parametrize("claim, extra, field, words", [
    ("L2H9: token -> next", "", "claim", "measure effect needs no target"),
    ("L2H9: token", "weighting: norm", "weighting", "'measure: effect' removes heads"),
    ("L2H9: token", "baseline: offset", "baseline", "does not apply to measure effect"),
    ("L2H9: token", "together: yes please", "together", "true or false"),
    ("L2H9: token", "effect: hiden", "effect", "did you mean 'hidden'"),
])
def test_an_effect_claim_with_what_it_cannot_take_is_a_located_error(claim, extra, field,
                                                                      words):
    with pytest.raises(ClaimFileError) as raised:
        _claims(f"""\
            - id: a
              claim: "{claim}"
              measure: effect
              {extra}
              over: s
              expect: ">= 0.5"
            """)
    assert raised.value.field == field and words in raised.value.message, raised.value


def _spec(level: str, effect: str = "hidden", source: str = "token") -> ClaimSpec:
    return ClaimSpec(file="f", line=1, id="e", claim=parse_claim(f"L1H1: {source}"),
                     over=("s",), expect=Expectation(">=", 0.0),
                     measure=Measure("effect", ablation="mean", effect=effect,  # type: ignore[arg-type]
                                     together=False), level=level)  # type: ignore[arg-type]


def _encoding() -> Encoding:
    # [CLS] play ##ing cats [SEP]: the word "playing" is two pieces
    return Encoding(text="playing cats", tokens=["[CLS]", "play", "##ing", "cats", "[SEP]"],
                    input_ids=np.arange(5), word_ids=(None, 0, 0, 1, None),
                    offsets=((0, 0), (0, 4), (4, 7), (8, 12), (0, 0)))


def test_effect_numbers_sum_the_source_tokens_and_average_a_words_pieces():
    run = effect_run(_encoding())
    values = np.array([[9.0, 0.2, 0.4, 0.5, 9.0], [9.0, 0.0, 0.0, 1.0, 9.0]])  # 2 heads
    tokens = effect_numbers(_spec("token"), Sentence("playing cats"), run, values)
    assert tokens.n == 3 and tokens.left_out == 0
    np.testing.assert_allclose(tokens.hits, [1.1, 1.0])  # specials are not sources
    words = effect_numbers(_spec("word"), Sentence("playing cats"), run, values)
    assert words.n == 2
    np.testing.assert_allclose(words.hits, [0.3 + 0.5, 1.0])  # "playing": mean of its pieces
    every = effect_numbers(_spec("token", source="all"), Sentence("playing cats"), run, values)
    assert every.n == 5 and every.hits[0] == pytest.approx(19.1)


def test_an_embedding_effect_counts_each_sentence_once():
    run = effect_run(_encoding())
    values = np.full((1, 5), 0.25)  # the same 1 - cos at every token of the sentence
    numbers = effect_numbers(_spec("token", "embedding"), Sentence("playing cats"), run, values)
    assert numbers.n == 1 and numbers.hits[0] == 0.25
    none = effect_numbers(_spec("token", "embedding", source="mask"), Sentence("playing cats"),
                          run, values)
    assert none.n == 0 and none.hits[0] == 0.0  # no source: the sentence does not count
