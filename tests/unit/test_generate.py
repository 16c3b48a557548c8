"""Generated sentence sets (`headprobe.generate`): seeded draws, simplest-first slot values,
shrinking to the simplest failing sentence, and the example database under the cache dir."""

from __future__ import annotations

from pathlib import Path

from headprobe.claims.spec import Template
from headprobe.generate import draw_sentences, shrink_counterexample, simplest_first

TEMPLATE = Template("The {animal} sat on the [{thing}]{place}.",
                    (("animal", ("horse", "cat", "zebra", "dog")),
                     ("thing", ("red carpet", "table", "rug", "mat", "big red carpet"))),
                    generate=7)


def test_slot_values_are_ordered_fewest_words_then_shortest_then_alphabetical():
    assert simplest_first(("big red carpet", "table", "rug", "mat", "red carpet", "mat")) == (
        "mat", "rug", "table", "red carpet", "big red carpet")


def test_same_seed_draws_the_same_sentences_and_another_seed_others(tmp_path):
    first = [s.text for s in draw_sentences(TEMPLATE, seed=5, storage_dir=tmp_path)]
    again = [s.text for s in draw_sentences(TEMPLATE, seed=5, storage_dir=tmp_path)]
    assert first == again
    assert 1 < len(first) <= 7 and len(set(first)) == len(first)
    others = [[s.text for s in draw_sentences(TEMPLATE, seed=seed, storage_dir=tmp_path)]
              for seed in range(6, 10)]
    assert any(o != first for o in others)


def test_drawn_sentences_keep_their_spans_and_slot_values(tmp_path):
    for sentence in draw_sentences(TEMPLATE, seed=1, origin="h.yaml:4", storage_dir=tmp_path):
        (span,) = sentence.spans
        thing = dict(sentence.slot_values)["thing"]
        assert span.label == "place" and sentence.text[span.start:span.end] == thing
        assert sentence.origin == "h.yaml:4"


def test_hypothesis_files_go_to_the_storage_dir_not_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    draw_sentences(TEMPLATE, seed=2, storage_dir=tmp_path / "store")
    assert not (tmp_path / ".hypothesis").exists()


def _zebra_on_carpet(calls: list[str]):
    def fails(sentence) -> bool:
        calls.append(sentence.text)
        return "zebra" in sentence.text and "carpet" in sentence.text
    return fails


def test_shrinking_finds_the_simplest_failing_sentence(tmp_path):
    calls: list[str] = []
    found = shrink_counterexample(TEMPLATE, 0, _zebra_on_carpet(calls),
                                  database_dir=tmp_path / "examples", key="a")
    assert found is not None and found.text == "The zebra sat on the red carpet."
    assert len(calls) > 2


def test_no_failure_found_gives_none(tmp_path):
    assert shrink_counterexample(TEMPLATE, 0, lambda sentence: False,
                                 database_dir=tmp_path / "examples", key="a") is None


def test_remembered_counterexample_is_tried_first_on_the_next_run(tmp_path):
    database = tmp_path / "examples"
    shrink_counterexample(TEMPLATE, 3, _zebra_on_carpet([]), database_dir=database, key="a")
    assert any(Path(database).iterdir())
    calls: list[str] = []
    found = shrink_counterexample(TEMPLATE, 3, _zebra_on_carpet(calls), database_dir=database,
                                  key="a")
    assert found.text == calls[0] == "The zebra sat on the red carpet."
    other: list[str] = []  # another claim (key) does not see it
    shrink_counterexample(TEMPLATE, 3, _zebra_on_carpet(other), database_dir=database, key="b")
    assert other[0] != "The zebra sat on the red carpet."
