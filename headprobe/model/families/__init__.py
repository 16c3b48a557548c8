"""The model families headprobe loads (SPEC §7b), one module each; `family_for` picks one by a
config.json's ``model_type`` and says which are supported when it is none of them; `read_config`
and `config_from_dict` read a config.json with its family's reader into an `EncoderConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from headprobe.errors import ModelFormatError, did_you_mean
from headprobe.model.config import EncoderConfig
from headprobe.model.families import (
    albert,
    bert,
    deberta,
    distilbert,
    electra,
    modernbert,
    roberta,
)
from headprobe.model.families.base import Family
from headprobe.model.modelfiles import read_model_json, shown

FAMILIES: tuple[Family, ...] = (bert.FAMILY, roberta.FAMILY, distilbert.FAMILY, electra.FAMILY,
                                albert.FAMILY, modernbert.FAMILY, deberta.FAMILY)
MODEL_TYPES: tuple[str, ...] = tuple(t for family in FAMILIES for t in family.model_types)


def family_for(data: Mapping[str, Any], source: str = "config.json") -> Family:
    """The family of a parsed config.json (no ``model_type``: BERT, as transformers reads it)."""
    model_type = data.get("model_type", "bert")
    for family in FAMILIES:
        if isinstance(model_type, str) and model_type in family.model_types:
            return family
    raise ModelFormatError(
        f"{source}: model_type: {shown(model_type)} is not supported"
        f"{did_you_mean(str(model_type)[:100], MODEL_TYPES)}; headprobe loads the BERT family: "
        f"{', '.join(MODEL_TYPES)} (see docs/models.md). Pick a checkpoint of one of these.")


def family_of(model_type: str) -> Family:
    """The family of a validated config's ``model_type``."""
    return family_for({"model_type": model_type})


def read_config(folder: Path) -> EncoderConfig:
    """`EncoderConfig` from ``folder/config.json`` (read within bounds: `headprobe.model.
    modelfiles`), validated by its family's module."""
    path = Path(folder) / "config.json"
    try:
        data = read_model_json(path)  # a regular file of bounded size and nesting
    except FileNotFoundError:
        raise ModelFormatError(
            f"{path}: no config.json in the model folder; a Hugging Face model folder holds "
            "config.json beside its weights. Save it with transformers' save_pretrained."
        ) from None
    return config_from_dict(data, source=str(path))


def config_from_dict(data: Any, *, source: str = "config.json") -> EncoderConfig:
    """Validate a parsed config.json with its family's reader; errors name ``source`` and the
    field."""
    if not isinstance(data, dict):
        raise ModelFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return family_for(data, source).read_config(data, source)
