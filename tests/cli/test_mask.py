"""``headprobe mask``: top-K predictions per [MASK], against Hugging Face PyTorch on a tiny BERT."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import headprobe
from headprobe.cli import main
from headprobe.commands.mask import (
    MaskPredictions,
    Prediction,
    format_predictions,
    read_texts,
    softmax,
    top_predictions,
)
from headprobe.errors import UsageError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "table", "book", "picked", "up", "from",
         "then", "i", "moved", "slowly", "across", "quickly", ".", ",", "'", "s", "##s", "##ing",
         "run", "walk", "red", "blue", "big", "small", "house", "tree"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
MAX_LENGTH = 32
TWO_MASKS = "then i picked up a [MASK] from the [MASK] ."


# --------------------------------------------------------------------------------------------
# Pure parts.

def test_softmax_is_a_probability_distribution_and_stable_for_large_logits():
    probabilities = softmax(np.array([1000.0, 1000.0, 999.0]))
    np.testing.assert_allclose(probabilities.sum(), 1.0)
    assert probabilities[0] == probabilities[1] > probabilities[2]


def test_top_predictions_are_best_first_with_ties_to_the_lower_id():
    logits = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                       [1.0, 3.0, 2.0, 3.0, -1.0]], dtype=np.float32)
    (best,) = top_predictions(logits, [1], 3)
    assert [i for i, _ in best] == [1, 3, 2]
    assert best[0][1] == pytest.approx(np.exp(3) / np.exp([1, 3, 2, 3, -1]).sum())


def test_format_replaces_only_the_mask_being_predicted():
    found = [MaskPredictions(6, (Prediction("book", 0.41), Prediction("cup", 0.2))),
             MaskPredictions(9, (Prediction("table", 0.5),))]
    lines = format_predictions("I put a [MASK] on the [MASK].", "[MASK]", found)
    assert lines == ["[MASK] 1 of 2 (wordpiece 6):",
                     "  I put a book on the [MASK].   (0.410)",
                     "  I put a cup on the [MASK].   (0.200)",
                     "[MASK] 2 of 2 (wordpiece 9):",
                     "  I put a [MASK] on the table.   (0.500)"]


def test_format_with_one_mask_is_mask_py_lines_with_probabilities():
    found = [MaskPredictions(6, (Prediction("book", 0.4123),))]
    assert format_predictions("Then I picked up a [MASK].", "[MASK]", found) == [
        "Then I picked up a book.   (0.412)"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reading_texts_from_a_pipe_takes_every_non_blank_line():
    assert read_texts(io.StringIO("first [MASK]\n\nsecond [MASK]\r\n")) == [
        "first [MASK]", "second [MASK]"]
    with pytest.raises(UsageError, match="no text given"):
        read_texts(io.StringIO("\n \n"))


# --------------------------------------------------------------------------------------------
# A tiny random BertForMaskedLM saved the way Hugging Face saves it.

@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from fixtures_models import hf_bert_tokenizer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-mlm")
    tokenizer = hf_bert_tokenizer(BertTokenizer, VOCAB, folder)
    torch.manual_seed(0)
    # Distinct sizes per axis; a wide initialisation so that predictions are well separated.
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=24, num_hidden_layers=2,
                        num_attention_heads=3, intermediate_size=37,
                        max_position_embeddings=MAX_LENGTH, initializer_range=0.5)
    model = BertForMaskedLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def hf_top_k(tiny_mlm, text: str, k: int) -> list[dict]:
    import torch

    _, model, tokenizer = tiny_mlm
    inputs = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits[0].double().softmax(-1)
    masks = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    out = []
    for position in masks:
        scores, ids = probabilities[position].topk(k)
        assert (scores[:-1] - scores[1:]).min() > 1e-4, "too close to compare the order"
        out.append({"position": position,
                    "predictions": [{"token": t, "score": float(s)} for t, s in zip(
                        tokenizer.convert_ids_to_tokens(ids.tolist()), scores.tolist())]})
    return out


def test_json_predictions_equal_hugging_face_pytorch(tiny_mlm, capsys):
    folder = tiny_mlm[0]
    assert main(["mask", TWO_MASKS, "--top-k", "5", "--json", "--model", str(folder)]) == 0
    got = json.loads(capsys.readouterr().out)
    want = hf_top_k(tiny_mlm, TWO_MASKS, 5)
    assert [m["position"] for m in got] == [6, 9] == [m["position"] for m in want]
    for mine, theirs in zip(got, want):
        assert [p["token"] for p in mine["predictions"]] == \
            [p["token"] for p in theirs["predictions"]]
        np.testing.assert_allclose([p["score"] for p in mine["predictions"]],
                                   [p["score"] for p in theirs["predictions"]], atol=1e-4)


def test_text_output_has_k_lines_per_mask(tiny_mlm, capsys):
    assert main(["mask", TWO_MASKS, "--model", str(tiny_mlm[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = hf_top_k(tiny_mlm, TWO_MASKS, 3)
    first = want[0]["predictions"][0]
    assert lines[0] == "[MASK] 1 of 2 (wordpiece 6):"
    assert lines[1] == (f"  then i picked up a {first['token']} from the [MASK] .   "
                        f"({first['score']:.3f})")
    assert len(lines) == 2 * (1 + 3)


def test_prompt_on_a_terminal_like_mask_py(tiny_mlm, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeTerminal("then i sat on the [MASK] .\n"))
    assert main(["mask", "--top-k", "2", "--model", str(tiny_mlm[0])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Text: then i sat on the ")
    assert len(out.splitlines()) == 2


def test_piped_texts_are_each_predicted(tiny_mlm):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "headprobe.cli", "mask", "--json", "--top-k", "4", "--model",
         str(tiny_mlm[0])], input="the cat sat on the [MASK] .\n\n" + TWO_MASKS + "\n",
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert [m["position"] for m in first] == [6] and [m["position"] for m in second] == [6, 9]
    assert first[0]["predictions"][0]["token"] == hf_top_k(
        tiny_mlm, "the cat sat on the [MASK] .", 4)[0]["predictions"][0]["token"]
    assert "Text:" not in done.stdout


def test_text_without_a_mask_is_a_usage_error(tiny_mlm, capsys):
    assert main(["mask", "the cat sat .", "--model", str(tiny_mlm[0])]) == 4
    assert "ERROR: Input must include mask token [MASK]." in capsys.readouterr().err


def test_text_longer_than_the_model_takes_says_both_lengths(tiny_mlm, capsys):
    text = " ".join(["the cat"] * 20) + " [MASK] ."
    assert main(["mask", text, "--model", str(tiny_mlm[0])]) == 4
    error = capsys.readouterr().err
    assert "is 44 tokens long" in error and f"at most {MAX_LENGTH}" in error


def test_top_k_must_be_positive(capsys):
    assert main(["mask", "a [MASK] .", "--top-k", "0", "--model", "unused"]) == 4
    assert "--top-k: expected a positive number" in capsys.readouterr().err


def test_diagrams_are_written_for_every_head(tiny_mlm, tmp_path, capsys):
    folder = tmp_path / "diagrams"
    assert main(["mask", TWO_MASKS, "--diagrams", str(folder), "--model", str(tiny_mlm[0])]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"Attention_Layer{l}_Head{h}.png" for l in (1, 2) for h in (1, 2, 3)]
                           + ["overview.png"])
    assert "7 diagrams written" in capsys.readouterr().err


def test_diagrams_into_a_fifo_fail_before_the_model_loads_and_leave_it(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["mask", "a [MASK] .", "--diagrams", str(fifo),
                 "--model", "nobody/no-such-model"]) == 4
    err = capsys.readouterr().err.strip()
    assert err == (f"ERROR: --diagrams {fifo}: is a named pipe (FIFO), not a folder; give a "
                   f"folder (it is created if it does not exist)")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_diagrams_are_checked_for_every_text_before_anything_runs(tiny_mlm, tmp_path, capsys):
    folder = tmp_path / "diagrams"
    (folder / "text2").mkdir(parents=True)
    fifo = folder / "text2" / "overview.png"
    os.mkfifo(fifo)
    texts = "the cat sat on the [MASK] .\n" + TWO_MASKS + "\n"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.StringIO(texts))
        assert main(["mask", "--diagrams", str(folder), "--model", str(tiny_mlm[0])]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""  # no prediction printed, no diagram of the first text written
    assert captured.err.strip() == (f"ERROR: --diagrams {fifo}: is a named pipe (FIFO), not a "
                                    f"regular file; give the name of a file (headprobe writes "
                                    f"it whole, through a temporary file beside it)")
    assert sorted(p.name for p in folder.rglob("*")) == ["overview.png", "text2"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_checkpoint_without_the_masked_lm_head_is_refused_clearly(capsys, monkeypatch):
    loaded = {}
    real = headprobe.load

    def load_once(spec=None, **options):
        loaded.setdefault(spec, real(spec, **options))
        return loaded[spec]

    monkeypatch.setattr(headprobe, "load", load_once)
    assert main(["mask", "a [MASK] .", "--model", MINILM]) == 4
    error = capsys.readouterr().err
    assert "has no masked-LM head" in error and "ForMaskedLM" in error
    assert "bert-base-uncased" in error
