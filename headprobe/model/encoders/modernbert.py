"""ModernBERT's encoder body (SPEC §7c: ``ModernBertModel``, ``ModernBertForMaskedLM``):
token embeddings and a LayerNorm (no positions: rotary angles instead), pre-norm layers (layer 0
without the attention norm) whose attention is global or a sliding window, a GeGLU feed-forward
block, a final LayerNorm, and the masked-LM head (dense, activation, LayerNorm, decoder tied to
the word embeddings). Biases only where config.json asks for them (`ModernBertOptions`).

Rotary positions rotate query and key in float32 by ``position * theta ** (-2j / d)`` (the
halves of a head's vector paired, as Hugging Face's ``rotate_half``), with the global layers'
theta or the local layers'; positions restart per sentence, so a packed sentence is rotated as
it is alone.

A local layer's token attends to the keys of its sentence at most ``window_half`` positions
away; every other key gets exactly 0. Rows longer than `BLOCKED_FROM` windows (of
``2 * window_half + 1`` tokens) are computed in query blocks of ``2 * window_half`` tokens
against the keys their windows reach (`Banded`), so the layer's memory grows linearly with
length; shorter rows use one dense masked product.

Parameters (what `headprobe.model.families.modernbert` builds)::

    embeddings: word [v, h], norm {scale [h], bias [h] (norm_bias)}
    layers_0 .. layers_{L-1}: attention_norm (not layer 0), qkv {kernel [h, 3, n, d],
      bias [3, n, d] (attention_bias)}, out_kernel [n, d, h], out_bias [h] (attention_bias),
      mlp_norm, wi_kernel [h, 2, i], wi_bias [2, i] (mlp_bias), wo_kernel [i, h], wo_bias [h]
    final: norm {scale, bias}
    mlm (optional): dense_kernel [h, h], dense_bias [h] (classifier_bias), norm, bias [v]
      (decoder_bias), decoder [v, h] (only when not tied)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
from headprobe.model.config import EncoderConfig, ModernBertOptions
from headprobe.model.encoders.bert import softmax_attention

#: Rows up to this many times the window (2 * window_half + 1) run one dense masked product.
BLOCKED_FROM = 4


def _options(config: EncoderConfig) -> ModernBertOptions:
    assert config.modernbert is not None  # the family's reader sets it
    return config.modernbert


def _norm(config: EncoderConfig, name: str) -> LayerNorm:
    return LayerNorm(config.layer_norm_eps, use_bias=_options(config).norm_bias, name=name)


def rotary_angles(position_ids: jax.Array, head_dim: int,
                  theta: float) -> tuple[jax.Array, jax.Array]:
    """(cos, sin) [b, t, d] of positions [b, t], float32, as Hugging Face computes them."""
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inverse = (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)  # [d / 2]
    freqs = position_ids.astype(jnp.float32)[..., None] * jnp.asarray(inverse)
    angles = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [b, n, t, d] rotated by angles [b, t, d] (``x cos + rotate_half(x) sin``)."""
    half = x.shape[-1] // 2
    turned = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None] + turned * sin[:, None]


class Embeddings(nn.Module):
    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c = self.config
        self.word = self.param("word", init, (c.vocab_size, c.hidden_size))
        self.norm = _norm(c, "norm")

    def __call__(self, input_ids: jax.Array, segment_ids: jax.Array,
                 position_ids: jax.Array) -> tuple[jax.Array, Any, Any]:
        """-> (x [b, t, h], the rotary (cos, sin) [b, t, d] of the global and the local
        layers, nothing shared)."""
        c, o = self.config, _options(self.config)
        x = self.norm(jnp.take(self.word, input_ids, axis=0))
        extra = {"global": rotary_angles(position_ids, c.head_dim, o.global_theta),
                 "local": rotary_angles(position_ids, c.head_dim, o.local_theta)}
        return x, extra, None


class Banded(NamedTuple):
    """A local layer's attention in query blocks: ``values`` [b, n, blocks, B, C], block i's
    query r (row position i B + r) against keys i B - half + c, c < C = B + 2 half; ``length``
    the row's tokens."""

    values: jax.Array
    length: int
    half: int

    @property
    def block(self) -> int:
        return self.values.shape[-2]

    def _key_index(self) -> np.ndarray:
        return key_index(self.values.shape[-3], self.block, self.half)

    def per_key(self, factor: jax.Array) -> Banded:
        """Each key's weight times ``factor`` [b, n, k]."""
        padded = _pad_keys(factor[..., None], self.half, self.values.shape[2] * self.block)
        gathered = padded[:, :, self._key_index(), 0]  # [b, n, blocks, C]
        return self._replace(values=self.values * gathered[:, :, :, None, :])

    def row_sums(self) -> jax.Array:
        return self.values.sum(axis=-1, keepdims=True)

    def divided(self, total: jax.Array) -> Banded:
        return self._replace(values=jnp.where(
            total > 0, self.values / jnp.where(total > 0, total, 1.0), 0.0))

    def _dense(self, values: jax.Array) -> jax.Array:
        """[..., blocks, B, C] -> [..., q, k] (zeros outside the windows)."""
        blocks, size = values.shape[-3], self.block
        rows = np.broadcast_to((np.arange(blocks)[:, None] * size + np.arange(size)[None])
                               [:, :, None], (blocks, size, size + 2 * self.half))
        columns = np.broadcast_to(self._key_index()[:, None, :], rows.shape)
        full = jnp.zeros((*values.shape[:-3], blocks * size, blocks * size + 2 * self.half),
                         values.dtype)
        full = full.at[..., rows, columns].set(values)
        return full[..., :self.length, self.half:self.half + self.length]

    def head(self, head: int) -> jax.Array:  # [b, q, k]
        return self._dense(self.values[:, head])

    def dense(self) -> jax.Array:  # [b, n, q, k]
        return self._dense(self.values)


def key_index(blocks: int, size: int, half: int) -> np.ndarray:
    """int [blocks, C]: each query block's keys as positions of the row padded by ``half``."""
    return np.arange(blocks)[:, None] * size + np.arange(size + 2 * half)[None]


def _pad_keys(x: jax.Array, half: int, padded_length: int) -> jax.Array:
    """[b, n, k, d] -> [b, n, half + padded_length + half, d], zeros around."""
    after = padded_length - x.shape[2] + half
    return jnp.pad(x, ((0, 0), (0, 0), (half, after), (0, 0)))


def local_attention(query: jax.Array, key: jax.Array, value: jax.Array,
                    segment_ids: jax.Array, half: int,
                    precision: str) -> tuple[jax.Array, Dense | Banded]:
    """Sliding-window attention: query, key, value [b, n, t, d] (scaled, rotated), segments
    [b, t] -> (context [b, n, t, d], weights). Keys of the query's sentence at most ``half``
    positions away; the rest exactly 0."""
    t = query.shape[2]
    window = 2 * half + 1
    if t <= BLOCKED_FROM * window:
        position = np.arange(t)
        near = np.abs(position[:, None] - position[None, :]) <= half
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        mask = same & (segment_ids[:, None, :] > 0) & jnp.asarray(near)[None]
        scores = jnp.matmul(query, jnp.swapaxes(key, -1, -2), precision=precision)
        context, probs, _ = softmax_attention(scores, value, mask, precision)
        return jnp.transpose(context, (0, 2, 1, 3)), Dense(probs)
    size = max(2 * half, 1)
    blocks = -(-t // size)
    padded = blocks * size
    keys = key_index(blocks, size, half)  # [blocks, C]
    q_blocks = jnp.pad(query, ((0, 0), (0, 0), (0, padded - t), (0, 0))).reshape(
        *query.shape[:2], blocks, size, query.shape[-1])
    k_blocks = _pad_keys(key, half, padded)[:, :, keys]  # [b, n, blocks, C, d]
    v_blocks = _pad_keys(value, half, padded)[:, :, keys]
    scores = jnp.matmul(q_blocks, jnp.swapaxes(k_blocks, -1, -2), precision=precision)
    segments = jnp.pad(segment_ids, ((0, 0), (half, padded - t + half)))  # 0 around
    key_segment = segments[:, keys]  # [b, blocks, C]
    query_segment = segments[:, half:half + padded].reshape(-1, blocks, size)
    offset = np.arange(size + 2 * half)[None, :] - np.arange(size)[:, None]  # c - r
    near = (offset >= 0) & (offset <= 2 * half)  # [B, C]: within half of the query
    allowed = ((query_segment[:, :, :, None] == key_segment[:, :, None, :])
               & (key_segment[:, :, None, :] > 0) & jnp.asarray(near)[None, None])
    scores = jnp.where(allowed[:, None], scores.astype(jnp.float32),
                       jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)  # [b, n, blocks, B, C]
    context = jnp.matmul(probs.astype(value.dtype), v_blocks, precision=precision)
    context = context.reshape(*query.shape[:2], padded, query.shape[-1])[:, :, :t]
    return context, Banded(probs, t, half)


class Layer(AttentionLayer):
    """One pre-norm layer: ``x + attention(norm(x))``, then ``+ GeGLU(norm(.))``."""

    def _is_local(self) -> bool:
        return self.index in _options(self.config).local_layers

    def attend(self, x: jax.Array, inputs: Inputs) -> tuple[jax.Array, Dense | Banded,
                                                            jax.Array]:
        c, p, o = self.config, self.precision, _options(self.config)
        n, d, h = c.num_attention_heads, c.head_dim, c.hidden_size
        normed = x if self.index == 0 else _norm(c, "attention_norm")(x)
        kernel = self.param("qkv_kernel", init, (h, 3, n, d))
        qkv = einsum("bth,hcnd->btcnd", normed, kernel, precision=p)
        if o.attention_bias:
            qkv = qkv + self.param("qkv_bias", zeros, (3, n, d))
        query, key, value = (jnp.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
        cos, sin = inputs.extra["local" if self._is_local() else "global"]
        query = rotate(query, cos, sin) * (d ** -0.5)
        key = rotate(key, cos, sin)
        if self._is_local():
            context, weights = local_attention(query, key, value, inputs.segment_ids,
                                               o.window_half, p)
            return (jnp.transpose(context, (0, 2, 1, 3)), weights,
                    jnp.transpose(value, (0, 2, 1, 3)))
        scores = jnp.matmul(query, jnp.swapaxes(key, -1, -2), precision=p)
        context, probs, value = softmax_attention(scores, value, inputs.mask, p)
        return context, Dense(probs), value

    def output_projection(self) -> tuple[jax.Array, jax.Array | None]:
        c = self.config
        kernel = self.param("out_kernel", init, (c.num_attention_heads, c.head_dim,
                                                 c.hidden_size))
        bias = self.param("out_bias", zeros, (c.hidden_size,)) \
            if _options(c).attention_bias else None
        return kernel, bias

    def finish(self, x: jax.Array, attended: jax.Array, inputs: Inputs) -> jax.Array:
        """The GeGLU block: ``r + W_o(act(W_i^in m) * W_i^gate m)``, m = norm(r)."""
        c, p, o = self.config, self.precision, _options(self.config)
        h, i = c.hidden_size, c.intermediate_size
        residual = x + attended
        normed = _norm(c, "mlp_norm")(residual)
        inner = einsum("bth,hgi->btgi", normed, self.param("wi_kernel", init, (h, 2, i)),
                       precision=p)
        if o.mlp_bias:
            inner = inner + self.param("wi_bias", zeros, (2, i))
        gated = ACTIVATIONS[c.hidden_act](inner[:, :, 0]) * inner[:, :, 1]
        out = einsum("bti,ih->bth", gated, self.param("wo_kernel", init, (i, h)), precision=p)
        if o.mlp_bias:
            out = out + self.param("wo_bias", zeros, (h,))
        return residual + out


class FinalNorm(nn.Module):
    config: EncoderConfig
    precision: str = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _norm(self.config, "norm")(x)


class MaskedLMHead(nn.Module):
    """dense, activation, LayerNorm, then the decoder (the word embeddings unless untied) and
    its bias (``decoder_bias``)."""

    config: EncoderConfig
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array, word_embeddings: jax.Array) -> jax.Array:
        """x [b, t, h], word_embeddings [v, h] -> logits [b, t, v]."""
        c, p, o = self.config, self.precision, _options(self.config)
        h = c.hidden_size
        x = einsum("bth,hg->btg", x, self.param("dense_kernel", init, (h, h)), precision=p)
        if o.head_bias:
            x = x + self.param("dense_bias", zeros, (h,))
        x = _norm(c, "norm")(ACTIVATIONS[o.head_act](x))
        decoder = word_embeddings if c.tie_word_embeddings else \
            self.param("decoder", init, (c.vocab_size, h))
        logits = einsum("bth,vh->btv", x, decoder, precision=p)
        if o.decoder_bias:
            logits = logits + self.param("bias", zeros, (c.vocab_size,))
        return logits
