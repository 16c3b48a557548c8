"""SPEC §13 through the real command on MiniLM: ``headprobe check`` of claims with
``measure: entropy``, ``source: all`` and ``average: sentence`` reports the numbers computed here
from Hugging Face's PyTorch model (eager attention, ``output_attentions=True``) and its fast
tokenizer, with plain loops: nothing of headprobe's evaluation is used for the expected values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from check_runner import check_subprocess, write_project

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The cat sat on the mat.",
    "She quickly closed the heavy wooden door behind her.",
    "Unbelievably, the photographer's assistant forgot the tripod again!",
    "Why would anyone paint a bicycle bright orange?",
    "We walked home.",
    "The committee, after a long debate, postponed the vote until March.",
]
HEADS = ("L1H3", "L2H9", "L4H5", "L6H12")

CLAIMS = """
    model: sentence-transformers/all-MiniLM-L6-v2
    sentences:
      s: s.txt
    hypotheses:
      - id: entropy-pooled
        claim: "{heads}: token"
        measure: entropy
        over: s
        expect: ">= 0"
      - id: entropy-all-sentence
        claim: "{heads}: all"
        measure: entropy
        average: sentence
        over: s
        expect: ">= 0"
      - id: cls-clark
        claim: "{heads}: all -> cls"
        measure: mass
        average: sentence
        over: s
        expect: ">= 0"
      - id: next-sentence
        claim: "{heads}: token -> next"
        average: sentence
        over: s
        expect: ">= 0"
      - id: entropy-fields
        head: "{heads}"
        from: all
        measure: entropy
        over: s
        expect: ">= 0"
"""


@pytest.fixture(scope="module")
def pytorch_attentions():
    """Per sentence: the tokens and float64 attentions [layer, head, query, key]."""
    torch = pytest.importorskip("torch")
    import transformers

    import headprobe

    path = headprobe.load(MINILM).path
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    made = []
    with torch.no_grad():
        for sentence in SENTENCES:
            batch = tokenizer(sentence, return_tensors="pt")
            out = model(**batch, output_attentions=True)
            attentions = torch.stack(out.attentions)[:, 0].double().numpy()
            tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
            made.append((tokens, attentions))
    return made


def head_index(name: str) -> tuple[int, int]:
    layer, head = name[1:].split("H")
    return int(layer) - 1, int(head) - 1


def entropy(row: np.ndarray) -> float:
    return -sum(p * math.log(p) for p in row if p > 0) / math.log(len(row))


def expected_values(attentions, head: str) -> dict[str, float]:
    layer, index = head_index(head)
    pooled_entropy, rows = 0.0, 0
    all_entropy, cls_mass, next_share = [], [], []
    for tokens, weights in attentions:
        matrix = weights[layer, index]
        real = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
        pooled_entropy += sum(entropy(matrix[i]) for i in real)
        rows += len(real)
        all_entropy.append(np.mean([entropy(row) for row in matrix]))
        cls_mass.append(np.mean([row[0] for row in matrix]))  # Clark et al.'s [CLS] average
        next_share.append(np.mean([int(np.argmax(matrix[i])) == i + 1 for i in real]))
    return {"entropy-pooled": pooled_entropy / rows, "entropy-all-sentence": np.mean(all_entropy),
            "cls-clark": np.mean(cls_mass), "next-sentence": np.mean(next_share),
            "entropy-fields": None}


def test_check_reports_what_pytorch_attentions_give(tmp_path, pytorch_attentions):
    write_project(tmp_path, {"claims.yaml": CLAIMS.replace("{heads}", ",".join(HEADS)),
                             "s.txt": "\n".join(SENTENCES) + "\n"})
    run = check_subprocess(tmp_path, "claims.yaml", "-q", cache_dir=tmp_path / "cache")
    assert run.rc == 0, run
    results = run.results()
    for head in HEADS:
        expected = expected_values(pytorch_attentions, head)
        for claim, value in expected.items():
            result = results[f"{claim}[{head}]"]
            if value is not None:
                assert result["value"] == pytest.approx(value, abs=2e-5), (claim, head)
            low, high = result["ci"]
            assert low <= result["value"] <= high
        assert results[f"cls-clark[{head}]"]["average"] == "sentence"
        assert "average" not in results[f"entropy-pooled[{head}]"]
        # the fields form and the claim form are the same claim
        rows = sum(len(tokens) for tokens, _ in pytorch_attentions)
        assert results[f"entropy-fields[{head}]"]["n"] == rows
        assert results[f"entropy-fields[{head}]"]["claim"] == f"{','.join(HEADS)}: all"
