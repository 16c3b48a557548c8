"""The interactive view (SPEC §16) in headless Chromium, offline: it loads with no console
message and no request, and hovering, clicking and keys highlight where a token looks.

The page's own self-test (``#selftest``) dispatches mouseover, click, keydown and change events
on the view's tokens and controls and writes what was highlighted into ``data-hp-selftest``;
``--dump-dom`` hands that back. Chromium resolves no host (``--host-resolver-rules``) and prints
every console message on stderr, where any is a failure.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from browser import headless
from check_runner import check_subprocess, write_project

import headprobe
from headprobe.engine.views import view_data
from headprobe.heads import Head
from headprobe.report.view import render_fragment

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# Every word one wordpiece but "riverbank" (river ##bank): the word level has one position less.
SENTENCE = "The quick brown fox jumps over the lazy dog near the riverbank."


def browse(page: Path, tmp_path: Path, fragment: str = "#selftest") -> tuple[str, list[str]]:
    """(the DOM after the page's scripts ran, the console messages Chromium logged)."""
    done = headless("--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
                    "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + fragment,
                    profile=tmp_path / "chromium-profile")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def selftests(dom: str) -> list[dict]:
    """Each view's self-test record, in page order."""
    return [json.loads(html.unescape(found))
            for found in re.findall(r'data-hp-selftest="([^"]*)"', dom)]


def clean(dom: str, console: list[str]) -> None:
    assert console == []
    assert 'data-hp-errors="' not in dom and 'data-hp-failed="' not in dom


@pytest.fixture(scope="module")
def minilm():
    return headprobe.load(MINILM)


@pytest.fixture(scope="module")
def minilm_view(minilm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("view")
    page = folder / "view.html"
    headprobe.view(minilm, SENTENCE, heads=["L1H3", "L2H5"]).save(page)
    dom, console = browse(page, folder)
    return dom, console, minilm.run([SENTENCE], hidden_states=False, mlm_logits=False)[0]


def test_view_loads_offline_with_no_console_message_and_no_request(minilm_view):
    dom, console, _ = minilm_view
    clean(dom, console)
    (record,) = selftests(dom)
    assert 'data-hp-ready="1"' in dom
    assert record["resources"] == 0  # nothing was fetched: no script, style, font or image
    assert record["heads"] == ["L1H3", "L2H5"]
    assert record["initialPinned"] is None and record["initialShown"] == ""


def test_hovering_a_token_changes_what_is_highlighted(minilm_view):
    dom, _, run = minilm_view
    (record,) = selftests(dom)
    assert record["labels"] == list(run.display_tokens) and record["n"] == len(run.tokens)
    assert sum(record["changed"]) >= len(run.tokens) - 3  # each hover shades other keys
    assert record["afterLeave"] == ""  # leaving the tokens shows nothing again
    assert all(len(boxed) == 1 for boxed in record["boxed"])  # one most-attended key, boxed
    assert record["most"] == [boxed[0] for boxed in record["boxed"]]


def test_previous_token_head_highlights_the_previous_token(minilm_view):
    """MiniLM's L1H3 attends to the previous token: hovering token i (inside the sentence,
    not [CLS] or [SEP]) highlights token i-1 most, as the run's own argmax says."""
    dom, _, run = minilm_view
    (record,) = selftests(dom)
    inside = range(1, len(run.tokens) - 1)
    assert [record["most"][i] for i in inside] == [i - 1 for i in inside]
    assert [record["most"][i] for i in inside] == [
        int(run.attentions[0, 2, i].argmax()) for i in inside]


def test_click_pins_keys_move_and_controls_switch(minilm_view):
    dom, _, run = minilm_view
    (record,) = selftests(dom)
    assert record["pinnedAfterClick"] == 2
    assert record["shownAfterPinAndLeave"] == "2"  # a pinned token stays shown
    assert record["focusAfterArrow"] == 3 == record["focusState"]  # ArrowDown: the next token
    assert record["pinnedAfterEnter"] == 3
    assert record["focusAfterEnd"] == len(run.tokens) - 1 and record["focusAfterHome"] == 0
    assert record["pinnedAfterEscape"] is None
    assert record["secondHead"] == "L2H5"
    words = [run.word_text(group[0]) for group in run.word_groups()]
    assert record["sizes"]["word"] == len(words) == len(run.tokens) - 1
    assert record["sizes"]["wordLabels"] == words
    assert set(record["weightings"]) == {"attention", "norm"}
    assert record["weightings"]["attention"] != record["weightings"]["norm"]
    assert record["keyTitle"] == "[CLS] → [CLS]: " + record["keyTitle"].split(": ")[1]


def test_two_views_in_one_page_work_apart(minilm, tmp_path):
    (run,) = minilm.run([SENTENCE], hidden_states=False, mlm_logits=False, num_layers=2)
    first = view_data({"attention": run}, [Head(1, 3)], model_name=MINILM, windows=None,
                      level="token", weighting="attention")
    second = view_data({"attention": run}, [Head(2, 5), Head(1, 3)], model_name=MINILM,
                       windows=(None, 2), level="word", weighting="attention")
    page = tmp_path / "two.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + render_fragment(first) + render_fragment(second) + "</body></html>",
                    encoding="utf-8")
    dom, console = browse(page, tmp_path)
    clean(dom, console)
    one, two = selftests(dom)
    assert one["heads"] == ["L1H3"] and two["heads"] == ["L2H5", "L1H3"]
    assert one["level"] == "token" and two["level"] == "word"
    assert one["n"] == len(run.tokens) and two["n"] == len(run.tokens) - 1
    assert one["most"][5] == 4
    # The second view's first head is in a "local layer" reaching 2 tokens: the first word's
    # keys beyond that are hatched, the first view's none.
    assert two["outside"][0] == list(range(3, len(run.tokens) - 1))
    assert all(outside == [] for outside in one["outside"])


# ---- the view in the HTML report ---------------------------------------------------------------

CLAIMS = """
sentences:
  zebras:
    - The zebra sat on the mat.
    - A zebra sat.
hypotheses:
  - id: to-next
    claim: "L1H1: token -> next"
    over: zebras
    expect: ">= 0.5"
"""


def test_a_failing_claim_embeds_its_views_in_the_report(tmp_path, planted_model):
    project = write_project(tmp_path / "project", {"hypotheses/zebra.yaml": CLAIMS},
                            settings=f'model = "{planted_model}"\n')
    done = check_subprocess(project, "hypotheses", cache_dir=tmp_path / "cache")
    assert done.rc == 1, done
    (result,) = done.report()["results"]
    run_dir = project / "reports" / "latest"
    assert result["views"] == [figure.replace(".png", ".html") for figure in result["figures"]]
    assert all((run_dir / path).is_file() for path in result["views"])
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    for path in result["views"]:
        assert f'<iframe src="{path}" sandbox="allow-scripts"' in index
    dom, console = browse(run_dir / "index.html", tmp_path, fragment="")
    assert console == [] and f'data-images-loaded="{len(result["figures"])}/' in dom
    # The worst sentence's view: every token looks at "zebra" (position 2), not at the next one,
    # which the claim expects and the view outlines.
    dom, console = browse(run_dir / result["views"][0], tmp_path)
    clean(dom, console)
    (record,) = selftests(dom)
    assert record["labels"][2] == "zebra"  # both sentences: "[CLS] the zebra", "[CLS] a zebra"
    assert record["most"][1] == 2 and record["most"][3] == 2
    assert record["expected"][1] == [2] and record["expected"][3] == [4]
    assert record["expected"][0] == []  # [CLS] is no source of `token`
    # It opens on the first token that misses: "zebra" looks at itself, not at the next token.
    assert record["initialPinned"] == 2 and record["initialShown"] == "2"
    assert list(record["weightings"]) == ["attention"]  # the claim's weighting


PYTHON_CLAIM = '''
def test_next(headprobe_model):
    assert headprobe_model.claim("L1H1: token -> next").over(["A zebra sat."]).argmax() >= 0.5
'''


def test_a_failing_python_claim_gets_its_views_too(tmp_path, planted_model):
    project = write_project(tmp_path / "project", {"test_claims.py": PYTHON_CLAIM},
                            settings=f'model = "{planted_model}"\n')
    done = check_subprocess(project, "test_claims.py", "-p", "no:cacheprovider",
                            cache_dir=tmp_path / "cache")
    assert done.rc == 1, done
    (result,) = done.report()["results"]
    assert result["figures"] and result["views"] == [
        figure.replace(".png", ".html") for figure in result["figures"]]
    run_dir = project / "reports" / "latest"
    assert all((run_dir / path).is_file() for path in result["views"])
