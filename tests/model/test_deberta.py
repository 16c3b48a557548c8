"""DeBERTa-v2/v3 beyond the stage-by-stage parity of test_families.py (SPEC §7c): the bucket
table equals transformers' ``make_log_bucket_position`` at every distance, sentences packed
into one row get what they get alone (relative positions and layer 0's convolution do not reach
across sentences), removing heads with the convolution matches hooks on transformers' model
(tests/torch_reference.py), Microsoft's v3 layout (``lm_predictions`` with ``legacy`` left
true) reads its trained head, and config.json fields out of range are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from families import write_family_checkpoint

import headprobe
from headprobe.errors import ModelFormatError
from headprobe.model import packing
from headprobe.model.config import DebertaOptions
from headprobe.model.encoders.deberta import bucket_table, log_buckets

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Short sentences: all of them fit in one row of the test models' 48 positions.
TEXTS = ["The turtle moved slowly across the road.", "A cat sat.", "Yes",
         "She opened the old box."]
CONV = {"conv_kernel_size": 3, "conv_act": "gelu", "position_biased_input": True,
        "share_att_key": False, "norm_rel_ebd": "none", "pos_att_type": ["p2c", "c2p"]}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("deberta")
    cache: dict[str, Path] = {}

    def make(name: str, masked_lm: bool = True, **overrides) -> Path:
        if name not in cache:
            cache[name] = write_family_checkpoint(root / name, "deberta-v2",
                                                  masked_lm=masked_lm, **overrides)
        return cache[name]

    return make


# --- relative position buckets ------------------------------------------------------------------


@pytest.mark.parametrize("buckets, max_position", [(8, 48), (256, 512), (256, 256), (64, 2048),
                                                   (512, 1024), (6, 16)])
def test_log_buckets_equal_transformers_at_every_distance(buckets, max_position):
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    relative = torch.arange(-2048, 2049)
    expected = make_log_bucket_position(relative, buckets, max_position).long().numpy()
    np.testing.assert_array_equal(log_buckets(relative.numpy(), buckets, max_position), expected)


@pytest.mark.parametrize("buckets, max_relative", [(8, 48), (256, 512), (-1, 6), (-1, 512)])
def test_bucket_table_is_transformers_clamped_index(buckets, max_relative):
    """Entry r + length - 1: ``clamp(bucket(r) + span, 0, 2 span - 1)`` as transformers'
    ``build_relative_position`` and attention compute it for a sentence of ``length`` tokens
    (its signature changed between transformers 4 and 5: the bucket function's did not)."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    length = 600
    options = DebertaOptions(position_buckets=buckets, max_relative_positions=max_relative)
    span = options.span
    relative = torch.arange(length)[:, None] - torch.arange(length)[None, :]  # [q, k]
    if buckets > 0:
        relative = make_log_bucket_position(relative, buckets, max_relative).long()
    expected = torch.clamp(relative + span, 0, 2 * span - 1).numpy()
    table = bucket_table(options, length)
    q, k = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    np.testing.assert_array_equal(table[q - k + length - 1], expected)


# --- packing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["v3", "conv"])
def test_sentences_packed_in_one_row_get_what_they_get_alone(made, variant):
    folder = made(variant, **(CONV if variant == "conv" else {}))
    model = headprobe.load(str(folder), compilation_cache=False)
    lengths = [len(e) for e in model.tokenize(TEXTS)]
    _, rows = packing.choose_rows(lengths, model.max_length)
    assert len(rows) == 1, rows  # every sentence shares the row, most not at its start
    packed = model.run(TEXTS)
    for text, together in zip(TEXTS, packed):
        (alone,) = model.run([text])
        np.testing.assert_allclose(together.attentions, alone.attentions, atol=1e-5, rtol=0)
        np.testing.assert_allclose(together.hidden_states, alone.hidden_states, atol=1e-4,
                                   rtol=0)
        np.testing.assert_allclose(together.mlm_logits, alone.mlm_logits, atol=1e-4, rtol=0)


def test_removing_heads_with_the_convolution_matches_torch_hooks(made):
    """Removing a head of layer 0 runs its convolution again on the packed variants."""
    import torch_reference as ref

    folder = made("conv", **CONV)
    model = headprobe.load(str(folder), compilation_cache=False).model()
    reference = transformers.DebertaV2ForMaskedLM.from_pretrained(
        str(folder), attn_implementation="eager").eval()
    heads = [(0, 1), (1, 2)]
    found = model.effects(TEXTS, heads, ablation="zero", effect="kl")
    for text, values in zip(TEXTS, found):
        ids = list(model.tokenize([text])[0].input_ids)
        expected = ref.effects(reference, ids, heads, "zero", "kl")
        assert expected.max() > 1e-3  # the heads matter
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-4, err_msg=text)


# --- the masked-LM head ---------------------------------------------------------------------------


def test_v3_layout_with_legacy_left_true_reads_its_lm_predictions_head(made, tmp_path):
    """Microsoft's v3 checkpoints: config.json without ``legacy`` (true), weights with
    ``lm_predictions.lm_head.*``. transformers would initialise ``cls.predictions`` at random;
    headprobe reads the head the weights hold: the logits of the same model with legacy false."""
    source = made("v3-head", legacy=False)
    folder = tmp_path / "m"
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    del config["legacy"]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    model = headprobe.load(str(folder), compilation_cache=False)
    assert model.has_mlm_head
    (run,) = model.run([TEXTS[0]])
    reference = transformers.DebertaV2ForMaskedLM.from_pretrained(
        str(source), attn_implementation="eager").eval()
    with torch.no_grad():
        logits = reference(input_ids=torch.as_tensor([list(run.input_ids)])).logits[0].numpy()
    np.testing.assert_allclose(run.mlm_logits, logits, atol=1e-4, rtol=0)


# --- config.json and weights out of range -------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("pos_att_type", ["c2p", "p2p"], r"pos_att_type: 'p2p' is not a position term.*c2p"),
    ("pos_att_type", 3, r"pos_att_type: expected a list such as"),
    ("norm_rel_ebd", "batch_norm", r"norm_rel_ebd: expected \"layer_norm\" or \"none\""),
    ("attention_head_size", 4, r"attention_head_size: 4 is not hidden_size / "
                               r"num_attention_heads \(20 / 4 = 5\)"),
    ("conv_kernel_size", 2, r"conv_kernel_size: 2 is even"),
    ("conv_groups", 3, r"conv_groups: 3 does not divide hidden_size 20"),
    ("position_buckets", "8", r"position_buckets: expected an integer"),
    ("share_att_key", "yes", r"share_att_key: expected true or false"),
    ("conv_act", "gelu_erf", r"conv_act: 'gelu_erf' is not supported"),
    ("architectures", ["DebertaForMaskedLM"], r"'DebertaForMaskedLM' is not supported"),
])
def test_config_fields_out_of_range_are_named(made, tmp_path, field, value, message):
    folder = tmp_path / "m"
    shutil.copytree(made("v3"), folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config[field] = value
    if field == "conv_groups":
        config["conv_kernel_size"] = 3
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelFormatError, match=message):
        headprobe.load(str(folder), compilation_cache=False)


def test_weights_of_deberta_under_a_bert_config_are_named(made, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(made("v3"), folder)
    bert = write_family_checkpoint(tmp_path / "bert", "bert", masked_lm=False)
    shutil.copy(bert / "config.json", folder / "config.json")
    with pytest.raises(ModelFormatError, match=r"these are DeBERTa-v2 weights .*model_type "
                                               r"'bert'"):
        headprobe.load(str(folder), compilation_cache=False)
