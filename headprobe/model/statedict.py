"""Reading weights out of a flat PyTorch-style state dict whose names and shapes were checked
(`headprobe.model.weights.check_weights`): arrays as float32, ``Linear`` weights transposed to
Flax's ``[in, out]`` kernels. Pure: no files; errors name the source and the weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError

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


def shape_error(source: str, name: str, shape: tuple[int, ...],
                expected: tuple[int, ...]) -> ModelFormatError:
    return ModelFormatError(
        f"{source}: weight {name!r} has shape {list(shape)}, expected {list(expected)} from "
        f"config.json; the weights and config.json do not belong together. Use the config.json "
        f"saved with these weights.")
