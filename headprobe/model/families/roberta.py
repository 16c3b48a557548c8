"""RoBERTa and XLM-RoBERTa (``model_type: roberta`` / ``xlm-roberta``): BERT's encoder with
RoBERTa's positions and masked-LM head.

- Positions start after the padding index and count only non-padding tokens (transformers'
  ``create_position_ids_from_input_ids``), so a text may have ``max_position_embeddings -
  pad_token_id - 1`` tokens (512 for roberta-base's 514).
- ``pad_token_id`` defaults to 1; weights live under ``roberta.``.
- The masked-LM head is ``lm_head.dense``, GELU (always, whatever ``hidden_act`` says),
  ``lm_head.layer_norm``, ``lm_head.decoder`` (tied) and ``lm_head.bias``.
- Tokenizers: byte-level BPE (RoBERTa: ``Ġ`` marks a leading space) or SentencePiece
  (XLM-RoBERTa: ``▁``), with ``<s>``, ``</s>``, ``<mask>``, ``<unk>``, ``<pad>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.errors import ModelFormatError
from headprobe.model.config import EncoderConfig
from headprobe.model.families.base import BERT_LAYER, Family, Naming, SpecialTokens
from headprobe.model.families.bert import NAMING as BERT_NAMING
from headprobe.model.families.bert import bert_like

NAMING = Naming(
    prefixes=("roberta.",), word=BERT_NAMING.word, position=BERT_NAMING.position,
    token_type=BERT_NAMING.token_type, embedding_norm=BERT_NAMING.embedding_norm,
    projection=None, layer="encoder.layer.{index}.", layer_names=BERT_LAYER,
    mlm_marker="lm_head.", mlm_transform="lm_head.dense", mlm_norm="lm_head.layer_norm",
    mlm_decoder="lm_head.decoder", mlm_bias=("lm_head.decoder.bias", "lm_head.bias"))

SPECIALS = SpecialTokens(cls="<s>", sep="</s>", mask="<mask>", unk="<unk>", pad="<pad>")


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    xlm = data.get("model_type") == "xlm-roberta"
    config = bert_like(data, source, family="RoBERTa",
                       prefixes=("XLMRoberta",) if xlm else ("Roberta",),
                       default_architecture="XLMRobertaModel" if xlm else "RobertaModel",
                       pad=1, position_offset=True, mlm_act="gelu")
    if config.max_length < 1:

        raise ModelFormatError(
            f"{source}: max_position_embeddings {config.max_position_embeddings} leaves no "
            f"position for a token after the padding index {config.pad_token_id} (RoBERTa's "
            f"positions start at pad_token_id + 1)")
    return config


FAMILY = Family(name="RoBERTa", model_types=("roberta", "xlm-roberta"),
                class_prefixes=("Roberta", "XLMRoberta"), naming=NAMING,
                read_config=read_config, specials=SPECIALS)
