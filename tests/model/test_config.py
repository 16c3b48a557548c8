"""config.json -> EncoderConfig (BERT here; tests/model/test_families.py has the other families):
required fields, HF defaults, and errors naming file and field."""

from __future__ import annotations

import json

import pytest

from headprobe.errors import ModelFormatError
from headprobe.model.config import BertConfig
from headprobe.model.families import config_from_dict, read_config

BASE = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 23,
        "hidden_size": 15, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 11, "max_position_embeddings": 19, "type_vocab_size": 4,
        "hidden_act": "gelu_new", "layer_norm_eps": 1e-7, "pad_token_id": 1}


def test_reads_every_field_from_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(BASE))
    config = read_config(tmp_path)
    assert config == BertConfig(vocab_size=23, hidden_size=15, num_hidden_layers=2,
                                num_attention_heads=3, intermediate_size=11,
                                hidden_act="gelu_new", max_position_embeddings=19,
                                type_vocab_size=4, layer_norm_eps=1e-7, pad_token_id=1,
                                architectures=("BertForMaskedLM",), model_type="bert")
    assert config.head_dim == 5


def test_fields_hugging_face_defaults_take_its_defaults():
    data = {k: v for k, v in BASE.items()
            if k not in ("hidden_act", "layer_norm_eps", "pad_token_id", "type_vocab_size",
                         "architectures")}
    config = config_from_dict(data)
    assert (config.hidden_act, config.layer_norm_eps, config.pad_token_id,
            config.type_vocab_size, config.architectures) == ("gelu", 1e-12, 0, 2, ("BertModel",))


def test_missing_size_field_is_named_with_the_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in BASE.items()
                                                      if k != "num_attention_heads"}))
    with pytest.raises(ModelFormatError,
                       match=r"config\.json: missing field\(s\) num_attention_heads"):
        read_config(tmp_path)


def test_missing_config_json_says_what_a_model_folder_holds(tmp_path):
    with pytest.raises(ModelFormatError, match="no config.json"):
        read_config(tmp_path)


@pytest.mark.parametrize("field, value, message", [
    ("model_type", "nomic_bert",
     r"model_type: 'nomic_bert' is not supported.*bert, roberta, xlm-roberta, distilbert, "
     r"electra, albert, modernbert, deberta-v2"),
    ("model_type", "roberta", r"architectures: 'BertForMaskedLM' is not supported \(did you "
                              r"mean 'RobertaForMaskedLM'\?\)"),
    ("is_decoder", True, r"attends causally \(a decoder\)"),
    ("architectures", ["GPT2LMHeadModel"], r"'GPT2LMHeadModel' is not supported.*BertModel"),
    ("architectures", ["BertForMaskedLm"], r"did you mean 'BertForMaskedLM'"),
    ("position_embedding_type", "relative_key", r"position_embedding_type: 'relative_key'"),
    ("hidden_act", "gelu_neww", r"hidden_act: 'gelu_neww'.*did you mean 'gelu_new'"),
    ("hidden_size", 16, r"hidden_size 16 is not a multiple of num_attention_heads 3"),
    ("vocab_size", "23", r"vocab_size: expected an integer >= 1, got '23'"),
    ("num_hidden_layers", 0, r"num_hidden_layers: expected an integer >= 1, got 0"),
    ("layer_norm_eps", -1, r"layer_norm_eps: expected a small positive number"),
])
def test_unsupported_or_malformed_values_are_named(field, value, message):
    with pytest.raises(ModelFormatError, match=message):
        config_from_dict({**BASE, field: value}, source="m/config.json")
