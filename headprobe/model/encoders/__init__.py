"""The encoder bodies headprobe computes, one module each: what a family's embeddings, layers,
final norm and masked-LM head compute (`headprobe.model.families` reads their config.json and
weight names). `body_of` picks one by `EncoderConfig.body`; `headprobe.model.encoder` runs any
of them the same way.

A body's embeddings module maps (input_ids, segment_ids, position_ids) [b, t] to
``(x [b, t, h], extra, shared)`` (`headprobe.model.blocks.Inputs`) and holds the word
embeddings as ``word`` [v, e]; its layer is a `headprobe.model.blocks.AttentionLayer`; its head
maps (x [b, t, h], word) to logits [b, t, v]; ``final`` (or None) normalises the last layer's
output.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn

from headprobe.model.blocks import AttentionLayer
from headprobe.model.config import EncoderConfig
from headprobe.model.encoders import bert, deberta, modernbert


class Body(NamedTuple):
    embeddings: type[nn.Module]
    layer: type[AttentionLayer]
    head: type[nn.Module]
    final: type[nn.Module] | None = None


BODIES: dict[str, Body] = {
    "bert": Body(bert.Embeddings, bert.Layer, bert.MaskedLMHead),
    "deberta": Body(deberta.Embeddings, deberta.Layer, deberta.MaskedLMHead),
    "modernbert": Body(modernbert.Embeddings, modernbert.Layer, modernbert.MaskedLMHead,
                       modernbert.FinalNorm),
}


def body_of(config: EncoderConfig) -> Body:
    return BODIES[config.body]
