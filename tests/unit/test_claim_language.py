"""The claim language: claims, sources, targets, measures and expectations."""

from __future__ import annotations

import pytest

from headprobe.claims.language import (
    compile_word_regex,
    parse_claim,
    parse_expectation,
    parse_measure,
    parse_source,
    parse_target,
)
from headprobe.claims.spec import Claim, Expectation, Measure, Source, Target
from headprobe.errors import ClaimFileError, ExitCode
from headprobe.heads import HeadPattern


def caret_column(error: ClaimFileError) -> int:
    """1-based column of the caret under the echoed claim."""
    last = str(error).splitlines()[-1]
    assert last.strip() == "^"
    return len(last) - len("    ^") + 1


# --- claims that parse ----------------------------------------------------------------------


def test_simple_claim_parses_into_heads_source_and_target():
    claim = parse_claim("L2H5: token -> next")
    assert claim == Claim((HeadPattern(2, 5),), Source("token"), Target("next", offset=1))


def test_head_lists_and_wildcards_parse_in_order():
    claim = parse_claim("L3H*,L4H11: span:adv -> span:verb")
    assert claim.heads == (HeadPattern(3, None), HeadPattern(4, 11))
    assert claim.source == Source("span", "adv")
    assert claim.target == Target("span", "verb")


@pytest.mark.parametrize("target, offset", [("next", 1), ("previous", -1), ("self", 0)])
def test_named_steps_carry_their_offset(target, offset):
    assert parse_claim(f"L1H1: token -> {target}").target == Target(target, offset=offset)


@pytest.mark.parametrize("text, offset", [("offset:+2", 2), ("offset:-1", -1), ("offset:3", 3),
                                          ("offset:0", 0), ("offset: -7", -7)])
def test_offsets_are_signed_and_an_unsigned_offset_is_forward(text, offset):
    assert parse_claim(f"L1H1: token -> {text}").target == Target("offset", offset=offset)


@pytest.mark.parametrize("kind", ["cls", "sep", "mask", "punct", "same-word"])
def test_argumentless_targets(kind):
    assert parse_claim(f"L1H1: token -> {kind}").target == Target(kind)


@pytest.mark.parametrize("kind", ["token", "mask", "cls", "sep"])
def test_argumentless_sources(kind):
    assert parse_claim(f"L6H12: {kind} -> cls").source == Source(kind)


def test_word_regex_source_runs_to_the_arrow_and_target_to_the_end():
    claim = parse_claim("L1H2: word:the|an? -> word:(cat|dogs?)")
    assert claim.source == Source("word", "the|an?")
    assert claim.target == Target("word", "(cat|dogs?)")


def test_whitespace_is_free_and_keywords_are_case_insensitive():
    claim = parse_claim("  l1h2 :Token->NEXT  ")
    assert claim == Claim((HeadPattern(1, 2),), Source("token"), Target("next", offset=1))


def test_same_word_is_not_cut_at_its_hyphen_and_arrow_needs_no_spaces():
    assert parse_claim("L1H1:mask->same-word").target == Target("same-word")


def test_claim_renders_back_to_canonical_text():
    assert str(parse_claim("L3H*,L4H11: word:the -> offset:2")) == \
        "L3H*,L4H11: word:the -> offset:+2"


def test_word_regex_matches_whole_words_case_insensitively():
    pattern = compile_word_regex("the|a")
    assert pattern.fullmatch("The") and pattern.fullmatch("a")
    assert not pattern.fullmatch("then")


def test_source_and_target_parse_alone_for_the_fields_form():
    assert parse_source("span:adv") == Source("span", "adv")
    assert parse_target("offset:-2") == Target("offset", offset=-2)
    assert parse_target("word:is|was") == Target("word", "is|was")


# --- claims that do not parse ---------------------------------------------------------------


def parse_error(text: str) -> ClaimFileError:
    with pytest.raises(ClaimFileError) as info:
        parse_claim(text)
    return info.value


def test_misspelt_target_points_at_it_and_suggests_the_name():
    error = parse_error("L2H5: token -> nxt")
    assert "column 16" in str(error) and "unknown target 'nxt'" in str(error)
    assert "did you mean 'next'?" in str(error)
    assert caret_column(error) == 16
    assert "    L2H5: token -> nxt" in str(error).splitlines()


def test_misspelt_source_suggests_the_name():
    error = parse_error("L2H5: tokn -> next")
    assert "unknown source 'tokn' (did you mean 'token'?)" in str(error)
    assert caret_column(error) == 7


def test_target_used_as_source_says_so():
    error = parse_error("L2H5: next -> token")
    assert "'next' is a target, not a source" in str(error)


def test_source_only_keyword_as_target_says_so():
    error = parse_error("L2H5: mask -> token")
    assert "'token' is a source, not a target" in str(error)
    assert caret_column(error) == 15


def test_missing_colon_after_heads_points_between_heads_and_source():
    error = parse_error("L2H5 token -> next")
    assert "expected ':' after the heads" in str(error)
    assert caret_column(error) == 5


def test_missing_arrow_points_at_what_follows_the_source():
    error = parse_error("L2H5: token next")
    assert "expected '->' after the source 'token'" in str(error) and "'next'" in str(error)
    assert caret_column(error) == 13


def test_missing_target_points_at_the_end():
    error = parse_error("L2H5: token ->")
    assert "expected a target" in str(error) and "found the end" in str(error)
    assert caret_column(error) == 15


def test_claim_without_arrow_has_no_target_and_its_regex_runs_to_the_end():
    claim = parse_claim("L2H5: word:the|a ")
    assert claim.target is None and claim.source.arg == "the|a"
    assert str(claim) == "L2H5: word:the|a"


def test_source_followed_by_a_word_still_asks_for_the_arrow():
    error = parse_error("L2H5: token next")
    assert "expected '->' after the source 'token'" in str(error)


def test_bad_head_points_at_that_head_in_the_list():
    error = parse_error("L1H1, LxH2: token -> next")
    assert "'LxH2'" in str(error)
    assert caret_column(error) == 7


def test_head_zero_says_heads_count_from_one():
    error = parse_error("L0H3: token -> next")
    assert "counted from 1" in str(error)
    assert caret_column(error) == 1


def test_bad_regex_is_named_with_its_column():
    error = parse_error("L1H1: word:(the -> next")
    assert "'(the' is not a valid regular expression" in str(error)
    assert caret_column(error) == 12


def test_bad_span_label_is_an_error():
    error = parse_error("L1H1: span:my label -> next")
    assert "span label 'my label' may only contain letters, digits" in str(error)


def test_empty_word_regex_is_an_error():
    assert "expected a regular expression after 'word:'" in str(parse_error("L1H1: token -> word:"))


def test_span_without_colon_is_an_error():
    error = parse_error("L1H1: token -> span")
    assert "expected ':' right after 'span'" in str(error)


@pytest.mark.parametrize("bad", ["offset:x", "offset:+", "offset:1.5", "offset:"])
def test_offset_needs_a_whole_number(bad):
    error = parse_error(f"L1H1: token -> {bad}")
    assert "expected a whole number of positions after 'offset:'" in str(error)


def test_text_after_the_target_is_an_error():
    error = parse_error("L1H1: token -> next please")
    assert "unexpected 'please' after the target" in str(error)
    assert caret_column(error) == 21


@pytest.mark.parametrize("bad", ["", "   ", 12, None])
def test_empty_or_non_string_claim_is_an_error(bad):
    with pytest.raises(ClaimFileError, match="claim"):
        parse_claim(bad)


def test_claim_errors_are_collection_errors():
    assert parse_error("L2H5: token -> nxt").exit_code == ExitCode.INTERRUPTED


def test_claim_error_gets_a_location_from_the_caller():
    error = parse_error("L2H5: token -> nxt").located(file="h.yaml", line=7, field="claim")
    assert str(error).startswith("h.yaml:7: claim: cannot parse the claim at column 16")


# --- measures --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, measure", [("argmax", Measure("argmax")), ("mass", Measure("mass")),
                                           ("topk:3", Measure("topk", 3)),
                                           (" TopK: 12 ", Measure("topk", 12))])
def test_measures_parse(text, measure):
    assert parse_measure(text) == measure


@pytest.mark.parametrize("bad", ["topk", "topk:0", "topk:-1", "topk:x", "topk:2.5"])
def test_topk_needs_a_positive_whole_number(bad):
    with pytest.raises(ClaimFileError, match="topk needs a positive whole number K"):
        parse_measure(bad)


def test_unknown_measure_suggests_the_closest():
    with pytest.raises(ClaimFileError,
                       match=r"unknown measure 'argmx' \(did you mean 'argmax'\?\)"):
        parse_measure("argmx")


def test_non_string_measure_says_its_type():
    with pytest.raises(ClaimFileError, match="got 3 of type int"):
        parse_measure(3)


# --- expectations ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, op, low, high", [
    (">= 0.8", ">=", 0.8, None), ("> 0.5", ">", 0.5, None), ("<= 0.2", "<=", 0.2, None),
    ("< 0.1", "<", 0.1, None), ("80%", ">=", 0.8, None), (">= 80%", ">=", 0.8, None),
    ("<5%", "<", 0.05, None), ("0.7", ">=", 0.7, None),
    ("between 0.2 and 0.5", "between", 0.2, 0.5),
    ("Between 20% and 50 %", "between", 0.2, 0.5), ("≥ 0.3", ">=", 0.3, None),
    (">= 1", ">=", 1.0, None), ("<= 0", "<=", 0.0, None), (">= .25", ">=", 0.25, None),
])
def test_expectation_forms(text, op, low, high):
    expectation = parse_expectation(text)
    assert (expectation.op, expectation.high) == (op, high)
    assert expectation.low == pytest.approx(low)
    assert expectation.text == text


def test_expectation_keeps_its_text_with_spaces_normalised():
    assert str(parse_expectation(">=   0.8")) == ">= 0.8"


@pytest.mark.parametrize("number", [0.8, 1, 0])
def test_bare_yaml_number_means_at_least(number):
    assert parse_expectation(number) == Expectation(">=", float(number), text=f">= {number}")


@pytest.mark.parametrize("bad", [">= 1.5", "> -0.1", "120%", "between 0.2 and 2"])
def test_numbers_outside_zero_one_are_errors(bad):
    with pytest.raises(ClaimFileError, match=r"outside \[0, 1\]"):
        parse_expectation(bad)


def test_a_number_above_one_hints_at_percent():
    with pytest.raises(ClaimFileError, match="write percentages with '%'"):
        parse_expectation(80)


def test_between_with_bounds_reversed_says_how_to_fix():
    with pytest.raises(ClaimFileError, match="write 'between 0.2 and 0.5'"):
        parse_expectation("between 0.5 and 0.2")


@pytest.mark.parametrize("bad", ["between 0.2", "between 0.2 or 0.5", "between and"])
def test_malformed_between_is_an_error(bad):
    with pytest.raises(ClaimFileError, match="between LOW and HIGH"):
        parse_expectation(bad)


@pytest.mark.parametrize("bad", ["high", ">= lots", "== 0.5", ""])
def test_unreadable_expectation_is_an_error(bad):
    with pytest.raises(ClaimFileError, match="0.8"):
        parse_expectation(bad)


@pytest.mark.parametrize("bad", [True, None, [0.5]])
def test_expectation_of_wrong_type_names_the_type(bad):
    with pytest.raises(ClaimFileError, match=f"of type {type(bad).__name__}"):
        parse_expectation(bad)


def test_parsed_expectations_decide_pass_and_fail():
    assert parse_expectation("> 0.5").holds(0.51) and not parse_expectation("> 0.5").holds(0.5)
    assert parse_expectation("between 20% and 50%").holds(0.5)
    assert not parse_expectation("between 20% and 50%").holds(0.51)
