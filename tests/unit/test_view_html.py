"""The interactive view's HTML (SPEC §16), pure: built from hand-made numbers and fake runs, no
model and no browser (tests/cli/test_view_browser.py runs it in Chromium)."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from html.parser import HTMLParser

import numpy as np
import pytest

from headprobe.engine.views import View, pick_heads, view
from headprobe.errors import UsageError
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.results import ClaimResult
from headprobe.heads import Head
from headprobe.report.html import render_index_html
from headprobe.report.view import (
    MAX_NUMBERS,
    SCALE,
    ViewData,
    ViewLevel,
    check_size,
    count_numbers,
    iframe,
    render_fragment,
    render_view,
)
from headprobe.runs import Run

HOSTILE = '</script><img src=x onerror=alert(1)>'


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parsed(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    tags.close()
    return tags


def level(labels, expected=None) -> ViewLevel:
    return ViewLevel(labels=tuple(labels), spans=tuple((i, i) for i in range(len(labels))),
                     special=tuple(label.startswith("[") for label in labels), expected=expected)


def sample(text="The cat sat.", labels=("[CLS]", "the", "cat", "sat", ".", "[SEP]"),
           model="tiny/model", heads=("L1H2", "L2H3"), halves=(None, 2), title="",
           notes=()) -> ViewData:
    n = len(labels)
    eye = [SCALE if q == k else 0 for q in range(n) for k in range(n)]
    previous = [SCALE if k == max(q - 1, 0) else 0 for q in range(n) for k in range(n)]
    return ViewData(model=model, text=text, heads=tuple(heads), halves=tuple(halves),
                    levels={"token": level(labels)},
                    weights={"attention": {"token": [eye, previous][:len(heads)]}},
                    title=title, notes=tuple(notes))


def embedded_data(document: str) -> dict:
    """The view's numbers: the JSON of its data script (which holds no ``<``)."""
    (data,) = re.findall(r'<script type="application/json" class="hp-view-data">(.*?)</script>',
                         document, re.DOTALL)
    return json.loads(data)


# ---- self-contained: nothing from the network --------------------------------------------------

def test_the_document_loads_nothing_and_names_no_address():
    document = render_view(sample())
    assert document.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|//[a-z]|url\(|@import", document, re.IGNORECASE)
    for tag, attrs in parsed(document).tags:
        assert not {"src", "href", "action", "srcset", "poster", "data"} & set(attrs), tag
        assert tag not in ("link", "img", "iframe", "object", "embed", "base", "form"), tag
    (policy,) = [a["content"] for t, a in parsed(document).tags
                 if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in policy
    # Several views in one page must not clash: nothing has an id.
    assert not any("id" in attrs for _, attrs in parsed(document).tags)


def test_two_fragments_share_a_page_without_ids():
    page = render_fragment(sample(heads=("L1H2",), halves=(None,))) + render_fragment(sample())
    tags = parsed(page).tags
    assert sum(1 for t, a in tags if t == "div" and a.get("class") == "hp-view") == 2
    assert not any("id" in attrs for _, attrs in tags)


# ---- escaping ----------------------------------------------------------------------------------

def test_hostile_sentences_labels_models_and_titles_stay_text():
    labels = ("[CLS]", HOSTILE, "<b>&amp;</b>", "[SEP]")
    document = render_view(sample(text=HOSTILE, labels=labels, model=f"model{HOSTILE}",
                                  title=f"claim {HOSTILE}", notes=(HOSTILE,)))
    tags = parsed(document)
    assert [t for t, _ in tags.tags if t in ("img", "b")] == []
    assert document.count("</script>") == len(tags.scripts) == 2  # the data and the code
    assert not any("onerror" in attrs for _, attrs in tags.tags)
    data = embedded_data(document)
    assert data["levels"]["token"]["labels"] == list(labels)  # the JSON reads back exactly
    (json_text,) = [s for s in tags.scripts if s.lstrip().startswith("{")]
    assert "<" not in json_text and ">" not in json_text and "&" not in json_text
    assert html.escape(HOSTILE) in document  # the header shows the text as text


def test_the_iframe_for_notebooks_holds_the_document_in_srcdoc():
    document = render_view(sample(text=HOSTILE))
    frame = iframe(document, height=300, title=HOSTILE)
    (tag,) = parsed(frame).tags
    assert tag[0] == "iframe" and tag[1]["sandbox"] == "allow-scripts"
    assert tag[1]["srcdoc"] == document and tag[1]["title"] == HOSTILE
    assert "allow-same-origin" not in frame


# ---- the numbers -------------------------------------------------------------------------------

def test_numbers_are_integers_in_units_of_a_ten_thousandth():
    data = embedded_data(render_view(sample()))
    assert data["scale"] == SCALE == 10_000
    assert data["weights"]["attention"]["token"][1][6] == SCALE  # "the" looks at [CLS]
    assert data["halves"] == [None, 2] and data["heads"] == ["L1H2", "L2H3"]


def test_view_data_checks_its_shapes():
    with pytest.raises(ValueError, match="matrices of 6 x 6"):
        ViewData(model="m", text="t", heads=("L1H1",), halves=(None,),
                 levels={"token": level(["[CLS]", "a", "b", "c", "d", "[SEP]"])},
                 weights={"attention": {"token": [[0] * 35]}})
    with pytest.raises(ValueError, match="first level"):
        ViewData(model="m", text="t", heads=("L1H1",), halves=(None,),
                 levels={"token": level(["a"])}, weights={"attention": {"token": [[1]]}},
                 level="word")


def test_size_bound_says_how_many_and_what_to_do():
    check_size(144, (128,), 1)  # exactly the bound
    assert count_numbers(144, (128,), 1) == MAX_NUMBERS
    with pytest.raises(UsageError) as error:
        check_size(144, (128, 100), 2, heads_option="--head")
    message = str(error.value)
    assert f"{count_numbers(144, (128, 100), 2):,} weights" in message
    assert f"at most {MAX_NUMBERS:,}" in message
    assert "pick fewer heads with --head" in message and "shorter sentence" in message


# ---- picking heads -----------------------------------------------------------------------------

@pytest.mark.parametrize(("heads", "expected"), [
    (None, [Head(l, h) for l in (1, 2) for h in (1, 2, 3)]),
    ("L2H3", [Head(2, 3)]),
    ("L2H*", [Head(2, 1), Head(2, 2), Head(2, 3)]),
    ("L2H3,L1H1", [Head(2, 3), Head(1, 1)]),
    (["L1H2", "L1H2", (2, 1)], [Head(1, 2), Head(2, 1)]),
    ((2, 2), [Head(2, 2)]),
    (Head(1, 3), [Head(1, 3)]),
])
def test_heads_are_names_patterns_or_one_based_pairs(heads, expected):
    assert list(pick_heads(heads, 2, 3)) == expected


@pytest.mark.parametrize(("heads", "message"), [
    ("L3H1", "heads: layer 3 in L3H1 is out of range"),
    ((0, 1), "counted from 1"),
    ("L2X", "expected a head such as 'L3H10'"),
    ([], "no heads given"),
    (3.5, "expected a head such as 'L2H9'"),
])
def test_bad_heads_are_usage_errors(heads, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        pick_heads(heads, 2, 3)


# ---- the glue, on a fake model ------------------------------------------------------------------

TOKENS = ["[CLS]", "the", "river", "##bank", "[SEP]"]
WORD_IDS = (None, 0, 1, 1, None)


class FakeModel:
    """Two layers of three heads, five tokens ("riverbank" two pieces): random attention rows
    that sum to 1, the norm weighting another draw. Counts its runs."""

    name = "fake/model<b>"
    num_layers, num_heads = 2, 3
    windows = (None, 1)

    def __init__(self, measures_outputs=True):
        self.measures_outputs = measures_outputs
        self.runs: list[tuple[str, str]] = []

    def tokenize(self, texts):
        return [self._run(texts[0], np.zeros((2, 3, 5, 5), np.float32))]

    def run(self, texts, *, hidden_states, mlm_logits, num_layers, weighting):
        assert not hidden_states and not mlm_logits
        self.runs.append((texts[0], weighting))
        rng = np.random.default_rng(0 if weighting == "attention" else 1)
        weights = rng.random((2, 3, 5, 5)).astype(np.float32)[:num_layers]
        return [self._run(texts[0], weights / weights.sum(axis=-1, keepdims=True))]

    @staticmethod
    def _run(text, attentions):
        return Run(text=text, tokens=list(TOKENS), input_ids=np.arange(5, dtype=np.int32),
                   word_ids=WORD_IDS, offsets=((0, 0), (0, 3), (4, 9), (9, 13), (0, 0)),
                   attentions=attentions)


def test_view_runs_each_weighting_once_and_reads_words_as_claims_do():
    model = FakeModel()
    shown = view(model, "the riverbank", heads="L2H*", level="word", weighting="norm")
    assert model.runs == [("the riverbank", "norm"), ("the riverbank", "attention")]
    data = embedded_data(shown.html)
    assert data["level"] == "word" and data["weighting"] == "norm"
    assert data["levels"]["word"]["labels"] == ["[CLS]", "the", "riverbank", "[SEP]"]
    assert data["levels"]["word"]["spans"] == [[0, 0], [1, 1], [2, 3], [4, 4]]
    assert data["halves"] == [1, 1, 1]  # layer 2 is local in the fake model
    (run,) = model.run(["the riverbank"], hidden_states=False, mlm_logits=False, num_layers=2,
                       weighting="attention")
    claims_read = level_view(run, "word").matrix(Head(2, 3))
    stored = np.array(data["weights"]["attention"]["word"][2]).reshape(4, 4) / SCALE
    np.testing.assert_allclose(stored, claims_read, atol=0.5 / SCALE)
    tokens = np.array(data["weights"]["attention"]["token"][0]).reshape(5, 5) / SCALE
    np.testing.assert_allclose(tokens, run.attentions[1, 0], atol=0.5 / SCALE)


def test_a_model_that_cannot_measure_outputs_gets_attention_only():
    model = FakeModel(measures_outputs=False)
    data = embedded_data(view(model, "the riverbank", heads="L1H1").html)
    assert list(data["weights"]) == ["attention"]
    with pytest.raises(UsageError, match="weighting='norm' needs"):
        view(model, "the riverbank", heads="L1H1", weighting="norm")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"sentence": ["a", "b"]}, "sentence: expected one text (a str), got list"),
    ({"level": "sentence"}, "level: expected one of 'token', 'word'"),
    ({"weighting": "value"}, "weighting: expected one of 'attention', 'norm'"),
    ({"heads": "L9H1"}, "heads: layer 9 in L9H1 is out of range"),
])
def test_bad_arguments_are_usage_errors_before_the_model_runs(arguments, message):
    model = FakeModel()
    with pytest.raises(UsageError, match=re.escape(message)):
        view(model, **{"sentence": "the riverbank", **arguments})
    assert model.runs == []


def test_a_model_spec_instead_of_a_model_says_to_load_it():
    with pytest.raises(UsageError, match=re.escape("headprobe.view(headprobe.load(SPEC)")):
        view("bert-base-uncased", "The cat sat.")


def test_too_big_a_view_fails_before_the_model_runs(monkeypatch):
    monkeypatch.setattr("headprobe.report.view.MAX_NUMBERS", 100)
    model = FakeModel()
    with pytest.raises(UsageError, match="pick fewer heads with heads"):
        view(model, "the riverbank")
    assert model.runs == []


# ---- the View object ---------------------------------------------------------------------------

def test_view_object_repr_display_and_save(tmp_path):
    shown = view(FakeModel(), HOSTILE, heads="L1H2")
    assert "\n" not in repr(shown) and repr(shown).startswith("<View L1H2 of fake/model<b>")
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and bundle["text/plain"] == repr(shown)
    (frame,) = parsed(bundle["text/html"]).tags
    assert frame[1]["srcdoc"] == shown.html and frame[1]["sandbox"] == "allow-scripts"
    target = tmp_path / "deep" / "view.html"
    assert shown.save(target) == str(target)
    assert target.read_text(encoding="utf-8") == shown.html
    assert [p.name for p in target.parent.iterdir()] == ["view.html"]  # no temporary left
    with pytest.raises(UsageError, match=re.escape(f"save {tmp_path}: is a folder")):
        shown.save(tmp_path)


def test_view_is_importable_from_the_package_without_loading_anything():
    import headprobe

    assert "view" in dir(headprobe)
    assert isinstance(headprobe.view(FakeModel(), "the riverbank", heads=(1, 1)), View)


# ---- failures in report.json and index.html ----------------------------------------------------

def claim_result(**fields) -> ClaimResult:
    base = dict(file="h.yaml", id="next", head="L1H1", claim="L1H1: token -> next",
                measure="argmax", level="token", model="m", model_fingerprint="sha256:0",
                expect=">= 0.5", value=0.1, ci=(0.0, 0.3), n=10, left_out=0, passed=False)
    return ClaimResult(**{**base, **fields})


def test_report_json_lists_views_only_when_there_are_some():
    assert "views" not in claim_result().to_json()
    data = claim_result(figures=("figures/a_1.png",), views=("figures/a_1.html",)).to_json()
    assert data["views"] == ["figures/a_1.html"]
    assert list(data)[14:16] == ["figures", "views"]


def test_index_html_frames_each_view_sandboxed_and_refuses_absolute_paths():
    result = claim_result(figures=["figures/a_1.png"],
                          views=["figures/a b_1.html", "/etc/passwd", "https://x.test/v.html",
                                 f"figures/{HOSTILE}.html"]).to_json()
    page = render_index_html({"results": [result], "summary": {"failed": 1}})
    frames = [a for t, a in parsed(page).tags if t == "iframe"]
    assert [f["src"] for f in frames] == [
        "figures/a%20b_1.html", "figures/" + urllib.parse.quote(HOSTILE, safe="/") + ".html"]
    assert all(f["sandbox"] == "allow-scripts" for f in frames)
    assert "view not shown (not a relative path): /etc/passwd" in page
    assert "view not shown (not a relative path): https://x.test/v.html" in page
    assert not any(t == "img" and a.get("src") == "x" for t, a in parsed(page).tags)


def test_a_pinned_position_is_in_the_data_and_must_be_in_the_sentence():
    data = sample()
    pinned = ViewData(**{**data.__dict__, "pinned": 3})
    assert embedded_data(render_view(pinned))["pinned"] == 3
    assert embedded_data(render_view(data))["pinned"] is None
    with pytest.raises(ValueError, match="pinned position 6 is outside"):
        ViewData(**{**data.__dict__, "pinned": 6})


def test_the_legend_names_only_the_marks_a_view_has():
    plain = render_view(sample(heads=("L1H2",), halves=(None,)))
    assert "the most-attended key" in plain
    assert "the claim's targets" not in plain and "local head's window" not in plain
    marked = ViewData(**{**sample().__dict__, "levels": {"token": level(
        ("[CLS]", "the", "cat", "sat", ".", "[SEP]"), expected=((), (2,), (3,), (4,), (), ()))}})
    page = render_view(marked)
    assert "the claim's targets" in page and "local head's window" in page
    assert embedded_data(page)["levels"]["token"]["expected"][1] == [2]
