"""Reading weights out of a flat PyTorch-style state dict whose names and shapes were checked
(`headprobe.model.weights.check_weights`): arrays as float32, ``Linear`` weights transposed to
Flax's ``[in, out]`` kernels. Pure: no files; errors name the source and the weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from headprobe.errors import ModelFormatError

if TYPE_CHECKING:  # pragma: no cover
    from headprobe.model.config import EncoderConfig
    from headprobe.model.families.base import LayerNames

Params = dict[str, Any]


class Reader:
    """Takes weights out of a state dict whose names and shapes `check_weights` has checked."""

    def __init__(self, state: Mapping[str, Any], source: str) -> None:
        self.state = state
        self.source = source

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            value = np.asarray(self.state[name], dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ModelFormatError(f"{self.source}: weight {name!r} is not an array of numbers "
                                   f"({error}); re-save the model.") from None
        if value.shape != shape:  # checked before; a state changed since is still refused
            raise shape_error(self.source, name, value.shape, shape)
        return value

    def linear(self, name: str, out_features: int,
               in_features: int) -> tuple[np.ndarray, np.ndarray]:
        """(kernel [in, out], bias [out]) from a torch Linear ``name``."""
        weight = self.get(f"{name}.weight", (out_features, in_features))
        return weight.T, self.get(f"{name}.bias", (out_features,))

    def norm(self, name: str, features: int) -> Params:
        return {"scale": self.get(f"{name}.weight", (features,)),
                "bias": self.get(f"{name}.bias", (features,))}



    def kernel(self, name: str, out_features: int, in_features: int) -> np.ndarray:
        """The kernel [in, out] of a bias-free torch Linear ``name``."""
        return self.get(f"{name}.weight", (out_features, in_features)).T


def post_ln_layer(read: Reader, prefix: str, names: LayerNames, c: EncoderConfig) -> Params:
    """One post-LayerNorm layer's parameters (`headprobe.model.encoders.bert.Layer`'s tree,
    which DeBERTa's layer shares) from the weights ``prefix + names.*``."""
    h, n, d, i = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
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


def shape_error(source: str, name: str, shape: tuple[int, ...],
                expected: tuple[int, ...]) -> ModelFormatError:
    return ModelFormatError(
        f"{source}: weight {name!r} has shape {list(shape)}, expected {list(expected)} from "
        f"config.json; the weights and config.json do not belong together. Use the config.json "
        f"saved with these weights.")
