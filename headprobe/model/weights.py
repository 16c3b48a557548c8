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

from collections.abc import Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.config import EncoderConfig
from headprobe.model.families import FAMILIES, family_of
from headprobe.model.families.base import Naming

Params = dict[str, Any]

_LEAF_RENAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


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


class _Reader:
    """Takes weights out of a state dict, recording missing names and checking shapes."""

    def __init__(self, state: Mapping[str, Any], source: str) -> None:
        self.state = state
        self.source = source
        self.missing: list[str] = []

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.state:
            self.missing.append(name)
            return np.zeros(shape, np.float32)
        value = np.asarray(self.state[name], dtype=np.float32)
        if value.shape != shape:
            raise ModelFormatError(
                f"{self.source}: weight {name!r} has shape {list(value.shape)}, expected "
                f"{list(shape)} from config.json; the weights and config.json do not belong "
                "together. Use the config.json saved with these weights.")
        return value

    def linear(self, name: str, out_features: int,
               in_features: int) -> tuple[np.ndarray, np.ndarray]:
        """(kernel [in, out], bias [out]) from a torch Linear ``name``."""
        weight = self.get(f"{name}.weight", (out_features, in_features))
        return weight.T, self.get(f"{name}.bias", (out_features,))

    def norm(self, name: str, features: int) -> Params:
        return {"scale": self.get(f"{name}.weight", (features,)),
                "bias": self.get(f"{name}.bias", (features,))}

    def check(self) -> None:
        if self.missing:
            shown = ", ".join(repr(m) for m in self.missing[:8])
            more = f" and {len(self.missing) - 8} more" if len(self.missing) > 8 else ""
            raise ModelFormatError(
                f"{self.source}: missing weight(s) {shown}{more}; the checkpoint is incomplete or "
                "not the model config.json describes. Re-save it with transformers' "
                "save_pretrained.")


def _layer(read: _Reader, prefix: str, naming: Naming, c: EncoderConfig) -> Params:
    h, n, d, i = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
    names = naming.layer_names
    qkv = [read.linear(prefix + part, h, h) for part in (names.query, names.key, names.value)]
    out_kernel, out_bias = read.linear(prefix + names.out, h, h)
    inner_kernel, inner_bias = read.linear(prefix + names.intermediate, i, h)
    outer_kernel, outer_bias = read.linear(prefix + names.output, h, i)
    return {
        "qkv": {"kernel": np.stack([k.reshape(h, n, d) for k, _ in qkv], axis=1),
                "bias": np.stack([b.reshape(n, d) for _, b in qkv], axis=0)},
        "out_kernel": out_kernel.reshape(n, d, h), "out_bias": out_bias,
        "attention_norm": read.norm(prefix + names.attention_norm, h),
        "intermediate_kernel": inner_kernel, "intermediate_bias": inner_bias,
        "output_kernel": outer_kernel, "output_bias": outer_bias,
        "output_norm": read.norm(prefix + names.output_norm, h),
    }


def _mlm_head(read: _Reader, naming: Naming, c: EncoderConfig) -> Params:
    h, e = c.hidden_size, c.embedding_dim
    kernel, bias = read.linear(naming.mlm_transform, e, h)
    bias_name = next((name for name in naming.mlm_bias if name in read.state),
                     naming.mlm_bias[0])
    head = {"transform_kernel": kernel, "transform_bias": bias,
            "norm": read.norm(naming.mlm_norm, e), "bias": read.get(bias_name, (c.vocab_size,))}
    if not c.tie_word_embeddings:
        head["decoder"] = read.get(naming.mlm_decoder + ".weight", (c.vocab_size, e))
    return head


def convert(state: Mapping[str, Any], config: EncoderConfig, *,
            source: str = "checkpoint") -> tuple[Params, bool]:
    """Flat Hugging Face state dict -> (Flax params tree, has masked-LM head).

    Errors (`ModelFormatError`) name ``source``, the weight, and the expected and actual shape, or
    every missing weight, or the family the weights belong to when it is not config.json's.
    Poolers, classifiers, the next-sentence and discriminator heads and ``position_ids``
    buffers are ignored.
    """
    family = family_of(config.model_type)
    naming = family.naming
    _check_family(state, naming, config, source)
    state = _strip_prefix(state, naming.prefixes)
    c = config
    read = _Reader(state, source)
    _check_layer_count(state, naming, c, source)
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
        params[f"layers_{j}"] = _layer(read, naming.layer.format(index=j), naming, c)
    has_mlm_head = any(k.startswith(naming.mlm_marker) for k in state)
    if has_mlm_head:
        params["mlm"] = _mlm_head(read, naming, c)
    read.check()
    return params, has_mlm_head


def _check_layer_count(state: Mapping[str, Any], naming: Naming, c: EncoderConfig,
                       source: str) -> None:
    """Weights for more layers (or ALBERT groups) than config.json has are an error."""
    head, _, _ = naming.layer.partition("{index}")
    indices = {int(k[len(head):].split(".")[0]) for k in state
               if k.startswith(head) and k[len(head):].split(".")[0].isdigit()}
    extra = sorted(i for i in indices if i >= c.num_parameter_layers)
    if extra:
        what = "num_hidden_groups" if c.layer_groups is not None else "num_hidden_layers"
        raise ModelFormatError(
            f"{source}: weights for layer index {extra[0]} but config.json says {what} "
            f"{c.num_parameter_layers}; use the config.json saved with these weights.")


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


def flax_to_state_dict(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Hugging Face Flax params (nested dicts) -> flat PyTorch-style names and layouts."""
    if set(tree) == {"params"}:
        tree = tree["params"]
    flat: dict[str, np.ndarray] = {}

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
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

