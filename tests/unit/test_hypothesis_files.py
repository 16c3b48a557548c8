"""Hypothesis files: every field, every set form, and located errors for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headprobe.claims.files import (
    load_hypothesis_file,
    looks_like_hypothesis_file,
    parse_hypothesis_text,
)
from headprobe.claims.spec import (
    Claim,
    Expectation,
    HypothesisFile,
    Measure,
    Source,
    Span,
    Target,
    Template,
)
from headprobe.errors import ClaimFileError, ExitCode
from headprobe.heads import HeadPattern

SPEC_EXAMPLE = """\
# hypotheses/minilm/positional.yaml
model: sentence-transformers/all-MiniLM-L6-v2
level: token
sentences:
  seed:
    - Then I picked up a [MASK] from the table.
    - The turtle moved slowly across the [MASK].
  everyday: ../data/everyday.txt
  moves:
    template: "The {animal} [moved]{verb} [{adverb}]{adv} across the [MASK]."
    slots:
      animal: [turtle, cat, horse]
      adverb: [slowly, quickly, quietly]

hypotheses:
  - id: next-token
    claim: "L2H5: token -> next"
    over: everyday
    measure: argmax
    expect: ">= 0.8"
    why: The seed analysis reports a head that looks at the following token.
  - id: adverb-to-verb
    head: L4H11
    from: span:adv
    to: span:verb
    over: moves
    expect: ">= 0.5"
"""

MINIMAL = """\
sentences:
  seed:
    - The [cat]{noun} sat on the [mat]{noun}.
    - A [dog]{noun} [ran]{verb}.
hypotheses:
  - id: first
    claim: "L1H1: token -> next"
    over: seed
    expect: ">= 0.5"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "everyday.txt").write_text(
        "# everyday sentences\nThe cat sat on the mat.\n\nShe [read]{verb} a book.\n",
        encoding="utf-8")
    (tmp_path / "hyp").mkdir()
    return tmp_path


def write(folder: Path, text: str, name: str = "h.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str) -> HypothesisFile:
    return load_hypothesis_file(write(folder, text))


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``needle``."""
    hits = [number for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1)
            if needle in line]
    return hits[nth - 1]


def error_of(folder: Path, text: str) -> ClaimFileError:
    path = write(folder, text)
    with pytest.raises(ClaimFileError) as info:
        load_hypothesis_file(path)
    return info.value


def assert_located(error: ClaimFileError, folder: Path, line: int, field: str | None,
                   *fragments: str) -> None:
    prefix = f"{folder / 'h.yaml'}:{line}: " + (f"{field}: " if field else "")
    assert str(error).startswith(prefix), str(error)
    for fragment in fragments:
        assert fragment in str(error), str(error)


def with_hypothesis(extra: str, base: str = MINIMAL) -> str:
    """MINIMAL with extra fields added to its one hypothesis."""
    return base + textwrap.indent(textwrap.dedent(extra), "    ")


# --- files that load ------------------------------------------------------------------------


def test_the_spec_example_loads(project):
    hfile = load(project / "hyp", SPEC_EXAMPLE)
    assert hfile.model == "sentence-transformers/all-MiniLM-L6-v2" and hfile.level == "token"
    assert list(hfile.sets) == ["seed", "everyday", "moves"]
    assert len(hfile.sets["seed"].sentences) == 2
    assert [s.text for s in hfile.sets["everyday"].sentences] == [
        "The cat sat on the mat.", "She read a book."]
    assert len(hfile.sets["moves"].sentences) == 9
    assert hfile.sets["moves"].template == Template(
        "The {animal} [moved]{verb} [{adverb}]{adv} across the [MASK].",
        (("animal", ("turtle", "cat", "horse")), ("adverb", ("slowly", "quickly", "quietly"))))
    first, second = hfile.claims
    assert (first.id, first.line, first.over) == ("next-token", 16, ("everyday",))
    assert first.claim == Claim((HeadPattern(2, 5),), Source("token"), Target("next", offset=1))
    assert first.expect == Expectation(">=", 0.8, text=">= 0.8")
    assert first.why.startswith("The seed analysis")
    assert first.claim_text == "L2H5: token -> next"
    assert second.claim == Claim((HeadPattern(4, 11),), Source("span", "adv"),
                                 Target("span", "verb"))
    assert second.claim_text == "L4H11: span:adv -> span:verb"


def test_defaults_of_a_minimal_file(tmp_path):
    hfile = load(tmp_path, MINIMAL)
    assert hfile.model is None and hfile.level == "token"
    (spec,) = hfile.claims
    assert spec.file == str(tmp_path / "h.yaml")
    assert (spec.measure, spec.level, spec.quantifier, spec.per) == (
        Measure("argmax"), "token", "each", "pool")
    assert (spec.confidence, spec.model, spec.skip, spec.xfail, spec.baseline, spec.margin,
            spec.why) == (None, None, None, None, None, 0.0, None)


def test_every_optional_field(tmp_path):
    hfile = load(tmp_path, "level: word\nmodel: some/model\n" + with_hypothesis("""\
        measure: topk:3
        level: token
        quantifier: any
        per: sentence
        confidence: 0.95
        model: other/model@v2
        skip: too slow
        xfail: known regression
        baseline: offset
        margin: 0.1
        why: because
        """))
    (spec,) = hfile.claims
    assert hfile.level == "word" and hfile.model == "some/model"
    assert (spec.measure, spec.level, spec.quantifier, spec.per, spec.confidence) == (
        Measure("topk", 3), "token", "any", "sentence", 0.95)
    assert (spec.model, spec.skip, spec.xfail, spec.baseline, spec.margin, spec.why) == (
        "other/model@v2", "too slow", "known regression", "offset", 0.1, "because")


def test_a_hypothesis_inherits_the_file_level(tmp_path):
    assert load(tmp_path, "level: word\n" + MINIMAL).claims[0].level == "word"


def test_bare_number_expectation_means_at_least(tmp_path):
    text = MINIMAL.replace('expect: ">= 0.5"', "expect: 0.7")
    assert load(tmp_path, text).claims[0].expect == Expectation(">=", 0.7, text=">= 0.7")


def test_over_may_list_several_sets_and_repeats_collapse(tmp_path):
    text = MINIMAL.replace("hypotheses:", "  other: [Plain words here.]\nhypotheses:")
    text = text.replace("over: seed", "over: [seed, other, seed]")
    assert load(tmp_path, text).claims[0].over == ("seed", "other")


def test_inline_sentences_keep_spans_and_their_yaml_line(tmp_path):
    seed = load(tmp_path, MINIMAL).sets["seed"]
    assert seed.sentences[1].text == "A dog ran."
    assert seed.sentences[1].spans == (Span("noun", 2, 5), Span("verb", 6, 9))
    assert seed.sentences[1].origin == f"{tmp_path / 'h.yaml'}:4"
    assert seed.line == 2


def test_sentences_and_slot_values_are_taken_as_written(tmp_path):
    text = MINIMAL.replace("  seed:\n", "  odd: [no, 1984, 1.50]\n  seed:\n")
    text = text.replace("hypotheses:", "  t:\n    template: '{v} it'\n    slots: {v: [yes, 2.0]}"
                                       "\nhypotheses:")
    hfile = load(tmp_path, text)
    assert [s.text for s in hfile.sets["odd"].sentences] == ["no", "1984", "1.50"]
    assert [s.text for s in hfile.sets["t"].sentences] == ["yes it", "2.0 it"]


def test_file_level_slots_are_referenced_by_name_or_reused_by_their_own_name(tmp_path):
    hfile = load(tmp_path, """\
        slots:
          animals: [cat, dog]
          adverb: [slowly, fast]
        sentences:
          moves:
            template: "The {animal} ran [{adverb}]{adv}."
            slots:
              animal: animals
        hypotheses: []
        """)
    moves = hfile.sets["moves"]
    assert moves.template.slots == (("animal", ("cat", "dog")), ("adverb", ("slowly", "fast")))
    assert [s.text for s in moves.sentences][:2] == ["The cat ran slowly.", "The cat ran fast."]


def test_generate_keeps_the_template_and_draws_nothing_now(tmp_path):
    hfile = load(tmp_path, """\
        sentences:
          many:
            template: "The {noun} [fell]{verb}."
            slots: {noun: [cup, pen, hat]}
            generate: 50
        hypotheses:
          - id: fall
            claim: "L1H1: span:verb -> previous"
            over: many
            expect: 0.5
        """)
    many = hfile.sets["many"]
    assert many.sentences == ()
    assert many.template == Template("The {noun} [fell]{verb}.", (("noun", ("cup", "pen", "hat")),),
                                     generate=50)


def test_yaml_merge_keys_are_honoured(tmp_path):
    hfile = load(tmp_path, """\
        sentences:
          seed: [A cat sat.]
        hypotheses:
          - &base
            id: first
            claim: "L1H1: token -> next"
            over: seed
            expect: 0.5
          - <<: *base
            id: second
            measure: mass
        """)
    first, second = hfile.claims
    assert (second.id, second.claim, second.over, second.measure) == (
        "second", first.claim, ("seed",), Measure("mass"))


def test_parse_hypothesis_text_resolves_sentence_files_against_base_dir(project):
    hfile = parse_hypothesis_text(SPEC_EXAMPLE, "virtual.yaml", project / "hyp")
    assert hfile.path == "virtual.yaml" and len(hfile.sets["everyday"].sentences) == 2


# --- the file as a whole --------------------------------------------------------------------


def test_malformed_yaml_names_its_line(tmp_path):
    error = error_of(tmp_path, "sentences:\n  seed: [a, b\nhypotheses: []\n")
    assert_located(error, tmp_path, 3, None, "not valid YAML")
    assert error.exit_code == ExitCode.INTERRUPTED


def test_tab_indentation_is_malformed_yaml(tmp_path):
    error = error_of(tmp_path, "sentences:\n\tseed: [a]\n")
    assert_located(error, tmp_path, 2, None, "not valid YAML")


def test_empty_file_is_an_error(tmp_path):
    assert_located(error_of(tmp_path, "# nothing\n"), tmp_path, 1, None, "the file is empty")


def test_top_level_list_is_an_error(tmp_path):
    assert_located(error_of(tmp_path, "- id: x\n"), tmp_path, 1, None,
                   "expected a mapping with 'sentences:' and 'hypotheses:'", "got a list")


def test_misspelt_top_level_key_suggests_the_name(tmp_path):
    text = MINIMAL.replace("hypotheses:", "hypothesis:")
    assert_located(error_of(tmp_path, text), tmp_path, 5, "hypothesis",
                   "unknown field 'hypothesis' (did you mean 'hypotheses'?)",
                   "valid fields here: model, level, slots, sentences, hypotheses")


def test_missing_hypotheses_is_an_error(tmp_path):
    assert_located(error_of(tmp_path, "sentences:\n  s: [a]\n"), tmp_path, 1, "hypotheses",
                   "missing")


def test_hypotheses_must_be_a_list(tmp_path):
    assert_located(error_of(tmp_path, "hypotheses:\n  id: x\n"), tmp_path, 2, "hypotheses",
                   "expected a list of hypotheses", "got a mapping")


def test_a_hypothesis_must_be_a_mapping(tmp_path):
    assert_located(error_of(tmp_path, "hypotheses:\n  - 'L1H1: token -> next'\n"), tmp_path, 2,
                   "hypotheses", "expected a hypothesis mapping",
                   "got 'L1H1: token -> next' (a string)")


def test_a_key_given_twice_names_both_lines(tmp_path):
    text = MINIMAL + "    expect: 0.9\n"
    assert_located(error_of(tmp_path, text), tmp_path, 10, "expect",
                   "'expect' is given twice (first at line 9)")


def test_bad_level_suggests_the_closest(tmp_path):
    assert_located(error_of(tmp_path, "level: words\n" + MINIMAL), tmp_path, 1, "level",
                   "expected one of token, word", "'words' (a string)", "did you mean 'word'?")


def test_model_of_the_wrong_type_names_the_types(tmp_path):
    assert_located(error_of(tmp_path, "model: 3\n" + MINIMAL), tmp_path, 1, "model",
                   "expected a string such as 'bert-base-uncased', got 3 (an integer)")


# --- hypotheses -----------------------------------------------------------------------------


def test_misspelt_field_suggests_the_name_on_its_line(tmp_path):
    text = with_hypothesis("expct: 0.5\n")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, "expct"), "expct",
                   "unknown field 'expct' (did you mean 'expect'?)")


@pytest.mark.parametrize("field", ["id", "over", "expect"])
def test_required_fields_are_named_when_missing(tmp_path, field):
    text = "\n".join(line for line in MINIMAL.splitlines()
                     if not line.strip().startswith(f"{field}:")
                     and not line.strip().startswith(f"- {field}:"))
    text = text.replace("    claim:", "  - claim:") if field == "id" else text
    assert_located(error_of(tmp_path, text + "\n"), tmp_path, 6, field,
                   f"missing: every hypothesis needs {field!r}")


def test_duplicate_id_names_both_lines(tmp_path):
    text = MINIMAL + MINIMAL[MINIMAL.index("  - id"):]
    error = error_of(tmp_path, text)
    assert_located(error, tmp_path, 10, "id", "duplicate id 'first': also used by the "
                                              "hypothesis at line 6")


@pytest.mark.parametrize("bad", ["'has space'", "'a[1]'", "'a::b'"])
def test_ids_that_would_break_test_ids_are_errors(tmp_path, bad):
    text = MINIMAL.replace("id: first", f"id: {bad}")
    assert_located(error_of(tmp_path, text), tmp_path, 6, "id", "may not contain spaces")


def test_id_of_the_wrong_type_is_an_error(tmp_path):
    text = MINIMAL.replace("id: first", "id: [first]")
    assert_located(error_of(tmp_path, text), tmp_path, 6, "id", "expected a string",
                   "got a list")


def test_bad_claim_points_at_line_field_and_column(tmp_path):
    text = MINIMAL.replace("token -> next", "token -> nxt")
    error = error_of(tmp_path, text)
    assert_located(error, tmp_path, 7, "claim", "cannot parse the claim at column 16",
                   "did you mean 'next'?")
    assert str(error).splitlines()[-1] == " " * 19 + "^"


def test_claim_of_the_wrong_type_is_an_error(tmp_path):
    text = MINIMAL.replace('claim: "L1H1: token -> next"', "claim: 12")
    assert_located(error_of(tmp_path, text), tmp_path, 7, "claim", "got 12 (an integer)")


def test_claim_and_fields_together_are_an_error(tmp_path):
    text = with_hypothesis("head: L1H1\n")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, "head:"), "head",
                   "either 'claim:' or the fields 'head:', 'from:' and 'to:', not both")


def test_neither_claim_nor_fields_is_an_error(tmp_path):
    text = MINIMAL.replace('    claim: "L1H1: token -> next"\n', "")
    assert_located(error_of(tmp_path, text), tmp_path, 6, "claim", "missing")


def fields_form(head: str = "L1H1", source: str = "token", target: str = "next") -> str:
    return MINIMAL.replace('    claim: "L1H1: token -> next"\n',
                           f"    head: {head}\n    from: {source}\n    to: {target}\n")


def test_fields_form_missing_a_field_names_it(tmp_path):
    text = fields_form().replace("    to: next\n", "")
    assert_located(error_of(tmp_path, text), tmp_path, 6, "to",
                   "the fields form needs 'head:', 'from:' and 'to:'")


@pytest.mark.parametrize("head, source, target, field, fragment", [
    ("L0H1", "token", "next", "head", "counted from 1"),
    ("L1H1", "tokn", "next", "from", "did you mean 'token'?"),
    ("L1H1", "token", "prev", "to", "did you mean 'previous'?"),
    ("L1H1", "token", "offset:x", "to", "whole number of positions"),
])
def test_fields_form_errors_name_their_field(tmp_path, head, source, target, field, fragment):
    text = fields_form(head, source, target)
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, f"{field}:"), field,
                   fragment)


def test_unknown_set_in_over_suggests_the_closest(tmp_path):
    text = MINIMAL.replace("over: seed", "over: [seed, sed]")
    assert_located(error_of(tmp_path, text), tmp_path, 8, "over",
                   "no sentence set called 'sed' (did you mean 'seed'?); sets in this file: seed")


def test_over_without_sets_says_to_add_them(tmp_path):
    text = "hypotheses:\n" + MINIMAL[MINIMAL.index("  - id"):]
    assert_located(error_of(tmp_path, text), tmp_path, 4, "over", "add a 'sentences:' mapping")


@pytest.mark.parametrize("value, fragment", [("[]", "the list is empty"),
                                             ("3", "got 3 (an integer)")])
def test_bad_over_values(tmp_path, value, fragment):
    text = MINIMAL.replace("over: seed", f"over: {value}")
    assert_located(error_of(tmp_path, text), tmp_path, 8, "over", fragment)


def test_unknown_span_label_lists_the_labels_that_exist(tmp_path):
    text = MINIMAL.replace("token -> next", "span:nown -> next")
    assert_located(error_of(tmp_path, text), tmp_path, 7, "claim",
                   "unknown span label 'nown' (did you mean 'noun'?) in the source",
                   "the sentences of seed have labels: noun, verb")


def test_unknown_span_label_in_the_fields_form_blames_the_to_field(tmp_path):
    text = fields_form(target="span:obj")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, "to:"), "to",
                   "unknown span label 'obj'", "in the target")


def test_span_label_on_sets_without_spans_says_how_to_mark_them(tmp_path):
    text = MINIMAL.replace("hypotheses:", "  plain: [No spans here.]\nhypotheses:")
    text = text.replace("over: seed", "over: plain").replace("-> next", "-> span:noun")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, "claim:"), "claim",
                   "have labels: none (mark spans as [text]{label})")


def test_span_labels_of_generated_templates_count(tmp_path):
    hfile = load(tmp_path, """\
        sentences:
          g: {template: "A [{n}]{noun} fell.", slots: {n: [cup, pen]}, generate: 5}
        hypotheses:
          - {id: x, claim: "L1H1: span:noun -> next", over: g, expect: 0.5}
        """)
    assert hfile.claims[0].claim.source == Source("span", "noun")


@pytest.mark.parametrize("extra, field, fragment", [
    ("measure: topk:0", "measure", "topk needs a positive whole number K"),
    ("measure: argmx", "measure", "did you mean 'argmax'?"),
    ("level: tokens", "level", "did you mean 'token'?"),
    ("quantifier: all", "quantifier", "expected one of each, any, none"),
    ("per: sentences", "per", "did you mean 'sentence'?"),
    ("confidence: 1.0", "confidence", "not strictly between 0 and 1"),
    ("confidence: 0", "confidence", "not strictly between 0 and 1"),
    ("confidence: '95%'", "confidence", "expected a number, got '95%' (a string)"),
    ("confidence: true", "confidence", "expected a number, got True (a boolean)"),
    ("baseline: offsets", "baseline", "did you mean 'offset'?"),
    ("margin: 0.1", "margin", "only applies with 'baseline: offset'"),
    ("skip: true", "skip", "expected a string such as 'needs a GPU', got True (a boolean)"),
    ("xfail: ''", "xfail", "got an empty string"),
    ("why: [a, b]", "why", "got a list"),
    ("model: {name: x}", "model", "got a mapping"),
])
def test_bad_optional_fields_are_located(tmp_path, extra, field, fragment):
    text = with_hypothesis(extra + "\n")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, f"{field}:"), field,
                   fragment)


@pytest.mark.parametrize("margin, fragment", [("-0.1", "outside [0, 1]"), ("2", "outside [0, 1]"),
                                              ("lots", "expected a number")])
def test_bad_margin_with_a_baseline(tmp_path, margin, fragment):
    text = with_hypothesis(f"baseline: offset\nmargin: {margin}\n")
    assert_located(error_of(tmp_path, text), tmp_path, line_of(text, "margin:"), "margin",
                   fragment)


@pytest.mark.parametrize("expect, fragment", [('">= 1.5"', "outside [0, 1]"),
                                              ("yes", "of type bool"),
                                              ("'between 0.6 and 0.2'", "lower bound")])
def test_bad_expectation_is_located(tmp_path, expect, fragment):
    text = MINIMAL.replace('expect: ">= 0.5"', f"expect: {expect}")
    assert_located(error_of(tmp_path, text), tmp_path, 9, "expect", fragment)


def test_null_optional_fields_mean_not_given(tmp_path):
    (spec,) = load(tmp_path, with_hypothesis("why:\nmeasure:\nquantifier: ~\n")).claims
    assert (spec.why, spec.measure, spec.quantifier) == (None, Measure("argmax"), "each")


# --- sentence sets --------------------------------------------------------------------------


@pytest.mark.parametrize("value, fragment", [
    ("", "got nothing (null)"), ("3", "got 3 (an integer)"), ("[]", "the set has no sentences"),
])
def test_bad_set_values_are_located(tmp_path, value, fragment):
    text = f"sentences:\n  bad: {value}\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 2, "sentences.bad", fragment)


def test_bad_inline_sentence_points_at_its_item_and_column(tmp_path):
    text = "sentences:\n  s:\n    - Fine.\n    - Broken [span.\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 4, "sentences.s[1]",
                   "cannot read the sentence at column 8", "never closed")


def test_sentence_that_is_a_mapping_is_a_type_error(tmp_path):
    text = "sentences:\n  s:\n    - Fine.\n    - key: value\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 4, "sentences.s[1]",
                   "expected text, got a mapping")


def test_bad_set_name_is_an_error(tmp_path):
    assert_located(error_of(tmp_path, "sentences:\n  'my set': [a]\nhypotheses: []\n"), tmp_path,
                   2, "sentences.my set", "may only contain letters")


def test_missing_sentence_file_names_the_yaml_line_and_the_resolved_path(project):
    folder = project / "hyp"
    text = "sentences:\n  s: ../data/missing.txt\nhypotheses: []\n"
    error = error_of(folder, text)
    assert_located(error, folder, 2, "sentences.s", "does not exist",
                   str(project / "data" / "missing.txt"))


def test_bad_sentence_in_a_text_file_points_at_that_file(project):
    (project / "data" / "bad.txt").write_text("ok\n[oops\n", encoding="utf-8")
    folder = project / "hyp"
    error = error_of(folder, "sentences:\n  s: ../data/bad.txt\nhypotheses: []\n")
    assert str(error).startswith(f"{project / 'data' / 'bad.txt'}:2: cannot read the sentence")
    assert f"used by {folder / 'h.yaml'}:2 (sentences.s)" in str(error)


def test_template_set_with_misspelt_key_suggests_the_name(tmp_path):
    text = "sentences:\n  t:\n    template: '{a}'\n    slot: {a: [x]}\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 4, "sentences.t.slot",
                   "unknown field 'slot' (did you mean 'slots'?)")


def test_template_set_without_template_is_an_error(tmp_path):
    text = "sentences:\n  t:\n    slots: {a: [x]}\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 3, "sentences.t.template", "missing")


@pytest.mark.parametrize("generate", ["0", "-3", "true", "2.5", "many"])
def test_generate_must_be_a_positive_whole_number(tmp_path, generate):
    text = (f"sentences:\n  t:\n    template: '{{a}}'\n    slots: {{a: [x]}}\n"
            f"    generate: {generate}\nhypotheses: []\n")
    assert_located(error_of(tmp_path, text), tmp_path, 5, "sentences.t.generate",
                   "expected a positive whole number")


def test_template_using_an_unknown_slot_is_located_at_the_template(tmp_path):
    text = "sentences:\n  t:\n    template: 'The {animl}.'\n    slots: {animal: [x]}\n" \
           "hypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 3, "sentences.t.template",
                   "did you mean 'animal'?")


def test_template_with_a_stray_brace_points_at_its_column(tmp_path):
    text = "sentences:\n  t:\n    template: 'The { a}.'\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 3, "sentences.t.template",
                   "cannot read the template at column 5")


def test_unknown_slot_list_reference_suggests_the_closest(tmp_path):
    text = ("slots:\n  animals: [cat]\nsentences:\n  t:\n    template: '{a}'\n"
            "    slots: {a: animls}\nhypotheses: []\n")
    assert_located(error_of(tmp_path, text), tmp_path, 6, "sentences.t.slots.a",
                   "no slot list called 'animls' under 'slots:' (did you mean 'animals'?)")


def test_bad_slot_values_are_located_at_the_slot(tmp_path):
    text = ("sentences:\n  t:\n    template: '{a}'\n    slots:\n      a: ['[x]{y}']\n"
            "hypotheses: []\n")
    assert_located(error_of(tmp_path, text), tmp_path, 5, "sentences.t.slots.a", "plain text")


def test_file_level_slots_must_be_lists(tmp_path):
    text = "slots:\n  animals: cat\n" + MINIMAL
    assert_located(error_of(tmp_path, text), tmp_path, 2, "slots.animals",
                   "expected a list of values, got 'cat' (a string)")


def test_oversized_template_suggests_generate(tmp_path):
    values = ", ".join(str(i) for i in range(101))
    text = f"sentences:\n  t:\n    template: '{{a}} {{b}}'\n    slots: {{a: [{values}], " \
           f"b: [{values}]}}\nhypotheses: []\n"
    assert_located(error_of(tmp_path, text), tmp_path, 3, "sentences.t.template",
                   "add 'generate: N'")


def test_missing_hypothesis_file_is_an_error(tmp_path):
    with pytest.raises(ClaimFileError, match="no such hypothesis file"):
        load_hypothesis_file(tmp_path / "absent.yaml")


# --- recognising hypothesis files -----------------------------------------------------------


def test_recognises_hypothesis_files_and_rejects_other_yaml(tmp_path):
    assert looks_like_hypothesis_file(write(tmp_path, MINIMAL))
    assert not looks_like_hypothesis_file(write(tmp_path, "name: ci\njobs: {}\n", "ci.yaml"))
    assert not looks_like_hypothesis_file(write(tmp_path, "- hypotheses\n", "list.yaml"))
    assert not looks_like_hypothesis_file(tmp_path / "absent.yaml")


def test_malformed_file_with_a_hypotheses_line_is_recognised_so_its_error_shows(tmp_path):
    assert looks_like_hypothesis_file(write(tmp_path, "hypotheses:\n  - [oops\n"))
    assert not looks_like_hypothesis_file(write(tmp_path, "jobs: [oops\n", "other.yaml"))


def test_unquoted_greater_than_expectation_says_to_quote_it(tmp_path):
    text = MINIMAL.replace('expect: ">= 0.5"', "expect: >= 0.5")
    error = error_of(tmp_path, text)
    assert_located(error, tmp_path, 9, None, "not valid YAML", "quote the expectation")
