"""Fixtures for the engine's tests: the bundled MiniLM (loaded once) and small random BERT
checkpoints written with transformers (PyTorch), each axis a distinct size."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_models import hf_bert_tokenizer

DATA = Path(__file__).parent / "data"

# 23 entries: 5 special tokens and a few words, so a 5-word sentence is 7 tokens.
TINY_WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "ran", "big", "red", "##s", "##ing",
              ".", ",", "hat", "sun", "run", "blue"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Distinct sizes per axis: 3 heads x head dim 5 = hidden 15, intermediate 11, 2 layers,
# 23 vocab entries, 19 positions, 4 token types.
TINY = dict(vocab_size=23, hidden_size=15, num_hidden_layers=2, num_attention_heads=3,
            intermediate_size=11, max_position_embeddings=19, type_vocab_size=4)
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    lines = (DATA / "sentences.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="session")
def minilm():
    import headprobe

    return headprobe.load("sentence-transformers/all-MiniLM-L6-v2")


def write_checkpoint(folder: Path, *, seed: int = 0, **overrides) -> Path:
    """A random BertForMaskedLM saved as safetensors with a WordPiece tokenizer."""
    torch = pytest.importorskip("torch")
    import transformers

    sizes = {**TINY, **overrides}
    words = SPECIALS + TINY_WORDS
    words += [f"[unused{i}]" for i in range(sizes["vocab_size"] - len(words))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = transformers.BertConfig(**sizes, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # random LayerNorm and bias values too, so no term is trivially 1 or 0
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                centre = 1.0 if "weight" in name else 0.0
                parameter.copy_(torch.randn_like(parameter) * 0.1 + centre)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer = hf_bert_tokenizer(transformers.BertTokenizerFast, words, folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """``checkpoints(name, **sizes)``: a folder with a random checkpoint, written once per name."""
    made: dict[str, Path] = {}

    def make(name: str, **overrides) -> Path:
        if name not in made:
            made[name] = write_checkpoint(tmp_path_factory.mktemp(name), **overrides)
        return made[name]

    return make
