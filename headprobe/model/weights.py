"""Hugging Face weight names and layouts -> headprobe's Flax parameter tree. Pure: no files.

`convert` takes a flat PyTorch-style state dict of any supported family (with or without its
base-model prefix: ``bert.``, ``roberta.``, ...), reads it through the family's `Naming` table
(`headprobe.model.families`) and builds the tree documented in `headprobe.model.encoder`,
checking every shape against the config. PyTorch ``Linear`` weights are ``[out, in]``; Flax
kernels are ``[in, out]``. Weights of another family than config.json names are reported as
such.

`flax_to_state_dict` flattens Hugging Face's old Flax layout (``flax_model.msgpack``: nested dicts
with ``kernel``/``scale``/``embedding`` leaves, kernels ``[in, out]``) into the same flat names, so
one renaming function serves both formats.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.config import EncoderConfig
from headprobe.model.families import FAMILIES, family_of
from headprobe.model.families.base import Naming
from headprobe.model.statedict import Reader, post_ln_layer, shape_error

Params = dict[str, Any]

_LEAF_RENAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}
#: Hugging Face's Flax trees nest about 8 levels (params/bert/encoder/layer/0/attention/...).
MAX_FLAX_DEPTH = 32
_LAYER_INDEX = re.compile(r"([0-9]{1,9})\.")


def _strip_prefix(state: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Drop the family's base-model prefix; gamma/beta (old TF-converted names) become
    weight/bias."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        if name.endswith(".gamma"):
            name = name[: -len(".gamma")] + ".weight"
        elif name.endswith(".beta"):
            name = name[: -len(".beta")] + ".bias"
        out[name] = value
    return out


def _mlm_head(read: Reader, naming: Naming, c: EncoderConfig) -> Params:
    h, e = c.hidden_size, c.embedding_dim
    kernel, bias = read.linear(naming.mlm_transform, e, h)
    head = {"transform_kernel": kernel, "transform_bias": bias,
            "norm": read.norm(naming.mlm_norm, e),
            "bias": read.get(_mlm_bias_name(read.state, naming), (c.vocab_size,))}
    if not c.tie_word_embeddings:
        head["decoder"] = read.get(naming.mlm_decoder + ".weight", (c.vocab_size, e))
    return head


def check_weights(shapes: Mapping[str, tuple[int, ...]], config: EncoderConfig, *,
                  source: str = "checkpoint") -> None:
    """The weights (name -> shape, as stored: a safetensors header is enough) are the model
    config.json describes, checked before anything is allocated: the family, the number of
    layers (or ALBERT groups), every weight present with the shape config.json gives.

    Errors (`ModelFormatError`) name ``source``, the weight and the expected and actual shape,
    or every missing weight, or the field of config.json the layers disagree with, or the
    family the weights belong to when it is not config.json's. Pure."""
    naming = family_of(config.model_type).naming
    _check_family(shapes, naming, config, source)
    shapes = _strip_prefix(shapes, naming.prefixes)
    _check_layer_count(shapes, naming, config, source)
    missing = []
    for name, expected in expected_shapes(shapes, naming, config).items():
        if name not in shapes:
            missing.append(name)
        elif tuple(shapes[name]) != expected:
            raise shape_error(source, name, tuple(shapes[name]), expected)
    if missing:
        listed = ", ".join(repr(m) for m in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ModelFormatError(
            f"{source}: missing weight(s) {listed}{more}; the checkpoint is incomplete or "
            "not the model config.json describes. Re-save it with transformers' "
            "save_pretrained.")


def has_mlm_head(names: Collection[str], config: EncoderConfig) -> bool:
    """The weights (by name, as stored) include the masked-LM head. Pure."""
    naming = family_of(config.model_type).naming
    stripped = _strip_prefix(dict.fromkeys(names), naming.prefixes)
    return any(name.startswith(naming.mlm_marker) for name in stripped)


def expected_shapes(names: Collection[str], naming: Naming,
                    c: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Every weight `convert` reads (names without the family's prefix) and its shape from
    config.json; ``names`` (the checkpoint's) say whether it has the masked-LM head and under
    which name its output bias is."""
    layout = family_of(c.model_type).weights
    if layout is not None:
        return layout.shapes(names, c)
    e, h, i = c.embedding_dim, c.hidden_size, c.intermediate_size
    shapes = {naming.word + ".weight": (c.vocab_size, e),
              naming.position + ".weight": (c.max_position_embeddings, e),
              **_norm_shapes(naming.embedding_norm, e)}
    if c.type_vocab_size and naming.token_type is not None:
        shapes[naming.token_type + ".weight"] = (c.type_vocab_size, e)
    if c.embedding_projection and naming.projection is not None:
        shapes.update(_linear_shapes(naming.projection, h, e))
    parts = naming.layer_names
    for j in range(c.num_parameter_layers):
        prefix = naming.layer.format(index=j)
        for name in (parts.query, parts.key, parts.value, parts.out):
            shapes.update(_linear_shapes(prefix + name, h, h))
        shapes.update(_linear_shapes(prefix + parts.intermediate, i, h))
        shapes.update(_linear_shapes(prefix + parts.output, h, i))
        shapes.update(_norm_shapes(prefix + parts.attention_norm, h))
        shapes.update(_norm_shapes(prefix + parts.output_norm, h))
    if any(name.startswith(naming.mlm_marker) for name in names):
        shapes.update(_linear_shapes(naming.mlm_transform, e, h))
        shapes.update(_norm_shapes(naming.mlm_norm, e))
        shapes[_mlm_bias_name(names, naming)] = (c.vocab_size,)
        if not c.tie_word_embeddings:
            shapes[naming.mlm_decoder + ".weight"] = (c.vocab_size, e)
    return shapes


def _linear_shapes(name: str, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
    return {name + ".weight": (out_features, in_features), name + ".bias": (out_features,)}


def _norm_shapes(name: str, features: int) -> dict[str, tuple[int, ...]]:
    return {name + ".weight": (features,), name + ".bias": (features,)}


def _mlm_bias_name(names: Collection[str], naming: Naming) -> str:
    return next((name for name in naming.mlm_bias if name in names), naming.mlm_bias[0])


def convert(state: Mapping[str, Any], config: EncoderConfig, *,
            source: str = "checkpoint") -> tuple[Params, bool]:
    """Flat Hugging Face state dict -> (Flax params tree, has masked-LM head).

    `check_weights` runs first (nothing is allocated for weights config.json asks for and the
    checkpoint lacks). Poolers, classifiers, the next-sentence and discriminator heads and
    ``position_ids`` buffers are ignored.
    """
    check_weights({name: np.shape(value) for name, value in state.items()}, config,
                  source=source)
    naming = family_of(config.model_type).naming
    state = _strip_prefix(state, naming.prefixes)
    c = config
    read = Reader(state, source)
    has_mlm_head = any(k.startswith(naming.mlm_marker) for k in state)
    layout = family_of(c.model_type).weights
    if layout is not None:
        return layout.convert(read, c, has_mlm_head), has_mlm_head
    e = c.embedding_dim
    embeddings: Params = {
        "word": read.get(naming.word + ".weight", (c.vocab_size, e)),
        "position": read.get(naming.position + ".weight", (c.max_position_embeddings, e)),
        "norm": read.norm(naming.embedding_norm, e),
    }
    if c.type_vocab_size and naming.token_type is not None:
        embeddings["token_type"] = read.get(naming.token_type + ".weight", (c.type_vocab_size, e))
    if c.embedding_projection and naming.projection is not None:
        kernel, bias = read.linear(naming.projection, c.hidden_size, e)
        embeddings["projection"] = {"kernel": kernel, "bias": bias}
    params: Params = {"embeddings": embeddings}
    for j in range(c.num_parameter_layers):
        params[f"layers_{j}"] = post_ln_layer(read, naming.layer.format(index=j),
                                             naming.layer_names, c)
    if has_mlm_head:
        params["mlm"] = _mlm_head(read, naming, c)
    return params, has_mlm_head


def _check_layer_count(state: Mapping[str, Any], naming: Naming, c: EncoderConfig,
                       source: str) -> None:
    """The weights hold as many layers (or ALBERT groups) as config.json says: weights for a
    layer past its count, or no weights for its last layer, are an error."""
    head, _, _ = naming.layer.partition("{index}")
    found = (_LAYER_INDEX.match(k, len(head)) for k in state if k.startswith(head))
    indices = {int(match.group(1)) for match in found if match is not None}
    what = _layers_field(c)
    if indices and max(indices) >= c.num_parameter_layers:
        raise ModelFormatError(
            f"{source}: weights for layer index {max(indices)} but config.json says {what} "
            f"{c.num_parameter_layers}; use the config.json saved with these weights.")
    if indices and max(indices) + 1 < c.num_parameter_layers:
        raise ModelFormatError(
            f"{source}: config.json says {what} {c.num_parameter_layers}, but the weights "
            f"hold layers 0..{max(indices)} ({max(indices) + 1}); use the config.json saved "
            f"with these weights.")


def _layers_field(c: EncoderConfig) -> str:
    """The config.json field that counts the layers with weights of their own."""
    if c.layer_groups is not None:
        return "num_hidden_groups"
    return "n_layers" if c.model_type == "distilbert" else "num_hidden_layers"


def _check_family(state: Mapping[str, Any], naming: Naming, c: EncoderConfig,
                  source: str) -> None:
    """Weights that are another family's (their word embeddings under its names, ours absent)
    say so, rather than listing every missing weight."""
    def has(naming_: Naming) -> bool:
        word = naming_.word + ".weight"
        layer = naming_.layer.format(index=0) + naming_.layer_names.query + ".weight"
        return any(name in state for p in ("", *naming_.prefixes)
                   for name in (p + word, p + layer)) and any(
            (p + layer) in state for p in ("", *naming_.prefixes))

    if has(naming):
        return
    for other in FAMILIES:
        if other.naming is not naming and has(other.naming):
            raise ModelFormatError(
                f"{source}: these are {other.name} weights (e.g. "
                f"{other.naming.layer.format(index=0)}{other.naming.layer_names.query}.weight), "
                f"but config.json says model_type {c.model_type!r}; use the config.json saved "
                f"with these weights.")


def flax_to_state_dict(tree: Mapping[str, Any], *,
                       source: str = "flax_model.msgpack") -> dict[str, np.ndarray]:
    """Hugging Face Flax params (nested dicts) -> flat PyTorch-style names and layouts; a tree
    that is not nested dicts of arrays, at most `MAX_FLAX_DEPTH` deep, is a `ModelFormatError`
    naming ``source``."""
    if not isinstance(tree, Mapping):
        raise ModelFormatError(f"{source}: expected a tree of named weights, got "
                               f"{type(tree).__name__}; re-save the model.")
    if set(tree) == {"params"}:
        tree = tree["params"]
    flat: dict[str, np.ndarray] = {}

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        if len(path) > MAX_FLAX_DEPTH:
            raise ModelFormatError(f"{source}: weights nested more than {MAX_FLAX_DEPTH} levels "
                                   f"deep ({'.'.join(path)[:80]}...); re-save the model.")
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, (*path, str(key)))
                continue
            array = np.asarray(value)
            if key == "kernel" and array.ndim == 2:
                array = array.T
            flat[".".join((*path, _LEAF_RENAMES.get(str(key), str(key))))] = array

    walk(tree, ())
    return flat

