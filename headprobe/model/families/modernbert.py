"""ModernBERT (``model_type: modernbert``, SPEC §7c): rotary positions, global and
sliding-window layers alternating, GeGLU, no biases, pre-norm (`headprobe.model.encoders.
modernbert` computes it).

config.json as transformers 4.48+ and 5 write it:

- sizes: ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``
  (an even head dim: rotary pairs its halves), ``intermediate_size`` (GeGLU: ``Wi`` gives twice
  as many), ``max_position_embeddings`` (8,192: the most tokens a text may have);
- which layers are local: ``layer_types`` (``full_attention`` / ``sliding_attention``), else
  every layer whose index is not a multiple of ``global_attn_every_n_layers`` (default 3);
  ``local_attention`` (default 128) is the whole window: a token sees ``local_attention // 2``
  positions each side;
- rotary theta: ``rope_parameters`` keyed by layer type (``{"full_attention": {"rope_theta":
  160000.0, "rope_type": "default"}, "sliding_attention": {...}}``, transformers 5), else
  ``global_rope_theta`` / ``local_rope_theta`` (older files); only ``rope_type: default`` (no
  scaling) is implemented;
- ``hidden_activation`` (GeGLU's), ``classifier_activation`` (the masked-LM head's dense),
  ``norm_eps``, ``norm_bias``, ``attention_bias``, ``mlp_bias``, ``decoder_bias``,
  ``classifier_bias``, ``tie_word_embeddings``, ``pad_token_id`` (default 50283).

Weights live under ``model.``: ``embeddings.tok_embeddings``, ``embeddings.norm``,
``layers.{i}.attn_norm`` (not layer 0), ``attn.Wqkv`` (query, key, value stacked), ``attn.Wo``,
``mlp_norm``, ``mlp.Wi`` (input half, then gate half), ``mlp.Wo``, ``final_norm``; the
masked-LM head ``head.dense``, ``head.norm``, ``decoder`` (its weight tied unless config.json
says otherwise; ``decoder.bias``). A fine-tuned classifier's ``head`` and ``classifier`` are
ignored: the masked-LM head is there when ``decoder.*`` is.

Tokenizer: byte-level BPE (``Ġ``) with ``[CLS] $A [SEP]``, ``[MASK]``, ``[UNK]``, ``[PAD]``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.config import EncoderConfig, ModernBertOptions
from headprobe.model.families.base import (
    BERT_SPECIALS,
    Family,
    LayerNames,
    Naming,
    WeightLayout,
    activation,
    architectures,
    flag,
    heads_divide,
    integer,
    number,
    pad_token,
    read_sizes,
)
from headprobe.model.modelfiles import shown

SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
         "intermediate_size")
LAYER_TYPES = ("full_attention", "sliding_attention")

NAMING = Naming(
    prefixes=("model.",), word="embeddings.tok_embeddings", position="",
    token_type=None, embedding_norm="embeddings.norm", projection=None, layer="layers.{index}.",
    layer_names=LayerNames(query="attn.Wqkv", key="attn.Wqkv", value="attn.Wqkv",
                           out="attn.Wo", attention_norm="attn_norm",
                           intermediate="mlp.Wi", output="mlp.Wo", output_norm="mlp_norm"),
    mlm_marker="decoder.", mlm_transform="head.dense", mlm_norm="head.norm",
    mlm_decoder="decoder", mlm_bias=("decoder.bias",))


def _local_layers(data: Mapping[str, Any], source: str, layers: int) -> tuple[int, ...]:
    types = data.get("layer_types")
    if types is None:
        every = integer(data, "global_attn_every_n_layers", source, default=3, minimum=1)
        return tuple(i for i in range(layers) if i % every)
    if (not isinstance(types, list) or len(types) != layers
            or any(kind not in LAYER_TYPES for kind in types)):
        raise ModelFormatError(
            f"{source}: layer_types: expected a list of {layers} values, each "
            f"'full_attention' or 'sliding_attention', got {shown(types)}")
    return tuple(i for i, kind in enumerate(types) if kind == "sliding_attention")


def _theta(data: Mapping[str, Any], source: str, layer_type: str, old_name: str,
           default: float) -> float:
    rope = data.get("rope_parameters")
    found: Any = data.get(old_name, default)
    name = old_name
    if rope is not None:
        if not isinstance(rope, dict):
            raise ModelFormatError(f"{source}: rope_parameters: expected an object keyed by "
                                   f"layer type, got {shown(rope)}")
        entry = rope.get(layer_type) or {}
        if not isinstance(entry, dict):
            raise ModelFormatError(f"{source}: rope_parameters.{layer_type}: expected an "
                                   f"object, got {shown(entry)}")
        kind = entry.get("rope_type", "default")
        if kind != "default":
            raise ModelFormatError(
                f"{source}: rope_parameters.{layer_type}.rope_type: {shown(kind)} is not "
                f"supported; headprobe implements ModernBERT's default rotary positions (no "
                f"scaling).")
        found = entry.get("rope_theta", found)
        name = f"rope_parameters.{layer_type}.rope_theta"
    if isinstance(found, bool) or not isinstance(found, (int, float)) or not found > 1:
        raise ModelFormatError(f"{source}: {name}: expected a number above 1 such as 10000.0, "
                               f"got {shown(found)}")
    return float(found)


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    found = architectures(data, source, ("ModernBert",), "ModernBertModel")
    scaling = data.get("rope_scaling")
    if scaling not in (None, {}) and not (isinstance(scaling, dict) and scaling.get(
            "rope_type", scaling.get("type", "default")) == "default"):
        raise ModelFormatError(
            f"{source}: rope_scaling: {shown(scaling)} is not supported; headprobe implements "
            f"ModernBERT's default rotary positions (no scaling).")
    sizes = read_sizes(data, SIZES, source, "ModernBERT", "num_hidden_layers")
    hidden, heads = sizes["hidden_size"], sizes["num_attention_heads"]
    heads_divide(hidden, heads, source, ("hidden_size", "num_attention_heads"))
    if (hidden // heads) % 2:
        raise ModelFormatError(
            f"{source}: hidden_size {hidden} / num_attention_heads {heads} gives an odd head "
            f"dim {hidden // heads}; rotary positions need an even one")
    layers = sizes["num_hidden_layers"]
    window = integer(data, "local_attention", source, default=128, minimum=2)
    options = ModernBertOptions(
        local_layers=_local_layers(data, source, layers), window_half=window // 2,
        global_theta=_theta(data, source, "full_attention", "global_rope_theta", 160_000.0),
        local_theta=_theta(data, source, "sliding_attention", "local_rope_theta", 10_000.0),
        norm_bias=flag(data, "norm_bias", source, False),
        attention_bias=flag(data, "attention_bias", source, False),
        mlp_bias=flag(data, "mlp_bias", source, False),
        decoder_bias=flag(data, "decoder_bias", source, True),
        head_bias=flag(data, "classifier_bias", source, False),
        head_act=activation(data, "classifier_activation", source, "gelu"))
    vocab = sizes["vocab_size"]
    return EncoderConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=sizes["intermediate_size"],
        hidden_act=activation(data, "hidden_activation", source, "gelu"),
        max_position_embeddings=integer(data, "max_position_embeddings", source,
                                        default=8192, minimum=1),
        type_vocab_size=0, layer_norm_eps=number(data, "norm_eps", source, 1e-5),
        pad_token_id=pad_token(data, source, vocab, 50283),
        architectures=found, model_type="modernbert",
        tie_word_embeddings=flag(data, "tie_word_embeddings", source, True),
        body="modernbert", modernbert=options)


# --- weights ------------------------------------------------------------------------------


def _norm(name: str, o: ModernBertOptions, h: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (h,), **({f"{name}.bias": (h,)} if o.norm_bias else {})}


def _linear(name: str, out_features: int, in_features: int,
            bias: bool) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (out_features, in_features),
            **({f"{name}.bias": (out_features,)} if bias else {})}


def weight_shapes(names: Collection[str], c: EncoderConfig) -> dict[str, tuple[int, ...]]:
    o = c.modernbert
    assert o is not None
    h, i, v = c.hidden_size, c.intermediate_size, c.vocab_size
    shapes = {"embeddings.tok_embeddings.weight": (v, h), **_norm("embeddings.norm", o, h),
              **_norm("final_norm", o, h)}
    for j in range(c.num_hidden_layers):
        prefix = f"layers.{j}."
        if j:
            shapes.update(_norm(prefix + "attn_norm", o, h))
        shapes.update(_linear(prefix + "attn.Wqkv", 3 * h, h, o.attention_bias))
        shapes.update(_linear(prefix + "attn.Wo", h, h, o.attention_bias))
        shapes.update(_norm(prefix + "mlp_norm", o, h))
        shapes.update(_linear(prefix + "mlp.Wi", 2 * i, h, o.mlp_bias))
        shapes.update(_linear(prefix + "mlp.Wo", h, i, o.mlp_bias))
    if any(name.startswith(NAMING.mlm_marker) for name in names):
        shapes.update(_linear("head.dense", h, h, o.head_bias))
        shapes.update(_norm("head.norm", o, h))
        if o.decoder_bias:
            shapes["decoder.bias"] = (v,)
        if not c.tie_word_embeddings:
            shapes["decoder.weight"] = (v, h)
    return shapes


def convert(read: Any, c: EncoderConfig, has_mlm_head: bool) -> dict[str, Any]:
    """The parameter tree of `headprobe.model.encoders.modernbert` from ``read``
    (`headprobe.model.statedict.Reader`)."""
    o = c.modernbert
    assert o is not None
    h, n, d, i = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size

    def norm(name: str) -> dict[str, np.ndarray]:
        found = {"scale": read.get(f"{name}.weight", (h,))}
        if o.norm_bias:
            found["bias"] = read.get(f"{name}.bias", (h,))
        return found

    params: dict[str, Any] = {"embeddings": {
        "word": read.get("embeddings.tok_embeddings.weight", (c.vocab_size, h)),
        "norm": norm("embeddings.norm")}, "final": {"norm": norm("final_norm")}}
    for j in range(c.num_hidden_layers):
        prefix = f"layers.{j}."
        layer: dict[str, Any] = {
            "qkv_kernel": read.kernel(prefix + "attn.Wqkv", 3 * h, h).reshape(h, 3, n, d),
            "out_kernel": read.kernel(prefix + "attn.Wo", h, h).reshape(n, d, h),
            "mlp_norm": norm(prefix + "mlp_norm"),
            "wi_kernel": read.kernel(prefix + "mlp.Wi", 2 * i, h).reshape(h, 2, i),
            "wo_kernel": read.kernel(prefix + "mlp.Wo", h, i)}
        if j:
            layer["attention_norm"] = norm(prefix + "attn_norm")
        if o.attention_bias:
            layer["qkv_bias"] = read.get(prefix + "attn.Wqkv.bias", (3 * h,)).reshape(3, n, d)
            layer["out_bias"] = read.get(prefix + "attn.Wo.bias", (h,))
        if o.mlp_bias:
            layer["wi_bias"] = read.get(prefix + "mlp.Wi.bias", (2 * i,)).reshape(2, i)
            layer["wo_bias"] = read.get(prefix + "mlp.Wo.bias", (h,))
        params[f"layers_{j}"] = layer
    if has_mlm_head:
        head: dict[str, Any] = {"dense_kernel": read.kernel("head.dense", h, h),
                                "norm": norm("head.norm")}
        if o.head_bias:
            head["dense_bias"] = read.get("head.dense.bias", (h,))
        if o.decoder_bias:
            head["bias"] = read.get("decoder.bias", (c.vocab_size,))
        if not c.tie_word_embeddings:
            head["decoder"] = read.get("decoder.weight", (c.vocab_size, h))
        params["mlm"] = head
    return params


FAMILY = Family(name="ModernBERT", model_types=("modernbert",), class_prefixes=("ModernBert",),
                naming=NAMING, read_config=read_config, specials=BERT_SPECIALS,
                weights=WeightLayout(shapes=weight_shapes, convert=convert))
