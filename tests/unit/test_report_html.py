"""index.html: every result in the table, failures with figures, escaping, and a real browser."""

from __future__ import annotations

import datetime as dt
import html.parser
import os
import re

import numpy as np
import pytest
from browser import chromium_or_skip, headless

from headprobe.report import store
from headprobe.report.figures import attention_figure, render_png
from headprobe.report.html import format_baseline, format_interval, render_index_html

NOW = dt.datetime(2026, 11, 23, 10, 0, 0, tzinfo=dt.timezone.utc)


def result(id_, value, passed, **extra):
    base = {"file": "hypotheses/minilm/positional.yaml", "id": id_, "head": "L2H5",
            "claim": "L2H5: token -> next", "measure": "argmax", "level": "token",
            "model": "sentence-transformers/all-MiniLM-L6-v2", "expect": ">= 0.8",
            "value": value, "ci": [value - 0.05, value + 0.05], "n": 100, "left_out": 3,
            "passed": passed, "figures": []}
    base.update(extra)
    return base


def report(*results):
    passed = sum(r["passed"] is True for r in results)
    return {"headprobe_version": "0.1.0", "started": "2026-11-23T10:00:00Z",
            "results": list(results),
            "summary": {"passed": passed, "failed": len(results) - passed, "errors": 0}}


class TableReader(html.parser.HTMLParser):
    """Rows of the results table (``#results``) as lists of cell texts, and the img srcs of the
    page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self._in_body = self._in_cell = self._in_results = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._in_results = dict(attrs).get("id") == "results"
        elif tag == "tbody" and self._in_results:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._in_cell = True
            self.rows[-1].append("")
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def read(page: str) -> TableReader:
    reader = TableReader()
    reader.feed(page)
    return reader


def test_table_has_one_row_per_result_with_every_column():
    page = render_index_html(report(
        result("next-token", 0.91, True, baseline={"offset": -1, "value": 0.42}),
        result("prev-token", 0.31, False, head="L1H3", figures=["figures/prev_L1H3_1.png"])))
    rows = read(page).rows
    assert rows[0] == ["hypotheses/minilm/positional.yaml", "next-token", "L2H5: token -> next",
                       "L2H5", "argmax", "0.910", "[0.860, 0.960]", ">= 0.8", "100", "3",
                       "passed", "offset -1: 0.420"]
    assert rows[1][1] == "prev-token" and rows[1][3] == "L1H3" and rows[1][10] == "failed"
    assert rows[1][11] == ""
    assert "1 passed" in page and "1 failed" in page


def test_failures_show_their_figures_and_counterexamples_in_order():
    page = render_index_html(report(
        result("ok", 0.9, True),
        result("bad", 0.2, False, figures=["figures/bad_L2H5_1.png", "figures/bad_L2H5_2.png"],
               sentences=12, counterexamples=["The cat sat.", "A much longer cat sat down."])))
    assert read(page).images == ["figures/bad_L2H5_1.png", "figures/bad_L2H5_2.png"]
    failures = page.split("<h2>Failures</h2>")[1]
    assert failures.index("The cat sat.") < failures.index("A much longer cat sat down.")
    assert "sentences checked" in failures and 'id="result-1"' in failures
    assert 'id="result-0"' not in failures                  # passing results have no details


def test_no_failures_says_so():
    assert "No failures." in render_index_html(report(result("ok", 0.9, True)))


def test_user_text_is_escaped_everywhere():
    evil = '<script>alert("x")</script>'
    page = render_index_html(report(result(
        evil, 0.1, False, file=f"h/{evil}.yaml", claim=f"L1H1: word:{evil} -> next",
        model=evil, why=evil, counterexamples=[f"He said {evil} & left.",
                                               {"sentence": evil, "value": 0.0}],
        figures=[f'figures/{evil}".png'])))
    assert "<script>alert" not in page
    assert page.count("<script>") == 1                          # only the page's own script
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "He said &lt;script&gt;" in page and "&amp; left." in page
    srcs = read(page).images
    assert srcs == ["figures/%3Cscript%3Ealert%28%22x%22%29%3C/script%3E%22.png"]


def test_figure_paths_that_are_not_relative_are_not_linked():
    page = render_index_html(report(result("bad", 0.1, False, figures=[
        "javascript:alert(1)", "/etc/passwd", "https://example.com/x.png"])))
    assert read(page).images == []
    assert page.count("not a relative path") == 3


def test_page_needs_no_network():
    page = render_index_html(report(result("bad", 0.1, False, figures=["figures/a.png"])))
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<link" not in page and "@import" not in page


def test_formatting_of_intervals_and_baselines():
    assert format_interval([0.1, 0.25]) == "[0.100, 0.250]"
    assert format_interval(None) == ""
    assert format_baseline({"offset": 2, "value": 0.5}) == "offset +2: 0.500"
    assert format_baseline(None) == ""


# --------------------------------------------------------------------------------------------
# A real browser: the page renders, every figure loads, sorting and filtering work.

def dump_dom(page_path, tmp_path) -> str:
    done = headless("--virtual-time-budget=5000", "--dump-dom", page_path.as_uri(),
                    profile=tmp_path / "chromium-profile")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def write_run(tmp_path, missing_figure: bool = False):
    figure = render_png(attention_figure(np.eye(3) * 0.7, ["[CLS]", "hi", "[SEP]"], title="t"))
    results = [result("alpha", 0.91, True),
               result("beta", 0.12, False, figures=["figures/beta_1.png", "figures/beta_2.png"]),
               result("gamma", 0.55, False, head="L3H1", counterexamples=["<b>bold</b> cat"])]
    if missing_figure:
        results[2]["figures"] = ["figures/not-there.png"]
    run_dir = store.write_report(tmp_path / "reports", report(*results),
                                 {"figures/beta_1.png": figure, "figures/beta_2.png": figure},
                                 now=NOW)
    return run_dir


def test_browser_renders_every_row_and_loads_every_figure(tmp_path):
    run_dir = write_run(tmp_path)
    dom = dump_dom(tmp_path / "reports" / "latest" / "index.html", tmp_path)
    assert 'data-images-loaded="2/2"' in dom
    rows = read(dom).rows
    assert [row[1] for row in rows] == ["alpha", "beta", "gamma"]
    assert "3 of 3 shown" in dom
    assert "&lt;b&gt;bold&lt;/b&gt; cat" in dom
    assert run_dir.name in os.readlink(tmp_path / "reports" / "latest")


def test_browser_marks_a_missing_figure(tmp_path):
    write_run(tmp_path, missing_figure=True)
    dom = dump_dom(tmp_path / "reports" / "latest" / "index.html", tmp_path)
    assert 'data-images-loaded="2/3"' in dom
    assert "figure missing: figures/not-there.png" in dom


def test_browser_sorts_by_clicking_a_header_and_filters(tmp_path):
    run_dir = write_run(tmp_path)
    page = (run_dir / "index.html").read_text()
    probe = """<script>
    window.addEventListener('load', function () {
      var th = document.querySelector('th[data-col="5"]');
      th.click();
      var asc = Array.from(document.querySelectorAll('#results tbody tr'))
        .map(function (r) { return r.cells[1].textContent; }).join(',');
      th.click();
      var desc = Array.from(document.querySelectorAll('#results tbody tr'))
        .map(function (r) { return r.cells[1].textContent; }).join(',');
      var outcome = document.getElementById('outcome');
      outcome.value = 'failed'; outcome.dispatchEvent(new Event('change'));
      var failed = document.getElementById('shown').textContent;
      var filter = document.getElementById('filter');
      filter.value = 'L3H1'; filter.dispatchEvent(new Event('input'));
      var visible = Array.from(document.querySelectorAll('#results tbody tr:not(.hidden)'))
        .map(function (r) { return r.cells[1].textContent; }).join(',');
      document.body.setAttribute('data-probe', [asc, desc, failed, visible].join('|'));
    });
    </script></body>"""
    probe_page = run_dir / "probe.html"
    probe_page.write_text(page.replace("</body>", probe))
    dom = dump_dom(probe_page, tmp_path)
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    assert found.group(1) == "beta,gamma,alpha|alpha,gamma,beta|2 of 3 shown|gamma"


def test_browser_test_is_not_skipped_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    with pytest.raises(pytest.fail.Exception, match="needed for the browser test on CI"):
        chromium_or_skip()



def test_warnings_are_shown_for_failures_and_passes():
    page = render_index_html(report(
        result("weak", 0.9, True, warnings=["only 4 sources were counted <few>"]),
        result("bad", 0.1, False, warnings=["most sources were left out"])))
    assert "<h2>Warnings</h2>" in page
    assert "weak[L2H5]: only 4 sources were counted &lt;few&gt;" in page
    failures = page.split("<h2>Failures</h2>")[1].split("<h2>Warnings</h2>")[0]
    assert "most sources were left out" in failures
