"""The BERT family's encoder body (SPEC §7b: ``BertModel``, ``RobertaModel``,
``XLMRobertaModel``, ``DistilBertModel``, ``ElectraModel``, ``AlbertModel`` and their masked-LM
heads): learned absolute positions, post-LayerNorm layers, a dense feed-forward block. How the
§7b families differ is in the config (`headprobe.model.config.EncoderConfig`); nothing here
names one.

Parameters (what `headprobe.model.weights.convert` builds)::

    embeddings: word [v, e], position [p, e], token_type [y, e] (when y > 0),
      norm {scale [e], bias [e]}, projection {kernel [e, h], bias [h]} (ELECTRA, ALBERT)
    layers_0 .. layers_{G-1} (G: layers, or ALBERT's groups; layer i applies group_of(i)):
      qkv {kernel [h, 3, n, d], bias [3, n, d]}, out_kernel [n, d, h], out_bias [h],
      attention_norm {scale, bias}, intermediate_kernel [h, i], intermediate_bias [i],
      output_kernel [i, h], output_bias [h], output_norm {scale, bias}
    mlm (optional): transform_kernel [h, e], transform_bias [e], norm {scale [e], bias [e]},
      bias [v], decoder [v, e] (only when not tied to embeddings.word)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from headprobe.model.blocks import (
    ACTIVATIONS,
    AttentionLayer,
    Dense,
    Inputs,
    LayerNorm,
    einsum,
    init,
    zeros,
)
from headprobe.model.config import EncoderConfig


class Embeddings(nn.Module):
    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c = self.config
        e = c.embedding_dim
        self.word = self.param("word", init, (c.vocab_size, e))
        self.position = self.param("position", init, (c.max_position_embeddings, e))
        if c.type_vocab_size:
            self.token_type = self.param("token_type", init, (c.type_vocab_size, e))
        self.norm = LayerNorm(c.layer_norm_eps)
        if c.embedding_projection:
            self.projection = Projection(c.hidden_size, self.precision)

    def __call__(self, input_ids: jax.Array, segment_ids: jax.Array,
                 position_ids: jax.Array) -> tuple[jax.Array, Any, Any]:
        """[b, t] int ids, segments, positions -> (x [b, t, h], no extra, nothing shared)."""
        c = self.config
        x = jnp.take(self.word, input_ids, axis=0)
        if c.type_vocab_size:  # every token is of type 0; the sum in transformers' order
            x = x + self.token_type[0]
        x = x + jnp.take(self.position, position_ids, axis=0)
        x = self.norm(x)
        return (self.projection(x) if c.embedding_projection else x), None, None


class Projection(nn.Module):
    """A dense map to ``features`` (the embeddings' projection to the hidden size)."""

    features: int
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, e] -> [b, t, h]
        kernel = self.param("kernel", init, (x.shape[-1], self.features))
        bias = self.param("bias", zeros, (self.features,))
        return einsum("bte,eh->bth", x, kernel, precision=self.precision) + bias


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
        qkv_kernel = self.param("kernel", init, (h, 3, n, d))
        qkv_bias = self.param("bias", zeros, (3, n, d))
        # One matmul for query, key and value; then per head [b, n, t, d] and plain batched
        # matmuls, which XLA's CPU backend runs about twice as fast as the einsums over
        # [b, t, n, d] (measured: docs/performance.md).
        qkv = einsum("bth,hcnd->btcnd", x, qkv_kernel, precision=p) + qkv_bias
        query, key, value = (jnp.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
        scores = jnp.matmul(query, jnp.swapaxes(key, -1, -2), precision=p) * (d ** -0.5)
        return softmax_attention(scores, value, mask, p)


def softmax_attention(scores: jax.Array, value: jax.Array, mask: jax.Array,
                      precision: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """scores [b, n, q, k], value [b, n, k, d], mask [b, q, k] -> (context [b, q, n, d],
    probs [b, n, q, k], value [b, k, n, d]). Softmax in float32; masked keys get exactly 0."""
    scores = jnp.where(mask[:, None], scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    context = jnp.matmul(probs.astype(value.dtype), value, precision=precision)  # [b, n, q, d]
    return (jnp.transpose(context, (0, 2, 1, 3)), probs, jnp.transpose(value, (0, 2, 1, 3)))


class Layer(AttentionLayer):
    """One post-LN transformer layer."""

    def attend(self, x: jax.Array, inputs: Inputs) -> tuple[jax.Array, Dense, jax.Array]:
        context, probs, value = SelfAttention(self.config, self.precision, name="qkv")(
            x, inputs.mask)
        return context, Dense(probs), value

    def output_projection(self) -> tuple[jax.Array, jax.Array]:
        c = self.config
        return (self.param("out_kernel", init, (c.num_attention_heads, c.head_dim,
                                                c.hidden_size)),
                self.param("out_bias", zeros, (c.hidden_size,)))

    def finish(self, x: jax.Array, attended: jax.Array, inputs: Inputs) -> jax.Array:
        """LayerNorm of attention output + input, the feed-forward block, LayerNorm."""
        return feed_forward(self, self.config, self.precision, attended + x)


def feed_forward(module: nn.Module, c: EncoderConfig, p: str, residual: jax.Array) -> jax.Array:
    """A post-LN layer after its attention: LayerNorm of ``residual`` (attention output +
    input), the dense feed-forward block, LayerNorm of its output + that. [b, t, h] -> [b, t, h].
    Parameters are ``module``'s (BERT's and DeBERTa's layers)."""
    h, i = c.hidden_size, c.intermediate_size
    x = LayerNorm(c.layer_norm_eps, name="attention_norm")(residual)
    inner_kernel = module.param("intermediate_kernel", init, (h, i))
    inner_bias = module.param("intermediate_bias", zeros, (i,))
    inner = ACTIVATIONS[c.hidden_act](einsum("bth,hi->bti", x, inner_kernel, precision=p)
                                      + inner_bias)
    outer_kernel = module.param("output_kernel", init, (i, h))
    outer_bias = module.param("output_bias", zeros, (h,))
    outer = einsum("bti,ih->bth", inner, outer_kernel, precision=p) + outer_bias
    return LayerNorm(c.layer_norm_eps, name="output_norm")(outer + x)


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
        kernel = self.param("transform_kernel", init, (c.hidden_size, e))
        bias = self.param("transform_bias", zeros, (e,))
        x = ACTIVATIONS[c.masked_lm_act](einsum("bth,he->bte", x, kernel, precision=p) + bias)
        x = LayerNorm(c.layer_norm_eps, name="norm")(x)
        decoder = word_embeddings if c.tie_word_embeddings else \
            self.param("decoder", init, (c.vocab_size, e))
        decoder_bias = self.param("bias", zeros, (c.vocab_size,))
        return einsum("bte,ve->btv", x, decoder, precision=p) + decoder_bias
