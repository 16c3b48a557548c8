"""`ForwardPrograms`: the compiled forward programs of one model, one per batch shape.

A program comes from this process (compiled before), from the program store
(`headprobe.model.programs`, on one device: the executable sealed with the user's program key,
else the traced program read back and compiled), or is traced and compiled now, ahead of its
first call (so the time is counted in ``seconds``), then stored. A program loaded from the
store that fails when it runs is discarded and compiled afresh (`replace`). Every program
returns `Outputs`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from headprobe.model.config import EncoderConfig
from headprobe.model.encoder import Outputs, context_sums, effects, forward
from headprobe.model.programs import ProgramStore, export_program

#: (batch rows, row length, layers run, with hidden states, with MLM logits, the heads whose
#: attentions are returned: 0-based (layer, head) pairs, or None for all, the band of keys
#: kept per query, the weighting of the attentions, with output norms)
#: per variant of an ablation, the 0-based (layer, head) pairs it removes
Variants = tuple[tuple[tuple[int, int], ...], ...]
Shape = tuple[int, int, int, bool, bool, "tuple[tuple[int, int], ...] | None", int, str, bool]


class ForwardPrograms:
    """The programs of one model's forward pass (``params`` already on the device)."""

    def __init__(self, config: EncoderConfig, params: Any, *, precision: str,
                 batch_sharding: Any = None, store: ProgramStore | None = None) -> None:
        self.config = config
        self.precision = precision
        self.params = params
        self.batch_sharding = batch_sharding
        self.store = store
        self.compile_count = 0  # programs traced and compiled by this process
        self.seconds = 0.0  # wall time spent getting programs (compiling or loading)
        self._programs: dict[Shape, Callable[..., Any]] = {}
        self._stored: dict[Shape, str] = {}  # shape -> store key, for programs from the store
        self._contributions: dict[tuple[Any, ...], Callable[..., Any]] = {}

        def traced(params: Any, input_ids: Any, segment_ids: Any, position_ids: Any,
                   starts: Any, *, num_layers: int, with_hidden: bool, with_logits: bool,
                   heads: tuple[tuple[int, int], ...] | None, band: int, weighting: str,
                   with_output_norms: bool) -> Any:
            self.compile_count += 1  # runs once per trace, i.e. per compiled shape
            return forward(params, input_ids, segment_ids, position_ids, starts, config=config,
                           num_layers=num_layers, with_hidden=with_hidden,
                           with_logits=with_logits, heads=heads, band=band,
                           weighting=weighting, with_output_norms=with_output_norms,
                           precision=precision)

        self._traced = traced
        self._forward = jax.jit(traced, static_argnames=(
            "num_layers", "with_hidden", "with_logits", "heads", "band", "weighting",
            "with_output_norms"))

    def contributions(self, rows: int, length: int, *, variants: Variants | None,
                      effect: str) -> Callable[..., Any]:
        """The program of `headprobe.model.encoder.effects` for ``variants`` (or, with None,
        of `context_sums`) over batches of ``rows`` x ``length``: compiled in this process
        (the program store keeps forward programs only)."""
        shape = (rows, length, variants, effect)
        if shape not in self._contributions:
            start = time.perf_counter()
            batch = jax.ShapeDtypeStruct((rows, length), np.int32)
            if variants is None:
                program = jax.jit(functools.partial(context_sums, config=self.config,
                                                    precision=self.precision))
                compiled = program.lower(self.params, batch, batch, batch).compile()
            else:
                c = self.config
                values = jax.ShapeDtypeStruct(
                    (c.num_hidden_layers, c.num_attention_heads, c.head_dim), np.float32)
                program = jax.jit(functools.partial(effects, config=self.config,
                                                    variants=variants, effect=effect,
                                                    precision=self.precision))
                compiled = program.lower(self.params, batch, batch, batch, values).compile()
            self.compile_count += 1
            self._contributions[shape] = compiled
            self.seconds += time.perf_counter() - start
        return self._contributions[shape]

    @property
    def loaded(self) -> int:
        """Programs this process loaded from the program store instead of tracing them."""
        return 0 if self.store is None else self.store.loaded

    @property
    def loaded_executables(self) -> int:
        """Of `loaded`, the executables: programs XLA did not compile in this process."""
        return 0 if self.store is None else self.store.executables

    def get(self, shape: Shape) -> tuple[Callable[..., Any], str | None]:
        """The program for ``shape``, and its store key when it came from the store."""
        if shape not in self._programs:
            start = time.perf_counter()
            self._programs[shape] = self._make(shape)
            self.seconds += time.perf_counter() - start
        return self._programs[shape], self._stored.get(shape)

    def replace(self, shape: Shape, stored_key: str) -> Callable[..., Any]:
        """A program loaded from the store under ``stored_key`` failed to run: forget it (once,
        however many batches used it) and give a freshly compiled one."""
        if self.store is not None and self._stored.get(shape) == stored_key:
            self.store.discard(self._stored.pop(shape))
            del self._programs[shape]
        return self.get(shape)[0]

    def _make(self, shape: Shape) -> Callable[..., Any]:
        rows, length, depth, with_hidden, with_logits, heads, band, weighting, norms = shape
        statics = {"num_layers": depth, "with_hidden": with_hidden, "with_logits": with_logits,
                   "heads": heads, "band": band, "weighting": weighting,
                   "with_output_norms": norms}
        batch = jax.ShapeDtypeStruct((rows, length), np.int32, sharding=self.batch_sharding)
        args = (self.params, batch, batch, batch, batch)

        def compile_now() -> Callable[..., Any]:
            return self._forward.lower(*args, **statics).compile()

        if self.store is None:
            return _returning_outputs(compile_now())

        def export_now() -> Any:
            # A plain tuple: jax.export serializes tuples, lists, dicts and None only.
            return export_program(jax.jit(functools.partial(_as_tuple, self._traced,
                                                            **statics)), args)

        leaves = jax.tree_util.tree_leaves_with_path(self.params)
        fields = {"config": dataclasses.asdict(self.config), "precision": self.precision,
                  "params": [(jax.tree_util.keystr(path), leaf.shape, str(leaf.dtype))
                             for path, leaf in leaves],
                  "rows": rows, "length": length, **statics}
        # Placeholder leaves: only the tree structure of the outputs is used.
        out_tree = jax.tree.structure((0, 0 if with_hidden else None,
                                       0 if with_logits else None, 0 if norms else None))
        program, stored = self.store.program(fields, export_now, compile_now, args=args,
                                             out_tree=out_tree)
        if stored is not None:
            self._stored[shape] = stored
        return _returning_outputs(program)


def _as_tuple(traced: Callable[..., Outputs], *args: Any, **statics: Any) -> tuple[Any, ...]:
    return tuple(traced(*args, **statics))


def _returning_outputs(program: Callable[..., Any]) -> Callable[..., Outputs]:
    """``program`` (returning `Outputs` or the plain tuple of a stored program) as one that
    returns `Outputs`."""
    def run(*args: Any) -> Outputs:
        return Outputs(*program(*args))

    return run
