"""The model's shape, read from a Hugging Face ``config.json`` (pure apart from `read_config`).

Only the BERT family is supported: ``model_type: bert`` with one of `SUPPORTED_ARCHITECTURES`
(a missing ``architectures`` field, as in some sentence-transformers folders, means ``BertModel``).
Fields that Hugging Face's own ``BertConfig`` defaults (``hidden_act``, ``type_vocab_size``,
``layer_norm_eps``, ``pad_token_id``) take the same defaults here; the sizes are required.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headprobe.errors import ModelFormatError, did_you_mean

SUPPORTED_MODEL_TYPES = ("bert",)
SUPPORTED_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForPreTraining")
# Hugging Face's names for the activations; `gelu` is the exact (erf) GELU.
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu",
                         "swish")

_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings")
_DEFAULTS: dict[str, Any] = {"hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                             "pad_token_id": 0}


@dataclass(frozen=True)
class BertConfig:
    """Sizes and choices of a BERT encoder. ``head_dim = hidden_size // num_attention_heads``."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    architectures: tuple[str, ...] = ("BertModel",)
    model_type: str = "bert"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config.json") -> BertConfig:
        """Validate a parsed config.json; errors name ``source`` and the field."""
        if not isinstance(data, Mapping):
            raise ModelFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "bert")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelFormatError(
                f"{source}: model_type: {model_type!r} is not supported; headprobe loads the BERT "
                f"family (model_type 'bert': {', '.join(SUPPORTED_ARCHITECTURES)}, and "
                "sentence-transformers folders holding one). Pick a BERT checkpoint.")
        architectures = tuple(data.get("architectures") or ("BertModel",))
        unsupported = [a for a in architectures if a not in SUPPORTED_ARCHITECTURES]
        if unsupported:
            raise ModelFormatError(
                f"{source}: architectures: {unsupported[0]!r} is not supported"
                f"{did_you_mean(unsupported[0], SUPPORTED_ARCHITECTURES)}; supported: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)} (and sentence-transformers folders holding "
                "one). Pick a BERT encoder checkpoint.")
        position_type = data.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ModelFormatError(
                f"{source}: position_embedding_type: {position_type!r} is not supported; only "
                "'absolute' position embeddings are implemented.")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ModelFormatError(
                f"{source}: missing field(s) {', '.join(missing)}; a BERT config.json needs "
                f"{', '.join(_REQUIRED)}. Re-save the model with transformers' save_pretrained.")
        values = {**_DEFAULTS, **{k: data[k] for k in (*_REQUIRED, *_DEFAULTS) if k in data}}
        if values["pad_token_id"] is None:
            values["pad_token_id"] = 0
        for name in (*_REQUIRED, "type_vocab_size", "pad_token_id"):
            value = values[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ModelFormatError(
                    f"{source}: {name}: expected a non-negative integer, got {values[name]!r}")
        if values["hidden_act"] not in SUPPORTED_ACTIVATIONS:
            raise ModelFormatError(
                f"{source}: hidden_act: {values['hidden_act']!r} is not supported"
                f"{did_you_mean(str(values['hidden_act']), SUPPORTED_ACTIVATIONS)}; supported: "
                f"{', '.join(SUPPORTED_ACTIVATIONS)}")
        heads = values["num_attention_heads"]
        if heads == 0 or values["hidden_size"] % heads:
            raise ModelFormatError(
                f"{source}: hidden_size {values['hidden_size']} is not a multiple of "
                f"num_attention_heads {values['num_attention_heads']}")
        return cls(vocab_size=values["vocab_size"], hidden_size=values["hidden_size"],
                   num_hidden_layers=values["num_hidden_layers"],
                   num_attention_heads=values["num_attention_heads"],
                   intermediate_size=values["intermediate_size"], hidden_act=values["hidden_act"],
                   max_position_embeddings=values["max_position_embeddings"],
                   type_vocab_size=values["type_vocab_size"],
                   layer_norm_eps=float(values["layer_norm_eps"]),
                   pad_token_id=values["pad_token_id"], architectures=architectures,
                   model_type=model_type)


def read_config(folder: Path) -> BertConfig:
    """`BertConfig` from ``folder/config.json``."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelFormatError(
            f"{path}: no config.json in the model folder; a Hugging Face model folder holds "
            "config.json beside its weights. Save it with transformers' save_pretrained.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFormatError(f"{path}: cannot read it as JSON: {error}") from None
    return BertConfig.from_dict(data, source=str(path))
