"""Every family of SPEC §7b against Hugging Face's PyTorch models, stage by stage: embeddings,
each layer's attention and hidden state, masked-LM logits, in a padded batch. Tolerances as for
BERT: attentions 1e-5, hidden states and logits 1e-4 (max abs).

Checkpoints are random (tests/families.py): RoBERTa and XLM-RoBERTa (RoBERTa's positions and
head), DistilBERT (other names, no token types, also with sinusoidal positions), ELECTRA
(discriminator and generator, embeddings projected up), ALBERT (factorised embeddings, one and
two shared layer groups), each with and without its masked-LM head; one also as a Flax msgpack
and one sharded. Their tokenizers (byte-level BPE, Unigram, WordPiece) must give the ids
transformers' own AutoTokenizer gives.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
from families import KINDS, write_family_checkpoint
from fixtures_models import assert_same_as_hugging_face

import headprobe
from headprobe.errors import ModelFormatError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["The turtle moved slowly across the road.", "A cat sat.",
         "Then I picked up a [MASK] from the table.",
         "Hi there, it's 3.5 km to the naïve café — isn't it?", "Yes"]
VARIANTS = {  # name -> (family, masked_lm, config overrides)
    "bert": ("bert", True, {}),
    "bert-untied-decoder": ("bert", True, {"tie_word_embeddings": False}),
    "roberta": ("roberta", True, {}),
    "roberta-base-model": ("roberta", False, {}),
    "xlm-roberta": ("xlm-roberta", True, {}),
    "distilbert": ("distilbert", True, {}),
    "distilbert-sinusoidal": ("distilbert", False, {"sinusoidal_pos_embds": True}),
    "electra-generator": ("electra", True, {}),
    "electra-discriminator": ("electra", False, {}),
    "albert": ("albert", True, {}),
    "albert-two-groups": ("albert", False, {"num_hidden_groups": 2, "hidden_act": "gelu"}),
    "modernbert": ("modernbert", True, {}),
    "modernbert-biases": ("modernbert", False, {
        "norm_bias": True, "attention_bias": True, "mlp_bias": True, "local_attention": 4,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        "hidden_activation": "gelu_pytorch_tanh"}),
    "modernbert-untied": ("modernbert", True, {
        "tie_word_embeddings": False, "decoder_bias": False, "classifier_bias": True,
        "classifier_activation": "silu", "global_attn_every_n_layers": 3}),
    # DeBERTa-v3 (tests/families.py DEBERTA_V3: 8 position buckets, shared keys, normed relative
    # embeddings, the legacy head), its base model, and v2's other paths: layer 0's convolution,
    # absolute positions and token types added, keys of positions of their own, unnormed
    # relative embeddings, the v3 head lm_predictions, the "p2c|c2p" string.
    "deberta-v3": ("deberta-v2", True, {}),
    "deberta-v3-base-model": ("deberta-v2", False, {}),
    "deberta-v2-conv": ("deberta-v2", True, {
        "conv_kernel_size": 3, "conv_act": "gelu", "position_biased_input": True,
        "share_att_key": False, "norm_rel_ebd": "none", "type_vocab_size": 2,
        "pos_att_type": "p2c|c2p", "legacy": False, "hidden_act": "gelu_new"}),
    # c2p alone, an embedding width of its own projected up, an untied legacy decoder, a
    # grouped convolution of width 5, plain relative positions clamped at 6 (no buckets).
    "deberta-v2-narrow": ("deberta-v2", True, {
        "pos_att_type": ["c2p"], "share_att_key": False, "embedding_size": 12,
        "tie_word_embeddings": False, "conv_kernel_size": 5, "conv_groups": 4,
        "position_buckets": -1, "max_relative_positions": 6}),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """``made(variant)``: the folder of a variant's checkpoint, written once."""
    root = tmp_path_factory.mktemp("families")
    cache: dict[str, Path] = {}

    def make(variant: str) -> Path:
        if variant not in cache:
            family, masked_lm, overrides = VARIANTS[variant]
            cache[variant] = write_family_checkpoint(root / variant, family,
                                                     masked_lm=masked_lm, **overrides)
        return cache[variant]

    return make


@functools.lru_cache(maxsize=16)
def hugging_face(folder: str):
    config = transformers.AutoConfig.from_pretrained(folder)
    model = getattr(transformers, config.architectures[0]).from_pretrained(
        folder, attn_implementation="eager").eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


def hugging_face_outputs(folder: Path, encodings, pad_id: int):
    """Per text: (attentions [layer, head, q, k], hidden [layer+1, t, h], logits or None), from
    one padded PyTorch batch of the same ids."""
    model, _ = hugging_face(str(folder))
    length = max(len(e) for e in encodings)
    ids = torch.full((len(encodings), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), length), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        ids[row, :len(encoding)] = torch.as_tensor(encoding.input_ids, dtype=torch.long)
        mask[row, :len(encoding)] = 1
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True,
                    output_hidden_states=True)
    attentions = torch.stack(out.attentions, dim=1).numpy()
    hidden = torch.stack(out.hidden_states, dim=1).numpy()
    logits = out.logits.numpy() if getattr(out, "logits", None) is not None and \
        out.logits.shape[-1] == model.config.vocab_size else None
    return [(attentions[i, :, :, :len(e), :len(e)], hidden[i, :, :len(e)],
             None if logits is None else logits[i, :len(e)]) for i, e in enumerate(encodings)]


def largest_differences(runs, expected) -> dict[str, float]:
    """Max abs difference per stage over every text (for the parity table in docs)."""
    stages = {"attention": 0.0, "hidden": 0.0, "logits": 0.0}
    for run, (attentions, hidden, logits) in zip(runs, expected):
        stages["attention"] = max(stages["attention"],
                                  float(np.abs(run.attentions - attentions).max()))
        stages["hidden"] = max(stages["hidden"], float(np.abs(run.hidden_states - hidden).max()))
        if logits is not None and run.mlm_logits is not None:
            stages["logits"] = max(stages["logits"],
                                   float(np.abs(run.mlm_logits - logits).max()))
    return stages


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_family_matches_hugging_face_stage_by_stage(made, variant):
    folder = made(variant)
    family, masked_lm, _ = VARIANTS[variant]
    model = headprobe.load(str(folder), compilation_cache=False)
    assert (model.num_layers, model.num_heads, model.has_mlm_head) == (3, 4, masked_lm)
    assert model.config.model_type == family
    encodings = model.tokenize(TEXTS)
    _, tokenizer = hugging_face(str(folder))
    for text, encoding in zip(TEXTS, encodings):  # the same ids as transformers' tokenizer
        written = text.replace("[MASK]", tokenizer.mask_token)
        assert list(encoding.input_ids) == tokenizer(written)["input_ids"], text
    runs = model.run(TEXTS, batch_size=4)
    expected = hugging_face_outputs(folder, encodings, model.config.pad_token_id)
    assert_same_as_hugging_face(runs, expected, logits=masked_lm)
    print(variant, largest_differences(runs, expected))


def test_every_family_is_covered():
    assert {family for family, _, _ in VARIANTS.values()} == set(KINDS)


def to_flax_layout(state: dict) -> dict:
    """PyTorch names -> Hugging Face's nested flax_model.msgpack layout (1-D weights of norms
    become scales, embedding matrices embeddings, Linear weights [in, out] kernels)."""
    tree: dict = {}
    for name, value in state.items():
        *path, leaf = name.split(".")
        if leaf == "weight":
            if value.ndim == 1:
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


@pytest.mark.parametrize("variant", ["roberta", "albert"])
def test_flax_msgpack_of_a_family_loads_the_same_model(made, tmp_path, variant):
    from flax import serialization
    from safetensors.numpy import load_file

    source = made(variant)
    for path in source.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, tmp_path / path.name)
    tree = to_flax_layout(load_file(str(source / "model.safetensors")))
    (tmp_path / "flax_model.msgpack").write_bytes(serialization.msgpack_serialize(tree))
    a = headprobe.load(str(source), compilation_cache=False).run(TEXTS[:2])
    b = headprobe.load(str(tmp_path), compilation_cache=False)
    assert b.weights.format == "flax"
    for x, y in zip(a, b.run(TEXTS[:2])):
        np.testing.assert_array_equal(x.attentions, y.attentions)
        np.testing.assert_array_equal(x.mlm_logits, y.mlm_logits)


def test_sharded_safetensors_of_a_family_load(made, tmp_path):
    source = made("electra-generator")
    model, _ = hugging_face(str(source))
    model.save_pretrained(str(tmp_path), safe_serialization=True, max_shard_size="20KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, tmp_path / name)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    sharded = headprobe.load(str(tmp_path), compilation_cache=False)
    assert len(sharded.weights.files) > 1
    whole = headprobe.load(str(source), compilation_cache=False)
    for x, y in zip(whole.run(TEXTS[:2]), sharded.run(TEXTS[:2])):
        np.testing.assert_array_equal(x.attentions, y.attentions)


# --- bad checkpoints ---------------------------------------------------------------------------


def copy_of(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


def test_missing_tokenizer_json_says_what_to_save(made, tmp_path):
    folder = copy_of(made("roberta"), tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelFormatError, match=r"no tokenizer \(tokenizer.json.*save_pretrained"):
        headprobe.load(str(folder), compilation_cache=False)


@pytest.mark.parametrize("variant, field, value, message", [
    ("albert", "num_hidden_groups", 9, r"num_hidden_groups 9 is more than num_hidden_layers 3"),
    ("albert", "inner_group_num", 2, r"inner_group_num 2 is not supported"),
    ("distilbert", "n_heads", 3, r"dim 20 is not a multiple of n_heads 3"),
    ("electra-generator", "embedding_size", 0, r"embedding_size: expected an integer >= 1"),
    ("roberta", "max_position_embeddings", 2, r"leaves no position for a token"),
    ("roberta", "model_type", "deberta", r"'deberta' is not supported.*deberta-v2"),
    ("xlm-roberta", "architectures", ["RobertaForMaskedLM"],
     r"'RobertaForMaskedLM' is not supported \(did you mean 'XLMRobertaForMaskedLM'\?\)"),
    ("modernbert", "rope_scaling", {"rope_type": "linear", "factor": 2.0},
     r"rope_scaling: .* is not supported; .*no scaling"),
    ("modernbert", "rope_parameters", {"full_attention": {"rope_type": "yarn"}},
     r"rope_parameters.full_attention.rope_type: 'yarn' is not supported"),
    ("modernbert", "num_attention_heads", 8, r"odd head dim 3; rotary positions need an even"),
    ("modernbert", "layer_types", ["full_attention"], r"layer_types: expected a list of 3"),
])
def test_config_fields_out_of_range_are_named(made, tmp_path, variant, field, value, message):
    import json

    folder = copy_of(made(variant), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelFormatError, match=message):
        headprobe.load(str(folder), compilation_cache=False)


@pytest.mark.parametrize("weights_of, config_of, message", [
    ("bert", "roberta", r"these are BERT weights .* config.json says model_type 'roberta'"),
    ("distilbert", "bert", r"these are DistilBERT weights .* model_type 'bert'"),
    ("albert", "electra-generator", r"these are ALBERT weights"),
])
def test_weights_of_another_family_are_named(made, tmp_path, weights_of, config_of, message):
    folder = copy_of(made(config_of), tmp_path / "m")
    shutil.copy(made(weights_of) / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ModelFormatError, match=message):
        headprobe.load(str(folder), compilation_cache=False)
