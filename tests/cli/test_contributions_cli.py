"""What heads contribute (SPEC §14) through the real commands on the bundled MiniLM: effect and
norm-weight claims in `headprobe check` (their values equal the model's own numbers), heads
removed together, diagrams of a failing effect claim, the Python API, `discover --importance`
and the catalogue's no-op sinks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from check_runner import check_inprocess, write_project
from derived import derive, scale_output

import headprobe
from headprobe.cli import main
from headprobe.errors import HeadprobeError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The cat sat on the mat because it was tired.",
    "She gave him the book yesterday afternoon.",
    "The old man walked slowly to the station.",
    "Why did the committee postpone the vote again?",
    "Rain fell all night, and the river rose quickly.",
    "My brother, who lives in Lisbon, bakes bread every Sunday.",
]
CLAIMS = f"""
model: {MINILM}
sentences:
  s: sentences.txt
hypotheses:
  - id: matters
    claim: "L6H12: token"
    measure: effect
    over: s
    expect: ">= 0.05"
  - id: zeroed-embedding
    claim: "L2H9: token"
    measure: effect
    ablation: zero
    effect: embedding
    over: s
    expect: ">= 0.0"
  - id: pair
    claim: "L6H11,L6H12: token"
    measure: effect
    together: true
    over: s
    expect: ">= 0.9"
  - id: next-by-norm
    claim: "L2H9: token -> next"
    weighting: norm
    measure: mass
    over: s
    expect: ">= 0.0"
"""


@pytest.fixture(scope="module")
def minilm():
    return headprobe.load(MINILM).model()


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("contrib"),
                         {"claims.yaml": CLAIMS, "sentences.txt": "\n".join(SENTENCES) + "\n"})
    return root


@pytest.fixture(scope="module")
def run(checked, tmp_path_factory):
    """One `headprobe check` of the claims (module-scoped: run once)."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        from headprobe.cli import main as cli_main

        monkeypatch.chdir(checked)
        monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(checked / "cache"))
        rc = cli_main(["check", "claims.yaml", "-q", "-p", "no:cacheprovider"])
    finally:
        monkeypatch.undo()
    report = json.loads((checked / "reports" / "latest" / "report.json").read_text("utf-8"))
    return rc, {f"{r['id']}[{r['head']}]": r for r in report["results"]}, checked


def _special(encoding) -> np.ndarray:
    return np.array([w is None for w in encoding.word_ids])


def test_an_effect_claim_is_the_mean_effect_over_its_source_tokens(run, minilm):
    _, results, _ = run
    found = results["matters[L6H12]"]
    effects = minilm.effects(SENTENCES, [(5, 11)])  # mean ablation over these sentences
    encodings = minilm.tokenize(SENTENCES)
    kept = np.concatenate([e[0][~_special(enc)] for e, enc in zip(effects, encodings)])
    assert found["value"] == pytest.approx(float(kept.mean()), abs=1e-6)
    assert found["n"] == kept.size and found["passed"]
    assert found["measure"] == "effect:hidden (mean ablation)"
    assert found["ci"] is not None and found["ci"][0] <= found["value"] <= found["ci"][1]


def test_an_embedding_effect_counts_sentences(run, minilm):
    _, results, _ = run
    found = results["zeroed-embedding[L2H9]"]
    effects = minilm.effects(SENTENCES, [(1, 8)], ablation="zero", effect="embedding")
    assert found["n"] == len(SENTENCES)
    assert found["value"] == pytest.approx(float(np.mean([e[0, 0] for e in effects])), abs=1e-6)


def test_heads_removed_together_give_one_result_named_for_both(run, minilm):
    rc, results, root = run
    found = results["pair[L6H11+L6H12]"]
    assert not found["passed"] and rc == 1
    effects = minilm.effects(SENTENCES, [(5, 10), (5, 11)], together=True)
    encodings = minilm.tokenize(SENTENCES)
    kept = np.concatenate([e[0][~_special(enc)] for e, enc in zip(effects, encodings)])
    assert found["value"] == pytest.approx(float(kept.mean()), abs=1e-6)
    alone = minilm.effects(SENTENCES, [(5, 11)])
    assert not np.allclose(effects[0][0], alone[0][0])
    # its diagrams: the first head's attention, each row labelled with the pair's effect there
    assert found["figures"], found
    assert all((root / "reports" / "latest" / f).is_file() for f in found["figures"])


def test_a_norm_weighted_claim_reads_the_norm_weights_and_says_so(run, minilm):
    _, results, _ = run
    found = results["next-by-norm[L2H9]"]
    assert found["weighting"] == "norm"
    runs = minilm.run(SENTENCES, weighting="norm", hidden_states=False, mlm_logits=False)
    masses = []
    for sentence_run in runs:
        weights = sentence_run.attentions[1, 8]
        for i in range(1, len(sentence_run.tokens) - 1):  # every token (its next may be [SEP])
            masses.append(weights[i, i + 1])
    assert found["value"] == pytest.approx(float(np.mean(masses)), abs=1e-6)
    plain = minilm.run(SENTENCES, hidden_states=False, mlm_logits=False)
    assert not np.allclose(runs[0].attentions[1, 8], plain[0].attentions[1, 8])


def test_the_python_api_measures_effects_as_files_do(run):
    _, results, _ = run
    model = headprobe.load(MINILM)
    measured = model.claim("L6H12: token").over(SENTENCES).effect()
    assert measured.value == pytest.approx(results["matters[L6H12]"]["value"], abs=1e-6)
    assert measured >= 0.05
    pair = model.claim("L6H11,L6H12: token").over(SENTENCES).effect(together=True)
    assert pair.head == "L6H11+L6H12" and len(pair.results) == 1
    with pytest.raises(HeadprobeError, match="needs no target"):
        model.claim("L6H12: token -> next").over(SENTENCES).effect()
    with pytest.raises(HeadprobeError, match="effect: expected one of"):
        model.claim("L6H12: token").over(SENTENCES).effect(effect="loss")


def test_kl_on_a_model_without_an_mlm_head_is_a_located_collection_error(checked, monkeypatch,
                                                                         capfd):
    # Like a head out of range, it needs the model's files to see: exit 2 before anything runs.
    kl = CLAIMS.replace("ablation: zero\n    effect: embedding", "effect: kl")
    write_project(checked / "kl", {"kl.yaml": kl, "sentences.txt": "\n".join(SENTENCES) + "\n"})
    result = check_inprocess(checked / "kl", "kl.yaml", cache_dir=checked / "cache",
                             monkeypatch=monkeypatch, capfd=capfd)
    assert result.rc == 2, result
    assert "kl.yaml:10: effect: 'kl' compares the masked-LM distributions" in result.output, result
    assert "has no masked-LM head" in result.output
    with pytest.raises(HeadprobeError, match="kl needs a masked-LM head"):
        headprobe.load(MINILM).claim("L1H1: token").over(SENTENCES).effect(effect="kl")


def _discover(root, monkeypatch, capture, *args):
    monkeypatch.chdir(root)
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(root / "cache"))
    capture.readouterr()
    rc = main(["discover", *args, "-q"])
    out, err = capture.readouterr()
    return rc, out + err


def test_importance_ranks_heads_and_writes_claims_that_pass(checked, monkeypatch, capfd):
    rc, out = _discover(checked, monkeypatch, capfd, "--model", MINILM, "--importance",
                        "--sentences", "sentences.txt", "-o", "important.yaml", "--figure",
                        "importance.png")
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("discover --importance: " + MINILM)
    ranks = [line.split() for line in lines[2:22]]
    values = [float(r[2]) for r in ranks]
    assert values == sorted(values, reverse=True)
    assert "important" in lines[2] and (checked / "importance.png").stat().st_size > 0
    written = (checked / "important.yaml").read_text("utf-8")
    assert "measure: effect" in written and written.count("- id: matters-") == 3
    result = check_inprocess(checked, "important.yaml", "-q", cache_dir=checked / "cache",
                             monkeypatch=monkeypatch, capfd=capfd)
    assert result.rc == 0, result  # found on these sentences, it holds on them


def test_importance_options_are_checked_before_the_model_runs(checked, monkeypatch, capsys):
    rc, out = _discover(checked, monkeypatch, capsys, "--model", MINILM, "--effect", "kl",
                        "--sentences", "sentences.txt")
    assert rc == 4 and "--effect goes with --importance" in out
    rc, out = _discover(checked, monkeypatch, capsys, "--model", MINILM, "--importance",
                        "--for", "token -> next", "--sentences", "sentences.txt")
    assert rc == 4 and "choose one" in out


def test_a_sink_that_writes_little_is_marked_no_op(checked, tmp_path, monkeypatch, capsys):
    # MiniLM's L6H1 puts its largest weight on [CLS] everywhere and writes as much as a typical
    # head; with its output scaled to a tenth it looks the same and writes far less.
    sentences = str(checked / "sentences.txt")
    rc, out = _discover(checked, monkeypatch, capsys, "--model", MINILM, "--sentences",
                        sentences)
    assert rc == 0, out
    (plain,) = [line for line in out.splitlines() if line.split()[:2] == ["cls", "L6H1"]]
    assert "no-op" not in plain
    quiet = derive(tmp_path / "quiet", scale_output(6, 1, 0.1))
    _, out = _discover(checked, monkeypatch, capsys, "--model", str(quiet), "--sentences",
                       sentences)
    (marked,) = [line for line in out.splitlines() if line.split()[:2] == ["cls", "L6H1"]]
    assert "no-op sink: output-norm" in marked, out


def test_heads_removed_together_keep_their_snapshot(checked, monkeypatch, capfd):
    pair = CLAIMS.split("hypotheses:")[0] + """hypotheses:
  - id: pair
    claim: "L6H11,L6H12: token"
    measure: effect
    ablation: zero
    together: true
    over: s
    expect: unchanged
"""
    write_project(checked / "snap", {"pair.yaml": pair,
                                     "sentences.txt": "\n".join(SENTENCES) + "\n"})
    first = check_inprocess(checked / "snap", "pair.yaml", "--snapshot-update", "-q",
                            cache_dir=checked / "cache", monkeypatch=monkeypatch, capfd=capfd)
    assert first.rc == 0, first
    recorded = json.loads((checked / "snap" / "__snapshots__" / "pair.yaml.json")
                          .read_text("utf-8"))
    assert list(recorded["claims"]["pair"]) == ["L6H11+L6H12"], recorded
    again = check_inprocess(checked / "snap", "pair.yaml", "-q", cache_dir=checked / "cache",
                            monkeypatch=monkeypatch, capfd=capfd)
    assert again.rc == 0, again


def test_bad_arguments_to_effects_are_usage_errors(minilm):
    with pytest.raises(HeadprobeError, match="each head once"):
        minilm.effects(SENTENCES[:1], [(1, 1), (1, 1)])
    with pytest.raises(HeadprobeError, match="together: expected True or False"):
        minilm.effects(SENTENCES[:1], [(1, 1)], together="no")
    with pytest.raises(HeadprobeError, match="heads: expected"):
        minilm.effects(SENTENCES[:1], [])
    with pytest.raises(HeadprobeError, match="together: expected True or False"):
        headprobe.load(MINILM).claim("L1H1: token").over(SENTENCES).effect(together="no")


def test_diff_effects_against_a_profile_without_them_is_refused_before_work(checked,
                                                                            monkeypatch, capsys):
    monkeypatch.chdir(checked)
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(checked / "cache"))
    assert main(["profile", "--model", MINILM, "--sentences", "sentences.txt", "-o",
                 "plain.json", "-q"]) == 0
    capsys.readouterr()
    rc = main(["diff", "plain.json", MINILM, "--sentences", "sentences.txt", "--effects", "-q"])
    out, err = capsys.readouterr()
    assert rc == 4 and "profile without effect:hidden" in out + err
