"""Annotated sentences, templates and sentence files."""

from __future__ import annotations

import os

import pytest

from headprobe.claims.sentences import (
    MAX_EXPANDED,
    Location,
    check_sentence_file_place,
    check_template,
    expand_template,
    parse_annotated,
    read_sentence_file,
    render_template,
    template_slot_names,
)
from headprobe.claims.spec import Sentence, Span
from headprobe.errors import ClaimFileError, FileOutsideProject


def spanned(sentence: Sentence) -> dict[str, str]:
    return {span.label: sentence.text[span.start:span.end] for span in sentence.spans}


# --- annotations ----------------------------------------------------------------------------


def test_spans_are_removed_and_offsets_index_the_clean_text():
    sentence = parse_annotated("The cat [moved]{verb} [slowly]{adv} across.", origin="f:3")
    assert sentence.text == "The cat moved slowly across."
    assert sentence.spans == (Span("verb", 8, 13), Span("adv", 14, 20))
    assert sentence.origin == "f:3"


def test_plain_text_has_no_spans():
    assert parse_annotated("Nothing to see.") == Sentence("Nothing to see.")
    assert parse_annotated("  Nothing {to} see.  ", origin="f.txt:4") == Sentence(
        "Nothing {to} see.", (), "f.txt:4")


def test_mask_without_label_stays_literal():
    sentence = parse_annotated("Then I picked up a [MASK] from the [table]{obj}.")
    assert sentence.text == "Then I picked up a [MASK] from the table."
    assert spanned(sentence) == {"obj": "table"}


def test_mask_inside_a_span_labels_the_mask_token():
    sentence = parse_annotated("a [[MASK]]{obj} here")
    assert sentence.text == "a [MASK] here" and spanned(sentence) == {"obj": "[MASK]"}


def test_mask_followed_by_a_label_is_an_error_that_shows_the_fix():
    with pytest.raises(ClaimFileError, match=r"write '\[\[MASK\]\]\{obj\}'"):
        parse_annotated("a [MASK]{obj} here")


def test_labels_may_hold_letters_digits_underscore_and_hyphen():
    assert spanned(parse_annotated("[a]{x_1-B} [b]{2}")) == {"x_1-B": "a", "2": "b"}


def test_multiword_spans_and_surrounding_whitespace():
    sentence = parse_annotated("   She [ran very fast]{vp} home.  ")
    assert sentence.text == "She ran very fast home."
    assert spanned(sentence) == {"vp": "ran very fast"}


def test_backslash_escapes_give_literal_brackets_and_braces():
    sentence = parse_annotated(r"see \[1\] and \{x\} or a\\b [it]{p}")
    assert sentence.text == r"see [1] and {x} or a\b it"
    assert spanned(sentence) == {"p": "it"}


def test_braces_outside_labels_are_literal():
    assert parse_annotated("a {b} c").text == "a {b} c"


def test_the_same_label_may_mark_several_spans():
    sentence = parse_annotated("[a]{n} and [b]{n}")
    assert [sentence.text[s.start:s.end] for s in sentence.spans] == ["a", "b"]


def annotation_error(text: str) -> str:
    with pytest.raises(ClaimFileError) as info:
        parse_annotated(text)
    return str(info.value)


@pytest.mark.parametrize("text, what, column", [
    ("a [b c", "is never closed", 3),
    ("a b] c", "']' without a matching '['", 4),
    ("a [b [c]{x}]{y}", "spans cannot be nested", 6),
    ("a [b] c", "'[b]' is not followed by a label", 6),
    ("a [b]{} c", "the span label is empty", 6),
    ("a [b]{no good} c", "closed by '}'", 6),
    ("a [b]{open", "closed by '}'", 6),
    ("a [ ]{x}", "the span has no text", 3),
])
def test_bad_annotations_point_at_the_column(text, what, column):
    message = annotation_error(text)
    assert what in message and f"column {column}:" in message
    assert message.splitlines()[-2:] == [f"    {text}", "    " + " " * (column - 1) + "^"]


@pytest.mark.parametrize("bad", ["", "   ", None, 7])
def test_empty_or_non_text_sentence_is_an_error(bad):
    with pytest.raises(ClaimFileError, match="empty|expected a sentence"):
        parse_annotated(bad)


# --- templates ------------------------------------------------------------------------------


MOVES = "The {animal} [moved]{verb} [{adverb}]{adv} across the [MASK]."


def test_template_expands_to_every_combination_in_order_of_first_appearance():
    sentences = expand_template(MOVES, {"adverb": ["slowly", "quickly"],
                                        "animal": ["turtle", "cat", "horse"]}, origin="h.yaml:9")
    assert len(sentences) == 6
    assert [s.slot_values for s in sentences[:3]] == [
        (("animal", "turtle"), ("adverb", "slowly")),
        (("animal", "turtle"), ("adverb", "quickly")),
        (("animal", "cat"), ("adverb", "slowly"))]
    assert sentences[1].text == "The turtle moved quickly across the [MASK]."
    assert spanned(sentences[1]) == {"verb": "moved", "adv": "quickly"}
    assert {s.origin for s in sentences} == {"h.yaml:9"}


def test_slot_used_twice_takes_the_same_value_both_times():
    sentences = expand_template("{x} saw {x}.", [("x", ["Ann", "Bo"])])
    assert [s.text for s in sentences] == ["Ann saw Ann.", "Bo saw Bo."]
    assert sentences[0].slot_values == (("x", "Ann"),)


def test_slot_values_may_be_the_mask_token():
    (sentence,) = expand_template("A [{w}]{obj}.", {"w": ["[MASK]"]})
    assert sentence.text == "A [MASK]." and spanned(sentence) == {"obj": "[MASK]"}


def test_template_without_slots_is_one_sentence():
    assert expand_template("Just [one]{n}.", {}) == [Sentence("Just one.", (Span("n", 5, 8),))]


def test_slot_names_in_order_and_labels_are_not_slots():
    assert template_slot_names(MOVES) == ("animal", "adverb")
    assert template_slot_names(r"[x]{lab} {a} \{b} {a}") == ("a",)


def test_unknown_slot_suggests_the_closest():
    with pytest.raises(ClaimFileError, match=r"uses \{animl\} but no slot is called 'animl' "
                                             r"\(did you mean 'animal'\?\); slots given: animal"):
        expand_template("The {animl}.", {"animal": ["cat"]})


def test_unused_slot_is_an_error():
    with pytest.raises(ClaimFileError, match="slot 'colour' is never used"):
        expand_template("The {animal}.", {"animal": ["cat"], "colour": ["red"]})


def test_stray_brace_in_template_points_at_it():
    with pytest.raises(ClaimFileError, match=r"column 5: '\{' must start a slot"):
        expand_template("The { animal}.", {"animal": ["cat"]})


def test_bad_annotation_in_template_names_the_values():
    with pytest.raises(ClaimFileError, match=r"\(with a='q'\): .*is never closed"):
        expand_template("[{a} is open", {"a": ["q"]})


@pytest.mark.parametrize("values, what", [([], "non-empty list"), ("cat", "non-empty list"),
                                          (["ok", ""], "non-empty text"),
                                          (["[x]{y}"], "plain text"), (["a{b"], "plain text"),
                                          (["back\\"], "plain text")])
def test_bad_slot_values_are_errors(values, what):
    with pytest.raises(ClaimFileError, match=what):
        expand_template("The {a}.", {"a": values})


def test_huge_products_ask_for_generate():
    values = [str(i) for i in range(101)]
    with pytest.raises(ClaimFileError, match="add 'generate: N'"):
        expand_template("{a} {b}", {"a": values, "b": values})
    assert len(values) ** 2 > MAX_EXPANDED


def test_check_template_orders_slots_without_expanding():
    ordered = check_template(MOVES, {"adverb": ["slowly"], "animal": ["cat", "dog"]})
    assert ordered == (("animal", ("cat", "dog")), ("adverb", ("slowly",)))


def test_render_template_fills_one_combination():
    sentence = render_template(MOVES, {"animal": "cat", "adverb": "slowly"}, origin="gen")
    assert sentence.text == "The cat moved slowly across the [MASK]."
    assert sentence.slot_values == (("animal", "cat"), ("adverb", "slowly"))
    assert sentence.origin == "gen"


# --- sentence files -------------------------------------------------------------------------

WHERE = Location("hyp/h.yaml", 12, "sentences.everyday")


def test_sentence_file_skips_blank_and_comment_lines(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# header\nFirst one.\n\n   # indented comment\nSecond [one]{n}.\n",
                    encoding="utf-8")
    sentences = read_sentence_file(path, WHERE)
    assert [s.text for s in sentences] == ["First one.", "Second one."]
    assert sentences[1].origin == f"{path}:5" and spanned(sentences[1]) == {"n": "one"}


def test_missing_sentence_file_names_the_yaml_line_and_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(ClaimFileError) as info:
        read_sentence_file(path, WHERE)
    message = str(info.value)
    assert message.startswith("hyp/h.yaml:12: sentences.everyday: sentence file")
    assert str(path) in message and "does not exist" in message


def test_empty_sentence_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(ClaimFileError, match=r"^hyp/h.yaml:12: sentences.everyday: .*no sentences"):
        read_sentence_file(path, WHERE)


def test_folder_instead_of_file_is_an_error(tmp_path):
    with pytest.raises(ClaimFileError, match="is a folder"):
        read_sentence_file(tmp_path, WHERE)


def test_bad_sentence_in_file_points_at_its_line_and_the_yaml(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("Fine.\nBroken [span here.\n", encoding="utf-8")
    with pytest.raises(ClaimFileError) as info:
        read_sentence_file(path, WHERE)
    message = str(info.value)
    assert message.startswith(f"{path}:2: cannot read the sentence at column 8")
    assert "used by hyp/h.yaml:12 (sentences.everyday)" in message


def test_non_utf8_file_is_an_error(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ClaimFileError, match="not UTF-8"):
        read_sentence_file(path, WHERE)


def test_a_sentence_file_path_with_a_nul_is_a_located_error_before_its_place(tmp_path):
    with pytest.raises(ClaimFileError, match=r"^hyp/h.yaml:12: sentences.everyday: sentence "
                                             r"file .*NUL character") as info:
        check_sentence_file_place(tmp_path / "data\0.txt", [tmp_path], WHERE, "data\0.txt")
    assert not isinstance(info.value, FileOutsideProject)  # exit 2, not 4


def test_a_fifo_outside_the_project_is_refused_as_not_a_regular_file_and_never_opened(
        tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "pipe")  # opening it for reading would block
    (project / "pipe.txt").symlink_to(elsewhere / "pipe")
    with pytest.raises(ClaimFileError, match=r"^hyp/h.yaml:12: sentences.everyday: .*a named "
                                             r"pipe \(FIFO\) is not a regular file") as info:
        check_sentence_file_place(project / "pipe.txt", [project], WHERE, "pipe.txt")
    assert not isinstance(info.value, FileOutsideProject)


def test_a_missing_or_regular_file_outside_the_project_is_outside_it(tmp_path):
    (tmp_path / "here.txt").write_text("A cat.\n", encoding="utf-8")
    inside = tmp_path / "project"
    inside.mkdir()
    for name in ("here.txt", "missing.txt"):
        with pytest.raises(FileOutsideProject, match="is outside the project"):
            check_sentence_file_place(tmp_path / name, [inside], WHERE, name)
