"""`headprobe check` end to end on the planted tiny checkpoint (tests/fixtures_models.py).

Head L1H1 of that model attends exactly uniformly in a sentence without "zebra" (so every position
ties for the argmax and gets 1/len of the hit, and the mass on any one position is exactly 1/len)
and almost only to "zebra" when the sentence has it. So every number below is known by hand. One
run of the real console command (``-v --junitxml --seed``) is shared by most tests; a second run
(``--lf``) by the rest.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from check_runner import CheckRun, check_inprocess, check_subprocess, write_project

PLAIN = ["The cat sat on the mat.", "A dog sat."]
ZEBRAS = ["The zebra sat on the mat.", "A zebra sat."]  # the same lengths as PLAIN
LENGTHS = [9, 6]  # tokens with [CLS] and [SEP]: the, cat, sat, on, the, mat, . / a, dog, sat, .
SOURCES = [n - 2 for n in LENGTHS]  # 7 + 4 = 11 sources (`token`)
# A uniform row gives each position 1/len of the argmax hit: [CLS] or the next token alike.
UNIFORM_SHARE = sum(s / length for s, length in zip(SOURCES, LENGTHS)) / sum(SOURCES)
ANIMALS = ["horse", "cat", "zebra", "dog"]
THINGS = ["red carpet", "table", "rug", "mat", "big red carpet"]
MINIMAL = "The zebra sat on the mat."
GENERATE = 6

CLAIMS = f"""
model: nobody/overridden-by-the-command-line
sentences:
  plain:
    - {PLAIN[0]}
    - {PLAIN[1]}
  zebras:
    - {ZEBRAS[0]}
    - {ZEBRAS[1]}
  animals:
    generate: {GENERATE}
    template: "The {{animal}} sat on the {{thing}}."
    slots:
      animal: [{", ".join(ANIMALS)}]
      thing: [{", ".join(THINGS)}]
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: "<= 0.2"
  - id: to-next
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
    why: The planted head is uniform, so it cannot prefer the next token.
  - id: mass-next
    claim: "L1H1: token -> next"
    measure: mass
    over: plain
    expect: "< 0.2"
  - id: mass-plus-3
    claim: "L1H1: token -> offset:+3"
    measure: mass
    over: plain
    expect: "<= 0.2"
  - id: layer-one
    claim: "L1H*: token -> word:zebra"
    over: zebras
    expect: ">= 0.0"
  - id: any-head
    claim: "L1H*: token -> word:zebra"
    quantifier: any
    over: zebras
    expect: ">= 0.9"
  - id: no-head
    claim: "L1H1: token -> next"
    quantifier: none
    over: plain
    expect: ">= 0.5"
  - id: no-head-fails
    claim: "L1H1,L2H2: token -> word:zebra"
    quantifier: none
    over: zebras
    expect: ">= 0.9"
  - id: confident
    claim: "L1H1: token -> word:zebra"
    confidence: 0.95
    over: zebras
    expect: ">= 0.9"
  - id: beats-offsets
    claim: "L1H1: token -> word:zebra"
    baseline: offset
    over: zebras
    expect: ">= 0.5"
  - id: skipped
    claim: "L1H1: token -> cls"
    over: plain
    expect: ">= 0.5"
    skip: not today
  - id: known-bad
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
    xfail: the planted head does not do this
  - id: planted
    claim: "L1H1: token -> cls"
    per: sentence
    over: animals
    expect: ">= 0.05"
"""

FAILING = {"to-next[L1H1]", "no-head-fails[L1H1]", "confident[L1H1]", "planted[L1H1]"}


def _drawn(path: Path, seed: int) -> list[str]:
    from headprobe.claims.files import load_hypothesis_file
    from headprobe.generate import draw_sentences

    template = load_hypothesis_file(path).sets["animals"].template
    return [s.text for s in draw_sentences(template, seed=seed,
                                           storage_dir=path.parent.parent / "hypothesis-files")]


def _seed_that_needs_shrinking(path: Path) -> tuple[int, list[str]]:
    """A seed whose drawn sentences include "zebra" but not the simplest zebra sentence, so the
    first counterexample can only come from hypothesis's shrinking."""
    for seed in range(200):
        drawn = _drawn(path, seed)
        if any("zebra" in t for t in drawn) and MINIMAL not in drawn:
            return seed, drawn
    raise AssertionError("no seed in 0..199 draws zebra without the minimal sentence")


@pytest.fixture(scope="module")
def project(tmp_path_factory, planted_model):
    folder = write_project(tmp_path_factory.mktemp("run"), {"hypotheses/planted.yaml": CLAIMS})
    seed, drawn = _seed_that_needs_shrinking(folder / "hypotheses" / "planted.yaml")
    return {"folder": folder, "model": str(planted_model), "seed": seed, "drawn": drawn,
            "cache": tmp_path_factory.mktemp("cache")}


@pytest.fixture(scope="module")
def first(project) -> CheckRun:
    return check_subprocess(project["folder"], "hypotheses/planted.yaml", "-v",
                            "--model", project["model"], "--seed", str(project["seed"]),
                            "--junitxml", "junit.xml", cache_dir=project["cache"])


@pytest.fixture(scope="module")
def second(project, first) -> CheckRun:
    assert first.rc == 1, first
    return check_subprocess(project["folder"], "hypotheses/planted.yaml", "--lf", "-q",
                            f"--model={project['model']}", "--seed", str(project["seed"]),
                            cache_dir=project["cache"])


def test_some_failing_claims_exit_1_and_verbose_lists_every_item(first):
    assert first.rc == 1, first
    assert "Traceback" not in first.output, first
    for item in ["to-cls[L1H1] PASSED", "any-head[L1H*] PASSED", "no-head[L1H1] PASSED",
                 "to-next[L1H1] FAILED", "skipped[L1H1] SKIPPED (not today)",
                 "known-bad[L1H1] XFAIL", "layer-one[L1H3] PASSED"]:
        assert f"hypotheses/planted.yaml::{item}" in first.output, (item, str(first))
    assert "4 failed, 9 passed, 1 skipped, 1 xfailed" in first.output, first


def test_report_json_has_exactly_the_spec_keys_and_types(first):
    report = first.report()
    assert set(report) == {"headprobe_version", "started", "status", "exit_status",
                           "interrupted", "results", "items", "summary"}
    assert (report["status"], report["exit_status"], report["interrupted"]) == ("failed", 1, False)
    assert report["started"].endswith("Z") and report["headprobe_version"]
    keys = ["file", "id", "head", "claim", "measure", "level", "model", "model_fingerprint",
            "expect", "value", "ci", "n", "left_out", "passed", "figures"]
    for result in report["results"]:
        assert list(result)[:len(keys)] == keys, result
        assert set(result) - set(keys) <= {"sentences", "counterexamples", "baseline",
                                           "warnings", "outcome", "item", "why", "reproduce",
                                           "quantifier", "heads", "baseline_beaten", "failure",
                                           "ci_note", "views"}
        # the outcome is the item's, as pytest decided it; an xfail claim fails as expected
        assert result["outcome"] == ("xfailed" if result["id"] == "known-bad"
                                     else "passed" if result["passed"] else "failed"), result
        assert result["item"] == f"hypotheses/planted.yaml::{result['id']}[{result['head']}]" \
            or result["quantifier"] in ("any", "none")
        assert result["file"] == "hypotheses/planted.yaml"
        assert result["model_fingerprint"].startswith("sha256:")
        assert isinstance(result["value"], float) and isinstance(result["n"], int)
        if result["measure"] == "mass":  # a bootstrap over 2 sentences: no interval
            assert result["ci"] is None, result
            assert result["ci_note"] == "2 sentences, the bootstrap needs 4", result
        else:
            assert len(result["ci"]) == 2, result
            assert result["ci"][0] <= result["value"] <= result["ci"][1], result
        assert isinstance(result["passed"], bool) and isinstance(result["figures"], list)
    ids = [f"{r['id']}[{r['head']}]" for r in report["results"]]
    assert "skipped[L1H1]" not in ids  # a skipped claim is not evaluated
    # Counted as pytest counts them ("4 failed, 9 passed, 1 skipped, 1 xfailed"), and how many
    # items and results there were.
    assert report["summary"] == {"passed": 9, "failed": 4, "skipped": 1, "xfailed": 1,
                                 "xpassed": 0, "errors": 0, "items": 15, "results": len(ids)}
    assert {i["outcome"] for i in report["items"]} == {"passed", "failed", "skipped", "xfailed"}
    assert sum(i["results"] for i in report["items"]) == len(ids)


def test_model_option_overrides_the_file_and_is_reported(first, project):
    assert {r["model"] for r in first.report()["results"]} == {project["model"]}


def test_exact_values_of_a_uniform_head(first):
    results = first.results()
    n = sum(SOURCES)
    to_cls = results["to-cls[L1H1]"]
    assert (to_cls["value"], to_cls["n"], to_cls["left_out"], to_cls["passed"]) == (
        round(UNIFORM_SHARE, 6), n, 0, True)
    assert to_cls["figures"] == []
    to_next = results["to-next[L1H1]"]
    assert (to_next["value"], to_next["passed"]) == (round(UNIFORM_SHARE, 6), False)
    # mass on one position of a uniform row is 1/len; the mean over all sources:
    mass = sum(s / length for s, length in zip(SOURCES, LENGTHS)) / n
    assert results["mass-next[L1H1]"]["value"] == pytest.approx(round(mass, 6), abs=1e-6)
    assert results["mass-next[L1H1]"]["measure"] == "mass"
    # offset +3 falls outside for the last two sources of each sentence: left out
    plus3 = results["mass-plus-3[L1H1]"]
    assert (plus3["n"], plus3["left_out"]) == (n - 4, 4)
    expected = sum((s - 2) / length for s, length in zip(SOURCES, LENGTHS)) / (n - 4)
    assert plus3["value"] == pytest.approx(expected, abs=1e-6)


def test_any_names_the_best_head_and_none_the_offending_one(first):
    results = first.results()
    each = {h: results[f"layer-one[{h}]"]["value"] for h in ("L1H1", "L1H2", "L1H3")}
    assert max(each, key=each.get) == "L1H1" and sorted(each.values())[-2] < 1.0
    best = results["any-head[L1H1]"]
    assert (best["value"], best["passed"], best["claim"]) == (1.0, True,
                                                              "L1H*: token -> word:zebra")
    assert results["no-head[L1H1]"]["passed"] is True
    offending = results["no-head-fails[L1H1]"]
    assert (offending["passed"], offending["value"]) == (False, 1.0)


def test_confidence_needs_the_whole_interval(first):
    confident = first.results()["confident[L1H1]"]
    assert confident["value"] == 1.0 and confident["passed"] is False
    assert confident["ci"][0] < 0.9 < confident["ci"][1]  # Wilson, n = 11: [0.741, 1]


def test_offset_baseline_is_reported(first):
    beats = first.results()["beats-offsets[L1H1]"]
    # Always attending to i-1 puts the source after "zebra" on it, once per sentence: 2 of 11.
    assert beats["baseline"] == {"offset": -1, "value": round(2 / sum(SOURCES), 6)}
    assert beats["passed"] is True


def test_xfail_is_evaluated_reported_and_worded_as_xfail(first):
    known_bad = first.results()["known-bad[L1H1]"]
    assert known_bad["passed"] is False
    assert "XFAIL hypotheses/planted.yaml::known-bad[L1H1]" in first.output


def test_failure_shows_measure_interval_n_why_and_figure_paths_that_exist(first):
    out = first.output
    assert "claim 'L1H1: token -> next' failed on L1H1" in out
    assert "argmax = 0.131, CI [0.030, 0.423], expected >= 0.5 (n=11, left out 0)" in out
    assert "why: The planted head is uniform" in out
    run_dir = first.report_dirs()[-1]
    for result in first.report()["results"]:
        if not result["passed"]:
            assert result["figures"], result
        for figure in result["figures"]:
            assert not os.path.isabs(figure) and (run_dir / figure).is_file(), figure
            assert f"{run_dir.name}/{figure}" in out or result["id"] == "known-bad"


def test_planted_counterexample_is_shrunk_to_the_simplest_sentence(first, project):
    planted = first.results()["planted[L1H1]"]
    drawn_failing = [t for t in project["drawn"] if "zebra" in t]
    assert planted["passed"] is False
    assert planted["sentences"] == len(project["drawn"])
    assert planted["counterexamples"][0] == MINIMAL
    assert sorted(planted["counterexamples"][1:]) == sorted(drawn_failing)
    assert MINIMAL not in project["drawn"]  # found by shrinking, not drawn
    assert f"- {MINIMAL}" in first.output
    assert f"--seed {project['seed']}" in first.output  # the reproduce line


def test_junitxml_lists_every_item(first, project):
    tree = ET.parse(project["folder"] / "junit.xml")
    cases = {case.get("name"): case for case in tree.iter("testcase")}
    assert {"to-cls[L1H1]", "planted[L1H1]", "any-head[L1H*]", "skipped[L1H1]"} <= set(cases)
    assert cases["to-next[L1H1]"].find("failure") is not None
    assert cases["to-cls[L1H1]"].find("failure") is None
    assert cases["skipped[L1H1]"].find("skipped") is not None


def test_hypothesis_database_lives_in_the_cache_dir_not_the_project(first, project):
    assert any((project["cache"] / "hypothesis" / "examples").iterdir())
    assert not (project["folder"] / ".hypothesis").exists()


def test_last_failed_reruns_only_the_failures_with_the_same_counterexamples(second, first):
    assert second.rc == 1, second
    assert "4 failed, 11 deselected" in second.output, second
    rerun = second.results()
    assert set(rerun) == FAILING
    assert rerun["planted[L1H1]"]["counterexamples"] == \
        first.results()["planted[L1H1]"]["counterexamples"]


def test_every_run_keeps_its_folder_and_latest_points_at_the_newest(second):
    runs = second.report_dirs()
    assert len(runs) == 2
    latest = second.cwd / "reports" / "latest"
    assert latest.resolve() == runs[-1].resolve()
    assert (runs[0] / "report.json").is_file() and (runs[0] / "index.html").is_file()
    earlier = json.loads((runs[0] / "report.json").read_text("utf-8"))
    assert len(earlier["results"]) > len(second.report()["results"])


def test_all_passing_claims_exit_0_quietly_into_the_report_dir(tmp_path, planted_model,
                                                               check_cache):
    """The model comes from pyproject.toml's [tool.headprobe] (the file names none)."""
    sets = CLAIMS.split("hypotheses:")[0].replace(
        "model: nobody/overridden-by-the-command-line", "")
    write_project(tmp_path, {"ok.yaml": sets + """hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: "<= 0.2"
"""}, settings=f'model = "{planted_model}"\n')
    run = check_subprocess(tmp_path, "ok.yaml", "-q", "--report-dir", "out/reports",
                           cache_dir=check_cache)
    assert run.rc == 0, run
    assert "1 passed" in run.output and "PASSED" not in run.output, run
    (result,) = run.report("out/reports")["results"]
    assert (result["model"], result["passed"]) == (str(planted_model), True)
    assert not (tmp_path / "reports").exists()


def test_stop_at_first_failure(tmp_path, planted_model, check_cache, monkeypatch, capfd):
    write_project(tmp_path, {"h.yaml": CLAIMS.replace("nobody/overridden-by-the-command-line",
                                                      str(planted_model))})
    run = check_inprocess(tmp_path, "h.yaml", "-x", "-k", "next or planted", "--no-report",
                          cache_dir=check_cache, monkeypatch=monkeypatch, capfd=capfd)
    assert run.rc == 1, run
    assert "stopping after 1 failures" in run.output and "1 failed" in run.output, run
    assert not (tmp_path / "reports").exists()
