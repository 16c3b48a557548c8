"""The model families headprobe loads (SPEC §7b), one module each; `family_for` picks one by a
config.json's ``model_type`` and says which are supported when it is none of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headprobe.errors import ModelFormatError, did_you_mean
from headprobe.model.families import albert, bert, distilbert, electra, roberta
from headprobe.model.families.base import Family
from headprobe.model.modelfiles import shown

FAMILIES: tuple[Family, ...] = (bert.FAMILY, roberta.FAMILY, distilbert.FAMILY, electra.FAMILY,
                                albert.FAMILY)
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
