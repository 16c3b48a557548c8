"""Tiny BERT checkpoints whose attention the tests control, written with numpy (no PyTorch).

`write_planted_checkpoint(folder)` writes a 2-layer BERT (3 heads of dim 5, hidden 15,
intermediate 11, 16 positions, 2 token types, the vocabulary `WORDS`) in Hugging Face layout
(config.json, model.safetensors, vocab.txt + tokenizer files). Head L1H1 is planted:

* its query weights are zero and its query bias is ``QUERY_BIAS`` on the head's first dimension;
* its key reads ``x[0] - x[1]`` (two hidden features) into that dimension and nothing else;
* every embedding (word, position, token type) has equal features 0 and 1, except the word
  ``zebra``, whose features are ``+ZEBRA`` and ``-ZEBRA``; the embedding LayerNorm has scale 1 and
  bias 0 on both.

So in a sentence without "zebra" every key of L1H1 is exactly zero: its attention is exactly
uniform over the real positions, every position ties for the argmax (each gets 1/len of the hit),
and the mass on any one position is exactly 1/len. In a sentence with "zebra" every position
attends mostly to "zebra". All other weights are random (fixed seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "cat", "dog", "horse", "zebra", "sat", "on", "mat", "rug", "table", "red",
         "carpet", "big", "small", "then", "i", "picked", "up", "from", "moved", "slowly",
         "quickly", "across", "road", "and", "it", "was", ".", ",", "'", "s", "##s", "##ing"]
SIZES = dict(vocab_size=48, hidden_size=15, num_hidden_layers=2, num_attention_heads=3,
             intermediate_size=11, max_position_embeddings=16, type_vocab_size=2)
QUERY_BIAS = 8.0
ZEBRA = 4.0


def _vocabulary() -> list[str]:
    words = SPECIALS + WORDS
    return words + [f"[unused{i}]" for i in range(SIZES["vocab_size"] - len(words))]


def planted_state(seed: int = 0, **overrides: int) -> dict[str, np.ndarray]:
    """The weights described in the module docstring (PyTorch names, Linear weights [out, in]);
    ``overrides`` change sizes of `SIZES` (e.g. ``max_position_embeddings``)."""
    rng = np.random.default_rng(seed)
    s = {**SIZES, **overrides}
    h, i, layers = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    d = h // s["num_attention_heads"]
    vocab = _vocabulary()

    def normal(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def tied(matrix: np.ndarray) -> np.ndarray:
        matrix[:, 0] = 0.0
        matrix[:, 1] = 0.0
        return matrix

    word = tied(normal(s["vocab_size"], h))
    word[vocab.index("zebra"), :2] = (ZEBRA, -ZEBRA)
    state = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": tied(normal(s["max_position_embeddings"], h)),
        "embeddings.token_type_embeddings.weight": tied(normal(s["type_vocab_size"], h)),
        "embeddings.LayerNorm.weight": np.concatenate(
            [np.ones(2, np.float32), 1.0 + normal(h - 2, scale=0.1)]),
        "embeddings.LayerNorm.bias": np.concatenate(
            [np.zeros(2, np.float32), normal(h - 2, scale=0.1)]),
    }
    for j in range(layers):
        p = f"encoder.layer.{j}."
        for part in ("query", "key", "value"):
            state[p + f"attention.self.{part}.weight"] = normal(h, h)
            state[p + f"attention.self.{part}.bias"] = normal(h, scale=0.1)
        for name, (out_f, in_f) in {"attention.output.dense": (h, h),
                                    "intermediate.dense": (i, h), "output.dense": (h, i)}.items():
            state[p + name + ".weight"] = normal(out_f, in_f)
            state[p + name + ".bias"] = normal(out_f, scale=0.1)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[p + norm + ".weight"] = 1.0 + normal(h, scale=0.1)
            state[p + norm + ".bias"] = normal(h, scale=0.1)
    # Plant L1H1 (layer index 0, head index 0: output rows 0..d-1 of query and key).
    query_w = state["encoder.layer.0.attention.self.query.weight"]
    query_b = state["encoder.layer.0.attention.self.query.bias"]
    key_w = state["encoder.layer.0.attention.self.key.weight"]
    key_b = state["encoder.layer.0.attention.self.key.bias"]
    query_w[:d] = 0.0
    query_b[:d] = 0.0
    query_b[0] = QUERY_BIAS
    key_w[:d] = 0.0
    key_b[:d] = 0.0
    key_w[0, 0], key_w[0, 1] = 1.0, -1.0
    return {"bert." + name: np.ascontiguousarray(value) for name, value in state.items()}


def write_planted_checkpoint(folder: Path, *, seed: int = 0, **overrides: int) -> Path:
    """Write the planted checkpoint into ``folder`` (created); returns ``folder``."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
              "layer_norm_eps": 1e-12, "pad_token_id": 0, **SIZES, **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(_vocabulary()) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True,
         "model_max_length": config["max_position_embeddings"]}), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
         "cls_token": "[CLS]", "mask_token": "[MASK]"}), encoding="utf-8")
    save_file(planted_state(seed, **overrides), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return folder


def hf_bert_tokenizer(cls, words: list[str], folder: Path):
    """A transformers ``BertTokenizer``/``BertTokenizerFast`` (``cls``) over ``words`` (lower
    case), on transformers 4 and 5 alike: 5 takes the vocabulary itself (and ignores
    ``vocab_file=``), 4 only a vocab.txt, written into ``folder``."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return cls(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    vocab = Path(folder) / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    return cls(vocab_file=str(vocab), do_lower_case=True)


ATTENTION_TOL = 1e-5
HIDDEN_TOL = 1e-4


def assert_same_as_hugging_face(runs, expected, *, logits: bool) -> None:
    """Per run: attentions within 1e-5 and hidden states (embeddings first) and masked-LM
    logits within 1e-4 (max abs) of Hugging Face's ``(attentions, hidden, logits)``."""
    for run, (attentions, hidden, mlm_logits) in zip(runs, expected):
        assert run.attentions.dtype == np.float32
        assert run.attentions.shape == attentions.shape
        assert run.hidden_states.shape == hidden.shape
        np.testing.assert_allclose(run.hidden_states[0], hidden[0], atol=HIDDEN_TOL, rtol=0,
                                   err_msg=f"embeddings differ for {run.text!r}")
        for layer in range(attentions.shape[0]):
            np.testing.assert_allclose(run.attentions[layer], attentions[layer],
                                       atol=ATTENTION_TOL, rtol=0,
                                       err_msg=f"layer {layer} attention, {run.text!r}")
            np.testing.assert_allclose(run.hidden_states[layer + 1], hidden[layer + 1],
                                       atol=HIDDEN_TOL, rtol=0,
                                       err_msg=f"layer {layer} hidden state, {run.text!r}")
        if logits:
            assert run.mlm_logits.shape == mlm_logits.shape
            np.testing.assert_allclose(run.mlm_logits, mlm_logits, atol=HIDDEN_TOL, rtol=0,
                                       err_msg=f"masked-LM logits, {run.text!r}")
        else:
            assert run.mlm_logits is None
