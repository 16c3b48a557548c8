"""ELECTRA (``model_type: electra``): BERT's encoder under embeddings of their own width.

- ``embedding_size`` (default: ``hidden_size``): word, position and token-type embeddings and
  their LayerNorm have this width; when it differs from ``hidden_size``,
  ``embeddings_project`` maps them up.
- Weights under ``electra.``. The discriminator (``ElectraForPreTraining``) has no masked-LM
  head (its ``discriminator_predictions`` are ignored); the generator (``ElectraForMaskedLM``)
  has ``generator_predictions.dense`` (hidden -> embedding width), GELU (always),
  ``generator_predictions.LayerNorm`` and ``generator_lm_head`` (tied, with its bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.model.config import EncoderConfig
from headprobe.model.families.base import BERT_LAYER, Family, Naming, integer
from headprobe.model.families.bert import NAMING as BERT_NAMING
from headprobe.model.families.bert import bert_like

NAMING = Naming(
    prefixes=("electra.",), word=BERT_NAMING.word, position=BERT_NAMING.position,
    token_type=BERT_NAMING.token_type, embedding_norm=BERT_NAMING.embedding_norm,
    projection="embeddings_project", layer="encoder.layer.{index}.", layer_names=BERT_LAYER,
    mlm_marker="generator_", mlm_transform="generator_predictions.dense",
    mlm_norm="generator_predictions.LayerNorm", mlm_decoder="generator_lm_head",
    mlm_bias=("generator_lm_head.bias",))


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    hidden = data.get("hidden_size")
    embedding = integer(data, "embedding_size", source,
                        default=hidden if type(hidden) is int else 128, minimum=1)
    return bert_like(data, source, family="ELECTRA", prefixes=("Electra",),
                     default_architecture="ElectraModel", embedding_size=embedding,
                     embedding_projection=embedding != hidden, mlm_act="gelu")


FAMILY = Family(name="ELECTRA", model_types=("electra",), class_prefixes=("Electra",),
                naming=NAMING, read_config=read_config, wordpiece_vocab=True)
