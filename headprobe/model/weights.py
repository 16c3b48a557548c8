"""Hugging Face weight names and layouts -> headprobe's Flax parameter tree. Pure: no files.

`convert` takes a flat PyTorch-style state dict (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ... with or without the ``bert.`` prefix;
``cls.predictions.*`` for the masked-LM head, whose decoder is tied to the word embeddings) and
builds the tree documented in `headprobe.model.bert`, checking every shape against the config.
PyTorch ``Linear`` weights are ``[out, in]``; Flax kernels are ``[in, out]``.

`flax_to_state_dict` flattens Hugging Face's old Flax layout (``flax_model.msgpack``: nested dicts
with ``kernel``/``scale``/``embedding`` leaves, kernels ``[in, out]``) into the same flat names, so
one renaming function serves both formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.config import BertConfig

Params = dict[str, Any]

_LEAF_RENAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``bert.`` prefix; gamma/beta (old TF-converted names) become weight/bias."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        if name.startswith("bert."):
            name = name[len("bert."):]
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
                "not a BERT checkpoint. Re-save it with transformers' save_pretrained.")


def _layer(read: _Reader, j: int, c: BertConfig) -> Params:
    h, n, d, i = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
    prefix = f"encoder.layer.{j}."
    qkv = [read.linear(prefix + f"attention.self.{part}", h, h)
           for part in ("query", "key", "value")]
    out_kernel, out_bias = read.linear(prefix + "attention.output.dense", h, h)
    inner_kernel, inner_bias = read.linear(prefix + "intermediate.dense", i, h)
    outer_kernel, outer_bias = read.linear(prefix + "output.dense", h, i)
    return {
        "qkv": {"kernel": np.stack([k.reshape(h, n, d) for k, _ in qkv], axis=1),
                "bias": np.stack([b.reshape(n, d) for _, b in qkv], axis=0)},
        "out_kernel": out_kernel.reshape(n, d, h), "out_bias": out_bias,
        "attention_norm": read.norm(prefix + "attention.output.LayerNorm", h),
        "intermediate_kernel": inner_kernel, "intermediate_bias": inner_bias,
        "output_kernel": outer_kernel, "output_bias": outer_bias,
        "output_norm": read.norm(prefix + "output.LayerNorm", h),
    }


def _mlm_head(read: _Reader, c: BertConfig) -> Params:
    h = c.hidden_size
    kernel, bias = read.linear("cls.predictions.transform.dense", h, h)
    decoder_bias_name = ("cls.predictions.bias" if "cls.predictions.bias" in read.state
                         else "cls.predictions.decoder.bias")
    return {"transform_kernel": kernel, "transform_bias": bias,
            "norm": read.norm("cls.predictions.transform.LayerNorm", h),
            "bias": read.get(decoder_bias_name, (c.vocab_size,))}


def convert(state: Mapping[str, Any], config: BertConfig, *,
            source: str = "checkpoint") -> tuple[Params, bool]:
    """Flat Hugging Face state dict -> (Flax params tree, has masked-LM head).

    Errors (`ModelFormatError`) name ``source``, the weight, and the expected and actual shape, or
    every missing weight. Pooler, next-sentence head and ``position_ids`` buffers are ignored.
    """
    state = _strip_prefix(state)
    c = config
    read = _Reader(state, source)
    extra_layers = sorted({int(k.split(".")[2]) for k in state
                           if k.startswith("encoder.layer.") and k.split(".")[2].isdigit()
                           and int(k.split(".")[2]) >= c.num_hidden_layers})
    if extra_layers:
        raise ModelFormatError(
            f"{source}: weights for layer index {extra_layers[0]} but config.json says "
            f"num_hidden_layers {c.num_hidden_layers}; "
            f"use the config.json saved with these weights.")
    params: Params = {"embeddings": {
        "word": read.get("embeddings.word_embeddings.weight", (c.vocab_size, c.hidden_size)),
        "position": read.get("embeddings.position_embeddings.weight",
                             (c.max_position_embeddings, c.hidden_size)),
        "token_type": read.get("embeddings.token_type_embeddings.weight",
                               (c.type_vocab_size, c.hidden_size)),
        "norm": read.norm("embeddings.LayerNorm", c.hidden_size),
    }}
    for j in range(c.num_hidden_layers):
        params[f"layers_{j}"] = _layer(read, j, c)
    has_mlm_head = any(k.startswith("cls.predictions.") for k in state)
    if has_mlm_head:
        params["mlm"] = _mlm_head(read, c)
    read.check()
    return params, has_mlm_head


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

