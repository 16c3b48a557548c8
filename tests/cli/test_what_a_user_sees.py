"""What a user sees of a run, through the real command: report.json and index.html say what the
terminal says (outcomes as pytest counts them, why, reproduce, every head of any/none claims,
why a baseline failed), the HTML fits a 1,400-pixel window and leads with a layers x heads grid,
a progress bar shows in a terminal, figures have a scale, and the traps of issue "What a user
sees" are gone (default model, missing model, several mistakes, unknown words, --help, dir,
claims in a plain script)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from browser import headless
from check_runner import (
    CheckRun,
    _environment,
    check_inprocess,
    check_subprocess,
    headprobe_command,
    write_project,
)

SETS = """
sentences:
  plain:
    - The cat sat on the mat.
    - A dog sat.
    - Then I picked up a red rug from the table.
"""

CLAIMS = SETS + """  zebras:
    - The zebra sat on the mat.
    - A zebra sat.
hypotheses:
  - id: uniform-next
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
    why: The planted head is uniform; it cannot prefer the next token.
  - id: any-next
    claim: "L*H*: token -> next"
    quantifier: any
    over: plain
    expect: ">= 0.99"
  - id: zebra-baseline
    claim: "L1H1: token -> word:zebra"
    baseline: offset
    over: zebras
    expect: ">= 0.5"
  - id: next-baseline
    claim: "L1H2: token -> next"
    baseline: offset
    over: plain
    expect: ">= 0.0"
  - id: known
    claim: "L1H1: token -> previous"
    over: plain
    expect: ">= 0.9"
    xfail: a uniform head does not look back
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, planted_model) -> CheckRun:
    folder = write_project(tmp_path_factory.mktemp("user"), {"claims.yaml": CLAIMS})
    return check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                            "-p", "no:cacheprovider", cache_dir=tmp_path_factory.mktemp("c"))


def _result(run: CheckRun, ident: str) -> dict:
    (result,) = [r for r in run.report()["results"] if r["id"] == ident]
    return result


def test_the_summary_counts_outcomes_as_pytest_does_and_relates_results_to_items(run):
    assert run.rc == 1, run
    last = run.output.strip().splitlines()[-1]
    assert "3 failed, 1 passed, 1 xfailed" in last, last
    summary = run.report()["summary"]
    assert (summary["passed"], summary["failed"], summary["xfailed"]) == (1, 3, 1), summary
    assert summary["items"] == 5 and summary["results"] == 5
    assert _result(run, "known")["outcome"] == "xfailed"


def test_why_and_reproduce_are_in_the_terminal_the_json_and_the_html(run):
    result = _result(run, "uniform-next")
    assert result["why"] == "The planted head is uniform; it cannot prefer the next token."
    assert result["reproduce"] == "headprobe check 'claims.yaml::uniform-next[L1H1]' " \
                                  f"--model {result['model']}"
    assert f"reproduce: {result['reproduce']}" in run.output
    page = (run.report_dirs()[-1] / "index.html").read_text("utf-8")
    assert "it cannot prefer the next token" in page and "uniform-next[L1H1]" in page
    assert "headprobe check &#x27;claims.yaml::uniform-next[L1H1]&#x27;" in page


def test_an_any_claim_lists_every_head_in_json_terminal_and_html(run):
    result = _result(run, "any-next")
    heads = result["heads"]
    assert len(heads) == 6 and {h["head"] for h in heads} == {f"L{l}H{h}" for l in (1, 2)
                                                              for h in (1, 2, 3)}
    values = [h["value"] for h in heads]
    assert values == sorted(values, reverse=True) and heads[0]["head"] == result["head"]
    assert all({"ci", "n", "left_out", "passed"} <= set(h) for h in heads)
    assert "heads (6 matched, best first):" in run.output
    assert "... and 3 more in report.json" in run.output
    page = (run.report_dirs()[-1] / "index.html").read_text("utf-8")
    assert "Every matched head (any), best first" in page
    assert len(result["figures"]) >= 2  # the best head, and the next best ones
    assert {f.split("_")[-2] for f in result["figures"]} >= {heads[0]["head"], heads[1]["head"]}


def test_a_failure_because_of_the_baseline_says_so(run):
    result = _result(run, "next-baseline")
    assert result["passed"] is False and result["value"] >= 0.0  # the expectation is met
    assert result["baseline_beaten"] is False and result["baseline"]["offset"] == 1
    assert _result(run, "zebra-baseline")["baseline_beaten"] is True
    assert "(not beaten: that is why it fails)" in run.output


def test_a_claim_that_can_never_beat_its_baseline_is_warned_at_collection(run):
    assert "ClaimWarning" in run.output
    assert "next-baseline: every source's target includes the token at offset +1" in run.output
    assert "can never beat the offset baseline" in run.output
    assert "zebra-baseline: every source" not in run.output  # zebra: at no one fixed offset


def test_check_prints_where_both_reports_are(run):
    run_dir = run.report_dirs()[-1]
    assert f"headprobe report: {run_dir / 'report.json'}" in run.output
    assert f"headprobe report (HTML): {run_dir / 'index.html'}" in run.output


def test_the_html_leads_with_a_grid_of_heads_named_from_1(run):
    page = (run.report_dirs()[-1] / "index.html").read_text("utf-8")
    assert page.index('class="heads"') < page.index('id="results"')
    assert 'data-head="L1H1"' in page and 'data-head="L2H3"' in page
    assert 'data-head="L0' not in page and "H0" not in re.findall(r'data-head="([^"]*)"',
                                                                 page)[0]


def _headless(*args: str, profile) -> subprocess.CompletedProcess:
    return headless("--hide-scrollbars", *args, profile=profile)


def test_at_1400_pixels_the_page_fits_and_a_screenshot_shows_it(run, tmp_path):
    from PIL import Image

    page = run.report_dirs()[-1] / "index.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text("utf-8").replace(
        "</body>", "<script>window.addEventListener('load',function(){document.body.setAttribute("
        "'data-fits',String(document.documentElement.scrollWidth<=window.innerWidth));});"
        "</script></body>"), encoding="utf-8")
    dom = _headless("--window-size=1400,1000", "--virtual-time-budget=5000", "--dump-dom",
                    probe.as_uri(), profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-fits="true"' in dom.stdout
    shot = tmp_path / "report-1400.png"
    done = _headless("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri(),
                     profile=tmp_path / "p2")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1400, 1000)
        assert len(set(image.convert("L").getdata())) > 8  # a page, not a blank


def test_a_progress_bar_shows_in_a_terminal_not_with_q_and_not_in_ci(tmp_path, planted_model):
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "red", "rug", "big"]
    lines = [f"{words[i % 10]} {words[i // 10 % 10]} {words[i // 100]} {words[i % 7]}."
             for i in range(400)]  # 400 different sentences
    (tmp_path / "many.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_project(tmp_path, {"p.yaml": "sentences:\n  many: many.txt\nhypotheses:\n"
                                       "  - id: c\n    claim: \"L1H1: token -> cls\"\n"
                                       "    over: many\n    expect: \"<= 0.5\"\n"})

    def in_a_terminal(*extra: str, ci: bool = False) -> str:
        env = _environment(tmp_path / f"cache{len(extra)}{ci}")
        env.update(HEADPROBE_PROGRESS_DELAY="0", COLUMNS="100")
        env.pop("CI", None)
        if ci:
            env["CI"] = "true"
        # A pseudo-terminal for the real command's stdout and stderr (subprocess, not
        # os.fork: this process may run JAX, which must not be forked).
        controller, terminal = pty.openpty()
        child = subprocess.Popen([*headprobe_command(), "check", "p.yaml", "--model",
                                  str(planted_model), "-p", "no:cacheprovider", *extra],
                                 cwd=tmp_path, env=env, stdin=terminal, stdout=terminal,
                                 stderr=terminal, close_fds=True)
        os.close(terminal)
        out = b""
        deadline = time.time() + 240
        while time.time() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the child is gone and the terminal closed
                    break
                if not chunk:
                    break
                out += chunk
            elif child.poll() is not None:
                break
        child.wait(timeout=60)
        os.close(controller)
        return out.decode("utf-8", "replace")

    shown = in_a_terminal()
    assert "forward:" in shown and "sentence/s" in shown and "/400 [" in shown, shown[-3000:]
    assert "1 passed" in shown
    assert "forward:" not in in_a_terminal("-q")
    assert "forward:" not in in_a_terminal(ci=True)


def test_figures_have_a_scale_from_0_to_the_largest_weight():
    import numpy as np

    from headprobe.report.figures import attention_figure, grey_levels, scale_top

    weights = np.full((4, 4), 0.05)
    weights[0, 1] = 0.08
    figure = attention_figure(weights, ["a", "b", "c", "d"], title="diffuse")
    assert len(figure.axes) == 2  # the grid and its scale
    labels = {t.get_gid(): t.get_text() for t in figure.axes[1].texts}
    assert labels == {"scale-low": "0", "scale-high": "0.08"}
    assert scale_top(weights) == 0.08
    assert grey_levels(weights, scale_top(weights))[0, 1] == 255  # the largest weight is white
    assert grey_levels(weights, scale_top(weights))[0, 0] == round(255 * 0.05 / 0.08)


# ---- no traps ----------------------------------------------------------------------------------

def test_plain_pytest_with_no_model_configured_says_how_to_name_one(tmp_path):
    from check_runner import run_command

    write_project(tmp_path, {"test_h.py": "def test_x(headprobe_model):\n    pass\n"})
    done = run_command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_h.py"], tmp_path, tmp_path / "cache")
    assert done.rc == 4, done
    assert "bert-base-uncased is the default model" in done.output
    assert "--headprobe-model=SPEC" in done.output and "[tool.headprobe]" in done.output


def test_a_model_that_cannot_be_had_names_the_claims_that_asked_for_it(tmp_path, check_cache,
                                                                      planted_model):
    write_project(tmp_path, {
        "good.yaml": f"model: {planted_model}" + SETS + "hypotheses:\n  - id: g\n"
                     "    claim: \"L1H1: token -> cls\"\n    over: plain\n    expect: 0.5\n",
        "bad.yaml": "model: /no/such/model/dir" + SETS + "hypotheses:\n  - id: b\n"
                    "    claim: \"L1H1: token -> cls\"\n    over: plain\n    expect: 0.5\n"})
    done = check_subprocess(tmp_path, "good.yaml", "bad.yaml", cache_dir=check_cache)
    assert done.rc == 4, done
    assert "Asked for by: bad.yaml:8 (b)." in done.output, done
    assert "To run the other claims, name their files" in done.output


def test_every_independent_mistake_of_a_file_is_reported_at_once(tmp_path, check_cache,
                                                                 planted_model, monkeypatch,
                                                                 capfd):
    write_project(tmp_path, {"m.yaml": f"model: {planted_model}" + SETS + """hypotheses:
  - id: a
    claim: "L1H1: token -> cls"
    over: plain
    measure: top3
    level: words
    expect: 0.5
  - id: b
    claim: "L1H1: token -> nxt"
    over: plain
    expect: 0.5
  - id: c
    claim: "L9H1: token -> cls"
    over: plain
    expect: 0.5
"""})
    done = check_inprocess(tmp_path, "m.yaml", cache_dir=check_cache, monkeypatch=monkeypatch,
                           capfd=capfd)
    assert done.rc == 2, done
    assert "4 mistakes in this file" in done.output, done
    for where in ("m.yaml:11: measure:", "m.yaml:12: level:", "m.yaml:15: claim:",
                  "m.yaml:19: claim:"):
        assert where in done.output, (where, done)
    assert "layer 9" in done.output  # found at collection, with the model's size


def test_unknown_words_are_an_error_unless_the_file_allows_them_and_then_counted(
        tmp_path, check_cache, planted_model, monkeypatch, capfd):
    sets = "sentences:\n  s:\n    - The cat sat.\n    - The gnu sat.\n    - A dog sat.\n"
    body = "hypotheses:\n  - id: a\n    claim: \"L1H1: token -> cls\"\n    over: s\n" \
           "    expect: <= 0.5\n"
    write_project(tmp_path, {"u.yaml": f"model: {planted_model}\n{sets}{body}",
                             "allow.yaml": f"model: {planted_model}\nunknown_words: allow\n"
                                           f"{sets}{body}"})
    refused = check_inprocess(tmp_path, "u.yaml", cache_dir=check_cache,
                              monkeypatch=monkeypatch, capfd=capfd)
    assert refused.rc == 2 and "'gnu'" in refused.output and "unknown_words: allow" in \
        refused.output, refused
    allowed = check_subprocess(tmp_path, "allow.yaml", cache_dir=check_cache)
    assert allowed.rc == 0, allowed
    (result,) = allowed.report()["results"]
    assert result["sentences_with_unknown_words"] == 1
    assert any("1 of 3 sentences have words the vocabulary cannot spell" in w
               for w in result["warnings"])


def test_check_help_names_paths_and_the_package_shows_only_its_api():
    done = subprocess.run([*headprobe_command(), "check", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "[PATH ...]" in done.stdout.split("\n\n")[0], done.stdout
    listed = subprocess.run([sys.executable, "-c", "import headprobe; print(dir(headprobe))"],
                            capture_output=True, text=True, timeout=60)
    assert listed.stdout.strip() == ("['__version__', 'diff', 'load', 'load_profile', "
                                     "'profile', 'view']"), listed


def test_claims_work_in_a_plain_script(tmp_path, planted_model):
    script = tmp_path / "script.py"
    script.write_text(f"""
import headprobe
model = headprobe.load({str(planted_model)!r}, compilation_cache=False)
measured = model.claim("L1H1: token -> cls").over(["The cat sat.", "A dog sat."]).argmax()
print(repr(measured))
print(measured <= 0.2, len(measured.results))
""", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "<L1H1: token -> cls on L1H1: argmax = 0.167" in done.stdout  # uniform: 1/6
    assert done.stdout.strip().splitlines()[-1] == "True 1"
    assert not (tmp_path / "reports").exists()  # a script writes no report


def test_json_report_round_trips(run):
    assert json.loads((run.report_dirs()[-1] / "report.json").read_text("utf-8"))
