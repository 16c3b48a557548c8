"""The BERT-family encoder in Flax (flax.linen), equal to Hugging Face's PyTorch models
(``BertModel``, ``RobertaModel``, ``XLMRobertaModel``, ``DistilBertModel``, ``ElectraModel``,
``AlbertModel`` and their masked-LM heads) in float32. How the families differ is in the config
(`headprobe.model.config.EncoderConfig`); the code below has no family names.

Axis letters used in the einsums, named once: ``b`` batch, ``t``/``q`` query position, ``k`` key
position, ``h`` hidden, ``e`` embedding width, ``n`` head, ``d`` head dim, ``c`` which of
query/key/value, ``i`` intermediate, ``v`` vocabulary.

The parameter tree (what `headprobe.model.weights.convert` builds)::

    embeddings: word [v, e], position [p, e], token_type [y, e] (when y > 0),
      norm {scale [e], bias [e]}, projection {kernel [e, h], bias [h]} (ELECTRA, ALBERT)
    layers_0 .. layers_{G-1} (G: layers, or ALBERT's groups; layer i applies group_of(i)):
      qkv {kernel [h, 3, n, d], bias [3, n, d]}, out_kernel [n, d, h], out_bias [h],
      attention_norm {scale, bias}, intermediate_kernel [h, i], intermediate_bias [i],
      output_kernel [i, h], output_bias [h], output_norm {scale, bias}
    mlm (optional): transform_kernel [h, e], transform_bias [e], norm {scale [e], bias [e]},
      bias [v], decoder [v, e] (only when not tied to embeddings.word)

The inputs are packed rows (`headprobe.model.packing`): token ids, segment ids (each sentence
of a row its own number, 0 for padding) and position ids (restarting per sentence; RoBERTa's
offset by the padding index, computed on the host as transformers computes them). A token
attends only to the tokens of its own segment: other keys get probability exactly 0, so a
sentence packed with others gets the outputs it gets alone. Token types are all 0.

Query, key and value are one fused matmul (``qkv``). Softmax runs in float32 with other
segments' keys and padding masked out. ``heads`` selects which heads' attentions are returned
(all of the layers run, by default), so a check that needs one head does not copy 144. Matmuls use
``precision="highest"`` by default so that accelerators do not silently drop to TF32/bf16.
`forward` is pure and unjitted: jit it at the outermost call site (`headprobe.model.loaded`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from headprobe.errors import UsageError
from headprobe.model.config import EncoderConfig

Params = dict[str, Any]

def _gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU written as PyTorch computes it, ``x / 2 * (1 + erf(x / sqrt 2))``:
    on XLA's CPU backend faster than ``jax.nn.gelu(approximate=False)`` (which goes through
    erfc; docs/performance.md), the same to float32 rounding."""
    return 0.5 * x * (1 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": _gelu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

_init = nn.initializers.normal(stddev=0.02)


WEIGHTINGS = ("attention", "norm")


class Outputs(NamedTuple):
    """What `forward` returns (``None`` for what was not asked for).

    attentions: float32 [batch, layer, head, query, key] (with ``weighting="norm"`` the
      value-aware weights of SPEC §14.1 instead)
    hidden_states: float32 [batch, layer + 1, token, hidden], embeddings first
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


def _einsum(spec: str, *operands: jax.Array, precision: str) -> jax.Array:
    return jnp.einsum(spec, *operands, precision=precision)


class LayerNorm(nn.Module):
    """Two-pass LayerNorm (mean, then variance of the centred values), as PyTorch computes it."""

    epsilon: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [..., h] -> [..., h]
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        centred = x - jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(centred * centred, axis=-1, keepdims=True)
        return centred * jax.lax.rsqrt(variance + self.epsilon) * scale + bias


class Embeddings(nn.Module):
    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c = self.config
        e = c.embedding_dim
        self.word = self.param("word", _init, (c.vocab_size, e))
        self.position = self.param("position", _init, (c.max_position_embeddings, e))
        if c.type_vocab_size:
            self.token_type = self.param("token_type", _init, (c.type_vocab_size, e))
        self.norm = LayerNorm(c.layer_norm_eps)
        if c.embedding_projection:
            self.projection = Projection(c.hidden_size, self.precision)

    def __call__(self, input_ids: jax.Array, position_ids: jax.Array) -> jax.Array:
        """[b, t] int ids, [b, t] int positions -> [b, t, h]."""
        c = self.config
        x = jnp.take(self.word, input_ids, axis=0)
        if c.type_vocab_size:  # every token is of type 0; the sum in transformers' order
            x = x + self.token_type[0]
        x = x + jnp.take(self.position, position_ids, axis=0)
        x = self.norm(x)
        return self.projection(x) if c.embedding_projection else x


class Projection(nn.Module):
    """A dense map to ``features`` (the embeddings' projection to the hidden size)."""

    features: int
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, e] -> [b, t, h]
        kernel = self.param("kernel", _init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _einsum("bte,eh->bth", x, kernel, precision=self.precision) + bias


class SelfAttention(nn.Module):
    config: EncoderConfig
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array,
                 mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """x [b, t, h], mask [b, q, k] bool (True: q may attend to k)
        -> (context [b, q, n, d], probs [b, n, q, k], value [b, k, n, d])."""
        c, p = self.config, self.precision
        n, d, h = c.num_attention_heads, c.head_dim, c.hidden_size
        qkv_kernel = self.param("kernel", _init, (h, 3, n, d))
        qkv_bias = self.param("bias", nn.initializers.zeros, (3, n, d))
        # One matmul for query, key and value; then per head [b, n, t, d] and plain batched
        # matmuls, which XLA's CPU backend runs about twice as fast as the einsums over
        # [b, t, n, d] (measured: docs/performance.md).
        qkv = _einsum("bth,hcnd->btcnd", x, qkv_kernel, precision=p) + qkv_bias
        query, key, value = (jnp.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
        scores = jnp.matmul(query, jnp.swapaxes(key, -1, -2), precision=p) * (d ** -0.5)
        scores = jnp.where(mask[:, None], scores.astype(jnp.float32),
                           jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1)
        context = jnp.matmul(probs.astype(x.dtype), value, precision=p)  # [b, n, q, d]
        return (jnp.transpose(context, (0, 2, 1, 3)), probs,
                jnp.transpose(value, (0, 2, 1, 3)))


class LayerOut(NamedTuple):
    """What one layer gives: x [b, t, h]; weights [b, n, q, k] (attention, or the norm weights
    with ``weighting="norm"``); output_norms [b, n, t] or None."""

    x: jax.Array
    weights: jax.Array
    output_norms: jax.Array | None
    context: jax.Array  # [b, q, n, d], before any ablation


def _head_norms(vectors: jax.Array, gram: jax.Array, precision: str) -> jax.Array:
    """``||v_n W_O^n||`` for vectors [b, t, n, d] through each head's slice of the output
    projection, from its Gram matrix ``W_O^n W_O^nᵀ`` [n, d, d] -> [b, n, t]."""
    squared = _einsum("btnd,nde,btne->bnt", vectors, gram, vectors, precision=precision)
    return jnp.sqrt(jnp.maximum(squared, 0.0))


class Layer(nn.Module):
    """One post-LN transformer layer."""

    config: EncoderConfig
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, *, weighting: str = "attention",
                 with_output_norms: bool = False, ablation: Ablation | None = None,
                 clean_context: jax.Array | None = None) -> LayerOut:
        """x [b, t, h], mask [b, q, k] -> `LayerOut`.

        ``weighting="norm"``: the weights returned are Kobayashi et al.'s, ``a_ij ||v_j^n
        W_O^n||`` renormalised per query (a row whose head writes nothing at all is all 0).
        ``ablation``: each variant's heads have their context replaced (b = V x sentences rows).
        ``clean_context`` [b, q, n, d], with ``ablation``: this layer's context on the clean
        input ``x`` (not repeated per variant), computed already; the layer then adds each
        variant's change through the output projection to the clean output instead of running
        its attention again (`Encoder.effects`); ``weights`` is then a zero scalar.
        """
        c, p = self.config, self.precision
        h, n, d = c.hidden_size, c.num_attention_heads, c.head_dim
        if clean_context is not None and ablation is not None:
            return self._ablated_from_clean(x, clean_context, ablation)
        context, probs, value = SelfAttention(c, p, name="qkv")(x, mask)
        out_kernel = self.param("out_kernel", _init, (n, d, h))
        out_bias = self.param("out_bias", nn.initializers.zeros, (h,))
        weights, output_norms, clean_context = probs, None, context
        if weighting == "norm" or with_output_norms:
            gram = _einsum("ndh,neh->nde", out_kernel, out_kernel, precision=p)
            if weighting == "norm":
                scaled = probs * _head_norms(value, gram, p)[:, :, None, :]  # [b, n, q, k]
                total = scaled.sum(axis=-1, keepdims=True)
                weights = jnp.where(total > 0, scaled / jnp.where(total > 0, total, 1.0), 0.0)
            if with_output_norms:
                size = jnp.sqrt(jnp.sum(x * x, axis=-1))  # [b, t]
                output_norms = _head_norms(context, gram, p) / size[:, None, :]
        if ablation is not None:
            variants = ablation.which.shape[0]
            which = jnp.repeat(ablation.which, x.shape[0] // variants, axis=0)  # [b, n]
            context = context + which[:, None, :, None] * (ablation.values - context)
        attended = _einsum("bqnd,ndh->bqh", context, out_kernel, precision=p) + out_bias
        return LayerOut(self._feed_forward(attended + x), weights, output_norms, clean_context)

    def _feed_forward(self, residual: jax.Array) -> jax.Array:
        """The layer after its attention: LayerNorm of attention output + input, the
        feed-forward block, LayerNorm. [b, t, h] -> [b, t, h]."""
        c, p = self.config, self.precision
        h, i = c.hidden_size, c.intermediate_size
        x = LayerNorm(c.layer_norm_eps, name="attention_norm")(residual)
        inner_kernel = self.param("intermediate_kernel", _init, (h, i))
        inner_bias = self.param("intermediate_bias", nn.initializers.zeros, (i,))
        inner = ACTIVATIONS[c.hidden_act](
            _einsum("bth,hi->bti", x, inner_kernel, precision=p) + inner_bias)
        outer_kernel = self.param("output_kernel", _init, (i, h))
        outer_bias = self.param("output_bias", nn.initializers.zeros, (h,))
        outer = _einsum("bti,ih->bth", inner, outer_kernel, precision=p) + outer_bias
        return LayerNorm(c.layer_norm_eps, name="output_norm")(outer + x)

    def _ablated_from_clean(self, x: jax.Array, clean_context: jax.Array,
                            ablation: Ablation) -> LayerOut:
        """Every variant's output, from the clean context: the output projection is linear, so
        replacing heads' contexts adds ``sum_n which[v, n] (values_n - context_n) W_O^n`` to the
        clean attention output. x [b, t, h] -> x [V x b, t, h]."""
        c, p = self.config, self.precision
        h, n, d = c.hidden_size, c.num_attention_heads, c.head_dim
        out_kernel = self.param("out_kernel", _init, (n, d, h))
        out_bias = self.param("out_bias", nn.initializers.zeros, (h,))
        attended = _einsum("bqnd,ndh->bqh", clean_context, out_kernel, precision=p) + out_bias
        moved = _einsum("bqnd,ndh->bqnh", ablation.values - clean_context, out_kernel,
                        precision=p)
        change = _einsum("vn,bqnh->vbqh", ablation.which, moved, precision=p)
        variants = ablation.which.shape[0]
        residual = (attended + x)[None] + change  # [V, b, q, h]
        out = self._feed_forward(residual.reshape(variants * x.shape[0], *x.shape[1:]))
        return LayerOut(out, jnp.zeros((), out.dtype), None, clean_context)


class MaskedLMHead(nn.Module):
    """dense + activation + LayerNorm, then the decoder (the word embeddings unless untied),
    plus a bias."""

    config: EncoderConfig
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array, word_embeddings: jax.Array) -> jax.Array:
        """x [b, t, h], word_embeddings [v, e] -> logits [b, t, v]."""
        c, p = self.config, self.precision
        e = c.embedding_dim
        kernel = self.param("transform_kernel", _init, (c.hidden_size, e))
        bias = self.param("transform_bias", nn.initializers.zeros, (e,))
        x = ACTIVATIONS[c.masked_lm_act](_einsum("bth,he->bte", x, kernel, precision=p) + bias)
        x = LayerNorm(c.layer_norm_eps, name="norm")(x)
        decoder = word_embeddings if c.tie_word_embeddings else \
            self.param("decoder", _init, (c.vocab_size, e))
        decoder_bias = self.param("bias", nn.initializers.zeros, (c.vocab_size,))
        return _einsum("bte,ve->btv", x, decoder, precision=p) + decoder_bias


class Encoder(nn.Module):
    """The encoder, optionally with the masked-LM head; runs the first ``num_layers`` layers
    (layer i with the parameters of ``config.group_of(i)``)."""

    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c = self.config
        self.embeddings = Embeddings(c, self.precision)
        self.layers = [Layer(c, self.precision) for _ in range(c.num_parameter_layers)]
        self.mlm = MaskedLMHead(c, self.precision)

    def __call__(self, input_ids: jax.Array, segment_ids: jax.Array, position_ids: jax.Array,
                 starts: jax.Array | None = None, *, num_layers: int, with_hidden: bool,
                 with_logits: bool, heads: tuple[tuple[int, int], ...] | None = None,
                 band: int | None = None, weighting: str = "attention",
                 with_output_norms: bool = False) -> Outputs:
        mask = _attention_mask(segment_ids)
        if band is not None:  # key j of a query's band: key starts[q] + j of its row
            assert starts is not None  # `forward` checks it
            last = input_ids.shape[1] - 1
            band_keys = jnp.minimum(starts[:, :, None] + jnp.arange(band)[None, None], last)
        x = self.embeddings(input_ids, position_ids)
        hidden, attentions, norms = [x], [], []
        for index in range(num_layers):
            out = self.layers[self.config.group_of(index)](
                x, mask, weighting=weighting, with_output_norms=with_output_norms)
            x, probs = out.x, out.weights
            hidden.append(x)
            if out.output_norms is not None:
                norms.append(out.output_norms)
            if band is not None:  # [b, n, q, k] -> [b, n, q, band]
                probs = jnp.take_along_axis(probs, band_keys[:, None], axis=-1)
            if heads is None:
                attentions.append(probs)
            else:
                attentions += [probs[:, head] for layer, head in heads if layer == index]
        logits = self.mlm(x, self.embeddings.word) if with_logits else None
        return Outputs(attentions=jnp.stack(attentions, axis=1),
                       hidden_states=jnp.stack(hidden, axis=1) if with_hidden else None,
                       logits=logits,
                       output_norms=jnp.stack(norms, axis=1) if with_output_norms else None)

    def context_sums(self, input_ids: jax.Array, segment_ids: jax.Array,
                     position_ids: jax.Array) -> jax.Array:
        """float32 [layer, head, head dim]: each head's context summed over every real token of
        the batch (what mean ablation's replacement is the mean of)."""
        mask = _attention_mask(segment_ids)
        real = (segment_ids > 0).astype(jnp.float32)
        x = self.embeddings(input_ids, position_ids)
        sums = []
        for index in range(self.config.num_hidden_layers):
            out = self.layers[self.config.group_of(index)](x, mask)
            sums.append(jnp.einsum("bqnd,bq->nd", out.context, real,
                                   precision=self.precision))
            x = out.x
        return jnp.stack(sums)

    def effects(self, input_ids: jax.Array, segment_ids: jax.Array, position_ids: jax.Array,
                values: jax.Array, *, variants: tuple[tuple[tuple[int, int], ...], ...],
                effect: str) -> jax.Array:
        """float32 [batch, variant, token]: per variant (the 0-based (layer, head) pairs it
        removes, their contexts replaced by ``values`` [layer, head, head dim]) the effect at
        each token (SPEC §14.2). The layers below a variant's lowest layer run once for every
        variant; variants with the same lowest layer run side by side on the batch axis."""
        c = self.config
        layers, n = c.num_hidden_layers, c.num_attention_heads
        mask = _attention_mask(segment_ids)
        x = self.embeddings(input_ids, position_ids)
        inputs, contexts = [], []  # the clean input and context of every layer
        for index in range(layers):
            inputs.append(x)
            out = self.layers[c.group_of(index)](x, mask)
            x = out.x
            contexts.append(out.context)
        clean = x
        clean_logits = self.mlm(clean, self.embeddings.word) if effect == "kl" else None
        groups: dict[int, list[int]] = {}
        for number, heads in enumerate(variants):
            groups.setdefault(min(layer for layer, _ in heads), []).append(number)
        found: dict[int, jax.Array] = {}
        for start, members in groups.items():
            which = np.zeros((len(members), layers, n), np.float32)
            for row, number in enumerate(members):
                for layer, head in variants[number]:
                    which[row, layer, head] = 1.0
            variant_mask = jnp.tile(mask, (len(members), 1, 1))
            # The first layer from the clean context (its attention is the clean one); the
            # layers above on the variants side by side.
            y = self.layers[c.group_of(start)](
                inputs[start], mask, ablation=Ablation(jnp.asarray(which[:, start]),
                                                       values[start]),
                clean_context=contexts[start]).x
            for index in range(start + 1, layers):
                ablation = Ablation(jnp.asarray(which[:, index]), values[index]) \
                    if which[:, index].any() else None
                y = self.layers[c.group_of(index)](y, variant_mask, ablation=ablation).x
            y = y.reshape(len(members), *clean.shape)
            measured = self._effect(effect, clean, y, segment_ids, clean_logits)  # [V, b, t]
            found.update(zip(members, measured))
        return jnp.stack([found[number] for number in range(len(variants))], axis=1)

    def _effect(self, effect: str, clean: jax.Array, changed: jax.Array,
                segment_ids: jax.Array, clean_logits: jax.Array | None) -> jax.Array:
        """clean [b, t, h], changed [V, b, t, h] -> float32 [V, b, t] (SPEC §14.2)."""
        if effect == "hidden":
            return jnp.linalg.norm(changed - clean, axis=-1) / jnp.linalg.norm(clean, axis=-1)
        if effect == "embedding":  # per sentence (segment of a row), repeated at its tokens
            length = segment_ids.shape[1]
            member = (segment_ids[:, :, None] == jnp.arange(1, length + 1)).astype(clean.dtype)
            count = jnp.maximum(member.sum(axis=1), 1.0)[..., None]  # [b, s, 1]
            pooled = jnp.einsum("bth,bts->bsh", clean, member, precision=self.precision) / count
            moved = jnp.einsum("vbth,bts->vbsh", changed, member,
                               precision=self.precision) / count
            cosine = (moved * pooled).sum(-1) / jnp.maximum(
                jnp.linalg.norm(moved, axis=-1) * jnp.linalg.norm(pooled, axis=-1), 1e-30)
            return jnp.einsum("vbs,bts->vbt", 1.0 - cosine, member, precision=self.precision)
        assert clean_logits is not None  # effect == "kl"
        clean_log = jax.nn.log_softmax(clean_logits, axis=-1)
        clean_p = jnp.exp(clean_log)
        return jnp.stack([
            jnp.sum(clean_p * (clean_log - jax.nn.log_softmax(
                self.mlm(variant, self.embeddings.word), axis=-1)), axis=-1)
            for variant in changed])

    def init_all(self, input_ids: jax.Array) -> Outputs:
        """Initialise every parameter (used for shapes: ``jax.eval_shape``)."""
        return self(input_ids, jnp.ones_like(input_ids), jnp.zeros_like(input_ids),
                    num_layers=self.config.num_hidden_layers, with_hidden=False, with_logits=True)


def _attention_mask(segment_ids: jax.Array) -> jax.Array:
    """bool [b, q, k]: q may attend to k (same sentence of the row, not padding)."""
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return same & (segment_ids[:, None, :] > 0)


def forward(params: Params, input_ids: jax.Array, segment_ids: jax.Array,
            position_ids: jax.Array, starts: jax.Array | None = None, *, config: EncoderConfig,
            num_layers: int | None = None, with_hidden: bool = True, with_logits: bool = False,
            heads: tuple[tuple[int, int], ...] | None = None, band: int | None = None,
            weighting: str = "attention", with_output_norms: bool = False,
            precision: str = "highest") -> Outputs:
    """One pure forward pass over packed rows.

    Args:
      params: the tree described in the module docstring (``mlm`` needed only for logits).
      input_ids, segment_ids, position_ids: int [batch, token] (see the module docstring; one
        sentence per row: segment 1 for its tokens, 0 for padding, positions 0, 1, ...).
      num_layers: run only the first ``num_layers`` layers (default: all).
      heads: 0-based ``(layer, head)`` pairs, in layer order, whose attentions to return (all
        heads of every layer run when None).
      starts, band: with ``band``, attentions keep only ``band`` keys per query, from the
        first position of its sentence (``starts`` [batch, token]; `headprobe.model.packing.
        band_width`).
      weighting: ``"attention"``, or ``"norm"``: the attentions returned are the value-aware
        weights of SPEC §14.1.
      with_output_norms: also return every head's ``||o_h(i)|| / ||x(i)||`` (SPEC §14.3).
    Returns:
      `Outputs` with attentions float32 [batch, layer, head, query, key], or with ``heads``
      [batch, selected head, query, key]; with ``band`` the last axis holds ``band`` keys.
    """
    depth = config.num_hidden_layers if num_layers is None else num_layers
    if not 1 <= depth <= config.num_hidden_layers:
        raise UsageError(f"num_layers: expected 1..{config.num_hidden_layers}, got {depth!r}")
    if heads is not None and (not heads or any(not 0 <= layer < depth for layer, _ in heads)):
        raise UsageError(f"heads: expected (layer, head) pairs with layers in 0..{depth - 1}")
    if band is not None and starts is None:
        raise UsageError("band: needs the starts of the sentences")
    if weighting not in WEIGHTINGS:
        raise UsageError(f"weighting: expected one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    outputs = Encoder(config, precision).apply({"params": params}, input_ids, segment_ids,
                                               position_ids, starts, num_layers=depth,
                                               with_hidden=with_hidden,
                                               with_logits=with_logits, heads=heads, band=band,
                                               weighting=weighting,
                                               with_output_norms=with_output_norms)
    return cast(Outputs, outputs)  # flax types apply() as Any | (value, mutated variables)


EFFECTS = ("hidden", "embedding", "kl")


def context_sums(params: Params, input_ids: jax.Array, segment_ids: jax.Array,
                 position_ids: jax.Array, *, config: EncoderConfig,
                 precision: str = "highest") -> jax.Array:
    """float32 [layer, head, head dim]: every head's context (weighted values, before the
    output projection) summed over the real tokens of the rows. Pure; jit at the call site."""
    return cast(jax.Array, Encoder(config, precision).apply(
        {"params": params}, input_ids, segment_ids, position_ids,
        method=Encoder.context_sums))


def effects(params: Params, input_ids: jax.Array, segment_ids: jax.Array,
            position_ids: jax.Array, values: jax.Array, *, config: EncoderConfig,
            variants: tuple[tuple[tuple[int, int], ...], ...], effect: str,
            precision: str = "highest") -> jax.Array:
    """float32 [batch, variant, token]: what removing each variant's heads does at each token
    (SPEC §14.2): ``effect`` ``"hidden"`` (``||h' - h|| / ||h||`` of the last hidden state),
    ``"embedding"`` (``1 - cos`` of the sentence's mean-pooled last hidden state, repeated at
    its tokens) or ``"kl"`` (``KL(p || p')`` of the masked-LM distribution; needs ``mlm``).

    Args:
      values: float32 [layer, head, head dim]: what a removed head's context becomes at every
        position (zeros: zero ablation; the mean context: mean ablation).
      variants: per variant, the 0-based (layer, head) pairs removed together.
    """
    if effect not in EFFECTS:
        raise UsageError(f"effect: expected one of {', '.join(EFFECTS)}, got {effect!r}")
    if not variants or any(not heads for heads in variants):
        raise UsageError("variants: expected at least one head per variant")
    return cast(jax.Array, Encoder(config, precision).apply(
        {"params": params}, input_ids, segment_ids, position_ids, values,
        variants=variants, effect=effect, method=Encoder.effects))


def param_shapes(config: EncoderConfig, *, with_mlm_head: bool = True) -> Params:
    """The parameter tree's shapes (``jax.ShapeDtypeStruct`` leaves), without allocating."""
    ids = jnp.zeros((1, 2), jnp.int32)
    shapes = jax.eval_shape(lambda: Encoder(config).init(jax.random.PRNGKey(0), ids,
                                                         method=Encoder.init_all))["params"]
    if not with_mlm_head:
        shapes = {k: v for k, v in shapes.items() if k != "mlm"}
    return shapes
