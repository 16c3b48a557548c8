"""ALBERT (``model_type: albert``): factorised embeddings and layers that share parameters.

- ``embedding_size`` (128 in the released models): the embeddings' width;
  ``encoder.embedding_hidden_mapping_in`` maps them to ``hidden_size``.
- ``num_hidden_groups`` parameter sets (1 in every released model) serve the
  ``num_hidden_layers`` applications: application *i* uses group
  ``int(i / (num_hidden_layers / num_hidden_groups))``, as transformers does. headprobe's
  ``L3H10`` is head 10 of the third application. ``inner_group_num`` must be 1 (as released;
  more would give each application several attention maps).
- A group's layer: ``encoder.albert_layer_groups.G.albert_layers.0`` with ``attention.{query,
  key,value,dense,LayerNorm}``, ``ffn``, ``ffn_output``, ``full_layer_layer_norm``.
- The masked-LM head: ``predictions.dense`` (hidden -> embedding width), ``hidden_act``,
  ``predictions.LayerNorm``, ``predictions.decoder`` (tied) and ``predictions.bias``.
- SentencePiece tokenizer (``▁``) with ``[CLS]``, ``[SEP]``, ``[MASK]``, ``<unk>``, ``<pad>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.errors import ModelFormatError
from headprobe.model.config import EncoderConfig
from headprobe.model.families.base import (
    Family,
    LayerNames,
    Naming,
    SpecialTokens,
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

SIZES = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
         "num_attention_heads", "intermediate_size", "max_position_embeddings")

NAMING = Naming(
    prefixes=("albert.",), word="embeddings.word_embeddings",
    position="embeddings.position_embeddings", token_type="embeddings.token_type_embeddings",
    embedding_norm="embeddings.LayerNorm", projection="encoder.embedding_hidden_mapping_in",
    layer="encoder.albert_layer_groups.{index}.albert_layers.0.",
    layer_names=LayerNames(query="attention.query", key="attention.key",
                           value="attention.value", out="attention.dense",
                           attention_norm="attention.LayerNorm", intermediate="ffn",
                           output="ffn_output", output_norm="full_layer_layer_norm"),
    mlm_marker="predictions.", mlm_transform="predictions.dense", mlm_norm="predictions.LayerNorm",
    mlm_decoder="predictions.decoder", mlm_bias=("predictions.decoder.bias", "predictions.bias"))

SPECIALS = SpecialTokens(cls="[CLS]", sep="[SEP]", mask="[MASK]", unk="<unk>", pad="<pad>")


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    absolute_positions(data, source)
    found = architectures(data, source, ("Albert",), "AlbertModel")
    sizes = read_sizes(data, SIZES, source, "ALBERT", "num_hidden_layers")
    heads_divide(sizes["hidden_size"], sizes["num_attention_heads"], source,
                 ("hidden_size", "num_attention_heads"))
    groups = integer(data, "num_hidden_groups", source, default=1, minimum=1)
    if groups > sizes["num_hidden_layers"]:
        raise ModelFormatError(
            f"{source}: num_hidden_groups {groups} is more than num_hidden_layers "
            f"{sizes['num_hidden_layers']}; every group must serve at least one layer")
    inner = integer(data, "inner_group_num", source, default=1, minimum=1)
    if inner != 1:
        raise ModelFormatError(
            f"{source}: inner_group_num {inner} is not supported; headprobe reads ALBERT "
            f"checkpoints with one layer per group (inner_group_num 1), as every released one")
    return EncoderConfig(
        vocab_size=sizes["vocab_size"], hidden_size=sizes["hidden_size"],
        num_hidden_layers=sizes["num_hidden_layers"],
        num_attention_heads=sizes["num_attention_heads"],
        intermediate_size=sizes["intermediate_size"],
        hidden_act=activation(data, "hidden_act", source, "gelu_new"),
        max_position_embeddings=sizes["max_position_embeddings"],
        type_vocab_size=integer(data, "type_vocab_size", source, default=2, minimum=1),
        layer_norm_eps=number(data, "layer_norm_eps", source, 1e-12),
        pad_token_id=pad_token(data, source, sizes["vocab_size"], 0), architectures=found,
        model_type="albert", embedding_size=sizes["embedding_size"], embedding_projection=True,
        layer_groups=groups, tie_word_embeddings=flag(data, "tie_word_embeddings", source, True))


FAMILY = Family(name="ALBERT", model_types=("albert",), class_prefixes=("Albert",),
                naming=NAMING, read_config=read_config, specials=SPECIALS)
