"""The commands on every family (SPEC §7b), on random checkpoints with trained tokenizers
(tests/families.py):

- ``mask --json`` gives the top-k that Hugging Face's PyTorch masked-LM gives, for every family
  with a masked-LM head, with ``[MASK]`` written in the text whatever the model's mask token;
- one hypothesis file with ``cls``, ``sep``, ``mask``, ``same-word``, ``word:`` and spans runs
  unchanged on a BERT, a RoBERTa, a ModernBERT and a DeBERTa-v3 checkpoint, counting the
  sources that transformers' own tokenizer says are there;
- ``show``, ``profile`` (with output-norm), ``diff``, ``discover`` and ``discover
  --importance --effect kl`` run on every family, figures labelled without ``Ġ``/``▁``;
- effect (kl) and norm-weighted claims run in the same file on BERT and RoBERTa.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from check_runner import check_subprocess, main_in_process, write_project
from families import KINDS, write_family_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MASKED = "Then I picked up a [MASK] from the table."


class Checkpoints(dict):
    """family -> folder, each written on first use (a family transformers cannot build skips
    only its own tests)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, family: str) -> Path:
        self[family] = write_family_checkpoint(self.root / family, family, masked_lm=True,
                                               seed=3)
        return self[family]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return Checkpoints(tmp_path_factory.mktemp("family-checkpoints"))


run_main = main_in_process  # (monkeypatch, capsys, cwd, *args) -> (rc, out, err)


@pytest.mark.parametrize("family", list(KINDS))
def test_mask_json_equals_hugging_face_top_k(checkpoints, monkeypatch, capsys, tmp_path, family):
    folder = checkpoints[family]
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "mask", MASKED, "--top-k", "5",
                            "--json", "--model", str(folder))
    assert rc == 0, err
    (masked,) = json.loads(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    batch = tokenizer(MASKED.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
    position = int((batch["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
    with torch.no_grad():
        probabilities = model(input_ids=batch["input_ids"],
                              attention_mask=batch["attention_mask"]
                              ).logits[0, position].softmax(-1).double().numpy()
    best = np.argsort(-probabilities, kind="stable")[:5]
    assert masked["position"] == position
    assert [p["id"] for p in masked["predictions"]] == best.tolist()
    np.testing.assert_allclose([p["score"] for p in masked["predictions"]],
                               probabilities[best], atol=1e-5)
    for prediction in masked["predictions"]:  # readable: no byte-level or SentencePiece marker
        assert "\u0120" not in prediction["token"] and "\u2581" not in prediction["token"]


CLAIMS = """
    sentences:
      s:
        - The [quick]{adj} brown fox [jumped]{verb} over the lazy dog.
        - Then I picked up a [MASK] from the [kitchen]{place} table.
        - She [carefully]{adv} [opened]{verb} the old wooden box, didn't she?
    hypotheses:
      - id: cls-rows
        claim: "L1H1: cls -> sep"
        measure: mass
        over: s
        expect: ">= 0"
      - id: mask-rows
        claim: "L*H*: mask -> cls"
        quantifier: any
        measure: mass
        over: s
        expect: ">= 0"
      - id: spans
        claim: "L2H3: span:verb -> span:adv"
        measure: mass
        over: s
        expect: ">= 0"
      - id: words
        claim: "L1H2: word:the|fox -> same-word"
        measure: mass
        over: s
        expect: ">= 0"
      - id: everything
        claim: "L3H4: all -> sep"
        measure: mass
        average: sentence
        over: s
        expect: ">= 0"
      - id: words-level
        claim: "L1H1: token -> next"
        level: word
        over: s
        expect: ">= 0"
      - id: removed
        claim: "L2H*: token"
        measure: effect
        effect: kl
        quantifier: any
        over: s
        expect: ">= 0"
      - id: by-norm
        claim: "L1H1: token -> next"
        weighting: norm
        level: word
        over: s
        expect: ">= 0"
"""


def expected_counts(folder: Path) -> dict[str, int]:
    """Sources of each claim, from transformers' tokenizer (ids, word ids, offsets)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    texts = ["The quick brown fox jumped over the lazy dog.",
             f"Then I picked up a {tokenizer.mask_token} from the kitchen table.",
             "She carefully opened the old wooden box, didn't she?"]
    verbs = [[(text.index(verb), text.index(verb) + len(verb))] if verb else []
             for text, verb in zip(texts, ["jumped", None, "opened"])]
    counts = {"cls-rows": 0, "mask-rows": 0, "spans": 0, "everything": 0}
    for text, spans in zip(texts, verbs):
        encoding = tokenizer(text, return_offsets_mapping=True)
        ids = encoding["input_ids"]
        counts["cls-rows"] += ids.count(tokenizer.cls_token_id)
        counts["mask-rows"] += ids.count(tokenizer.mask_token_id)
        counts["everything"] += len(ids)
        counts["spans"] += sum(1 for (a, b), word in zip(encoding["offset_mapping"],
                                                         encoding.word_ids())
                               if word is not None and b > a
                               and any(a < end and start < b for start, end in spans))
    return counts


@pytest.mark.parametrize("family", ["bert", "roberta", "modernbert", "deberta-v2"])
def test_one_hypothesis_file_runs_unchanged_on_bert_roberta_modernbert_and_deberta(
        checkpoints, tmp_path, family):
    write_project(tmp_path, {"claims.yaml": CLAIMS})
    run = check_subprocess(tmp_path, "claims.yaml", "--model", str(checkpoints[family]), "-q",
                           cache_dir=tmp_path / "cache")
    assert run.rc == 0, run
    results = {r["id"]: r for r in run.report()["results"]}
    assert set(results) == {"cls-rows", "mask-rows", "spans", "words", "everything",
                            "words-level", "removed", "by-norm"}
    assert results["removed"]["value"] > 0 and results["by-norm"]["weighting"] == "norm"
    for name, count in expected_counts(checkpoints[family]).items():
        # every source counted or left out (the first sentence's verb has no adverb)
        assert results[name]["n"] + results[name]["left_out"] == count, (name, results[name])
    assert results["spans"]["left_out"] > 0 and results["spans"]["n"] > 0
    assert all(r["value"] is not None for r in results.values())


@pytest.mark.parametrize("family", list(KINDS))
def test_show_profile_diff_and_discover_run_on_every_family(checkpoints, monkeypatch, capsys,
                                                            tmp_path, family):
    spec = str(checkpoints[family])
    (tmp_path / "s.txt").write_text("The cat sat on the mat.\nThen I picked up a [MASK].\n"
                                    "She opened the old wooden box, didn't she?\n",
                                    encoding="utf-8")
    rc, _, err = run_main(monkeypatch, capsys, tmp_path, "show", "The naïve cat's café.",
                          "--head", "L2H3", "-o", "head.png", "--model", spec)
    assert rc == 0 and (tmp_path / "head.png").stat().st_size > 1000, err
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "profile", "--model", spec,
                            "--sentences", "s.txt", "-o", "p.json", "-q")
    assert rc == 0, err
    profile = json.loads((tmp_path / "p.json").read_text("utf-8"))
    assert len(profile["heads"]) == 12 and profile["sentences"]["count"] == 3
    assert all(h["output-norm"] > 0 for h in profile["heads"].values())
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "diff", "p.json", spec,
                            "--sentences", "s.txt", "-q")
    assert rc == 0 and "0 of 12 heads changed" in out, out + err
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "discover", "--model", spec,
                            "--sentences", "s.txt", "-q")
    assert rc in (0, 1) and "findings on" in out, out + err
    rc, out, err = run_main(monkeypatch, capsys, tmp_path, "discover", "--model", spec,
                            "--importance", "--effect", "kl", "--sentences", "s.txt", "-q")
    assert rc in (0, 1) and "effect:kl (mean ablation), 3 sentences" in out, out + err
    assert len([line for line in out.splitlines() if line.split()[1:2]
                and line.split()[1].startswith("L")]) == 12


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "albert", "modernbert",
                                    "deberta-v2"])
def test_figure_labels_have_no_tokenizer_markers(checkpoints, family):
    import headprobe
    from headprobe.evaluation.positions import level_view

    model = headprobe.load(str(checkpoints[family]), compilation_cache=False)
    (run,) = model.run(["The naïve cat's café moved [MASK] quickly."])
    labels = level_view(run, "token").labels
    assert not any("\u0120" in label or "\u2581" in label for label in labels), labels
    assert "[MASK]" in labels or model.tokenizer.mask_token in labels
    assert labels[0] == model.tokenizer.specials.cls
