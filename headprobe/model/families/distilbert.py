"""DistilBERT (``model_type: distilbert``): BERT's layer under other names, without token types.

config.json names: ``dim`` (hidden), ``n_layers``, ``n_heads``, ``hidden_dim`` (intermediate),
``activation``, ``vocab_size``, ``max_position_embeddings``, ``pad_token_id`` (0); LayerNorm
epsilon is 1e-12 (fixed in transformers). Weights under ``distilbert.``: ``transformer.layer.N``
with ``attention.{q,k,v,out}_lin``, ``sa_layer_norm``, ``ffn.lin1``, ``ffn.lin2``,
``output_layer_norm``; the masked-LM head is ``vocab_transform``, the activation,
``vocab_layer_norm`` and ``vocab_projector`` (tied, with its bias). ``sinusoidal_pos_embds``
checkpoints keep their (fixed) position table in the weights like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.model.config import EncoderConfig
from headprobe.model.families.base import (
    Family,
    LayerNames,
    Naming,
    activation,
    architectures,
    flag,
    heads_divide,
    pad_token,
    read_sizes,
)

SIZES = ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings")

NAMING = Naming(
    prefixes=("distilbert.",), word="embeddings.word_embeddings",
    position="embeddings.position_embeddings", token_type=None,
    embedding_norm="embeddings.LayerNorm", projection=None, layer="transformer.layer.{index}.",
    layer_names=LayerNames(query="attention.q_lin", key="attention.k_lin",
                           value="attention.v_lin", out="attention.out_lin",
                           attention_norm="sa_layer_norm", intermediate="ffn.lin1",
                           output="ffn.lin2", output_norm="output_layer_norm"),
    mlm_marker="vocab_", mlm_transform="vocab_transform", mlm_norm="vocab_layer_norm",
    mlm_decoder="vocab_projector", mlm_bias=("vocab_projector.bias",))


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    found = architectures(data, source, ("DistilBert",), "DistilBertModel")
    sizes = read_sizes(data, SIZES, source, "DistilBERT", "n_layers")
    heads_divide(sizes["dim"], sizes["n_heads"], source, ("dim", "n_heads"))
    return EncoderConfig(
        vocab_size=sizes["vocab_size"], hidden_size=sizes["dim"],
        num_hidden_layers=sizes["n_layers"], num_attention_heads=sizes["n_heads"],
        intermediate_size=sizes["hidden_dim"],
        hidden_act=activation(data, "activation", source, "gelu"),
        max_position_embeddings=sizes["max_position_embeddings"], type_vocab_size=0,
        layer_norm_eps=1e-12, pad_token_id=pad_token(data, source, sizes["vocab_size"], 0),
        architectures=found, model_type="distilbert",
        tie_word_embeddings=flag(data, "tie_word_embeddings", source, True))


FAMILY = Family(name="DistilBERT", model_types=("distilbert",), class_prefixes=("DistilBert",),
                naming=NAMING, read_config=read_config, wordpiece_vocab=True)
