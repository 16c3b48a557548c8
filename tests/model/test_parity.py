"""Stage-by-stage parity with Hugging Face's PyTorch BERT (embeddings, every layer's hidden state
and attention, masked-LM logits), batched with padding. Tolerances: attentions 1e-5, hidden
states and logits 1e-4 (max abs)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from fixtures_models import assert_same_as_hugging_face

import headprobe
from headprobe.model.weights import flax_to_state_dict

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY_TEXTS = ["the cat sat on the mat", "a big red dog ran .", "the dog", "cats running on a hat",
              "blue sun , red hat , big mat", "[MASK] cat sat"]


@functools.lru_cache(maxsize=4)
def hugging_face_model(folder, masked_lm: bool):
    cls = transformers.BertForMaskedLM if masked_lm else transformers.BertModel
    model = cls.from_pretrained(str(folder), attn_implementation="eager").eval()
    return model, transformers.AutoTokenizer.from_pretrained(str(folder))


def hugging_face_outputs(folder, texts, *, masked_lm: bool):
    """Per text: (attentions [layer, head, q, k], hidden [layer+1, t, h], logits [t, v] | None),
    from one padded PyTorch batch."""
    model, tokenizer = hugging_face_model(str(folder), masked_lm)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_attentions=True, output_hidden_states=True)
    attentions = torch.stack(out.attentions, dim=1).numpy()
    hidden = torch.stack(out.hidden_states, dim=1).numpy()
    logits = out.logits.numpy() if masked_lm else None
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    return [(attentions[i, :, :, :n, :n], hidden[i, :, :n],
             None if logits is None else logits[i, :n]) for i, n in enumerate(lengths)]


def test_bundled_minilm_matches_hugging_face_on_every_layer(minilm, sentences):
    assert len(sentences) >= 100
    runs = minilm.run(sentences, batch_size=32)
    expected = []
    for start in range(0, len(sentences), 32):
        expected += hugging_face_outputs(minilm.path, sentences[start:start + 32], masked_lm=False)
    assert [len(r.tokens) for r in runs] == [e[0].shape[-1] for e in expected]
    assert_same_as_hugging_face(runs, expected, logits=False)


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_tiny_masked_lm_matches_hugging_face_stage_by_stage(checkpoints, hidden_act):
    folder = checkpoints(f"tiny-{hidden_act}", hidden_act=hidden_act)
    model = headprobe.load(str(folder))
    assert (model.num_layers, model.num_heads, model.has_mlm_head) == (2, 3, True)
    runs = model.run(TINY_TEXTS, batch_size=4)
    assert runs[0].attentions.shape == (2, 3, 8, 8)
    assert runs[0].hidden_states.shape == (3, 8, 15)
    assert runs[0].mlm_logits.shape == (8, 23)
    assert_same_as_hugging_face(runs, hugging_face_outputs(folder, TINY_TEXTS, masked_lm=True),
                                logits=True)


def test_bert_base_shaped_random_checkpoint_matches_hugging_face(checkpoints):
    folder = checkpoints("bert-base-shaped", seed=1, **{
        "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
        "type_vocab_size": 2})
    model = headprobe.load(str(folder))
    texts = ["the cat sat on the mat .", "a big red dog ran on the sun"]
    runs = model.run(texts)
    assert runs[0].attentions.shape == (12, 12, 9, 9)
    assert runs[0].mlm_logits.shape == (9, 30522)
    assert_same_as_hugging_face(runs, hugging_face_outputs(folder, texts, masked_lm=True),
                                logits=True)


def to_hugging_face_flax_layout(state: dict[str, np.ndarray]) -> dict:
    """PyTorch names -> the nested layout of Hugging Face's flax_model.msgpack (the inverse of
    flax_to_state_dict, written independently): Linear weights become [in, out] kernels,
    LayerNorm weights scales, embedding weights embeddings."""
    tree: dict = {}
    for name, value in state.items():
        *path, leaf = name.split(".")
        if leaf == "weight":
            if "LayerNorm" in path:
                leaf = "scale"
            elif path[-1].endswith("embeddings"):
                leaf = "embedding"
            else:
                leaf, value = "kernel", value.T
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = np.ascontiguousarray(value)
    return tree


def test_flax_msgpack_checkpoint_loads_and_matches_hugging_face(checkpoints, tmp_path):
    import shutil

    from flax import serialization
    from safetensors.numpy import load_file

    source = checkpoints("tiny-gelu", hidden_act="gelu")
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, tmp_path / name)
    tree = to_hugging_face_flax_layout(load_file(str(source / "model.safetensors")))
    assert "kernel" in tree["bert"]["encoder"]["layer"]["1"]["attention"]["self"]["query"]
    (tmp_path / "flax_model.msgpack").write_bytes(serialization.msgpack_serialize(tree))
    assert set(flax_to_state_dict(tree)) == set(load_file(str(source / "model.safetensors")))
    model = headprobe.load(str(tmp_path))
    assert model.weights.format == "flax"
    runs = model.run(TINY_TEXTS)
    assert_same_as_hugging_face(runs, hugging_face_outputs(source, TINY_TEXTS, masked_lm=True),
                                logits=True)


def test_tiny_checkpoint_tokenizer_spells_its_own_words(checkpoints):
    """Guards the parity tests above: they must see real word ids, not a row of [UNK]s."""
    import headprobe

    model = headprobe.load(str(checkpoints("tiny")), compilation_cache=False)
    (encoding,) = model.tokenize(["the big cat sat on a red mat ."])
    assert encoding.tokens == ["[CLS]", "the", "big", "cat", "sat", "on", "a", "red", "mat", ".",
                               "[SEP]"]
