"""What every encoder body (`headprobe.model.encoders`) is built from, in Flax (flax.linen):
activations, LayerNorm, the records a layer returns, and `AttentionLayer`, the part of a layer
that is the same in every family: from a head's attention and values to SPEC §14's value-aware
weights, output norms and removed heads. Pure: no files, no family names.

Axis letters used in the einsums, named once: ``b`` batch, ``t``/``q`` query position, ``k`` key
position, ``h`` hidden, ``e`` embedding width, ``n`` head, ``d`` head dim, ``c`` which of
query/key/value, ``i`` intermediate, ``v`` vocabulary, ``V`` variant (of removed heads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from headprobe.model.config import EncoderConfig

Params = dict[str, Any]


def einsum(spec: str, *operands: jax.Array, precision: str) -> jax.Array:
    return jnp.einsum(spec, *operands, precision=precision)


def gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU written as PyTorch computes it, ``x / 2 * (1 + erf(x / sqrt 2))``:
    on XLA's CPU backend faster than ``jax.nn.gelu(approximate=False)`` (which goes through
    erfc; docs/performance.md), the same to float32 rounding."""
    return 0.5 * x * (1 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": gelu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}

init = nn.initializers.normal(stddev=0.02)
zeros = nn.initializers.zeros


class LayerNorm(nn.Module):
    """Two-pass LayerNorm (mean, then variance of the centred values), as PyTorch computes it;
    ``use_bias`` False: no bias (ModernBERT's)."""

    epsilon: float
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [..., h] -> [..., h]
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        centred = x - jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(centred * centred, axis=-1, keepdims=True)
        out = centred * jax.lax.rsqrt(variance + self.epsilon) * scale
        return out + self.param("bias", zeros, (features,)) if self.use_bias else out


class Outputs(NamedTuple):
    """What `headprobe.model.encoder.forward` returns (``None`` for what was not asked for).

    attentions: float32 [batch, layer, head, query, key] (with ``weighting="norm"`` the
      value-aware weights of SPEC §14.1 instead)
    hidden_states: float32 [batch, layer + 1, token, hidden], embeddings first (as Hugging
      Face's ``output_hidden_states``: the last after the family's final norm, if it has one)
    logits: float32 [batch, token, vocab]
    output_norms: float32 [batch, layer, head, token]: ``||o_h(i)|| / ||x(i)||`` (SPEC §14.3)
    """

    attentions: jax.Array
    hidden_states: jax.Array | None
    logits: jax.Array | None
    output_norms: jax.Array | None = None


class Ablation(NamedTuple):
    """Heads of one layer replaced in each of ``V`` variants stacked on the batch axis (rows
    ``v * b .. (v + 1) * b - 1`` are variant v): ``which`` float32 [V, head] (1: replaced),
    ``values`` float32 [head, head dim], the replacement of each head's context (its weighted
    values before the output projection; zeros for zero ablation)."""

    which: jax.Array
    values: jax.Array


class Inputs(NamedTuple):
    """What every layer of a forward pass sees besides its input: the token ids' segments
    [b, t] (each sentence of a row its own number, 0 padding) and positions [b, t] (restarting
    per sentence), ``mask`` bool [b, q, k] (q and k in one sentence, k not padding) and what
    the family's embeddings computed once for all layers: ``extra``, per row (every leaf's
    first axis the batch: rotary angles, relative position buckets) and ``shared``, per model
    (relative position embeddings); None for BERT."""

    segment_ids: jax.Array
    position_ids: jax.Array
    mask: jax.Array
    extra: Any = None
    shared: Any = None


def attention_mask(segment_ids: jax.Array) -> jax.Array:
    """bool [b, q, k]: q may attend to k (same sentence of the row, not padding)."""
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return same & (segment_ids[:, None, :] > 0)


class Dense(NamedTuple):
    """Attention weights of every head over every key: ``values`` [b, n, q, k]."""

    values: jax.Array

    def per_key(self, factor: jax.Array) -> Dense:
        """Each key's weight times ``factor`` [b, n, k]."""
        return Dense(self.values * factor[:, :, None, :])

    def row_sums(self) -> jax.Array:  # [b, n, q, 1]
        return self.values.sum(axis=-1, keepdims=True)

    def divided(self, total: jax.Array) -> Dense:
        return Dense(jnp.where(total > 0, self.values / jnp.where(total > 0, total, 1.0), 0.0))

    def head(self, head: int) -> jax.Array:  # [b, q, k]
        return self.values[:, head]

    def dense(self) -> jax.Array:  # [b, n, q, k]
        return self.values


class LayerOut(NamedTuple):
    """What one layer gives: x [b, t, h]; weights (attention, or the norm weights with
    ``weighting="norm"``: a `Dense` or a family's banded form with the same methods);
    output_norms [b, n, t] or None; context [b, q, n, d] before any ablation."""

    x: jax.Array
    weights: Any
    output_norms: jax.Array | None
    context: jax.Array


def head_norms(vectors: jax.Array, gram: jax.Array, precision: str) -> jax.Array:
    """``||v_n W_O^n||`` for vectors [b, t, n, d] through each head's slice of the output
    projection, from its Gram matrix ``W_O^n W_O^nᵀ`` [n, d, d] -> [b, n, t]."""
    squared = einsum("btnd,nde,btne->bnt", vectors, gram, vectors, precision=precision)
    return jnp.sqrt(jnp.maximum(squared, 0.0))


class AttentionLayer(nn.Module):
    """One encoder layer, the part all families share. A family's layer subclasses it and
    writes `attend` (its attention: context, weights and values), `output_projection` (W_O
    [n, d, h] and its bias or None) and `finish` (the rest of the layer after the attention
    output); this class does the SPEC §14 bookkeeping in between:

    ``weighting="norm"``: the weights returned are Kobayashi et al.'s, ``a_ij ||v_j^n W_O^n||``
    renormalised per query (a row whose head writes nothing at all is all 0).
    ``with_output_norms``: ``||o_h(i)|| / ||x(i)||`` per head and token, x the layer's input.
    ``ablation``: each variant's heads have their context replaced (b = V x sentences rows).
    ``clean_context`` [b, q, n, d], with ``ablation``: this layer's context on the clean input
    ``x`` (not repeated per variant), computed already; the layer then adds each variant's
    change through the output projection to the clean output instead of running its attention
    again; ``weights`` is then a zero scalar.
    """

    config: EncoderConfig
    precision: str
    index: int = 0  # which layer (ALBERT: which group) these parameters are

    @nn.compact
    def __call__(self, x: jax.Array, inputs: Inputs, *, weighting: str = "attention",
                 with_output_norms: bool = False, ablation: Ablation | None = None,
                 clean_context: jax.Array | None = None) -> LayerOut:
        """x [b, t, h] -> `LayerOut`."""
        p = self.precision
        if clean_context is not None and ablation is not None:
            return self._ablated_from_clean(x, inputs, clean_context, ablation)
        context, probs, value = self.attend(x, inputs)
        out_kernel, out_bias = self.output_projection()
        weights, output_norms, clean_context = probs, None, context
        if weighting == "norm" or with_output_norms:
            gram = einsum("ndh,neh->nde", out_kernel, out_kernel, precision=p)
            if weighting == "norm":
                scaled = probs.per_key(head_norms(value, gram, p))
                weights = scaled.divided(scaled.row_sums())
            if with_output_norms:
                size = jnp.sqrt(jnp.sum(x * x, axis=-1))  # [b, t]
                output_norms = head_norms(context, gram, p) / size[:, None, :]
        if ablation is not None:
            variants = ablation.which.shape[0]
            which = jnp.repeat(ablation.which, x.shape[0] // variants, axis=0)  # [b, n]
            context = context + which[:, None, :, None] * (ablation.values - context)
        attended = einsum("bqnd,ndh->bqh", context, out_kernel, precision=p)
        if out_bias is not None:
            attended = attended + out_bias
        return LayerOut(self.finish(x, attended, inputs), weights, output_norms, clean_context)

    def _ablated_from_clean(self, x: jax.Array, inputs: Inputs, clean_context: jax.Array,
                            ablation: Ablation) -> LayerOut:
        """Every variant's output, from the clean context: the output projection is linear, so
        replacing heads' contexts adds ``sum_n which[v, n] (values_n - context_n) W_O^n`` to the
        clean attention output. x [b, t, h] -> x [V x b, t, h]."""
        p = self.precision
        out_kernel, out_bias = self.output_projection()
        attended = einsum("bqnd,ndh->bqh", clean_context, out_kernel, precision=p)
        if out_bias is not None:
            attended = attended + out_bias
        moved = einsum("bqnd,ndh->bqnh", ablation.values - clean_context, out_kernel,
                       precision=p)
        change = einsum("vn,bqnh->vbqh", ablation.which, moved, precision=p)
        variants = ablation.which.shape[0]
        rows = variants * x.shape[0]
        repeated = jnp.broadcast_to(x[None], (variants, *x.shape)).reshape(rows, *x.shape[1:])
        out = self.finish(repeated, (attended[None] + change).reshape(rows, *x.shape[1:]),
                          repeat_inputs(inputs, variants))
        return LayerOut(out, jnp.zeros((), out.dtype), None, clean_context)

    # --- what a family's layer writes -------------------------------------------------------

    def attend(self, x: jax.Array, inputs: Inputs) -> tuple[jax.Array, Any, jax.Array]:
        """x [b, t, h] -> (context [b, q, n, d], weights (`Dense` or banded), value
        [b, k, n, d])."""
        raise NotImplementedError

    def output_projection(self) -> tuple[jax.Array, jax.Array | None]:
        """(W_O [n, d, h], its bias [h] or None)."""
        raise NotImplementedError

    def finish(self, x: jax.Array, attended: jax.Array, inputs: Inputs) -> jax.Array:
        """The layer's output from its input x [b, t, h] and attention output [b, t, h]."""
        raise NotImplementedError


def repeat_inputs(inputs: Inputs, times: int) -> Inputs:
    """``inputs`` for ``times`` variants stacked on the batch axis."""
    def tiled(leaf: jax.Array) -> jax.Array:
        return jnp.tile(leaf, (times,) + (1,) * (leaf.ndim - 1))

    return Inputs(tiled(inputs.segment_ids), tiled(inputs.position_ids), tiled(inputs.mask),
                  jax.tree.map(tiled, inputs.extra), inputs.shared)
