"""DeBERTa-v2 and v3 (``model_type: deberta-v2``, SPEC §7c): disentangled attention over
bucketed relative positions (`headprobe.model.encoders.deberta` computes it).

config.json, with transformers' ``DebertaV2Config`` defaults:

- sizes: ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
  ``intermediate_size``, ``max_position_embeddings`` (the most tokens a text may have);
  ``attention_head_size``, when given, must be ``hidden_size / num_attention_heads``;
  ``embedding_size`` (default ``hidden_size``): the embeddings' width, projected up by
  ``embeddings.embed_proj`` (no bias) before their LayerNorm when it differs;
- relative positions: ``relative_attention`` (false), ``position_buckets`` (-1: none; v3: 256),
  ``max_relative_positions`` (-1: below 1 means ``max_position_embeddings``), ``pos_att_type``
  (a list or a ``"p2c|c2p"`` string of ``c2p``, ``p2c``), ``share_att_key`` (false),
  ``norm_rel_ebd`` (``"layer_norm"`` or ``"none"``);
- ``position_biased_input`` (true: absolute position embeddings added), ``type_vocab_size``
  (0; more: type 0 is added);
- the convolution after layer 0: ``conv_kernel_size`` (0: none; odd), ``conv_groups`` (1; it
  divides ``hidden_size``), ``conv_act`` (tanh);
- ``hidden_act`` (gelu), ``layer_norm_eps`` (1e-7), ``pad_token_id`` (0), ``legacy`` (true),
  ``tie_word_embeddings`` (true).

Weights live under ``deberta.``: ``embeddings.{word_embeddings, position_embeddings,
token_type_embeddings, embed_proj, LayerNorm}``, ``encoder.rel_embeddings`` and
``encoder.LayerNorm`` (the relative embeddings' norm), ``encoder.conv.{conv, LayerNorm}``,
``encoder.layer.{i}.attention.self.{query_proj, key_proj, value_proj, pos_key_proj,
pos_query_proj}``, ``attention.output.{dense, LayerNorm}``, ``intermediate.dense``,
``output.{dense, LayerNorm}``.

The masked-LM head is either the legacy ``cls.predictions.*`` (``transform.dense`` hidden ->
embedding width, ``hidden_act``, ``transform.LayerNorm``, the decoder tied to the word
embeddings or, with ``tie_word_embeddings`` false, ``decoder.weight`` and ``decoder.bias``, else
``cls.predictions.bias``) or v3's ``lm_predictions.lm_head.*`` (``dense`` hidden -> hidden,
``hidden_act``, ``LayerNorm``, always the word embeddings, ``bias``): both compute as BERT's
head. The head read is the one the weights hold (config.json's ``legacy`` picks when they hold
both): Microsoft's v3 checkpoints hold ``lm_predictions`` with ``legacy`` left at true, for
which transformers initialises ``cls.predictions`` at random instead.

Tokenizer: SentencePiece (``▁``) with ``[CLS] $A [SEP]``, ``[MASK]``, ``[UNK]``, ``[PAD]``,
from tokenizer.json or, as Microsoft ships it, ``spm.model`` (converted by transformers).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.config import DebertaOptions, EncoderConfig
from headprobe.model.families.base import (
    MAX_SIZE,
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
from headprobe.model.statedict import post_ln_layer

SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
         "intermediate_size", "max_position_embeddings")
POSITION_TERMS = ("c2p", "p2c")
REL_NORMS = ("layer_norm", "none")

TOKEN_TYPE = "embeddings.token_type_embeddings"
LEGACY_HEAD = "cls.predictions."
HEAD = "lm_predictions.lm_head."

NAMING = Naming(
    prefixes=("deberta.",), word="embeddings.word_embeddings",
    position="embeddings.position_embeddings", token_type=TOKEN_TYPE,
    embedding_norm="embeddings.LayerNorm", projection="embeddings.embed_proj",
    layer="encoder.layer.{index}.",
    layer_names=LayerNames(query="attention.self.query_proj", key="attention.self.key_proj",
                           value="attention.self.value_proj", out="attention.output.dense",
                           attention_norm="attention.output.LayerNorm",
                           intermediate="intermediate.dense", output="output.dense",
                           output_norm="output.LayerNorm"),
    mlm_marker=(LEGACY_HEAD, HEAD), mlm_transform=LEGACY_HEAD + "transform.dense",
    mlm_norm=LEGACY_HEAD + "transform.LayerNorm", mlm_decoder=LEGACY_HEAD + "decoder",
    mlm_bias=(LEGACY_HEAD + "decoder.bias", LEGACY_HEAD + "bias"))


# --- config.json --------------------------------------------------------------------------------


def read_config(data: Mapping[str, Any], source: str) -> EncoderConfig:
    found = architectures(data, source, ("DebertaV2",), "DebertaV2Model")
    sizes: dict[str, Any] = read_sizes(data, SIZES, source, "DeBERTa-v2", "num_hidden_layers")
    hidden, heads = sizes["hidden_size"], sizes["num_attention_heads"]
    heads_divide(hidden, heads, source, ("hidden_size", "num_attention_heads"))
    head_size = integer(data, "attention_head_size", source, default=hidden // heads, minimum=1)
    if head_size != hidden // heads:
        raise ModelFormatError(
            f"{source}: attention_head_size: {head_size} is not hidden_size / "
            f"num_attention_heads ({hidden} / {heads} = {hidden // heads}); headprobe reads "
            f"DeBERTa checkpoints whose heads split the hidden size")
    embedding = integer(data, "embedding_size", source, default=hidden, minimum=1)
    return EncoderConfig(
        **sizes, hidden_act=activation(data, "hidden_act", source, "gelu"),
        type_vocab_size=integer(data, "type_vocab_size", source, default=0),
        layer_norm_eps=number(data, "layer_norm_eps", source, 1e-7),
        pad_token_id=pad_token(data, source, sizes["vocab_size"], 0), architectures=found,
        model_type="deberta-v2", embedding_size=embedding,
        embedding_projection=embedding != hidden,
        tie_word_embeddings=flag(data, "tie_word_embeddings", source, True), body="deberta",
        deberta=_options(data, source, hidden, sizes["max_position_embeddings"]))


def _options(data: Mapping[str, Any], source: str, hidden: int,
             max_positions: int) -> DebertaOptions:
    relative = integer(data, "max_relative_positions", source, default=-1, minimum=-MAX_SIZE)
    kernel = integer(data, "conv_kernel_size", source, default=0)
    if kernel % 2 == 0 and kernel:
        raise ModelFormatError(
            f"{source}: conv_kernel_size: {kernel} is even; transformers' convolution keeps "
            f"the length only for odd widths (0: no convolution)")
    groups = integer(data, "conv_groups", source, default=1, minimum=1)
    if kernel and hidden % groups:
        raise ModelFormatError(f"{source}: conv_groups: {groups} does not divide hidden_size "
                               f"{hidden}")
    return DebertaOptions(
        relative_attention=flag(data, "relative_attention", source, False),
        position_buckets=integer(data, "position_buckets", source, default=-1,
                                 minimum=-MAX_SIZE),
        max_relative_positions=relative if relative >= 1 else max_positions,
        pos_att_type=_position_terms(data, source),
        share_att_key=flag(data, "share_att_key", source, False),
        norm_rel_ebd=_rel_norm(data, source),
        position_biased_input=flag(data, "position_biased_input", source, True),
        conv_kernel_size=kernel, conv_groups=groups,
        conv_act=activation(data, "conv_act", source, "tanh"),
        legacy_head=flag(data, "legacy", source, True))


def _position_terms(data: Mapping[str, Any], source: str) -> tuple[str, ...]:
    """``pos_att_type``: a list of ``c2p``/``p2c`` or the older ``"p2c|c2p"`` string."""
    value = data.get("pos_att_type")
    if value is None:
        return ()
    if isinstance(value, str):
        terms = [part.strip() for part in value.lower().split("|") if part.strip()]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        terms = list(value)
    else:
        raise ModelFormatError(f"{source}: pos_att_type: expected a list such as [\"p2c\", "
                               f"\"c2p\"] or a string such as \"p2c|c2p\", got {shown(value)}")
    unknown = [term for term in terms if term not in POSITION_TERMS]
    if unknown:
        raise ModelFormatError(
            f"{source}: pos_att_type: {shown(unknown[0])} is not a position term DeBERTa-v2 "
            f"computes; expected c2p and/or p2c, got {shown(value)}")
    return tuple(dict.fromkeys(terms))


def _rel_norm(data: Mapping[str, Any], source: str) -> bool:
    """``norm_rel_ebd``: whether the relative embeddings go through ``encoder.LayerNorm``."""
    value = data.get("norm_rel_ebd", "none")
    parts = [part.strip() for part in value.lower().split("|")] \
        if isinstance(value, str) else None
    if parts is None or any(part not in REL_NORMS for part in parts):
        raise ModelFormatError(f"{source}: norm_rel_ebd: expected \"layer_norm\" or \"none\", "
                               f"got {shown(value)}")
    return "layer_norm" in parts


# --- weights ------------------------------------------------------------------------------------


def _opts(c: EncoderConfig) -> DebertaOptions:
    assert c.deberta is not None  # read_config sets it
    return c.deberta


def _terms(o: DebertaOptions) -> tuple[str, ...]:
    """The position terms with their own projections (without share_att_key)."""
    if not o.relative_attention or o.share_att_key:
        return ()
    return tuple(term for term in POSITION_TERMS if term in o.pos_att_type)


PROJECTIONS = {"c2p": "pos_key_proj", "p2c": "pos_query_proj"}


def _linear(name: str, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
    return {name + ".weight": (out_features, in_features), name + ".bias": (out_features,)}


def _norm(name: str, features: int) -> dict[str, tuple[int, ...]]:
    return {name + ".weight": (features,), name + ".bias": (features,)}


def head_of(names: Collection[str], c: EncoderConfig) -> str | None:
    """The prefix of the masked-LM head the weights hold (None: none), config.json's
    ``legacy`` choosing when they hold both."""
    held = [prefix for prefix in (LEGACY_HEAD, HEAD)
            if any(name.startswith(prefix) for name in names)]
    if len(held) == 2:
        return LEGACY_HEAD if _opts(c).legacy_head else HEAD
    return held[0] if held else None


def _head_bias(names: Collection[str]) -> str:
    return next((name for name in NAMING.mlm_bias if name in names), NAMING.mlm_bias[-1])


def shapes(names: Collection[str], c: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Every weight `convert` reads (without ``deberta.``) and its shape from config.json."""
    o = _opts(c)
    e, h, i = c.embedding_dim, c.hidden_size, c.intermediate_size
    found = {NAMING.word + ".weight": (c.vocab_size, e), **_norm(NAMING.embedding_norm, h)}
    if o.position_biased_input:
        found[NAMING.position + ".weight"] = (c.max_position_embeddings, e)
    if c.type_vocab_size:
        found[TOKEN_TYPE + ".weight"] = (c.type_vocab_size, e)
    if c.embedding_projection:
        found["embeddings.embed_proj.weight"] = (h, e)
    if o.relative_attention:
        found["encoder.rel_embeddings.weight"] = (2 * o.span, h)
        if o.norm_rel_ebd:
            found.update(_norm("encoder.LayerNorm", h))
    if o.conv_kernel_size:
        found["encoder.conv.conv.weight"] = (h, h // o.conv_groups, o.conv_kernel_size)
        found["encoder.conv.conv.bias"] = (h,)
        found.update(_norm("encoder.conv.LayerNorm", h))
    parts = NAMING.layer_names
    for j in range(c.num_hidden_layers):
        prefix = NAMING.layer.format(index=j)
        for name in (parts.query, parts.key, parts.value, parts.out):
            found.update(_linear(prefix + name, h, h))
        for term in _terms(o):
            found.update(_linear(prefix + "attention.self." + PROJECTIONS[term], h, h))
        found.update(_linear(prefix + parts.intermediate, i, h))
        found.update(_linear(prefix + parts.output, h, i))
        found.update(_norm(prefix + parts.attention_norm, h))
        found.update(_norm(prefix + parts.output_norm, h))
    head = head_of(names, c)
    if head == LEGACY_HEAD:
        found.update(_linear(NAMING.mlm_transform, e, h))
        found.update(_norm(NAMING.mlm_norm, e))
        found[_head_bias(names)] = (c.vocab_size,)
        if not c.tie_word_embeddings:
            found[NAMING.mlm_decoder + ".weight"] = (c.vocab_size, e)
    elif head == HEAD:
        if e != h:
            raise ModelFormatError(
                f"config.json: embedding_size {e} is not hidden_size {h}: the masked-LM head "
                f"{HEAD}* multiplies hidden vectors by the word embeddings, so they must be as "
                f"wide (transformers fails on this checkpoint too); use the config.json saved "
                f"with the weights")
        found.update(_linear(HEAD + "dense", h, h))
        found.update(_norm(HEAD + "LayerNorm", h))
        found[HEAD + "bias"] = (c.vocab_size,)
    return found


def convert(read: Any, c: EncoderConfig, has_mlm_head: bool) -> dict[str, Any]:
    """The parameter tree of `headprobe.model.encoders.deberta` from a `headprobe.model.
    statedict.Reader` over checked names (without ``deberta.``)."""
    o = _opts(c)
    e, h = c.embedding_dim, c.hidden_size
    embeddings: dict[str, Any] = {
        "word": read.get(NAMING.word + ".weight", (c.vocab_size, e)),
        "norm": read.norm(NAMING.embedding_norm, h)}
    if o.position_biased_input:
        embeddings["position"] = read.get(NAMING.position + ".weight",
                                          (c.max_position_embeddings, e))
    if c.type_vocab_size:
        embeddings["token_type"] = read.get(TOKEN_TYPE + ".weight",
                                            (c.type_vocab_size, e))
    if c.embedding_projection:
        embeddings["projection"] = read.kernel("embeddings.embed_proj", h, e)
    if o.relative_attention:
        embeddings["relative"] = read.get("encoder.rel_embeddings.weight", (2 * o.span, h))
        if o.norm_rel_ebd:
            embeddings["relative_norm"] = read.norm("encoder.LayerNorm", h)
    params: dict[str, Any] = {"embeddings": embeddings}
    for j in range(c.num_hidden_layers):
        params[f"layers_{j}"] = _layer(read, NAMING.layer.format(index=j), c)
    if o.conv_kernel_size:
        params["layers_0"].update(_conv(read, c))
    head = head_of(read.state, c) if has_mlm_head else None
    if head is not None:
        params["mlm"] = _head(read, c, head, embeddings["word"])
    return params


def _layer(read: Any, prefix: str, c: EncoderConfig) -> dict[str, Any]:
    """BERT's post-LN layer (its query, key and value one ``qkv_kernel``/``qkv_bias``, as
    `headprobe.model.encoders.deberta.Layer` holds them) and the position projections."""
    h, n, d = c.hidden_size, c.num_attention_heads, c.head_dim
    layer = post_ln_layer(read, prefix, NAMING.layer_names, c)
    qkv = layer.pop("qkv")
    layer["qkv_kernel"], layer["qkv_bias"] = qkv["kernel"], qkv["bias"]
    for term in _terms(_opts(c)):
        kernel, bias = read.linear(prefix + "attention.self." + PROJECTIONS[term], h, h)
        name = "pos_key" if term == "c2p" else "pos_query"
        layer[f"{name}_kernel"] = kernel.reshape(h, n, d)
        layer[f"{name}_bias"] = bias.reshape(n, d)
    return layer


def _conv(read: Any, c: EncoderConfig) -> dict[str, Any]:
    """Conv1d weight [out, in / groups, width] -> kernel [width, in / groups, out]."""
    o, h = _opts(c), c.hidden_size
    weight = read.get("encoder.conv.conv.weight", (h, h // o.conv_groups, o.conv_kernel_size))
    return {"conv_kernel": np.ascontiguousarray(np.transpose(weight, (2, 1, 0))),
            "conv_bias": read.get("encoder.conv.conv.bias", (h,)),
            "conv_norm": read.norm("encoder.conv.LayerNorm", h)}


def _head(read: Any, c: EncoderConfig, head: str, word: np.ndarray) -> dict[str, Any]:
    """BERT's head tree (`headprobe.model.encoders.bert.MaskedLMHead`) from either head."""
    e, h, v = c.embedding_dim, c.hidden_size, c.vocab_size
    if head == LEGACY_HEAD:
        kernel, bias = read.linear(NAMING.mlm_transform, e, h)
        found = {"transform_kernel": kernel, "transform_bias": bias,
                 "norm": read.norm(NAMING.mlm_norm, e),
                 "bias": read.get(_head_bias(read.state), (v,))}
        if not c.tie_word_embeddings:
            found["decoder"] = read.get(NAMING.mlm_decoder + ".weight", (v, e))
        return found
    kernel, bias = read.linear(HEAD + "dense", h, h)
    found = {"transform_kernel": kernel, "transform_bias": bias,
             "norm": read.norm(HEAD + "LayerNorm", h), "bias": read.get(HEAD + "bias", (v,))}
    if not c.tie_word_embeddings:  # this head multiplies by the word embeddings regardless
        found["decoder"] = word
    return found


FAMILY = Family(name="DeBERTa-v2", model_types=("deberta-v2",), class_prefixes=("DebertaV2",),
                naming=NAMING, read_config=read_config,
                weights=WeightLayout(shapes=shapes, convert=convert))
