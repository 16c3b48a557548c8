"""What a user gets back in Python shows itself in Jupyter (SPEC §16) — a loaded model, a run, a
claim's results, a profile, a diff — seen through IPython's display formatter as a notebook
calls it: text and self-contained HTML with the right numbers, hostile text escaped, and a
one-line ``repr``. On MiniLM, with a few sentences; ``headprobe.profile``, ``load_profile`` and
``diff`` along the way."""

from __future__ import annotations

import dataclasses
import html
import inspect
import re

import pytest
from derived import derive, swap_heads
from html_checks import assert_self_contained

import headprobe
from headprobe.errors import UsageError
from headprobe.heads import Head
from headprobe.regression.diff import DEFAULT_TOLERANCE, diff_table

pytest.importorskip("IPython")
from IPython.core.formatters import DisplayFormatter

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HOSTILE = "<script>alert('x')</script> & friends"
SENTENCES = ["The cat sat on the mat.", "A dog barked at the moon all night.",
             f"Then I read {HOSTILE} aloud.", "The old turtle moved slowly across the road."]


def shown(obj) -> dict[str, str]:
    data, _ = DisplayFormatter().format(obj)
    assert set(data) >= {"text/plain", "text/html"}
    assert_self_contained(data["text/html"])
    assert "\n" not in repr(obj)
    return data


@pytest.fixture(scope="module")
def minilm():
    return headprobe.load(MINILM)


@pytest.fixture(scope="module")
def profiled(minilm, tmp_path_factory):
    return headprobe.profile(minilm, SENTENCES,
                             cache=tmp_path_factory.mktemp("notebook-cache"))


def test_a_loaded_model_shows_its_name_family_sizes_and_fingerprint(minilm):
    data = shown(minilm)
    short = minilm.fingerprint[:len("sha256:") + 12]
    for text in (data["text/plain"], data["text/html"]):
        for expected in (MINILM, "bert", "6 layers x 12 heads", short, "512 tokens",
                         "masked-LM head"):
            assert expected in text
    assert "local layers" not in data["text/plain"]  # MiniLM has none
    assert shown(minilm.model())["text/html"] == data["text/html"]


def test_a_handle_not_loaded_shows_its_files_without_loading(minilm):
    from headprobe.engine.models import ModelRegistry

    handle = ModelRegistry(memo_root=None, programs=False, fingerprints=False).handle(MINILM)
    data = shown(handle)
    assert "weights not loaded" in data["text/plain"] and "6 layers x 12 heads" in data[
        "text/plain"]
    assert "computed when the model loads" in data["text/plain"]
    assert not handle.loaded


def test_a_run_shows_its_tokens_escaped_and_where_each_head_looks(minilm):
    run = minilm.run([SENTENCES[2]])[0]
    data = shown(run)
    assert repr(run) == (f"Run({SENTENCES[2]!r}, {run.num_tokens} tokens, "
                         f"6 layers x 12 heads)")
    markup = data["text/html"]
    assert HOSTILE not in markup and "<script>" not in markup
    assert html.escape(HOSTILE) in markup
    assert markup.count('title="token ') == run.num_tokens
    for label in run.display_tokens:
        assert f">{html.escape(label)}</span>" in markup
    assert all(f"L{layer}H{head}" in markup for layer in (1, 6) for head in (1, 12))
    # MiniLM's L2H9 is a next-token head (docs/python-api.md)
    assert re.search(r'title="L2H9: the most attended token is next for \d+%', markup)
    assert " ".join(run.display_tokens) in data["text/plain"]


def test_a_claims_results_show_value_interval_n_and_outcome(minilm):
    result = minilm.claim("L2H9: token -> next").over(SENTENCES).argmax()
    interval = f"[{result.ci[0]:.3f}, {result.ci[1]:.3f}]"
    before = shown(result)
    assert f"L2H9 argmax {result.value:.3f} {interval} (n={result.n})" in before["text/plain"]
    assert "not compared to a bound yet" in before["text/plain"]
    assert 'class="measured"' in before["text/html"]
    assert result >= 0.5
    after = shown(result)
    assert (f"L2H9 argmax {result.value:.3f} {interval} >= 0.5 passed (n={result.n})"
            in after["text/plain"])
    markup = after["text/html"]
    for expected in ("L2H9", f"{result.value:.3f}", interval, f">{result.n}<", "passed",
                     '<td class="passed"'):
        assert expected in markup
    assert markup.count("<td class=\"none\"></td>") == 6 * 12 - 1  # the grid: one head
    assert not result >= 0.999
    failed = shown(result)
    assert ">= 0.999 failed" in failed["text/plain"] and '<td class="failed"' in failed[
        "text/html"]
    assert repr(result).startswith("<L2H9: token -> next on L2H9: argmax = ")


def test_several_heads_show_one_row_and_one_cell_each(minilm):
    result = minilm.claim("L2H*: token -> next", quantifier="any").over(SENTENCES).argmax()
    assert result >= 0.5
    data = shown(result)
    lines = data["text/plain"].splitlines()
    assert lines[0].endswith("passed >= 0.5") and "any" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [f"L2H{h}" for h in range(1, 13)]
    assert "L2H9 argmax" in data["text/plain"] and "meets it" in data["text/plain"]
    assert data["text/html"].count("<td class=\"none\"></td>") == 5 * 12


def test_a_profile_shows_what_was_profiled_and_a_grid(profiled, minilm):
    assert repr(profiled) == f"Profile({MINILM!r}, 72 heads, 4 sentences, level 'token')"
    data = shown(profiled)
    for expected in (MINILM, "4 (sha256 ", "6 layers x 12 heads", "level"):
        assert expected in data["text/plain"]
    markup = data["text/html"]
    value = profiled.value(Head(1, 3), "argmax:previous")  # MiniLM's previous-token head
    assert re.search(rf'title="L1H3: argmax:previous = {value:.3f}"', markup)
    entropy = shown(profiled.grid("entropy"))["text/html"]
    assert f'title="L6H12: entropy = {profiled.value(Head(6, 12), "entropy"):.3f}"' in entropy
    with pytest.raises(UsageError, match="did you mean 'entropy'"):
        profiled.grid("entropi")


def test_a_profile_is_saved_and_loaded(profiled, tmp_path):
    path = profiled.save(tmp_path / "minilm.profile.json")
    loaded = headprobe.load_profile(path)
    assert (loaded.model, loaded.count, loaded.sentences_sha256) == (
        profiled.model, 4, profiled.sentences_sha256)
    shown(loaded)
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UsageError, match="bad.json: not a headprobe profile"):
        headprobe.load_profile(tmp_path / "bad.json")
    with pytest.raises(UsageError, match="is a folder"):
        profiled.save(tmp_path)


def test_a_diff_shows_the_changes_grid_and_the_commands_table(profiled, tmp_path):
    swapped = derive(tmp_path / "swap", swap_heads(3, 2, 7))
    found = headprobe.diff(profiled, str(swapped), cache=tmp_path / "cache")
    assert found.changed == (Head(3, 2), Head(3, 7)) or found.changed == (Head(3, 7),
                                                                          Head(3, 2))
    data = shown(found)
    assert data["text/plain"].splitlines()[:22] == diff_table(found)[:22]
    assert data["text/plain"].endswith("(diff.heads lists them all)")
    markup = data["text/html"]
    assert markup.count("hp-outlined") == 2 + 1  # two cells, and the stylesheet's rule
    for change in found.heads[:2]:
        assert f"{change.change:+.3f}" in markup and str(change.head) in markup
    assert re.fullmatch(rf"ProfileDiff\({re.escape(repr(MINILM))} -> '/.*': 2 of 72 heads "
                        rf"changed beyond 0.05; largest L3H[27] argmax:\S+ [+-]0\.\d{{3}}\)",
                        repr(found))
    # A saved profile on one side, the model by spec on the other: the same changes.
    again = headprobe.diff(profiled.save(tmp_path / "a.json"), str(swapped),
                           SENTENCES, cache=tmp_path / "cache")
    assert again.changed == found.changed


def test_hostile_names_are_escaped_in_a_diff(profiled):
    renamed = dataclasses.replace(profiled, model=HOSTILE)
    data = shown(headprobe.diff(renamed, profiled))
    assert "<script>" not in data["text/html"]
    assert html.escape(HOSTILE) in data["text/html"]
    assert "<script>" not in shown(renamed)["text/html"]


def test_what_cannot_be_diffed_is_a_usage_error(profiled, minilm):
    with pytest.raises(UsageError, match="is a profile over other sentences than the 3 "):
        headprobe.diff(profiled, minilm, SENTENCES[:3], cache=False)
    with pytest.raises(UsageError, match="is a profile at level 'token', not 'word'"):
        headprobe.diff(profiled, minilm, level="word", cache=False)
    with pytest.raises(UsageError, match="tolerance: expected a number >= 0"):
        headprobe.diff(profiled, profiled, tolerance=-1)
    with pytest.raises(UsageError, match="sentences: expected a list of sentences"):
        headprobe.profile(minilm, "The cat sat.", cache=False)
    with pytest.raises(UsageError, match="effects: .* without effect:hidden"):
        headprobe.diff(profiled, minilm, effects=True, cache=False)
    assert inspect.signature(headprobe.diff).parameters["tolerance"].default \
        == DEFAULT_TOLERANCE
