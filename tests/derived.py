"""Checkpoints derived from the bundled MiniLM for regression tests (SPEC §10–11): the same
config and tokenizer, transformed weights in model.safetensors.

- `swap_heads`: two heads of one layer trade places (their query, key and value rows and the
  output projection's columns): the model computes the same outputs, and only those two heads'
  attentions trade places.
- `float16_round_trip`: every weight rounded to float16 and back, as an fp16 export would.
- `zero_query`: one head's query weights and bias zeroed: its attention is uniform.
- `scale_output`: one head's input columns of the attention output projection scaled (0: the
  head writes nothing, its attention untouched).
- `scale_value`: one head's value weights and bias scaled: what it writes scales, its attention
  does not change.

`random_bert_base` is no derivation: a random checkpoint of bert-base's shape with MiniLM's
tokenizer, for commands that must work on a 12 x 12 model.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

State = dict[str, np.ndarray]


def minilm_folder() -> Path:
    from headprobe.model.checkpoint import transformer_folder
    from headprobe.model.resolve import resolve

    return transformer_folder(resolve("sentence-transformers/all-MiniLM-L6-v2").folder)


def derive(folder: Path, transform: Callable[[State], State], source: Path | None = None) -> Path:
    """A copy of ``source`` (default: MiniLM's transformer folder) in ``folder`` whose weights
    are ``transform(state)``."""
    from safetensors.numpy import load_file, save_file

    source = source or minilm_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name != "model.safetensors":
            shutil.copy2(path, folder / path.name)
    state = transform(dict(load_file(str(source / "model.safetensors"))))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _prefix(state: State) -> str:
    return "bert." if any(k.startswith("bert.") for k in state) else ""


def swap_heads(layer: int, first: int, second: int, num_heads: int = 12) -> Callable[[State],
                                                                                      State]:
    """Heads ``first`` and ``second`` (1-based) of ``layer`` (1-based) trade places."""
    def transform(state: State) -> State:
        p = f"{_prefix(state)}encoder.layer.{layer - 1}.attention."
        hidden = state[p + "self.query.weight"].shape[0]
        d = hidden // num_heads
        a = np.arange((first - 1) * d, first * d)
        b = np.arange((second - 1) * d, second * d)
        order = np.arange(hidden)
        order[a], order[b] = b, a
        out = dict(state)
        for part in ("query", "key", "value"):
            out[p + f"self.{part}.weight"] = state[p + f"self.{part}.weight"][order]
            out[p + f"self.{part}.bias"] = state[p + f"self.{part}.bias"][order]
        out[p + "output.dense.weight"] = state[p + "output.dense.weight"][:, order]
        return out
    return transform


def float16_round_trip(state: State) -> State:
    return {k: v.astype(np.float16).astype(v.dtype) if v.dtype == np.float32 else v
            for k, v in state.items()}


def zero_query(layer: int, head: int, num_heads: int = 12) -> Callable[[State], State]:
    """Head ``head`` of ``layer`` (1-based) gets zero query weights and bias."""
    def transform(state: State) -> State:
        p = f"{_prefix(state)}encoder.layer.{layer - 1}.attention.self.query."
        d = state[p + "weight"].shape[0] // num_heads
        rows = slice((head - 1) * d, head * d)
        out = dict(state)
        out[p + "weight"] = state[p + "weight"].copy()
        out[p + "bias"] = state[p + "bias"].copy()
        out[p + "weight"][rows] = 0.0
        out[p + "bias"][rows] = 0.0
        return out
    return transform


def scale_output(layer: int, head: int, factor: float,
                 num_heads: int = 12) -> Callable[[State], State]:
    """Head ``head`` of ``layer`` (1-based): its columns of ``attention.output.dense`` times
    ``factor``."""
    def transform(state: State) -> State:
        key = f"{_prefix(state)}encoder.layer.{layer - 1}.attention.output.dense.weight"
        d = state[key].shape[1] // num_heads
        out = dict(state)
        out[key] = state[key].copy()
        out[key][:, (head - 1) * d:head * d] *= factor
        return out
    return transform


def scale_value(layer: int, head: int, factor: float,
                num_heads: int = 12) -> Callable[[State], State]:
    """Head ``head`` of ``layer`` (1-based): its value weights and bias times ``factor``."""
    def transform(state: State) -> State:
        p = f"{_prefix(state)}encoder.layer.{layer - 1}.attention.self.value."
        d = state[p + "weight"].shape[0] // num_heads
        rows = slice((head - 1) * d, head * d)
        out = dict(state)
        for name in ("weight", "bias"):
            out[p + name] = state[p + name].copy()
            out[p + name][rows] *= factor
        return out
    return transform


def random_bert_base(folder: Path, *, seed: int = 0, initializer_range: float = 0.1) -> Path:
    """A randomly initialised BertForMaskedLM of bert-base's shape (12 layers x 12 heads, hidden
    768) with MiniLM's tokenizer (bert-base-uncased's vocabulary), saved as safetensors."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(initializer_range=initializer_range)
    model = transformers.BertForMaskedLM(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    source = minilm_folder()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    return folder
