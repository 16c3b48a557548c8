"""headprobe.notebook: the pieces every notebook display is built from (SPEC §16), through
IPython's display formatter as Jupyter calls it: self-contained, escaped, well formed."""

from __future__ import annotations

import html

import pytest
from html_checks import assert_self_contained, problems

from headprobe import notebook

pytest.importorskip("IPython")
from IPython.core.formatters import DisplayFormatter

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def shown(obj, **options):
    data, _ = DisplayFormatter().format(obj, **options)
    return data


def test_the_check_catches_what_would_load_or_run():
    assert problems('<div><script src="http://x"></script><b onclick="f()">x</b></div>') == [
        "<script>", "script src=", "b onclick="]
    assert problems("<div><style>a{background:url(x)}</style><b></div>") == [
        "a stylesheet that fetches", "</div> out of order", "<div> left open"]


def test_a_display_gives_text_and_html_and_honours_include_and_exclude():
    display = notebook.Display("first line\nsecond", notebook.page("title", notebook.note("x")))
    data = shown(display)
    assert data["text/plain"] == "first line\nsecond"
    assert 'class="headprobe-display"' in data["text/html"]
    assert set(shown(display, include={"text/plain"})) == {"text/plain"}
    assert "text/html" not in shown(display, exclude={"text/html"})
    assert repr(display) == "first line"


def test_every_text_is_escaped():
    cell = notebook.Cell(value=HOSTILE, note=HOSTILE, title=HOSTILE, status="passed")
    markup = notebook.page(HOSTILE, notebook.facts([(HOSTILE, HOSTILE)]),
                           notebook.table([HOSTILE], [[HOSTILE]]),
                           notebook.tokens([HOSTILE, "[CLS]"], [False, True]),
                           notebook.grid([[cell, None]], caption=HOSTILE))
    assert HOSTILE not in markup and "<script>" not in markup
    assert html.escape(HOSTILE, quote=True) in markup
    assert problems(markup) == []


def test_a_grid_names_heads_from_1_and_marks_cells():
    cells = [[notebook.Cell(value="0.910", status="passed"), None],
             [notebook.Cell(value="+0.300", shade=1.0, outlined=True),
              notebook.Cell(value="n/a", shade=float("nan"))]]
    markup = notebook.grid(cells, caption="layers x heads", palette="red")
    assert "<th>H1</th><th>H2</th>" in markup and "<th>L2</th>" in markup
    assert 'class="passed"' in markup and "L1H1<small>0.910</small>" in markup
    assert '<td class="none"></td>' in markup  # L1H2: no cell
    assert 'class="hp-outlined" style="background:hsl(0,70%,42%);color:#fff"' in markup
    assert "hsl(0,70%,100%)" in markup  # NaN: white
    assert_self_contained(notebook.page("grid", markup))


def test_a_grid_too_large_is_left_out_with_a_line_saying_so():
    cells = [[notebook.Cell()] * 65 for _ in range(64)]
    markup = notebook.grid(cells, caption="big")
    assert "<table" not in markup and "not drawn: 64 layers x 65 heads" in markup


def test_long_token_lists_are_cut():
    markup = notebook.tokens([f"t{i}" for i in range(notebook.MAX_TOKENS + 5)])
    assert "t0" in markup and f"t{notebook.MAX_TOKENS}<" not in markup
    assert "5 more tokens" in markup


def test_model_facts_say_family_sizes_fingerprint_and_local_layers():
    rows = dict(notebook.model_rows(family="modernbert", kind="checkpoint", layers=3, heads=4,
                                    fingerprint="sha256:" + "ab" * 32, max_length=8192,
                                    mlm_head=True, windows=(64, None, 64)))
    assert rows == {"family": "modernbert", "heads": "3 layers x 4 heads",
                    "fingerprint": "sha256:abababababab...", "max length": "8,192 tokens",
                    "masked-LM head": "yes",
                    "local layers": "layers 1, 3: 64 tokens each side"}
    export = dict(notebook.model_rows(family="bert", kind="ONNX export (dynamic int8)",
                                      layers=6, heads=12, fingerprint="being computed",
                                      max_length=512, mlm_head=None))
    assert export["family"] == "bert, ONNX export (dynamic int8)"
    assert export["fingerprint"] == "being computed"
    assert export["masked-LM head"] == "not known before loading"
    assert "local layers" not in export


def test_one_line_flattens_and_shortens():
    assert notebook.one_line("a\nb\t c") == "a b c"
    assert notebook.one_line("x" * 100, 10) == "xxxxxxx..."
