"""Regression testing through the real commands (SPEC §10–11), on the bundled MiniLM and
checkpoints derived from it (tests/derived.py):

- two heads of one layer swapped: `diff` reports exactly those two heads;
- every weight rounded to float16 and back: no head changes beyond the default tolerance;
- one head's query zeroed: that head becomes uniform and `diff` ranks it first;

and `profile`'s JSON schema, a profile served by the forward cache without the model, the usage
errors (another model size, other sentences, a file that is not a profile), `changes.png` and the
side-by-side diagrams, and the snapshot round trip of `expect: unchanged` claims.
"""

from __future__ import annotations

import json

import pytest
from check_runner import check_subprocess, write_project
from derived import derive, float16_round_trip, scale_output, scale_value, swap_heads, zero_query

import headprobe
from headprobe.cli import main
from headprobe.evaluation.profile_stats import STATISTICS
from headprobe.sentence_sets import load_sentences

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A sentence file (80 sentences of the bundled set), a cache, and the derived models."""
    root = tmp_path_factory.mktemp("regression")
    sentences, _ = load_sentences(None)
    (root / "sentences.txt").write_text("\n".join(s.text for s in sentences[:80]) + "\n",
                                        encoding="utf-8")
    return {"root": root, "cache": root / "cache", "sentences": root / "sentences.txt",
            "swap": derive(root / "swap", swap_heads(3, 2, 7)),
            "fp16": derive(root / "fp16", float16_round_trip),
            "zero": derive(root / "zero", zero_query(2, 9)),
            "silent": derive(root / "silent", scale_output(6, 12, 0.0)),
            "silent-next": derive(root / "silent-next", scale_output(2, 9, 0.0)),
            "loud": derive(root / "loud", scale_value(4, 3, 2.0))}


def _run(setup, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(setup["root"])
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(setup["cache"]))
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out + err


def _diff(setup, monkeypatch, capsys, b, *extra: str) -> tuple[int, dict, str]:
    target = setup["root"] / f"diff-{abs(hash((str(b), extra)))}.json"
    rc, out = _run(setup, monkeypatch, capsys, "diff", MINILM, str(b), "--sentences",
                   str(setup["sentences"]), "--json", str(target), "-q", *extra)
    return rc, json.loads(target.read_text("utf-8")), out


def test_a_profile_has_the_spec_schema(setup, monkeypatch, capsys):
    target = setup["root"] / "minilm.json"
    rc, out = _run(setup, monkeypatch, capsys, "profile", "--model", MINILM, "--sentences",
                   str(setup["sentences"]), "-o", str(target), "-q")
    assert rc == 0, out
    data = json.loads(target.read_text("utf-8"))
    assert list(data) == ["headprobe_version", "model", "model_fingerprint", "level",
                          "sentences", "statistics", "heads"]
    assert data["model"] == MINILM and data["model_fingerprint"].startswith("sha256:")
    assert data["level"] == "token" and data["sentences"]["count"] == 80
    assert len(data["sentences"]["sha256"]) == 64 and data["statistics"] == list(STATISTICS)
    assert list(data["heads"]) == [f"L{l}H{h}" for l in range(1, 7) for h in range(1, 13)]
    for stats in data["heads"].values():
        assert list(stats) == list(STATISTICS)
        assert all(v is None or 0.0 <= v <= 1.0 for v in stats.values())
    # MiniLM's previous-token head and next-token head show in their statistics.
    assert data["heads"]["L1H3"]["argmax:previous"] > 0.9
    assert data["heads"]["L2H9"]["argmax:next"] > 0.6


def test_a_profile_of_a_model_in_the_forward_cache_does_not_run_it(setup, monkeypatch, capsys):
    first = setup["root"] / "first.json"
    assert _run(setup, monkeypatch, capsys, "profile", "--model", MINILM, "--sentences",
                str(setup["sentences"]), "-o", str(first), "-q")[0] == 0
    loads = []
    real = headprobe.load
    monkeypatch.setattr(headprobe, "load", lambda *a, **k: loads.append(a) or real(*a, **k))
    again = setup["root"] / "again.json"
    assert _run(setup, monkeypatch, capsys, "profile", "--model", MINILM, "--sentences",
                str(setup["sentences"]), "-o", str(again), "-q")[0] == 0
    assert loads == []  # served by the forward cache: no weights, no forward pass
    assert again.read_text("utf-8") == first.read_text("utf-8")


def test_swapping_two_heads_changes_exactly_those_two(setup, monkeypatch, capsys):
    rc, diff, out = _diff(setup, monkeypatch, capsys, setup["swap"])
    assert rc == 1, out
    assert sorted(diff["changed"]) == ["L3H2", "L3H7"]
    assert {h["head"] for h in diff["heads"][:2]} == {"L3H2", "L3H7"}
    assert abs(diff["heads"][2]["change"]) < 1e-4  # every other head: float noise at most
    assert "2 of 72 heads changed beyond the tolerance 0.05" in out


def test_a_float16_round_trip_changes_no_head_beyond_the_tolerance(setup, monkeypatch, capsys):
    rc, diff, out = _diff(setup, monkeypatch, capsys, setup["fp16"])
    assert rc == 0, out
    assert diff["changed"] == [] and diff["tolerance"] == 0.05
    largest = abs(diff["heads"][0]["change"])
    assert largest < 0.02, diff["heads"][0]  # a real export: small, but not nothing
    print(f"float16 round trip: largest change {diff['heads'][0]}")


def test_a_zeroed_query_makes_that_head_uniform_and_ranks_it_first(setup, monkeypatch, capsys):
    rc, diff, out = _diff(setup, monkeypatch, capsys, setup["zero"], "-o",
                          str(setup["root"] / "zero-figures"))
    assert rc == 1, out
    top = diff["heads"][0]
    assert top["head"] == "L2H9" and top["change"] > 0.5, top
    assert "L2H9" in diff["changed"]
    folder = setup["root"] / "zero-figures"
    assert (folder / "changes.png").stat().st_size > 0
    drawn = sorted(p.name for p in folder.glob("L*.png"))
    assert (len(drawn) == 5 and drawn[0].startswith("L2H9_")) or "L2H9_argmax-cls.png" in drawn


def test_diff_json_has_the_spec_schema(setup, monkeypatch, capsys):
    _, diff, _ = _diff(setup, monkeypatch, capsys, setup["swap"])
    assert list(diff) == ["a", "b", "level", "sentences", "tolerance", "heads", "changed"]
    assert diff["a"]["model"] == MINILM and diff["b"]["model"] == str(setup["swap"])
    assert len(diff["heads"]) == 72
    assert list(diff["heads"][0]) == ["head", "statistic", "a", "b", "change"]
    changes = [abs(h["change"]) for h in diff["heads"]]
    assert changes == sorted(changes, reverse=True)


@pytest.mark.parametrize("case", ["another size", "other sentences", "not a profile", "level"])
def test_things_that_cannot_be_compared_are_a_usage_error(setup, monkeypatch, capsys,
                                                          planted_model, case):
    profile = setup["root"] / "for-errors.json"
    if not profile.exists():
        _run(setup, monkeypatch, capsys, "profile", "--model", MINILM, "--sentences",
             str(setup["sentences"]), "-o", str(profile), "-q")
    other = setup["root"] / "other.txt"
    other.write_text("The cat sat on the mat.\nA dog barked at night.\n", encoding="utf-8")
    bad = setup["root"] / "bad.json"
    bad.write_text('{"model": "x"}', encoding="utf-8")
    args = {"another size": ["diff", str(profile), str(planted_model)],
            "other sentences": ["diff", str(profile), MINILM, "--sentences", str(other)],
            "not a profile": ["diff", str(profile), str(bad)],
            "level": ["diff", str(profile), MINILM, "--level", "word", "--sentences",
                      str(setup["sentences"])]}[case]
    rc, out = _run(setup, monkeypatch, capsys, *args, "-q")
    assert rc == 4, out
    assert "Traceback" not in out
    expected = {"another size": "cannot diff a 6-layer, 12-head model",
                "other sentences": "over other sentences",
                "not a profile": "not a headprobe profile",
                "level": "is a profile at level 'token', not 'word'"}[case]
    assert expected in out, out


# ---- snapshots: expect: unchanged --------------------------------------------------------------

CLAIMS = """
sentences:
  s:
    - The cat sat on the mat.
    - Then I picked up a book from the table.
    - The turtle moved slowly across the road.
    - I was walking with my dog when it started barking.
hypotheses:
  - id: next-token
    claim: "L2H9: token -> next"
    over: s
    expect: unchanged
  - id: layer-two
    claim: "L2H*: token -> cls"
    measure: mass
    over: s
    expect: unchanged
    tolerance: 0.01
"""


@pytest.fixture(scope="module")
def snapshot_project(tmp_path_factory, setup):
    folder = write_project(tmp_path_factory.mktemp("snapshots"), {"hyp/reg.yaml": CLAIMS},
                           settings=f'model = "{MINILM}"\n')
    return folder


def test_a_snapshot_round_trip_through_the_real_command(snapshot_project, setup):
    folder, cache = snapshot_project, setup["cache"]
    first = check_subprocess(folder, "hyp", cache_dir=cache)
    assert first.rc == 1, first
    assert "no value recorded for next-token on L2H9 in hyp/__snapshots__/reg.yaml.json" in \
        first.output and "--snapshot-update" in first.output
    recorded = check_subprocess(folder, "hyp", "--snapshot-update", cache_dir=cache)
    assert recorded.rc == 0, recorded
    assert "headprobe snapshots: 13 written, 0 changed, 0 left alone: " \
           "hyp/__snapshots__/reg.yaml.json" in recorded.output
    snapshot = folder / "hyp" / "__snapshots__" / "reg.yaml.json"
    text = snapshot.read_text("utf-8")
    data = json.loads(text)
    assert data["format"] == "headprobe-snapshot" and data["version"] == 1
    assert text == json.dumps(data, indent=2) + "\n"  # stable for git diffs: one value a line
    assert list(data["claims"]["layer-two"]) == [f"L2H{h}" for h in range(1, 13)]  # sorted
    entry = data["claims"]["next-token"]["L2H9"]
    assert set(entry) == {"model_fingerprint", "n", "sentences_sha256", "value"}
    again = check_subprocess(folder, "hyp", cache_dir=cache)
    assert again.rc == 0, again
    results = {f"{r['id']}[{r['head']}]": r for r in again.report()["results"]}
    assert results["next-token[L2H9]"]["recorded"] == entry
    assert results["next-token[L2H9]"]["change"] == 0.0
    unchanged = check_subprocess(folder, "hyp", "--snapshot-update", cache_dir=cache)
    assert "0 written, 0 changed, 13 left alone" in unchanged.output
    assert snapshot.read_text("utf-8") == text

    changed = check_subprocess(folder, "hyp", "--model", str(setup["zero"]), cache_dir=cache)
    assert changed.rc == 1, changed
    failing = {f"{r['id']}[{r['head']}]": r for r in changed.report()["results"]
               if not r["passed"]}
    assert "next-token[L2H9]" in failing
    result = failing["next-token[L2H9]"]
    assert result["change"] < -0.1 and result["recorded"]["value"] == entry["value"]
    assert result["figures"]  # the worst sentences' diagrams, as for any failure
    assert "changed by -" in changed.output and "when recorded" in changed.output
    assert entry["model_fingerprint"] in changed.output


def test_changed_sentences_fail_saying_so(snapshot_project, setup):
    folder = snapshot_project
    (folder / "hyp" / "reg.yaml").write_text(
        CLAIMS.replace("The cat sat on the mat.", "The cat sat on the rug."), encoding="utf-8")
    try:
        run = check_subprocess(folder, "hyp", "-k", "next-token", cache_dir=setup["cache"])
        assert run.rc == 1, run
        assert "the sentences changed since the value was recorded" in run.output
    finally:
        (folder / "hyp" / "reg.yaml").write_text(CLAIMS, encoding="utf-8")


@pytest.mark.parametrize("content, words", [
    ("{not json", "the snapshot file is not JSON"),
    ('{"format": "headprobe-snapshot", "version": 99, "claims": {}}', "format version 99"),
    ('{"format": "something-else"}', "not a headprobe snapshot file"),
])
def test_a_snapshot_file_that_cannot_be_used_is_a_collection_error(tmp_path, setup, content,
                                                                    words):
    folder = write_project(tmp_path, {"hyp/reg.yaml": CLAIMS,
                                      "hyp/__snapshots__/reg.yaml.json": content},
                           settings=f'model = "{MINILM}"\n')
    run = check_subprocess(folder, "hyp", cache_dir=setup["cache"])
    assert run.rc == 2, run
    assert "__snapshots__/reg.yaml.json" in run.output and words in run.output, run
    assert "Traceback" not in run.output


def test_tolerance_goes_only_with_unchanged(tmp_path, setup):
    folder = write_project(tmp_path, {"h.yaml": CLAIMS.replace("expect: unchanged\n    "
                                                                "tolerance", "expect: 0.5\n    "
                                                                             "tolerance")},
                           settings=f'model = "{MINILM}"\n')
    run = check_subprocess(folder, "h.yaml", cache_dir=setup["cache"])
    assert run.rc == 2 and "'tolerance' only applies with 'expect: unchanged'" in run.output, run


def test_a_head_whose_output_is_zeroed_is_ranked_first_by_its_output_norm(setup, monkeypatch,
                                                                          capsys):
    # Its attention is untouched and the layers above change little: before output-norm
    # (SPEC §14.3) diff reported no head at all.
    rc, diff, out = _diff(setup, monkeypatch, capsys, setup["silent"])
    assert rc == 1, out
    first = diff["heads"][0]
    assert first["head"] == "L6H12" and first["statistic"] == "output-norm", first
    assert first["b"] == 0.0 and first["a"] > 0.1
    assert diff["changed"] == ["L6H12"]


def test_the_next_token_head_silenced_is_reported_itself_not_only_downstream(setup, monkeypatch,
                                                                            capsys):
    rc, diff, out = _diff(setup, monkeypatch, capsys, setup["silent-next"])
    assert rc == 1, out
    assert "L2H9" in diff["changed"], diff["changed"]
    mine = next(h for h in diff["heads"] if h["head"] == "L2H9")
    assert mine["statistic"] == "output-norm" and mine["b"] == 0.0


def test_doubling_a_heads_values_doubles_its_output_norm_and_keeps_its_pattern(
        setup, monkeypatch, capsys):
    a = setup["root"] / "plain.json"
    b = setup["root"] / "loud.json"
    for model, target in ((MINILM, a), (str(setup["loud"]), b)):
        rc, out = _run(setup, monkeypatch, capsys, "profile", "--model", model, "--sentences",
                       str(setup["sentences"]), "-o", str(target), "-q")
        assert rc == 0, out
    plain, loud = (json.loads(p.read_text("utf-8"))["heads"]["L4H3"] for p in (a, b))
    assert loud["output-norm"] == pytest.approx(2 * plain["output-norm"], rel=1e-3)
    for statistic in STATISTICS[:-1]:  # the attention of L4H3 itself does not move
        if plain[statistic] is not None:
            assert loud[statistic] == pytest.approx(plain[statistic], abs=1e-5), statistic


def test_a_profile_written_before_output_norm_is_still_compared(setup, monkeypatch, capsys):
    old = setup["root"] / "old.json"
    rc, out = _run(setup, monkeypatch, capsys, "profile", "--model", MINILM, "--sentences",
                   str(setup["sentences"]), "-o", str(old), "-q")
    assert rc == 0, out
    data = json.loads(old.read_text("utf-8"))
    data["statistics"].remove("output-norm")
    for stats in data["heads"].values():
        del stats["output-norm"]
    old.write_text(json.dumps(data), encoding="utf-8")
    target = setup["root"] / "old-diff.json"
    rc, out = _run(setup, monkeypatch, capsys, "diff", str(old), str(setup["silent"]),
                   "--sentences", str(setup["sentences"]), "--json", str(target), "-q")
    diff = json.loads(target.read_text("utf-8"))
    assert rc == 0, out  # the output-only change is invisible without output-norm ...
    assert diff["not_compared"] == ["output-norm"]  # ... and the diff says what it left out
    assert "not compared (one side has no numbers for them): output-norm" in out


def test_diff_with_effects_compares_what_removing_each_head_does(setup, monkeypatch, capsys):
    few = setup["root"] / "few.txt"
    few.write_text("\n".join(setup["sentences"].read_text("utf-8").splitlines()[:6]) + "\n",
                   encoding="utf-8")
    target = setup["root"] / "effects-diff.json"
    rc, out = _run(setup, monkeypatch, capsys, "diff", MINILM, str(setup["silent"]),
                   "--sentences", str(few), "--effects", "--json", str(target), "-q", "-v")
    diff = json.loads(target.read_text("utf-8"))
    assert rc == 1, out
    assert "not_compared" not in diff
    silent = next(h for h in diff["heads"] if h["head"] == "L6H12")
    assert silent["statistic"] in ("output-norm", "effect:hidden")
    assert "effect:hidden" in out  # some head's largest change is its effect
