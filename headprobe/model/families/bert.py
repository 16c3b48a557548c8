"""BERT (``model_type: bert``): the reference layout every other family differs from.

config.json: ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
``intermediate_size``, ``max_position_embeddings`` (required); ``hidden_act`` (gelu),
``type_vocab_size`` (2), ``layer_norm_eps`` (1e-12), ``pad_token_id`` (0) as transformers'
``BertConfig`` defaults them. Weights under ``bert.`` (or none); the masked-LM head is
``cls.predictions.*``, its decoder tied to the word embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.model.config import EncoderConfig
from headprobe.model.families.base import (
    BERT_LAYER,
    Family,
    Naming,
    absolute_positions,
    activation,
    architectures,
    flag,
    heads_divide,
    integer,
    number,
    pad_token,
    read_sizes,
)

SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
         "intermediate_size", "max_position_embeddings")

NAMING = Naming(
    prefixes=("bert.",), word="embeddings.word_embeddings",
    position="embeddings.position_embeddings", token_type="embeddings.token_type_embeddings",
    embedding_norm="embeddings.LayerNorm",
    projection=None, layer="encoder.layer.{index}.", layer_names=BERT_LAYER,
    mlm_marker="cls.predictions.", mlm_transform="cls.predictions.transform.dense",
    mlm_norm="cls.predictions.transform.LayerNorm", mlm_decoder="cls.predictions.decoder",
    mlm_bias=("cls.predictions.decoder.bias", "cls.predictions.bias"))


def bert_like(data: Mapping[str, Any], source: str, *, family: str, prefixes: tuple[str, ...],
              default_architecture: str, **choices: Any) -> EncoderConfig:
    """The fields BERT, RoBERTa and ELECTRA share, with the family's own ``choices``."""
    absolute_positions(data, source)
    found = architectures(data, source, prefixes, default_architecture)
    sizes: dict[str, Any] = read_sizes(data, SIZES, source, family, "num_hidden_layers")
    heads_divide(sizes["hidden_size"], sizes["num_attention_heads"], source,
                 ("hidden_size", "num_attention_heads"))
    return EncoderConfig(
        **sizes, hidden_act=activation(data, "hidden_act", source, "gelu"),
        type_vocab_size=integer(data, "type_vocab_size", source, default=2, minimum=1),
        layer_norm_eps=number(data, "layer_norm_eps", source, 1e-12),
        pad_token_id=pad_token(data, source, sizes["vocab_size"], choices.pop("pad", 0)),
        architectures=found, model_type=str(data.get("model_type", "bert")),
        tie_word_embeddings=flag(data, "tie_word_embeddings", source, True), **choices)


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    return bert_like(data, source, family="BERT", prefixes=("Bert",),
                     default_architecture="BertModel")


FAMILY = Family(name="BERT", model_types=("bert",), class_prefixes=("Bert",), naming=NAMING,
                read_config=read_config, wordpiece_vocab=True)
