"""DeBERTa-v2 and v3's encoder body (SPEC §7c: ``DebertaV2Model``, ``DebertaV2ForMaskedLM``):
disentangled attention over bucketed relative positions, post-LayerNorm layers, BERT's dense
feed-forward block, and after layer 0 an optional convolution over the embeddings.

A query q's score for key k is ``(q·k + c2p + p2c) / sqrt(d * s)`` with ``s`` 1 plus the
number of position terms: content-to-position ``c2p = query_q · pos_key[i]`` and
position-to-content ``p2c = key_k · pos_query[i]``, ``i = clamp(bucket(pos_q - pos_k) + span,
0, 2 span - 1)``, where ``pos_key``/``pos_query`` are the relative embeddings (after their
LayerNorm, when config.json asks for it) through the layer's key/query projections (or their
own ``pos_key_proj``/``pos_query_proj`` without ``share_att_key``). Positions are the packed
rows' position ids (restarting per sentence), so a sentence packed with others gets the
buckets it gets alone. Each term is one matmul against the ``[2 span, n, d]`` projections,
then a gather by the ``[b, q, k]`` bucket index: no ``[b, q, k, d]`` tensor.

`bucket_index` is Hugging Face's ``make_log_bucket_position`` computed on the host in float32
NumPy, once per config, as a table over every distance a row can hold: the ceiling of a float32
logarithm is where a different rounding would move a distance to the next bucket (a float64
computation does, for buckets 256 over 256 positions at distance 1,292).

The convolution (``conv_kernel_size`` > 0) is ``ConvLayer``: layer 0's output becomes
``LayerNorm(output + act(conv(embeddings)))``, padding zeroed; a neighbour outside the token's
own sentence counts as zero, as transformers' zero padding of a sentence alone.

Parameters (what `headprobe.model.families.deberta` builds)::

    embeddings: word [v, e], position [p, e] (position_biased_input), token_type [y, e]
      (y > 0), projection {kernel [e, h]} (e != h), norm {scale [h], bias [h]},
      relative [2 span, h] (relative_attention), relative_norm {scale, bias} (norm_rel_ebd)
    layers_0 .. layers_{L-1}: qkv {kernel [h, 3, n, d], bias [3, n, d]}, pos_key and
      pos_query {kernel [h, n, d], bias [n, d]} (without share_att_key, per position term),
      out_kernel [n, d, h], out_bias [h], attention_norm, intermediate_kernel [h, i],
      intermediate_bias [i], output_kernel [i, h], output_bias [h], output_norm
    layers_0 with a convolution: conv_kernel [width, h / groups, h] (tap, input channel of the
      group, output channel), conv_bias [h], conv_norm {scale, bias}
    mlm (optional): BERT's head (`headprobe.model.encoders.bert.MaskedLMHead`): transform
      (hidden -> embedding width; the v3 head ``lm_predictions`` has them equal), activation,
      LayerNorm, the word embeddings (or the legacy head's own decoder) and a bias
"""

from __future__ import annotations

import functools
from typing import Any

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
from headprobe.model.config import DebertaOptions, EncoderConfig
from headprobe.model.encoders import bert

#: Both masked-LM heads of DeBERTa compute as BERT's (`headprobe.model.families.deberta`).
MaskedLMHead = bert.MaskedLMHead


def options(config: EncoderConfig) -> DebertaOptions:
    assert config.deberta is not None  # the family's reader sets it
    return config.deberta


def log_buckets(relative: np.ndarray, buckets: int, max_position: int) -> np.ndarray:
    """Hugging Face's ``make_log_bucket_position``: distances within ``buckets // 2`` stay;
    longer ones share logarithmically wider buckets up to ``max_position``. Float32 as
    transformers computes it. int [...] -> int64 [...]."""
    relative = np.asarray(relative, np.int64)
    mid = buckets // 2
    inside = (relative < mid) & (relative > -mid)
    distance = np.where(inside, mid - 1, np.abs(relative))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_position = np.ceil(
            np.log(distance.astype(np.float32) / np.float32(mid))
            / np.log(np.float32((max_position - 1) / mid)) * np.float32(mid - 1)
        ) + np.float32(mid)
        bucketed = np.where(distance <= mid, relative.astype(np.float32),
                            log_position * np.sign(relative).astype(np.float32))
    return bucketed.astype(np.int64)


@functools.lru_cache(maxsize=16)
def bucket_table(deberta: DebertaOptions, length: int) -> np.ndarray:
    """int32 [2 length - 1]: entry ``r + length - 1`` is the index into the relative embeddings
    of relative position ``r`` (``clamp(bucket(r) + span, 0, 2 span - 1)``)."""
    relative = np.arange(-(length - 1), length, dtype=np.int64)
    if deberta.position_buckets > 0 and deberta.max_relative_positions > 0:
        relative = log_buckets(relative, deberta.position_buckets,
                               deberta.max_relative_positions)
    span = deberta.span
    return np.clip(relative + span, 0, 2 * span - 1).astype(np.int32)


def bucket_index(config: EncoderConfig, position_ids: jax.Array) -> jax.Array:
    """int32 [b, q, k]: the relative embedding each query reads for each key of its row."""
    length = config.max_length
    table = jnp.asarray(bucket_table(options(config), length))
    relative = position_ids[:, :, None] - position_ids[:, None, :]
    return table[jnp.clip(relative + length - 1, 0, 2 * length - 2)]


class Embeddings(nn.Module):
    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c, o = self.config, options(self.config)
        e, h = c.embedding_dim, c.hidden_size
        self.word = self.param("word", init, (c.vocab_size, e))
        if o.position_biased_input:
            self.position = self.param("position", init, (c.max_position_embeddings, e))
        if c.type_vocab_size:
            self.token_type = self.param("token_type", init, (c.type_vocab_size, e))
        if c.embedding_projection:
            self.projection = self.param("projection", init, (e, h))
        self.norm = LayerNorm(c.layer_norm_eps)
        if o.relative_attention:
            self.relative = self.param("relative", init, (2 * o.span, h))
            if o.norm_rel_ebd:
                self.relative_norm = LayerNorm(c.layer_norm_eps)

    def __call__(self, input_ids: jax.Array, segment_ids: jax.Array,
                 position_ids: jax.Array) -> tuple[jax.Array, Any, Any]:
        """[b, t] int ids, segments, positions -> (x [b, t, h], bucket index [b, q, k] int32,
        relative embeddings [2 span, h]; both None without relative attention)."""
        c, o = self.config, options(self.config)
        x = jnp.take(self.word, input_ids, axis=0)
        if o.position_biased_input:  # the sum in transformers' order
            x = x + jnp.take(self.position, position_ids, axis=0)
        if c.type_vocab_size:  # every token is of type 0
            x = x + self.token_type[0]
        if c.embedding_projection:
            x = einsum("bte,eh->bth", x, self.projection, precision=self.precision)
        x = self.norm(x) * (segment_ids > 0)[..., None].astype(x.dtype)
        if not o.relative_attention:
            return x, None, None
        relative = self.relative_norm(self.relative) if o.norm_rel_ebd else self.relative
        return x, bucket_index(c, position_ids), relative


class Layer(AttentionLayer):
    """One post-LN layer with disentangled attention (and layer 0's convolution)."""

    def attend(self, x: jax.Array, inputs: Inputs) -> tuple[jax.Array, Dense, jax.Array]:
        c, p, o = self.config, self.precision, options(self.config)
        n, d, h = c.num_attention_heads, c.head_dim, c.hidden_size
        qkv_kernel = self.param("qkv_kernel", init, (h, 3, n, d))
        qkv_bias = self.param("qkv_bias", zeros, (3, n, d))
        qkv = einsum("bth,hcnd->btcnd", x, qkv_kernel, precision=p) + qkv_bias
        query, key, value = (jnp.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
        terms = tuple(term for term in ("c2p", "p2c") if term in o.pos_att_type)
        scale = jnp.sqrt(jnp.float32(d * (1 + len(terms))))
        scores = jnp.matmul(query, jnp.swapaxes(key, -1, -2), precision=p) / scale
        if o.relative_attention and terms:
            scores = scores + self._relative_scores(inputs, query, key, qkv_kernel, qkv_bias,
                                                    terms) / scale
        context, probs, value = bert.softmax_attention(scores, value, inputs.mask, p)
        return context, Dense(probs), value

    def _relative_scores(self, inputs: Inputs, query: jax.Array, key: jax.Array,
                         qkv_kernel: jax.Array, qkv_bias: jax.Array,
                         terms: tuple[str, ...]) -> jax.Array:
        """c2p + p2c [b, n, q, k] (not yet scaled) from query and key [b, n, t, d]."""
        c, p, o = self.config, self.precision, options(self.config)
        n, d, h = c.num_attention_heads, c.head_dim, c.hidden_size
        relative, index = inputs.shared, inputs.extra  # [2 span, h], [b, q, k]
        total = jnp.zeros((), query.dtype)
        for term in terms:
            if o.share_att_key:  # c2p reads keys of positions, p2c queries of positions
                which = 1 if term == "c2p" else 0
                kernel, bias = qkv_kernel[:, which], qkv_bias[which]
            else:
                name = "pos_key" if term == "c2p" else "pos_query"
                kernel = self.param(f"{name}_kernel", init, (h, n, d))
                bias = self.param(f"{name}_bias", zeros, (n, d))
            positions = einsum("rh,hnd->nrd", relative, kernel, precision=p) + bias[:, None]
            if term == "c2p":  # query_q . pos_key[index[q, k]]
                full = jnp.matmul(query, jnp.swapaxes(positions, -1, -2), precision=p)
                total = total + jnp.take_along_axis(full, index[:, None], axis=-1)
            else:  # key_k . pos_query[index[q, k]], gathered along the key's rows
                full = jnp.matmul(key, jnp.swapaxes(positions, -1, -2), precision=p)
                gathered = jnp.take_along_axis(full, jnp.swapaxes(index, -1, -2)[:, None],
                                               axis=-1)  # [b, n, k, q]
                total = total + jnp.swapaxes(gathered, -1, -2)
        return total

    def output_projection(self) -> tuple[jax.Array, jax.Array]:
        c = self.config
        return (self.param("out_kernel", init, (c.num_attention_heads, c.head_dim,
                                                c.hidden_size)),
                self.param("out_bias", zeros, (c.hidden_size,)))

    def finish(self, x: jax.Array, attended: jax.Array, inputs: Inputs) -> jax.Array:
        """BERT's post-LN feed-forward block; after layer 0 the convolution of its input (the
        embeddings), when config.json has one."""
        out = bert.feed_forward(self, self.config, self.precision, attended + x)
        if self.index == 0 and options(self.config).conv_kernel_size > 0:
            out = self._convolution(x, out, inputs.segment_ids)
        return out

    def _convolution(self, embeddings: jax.Array, out: jax.Array,
                     segment_ids: jax.Array) -> jax.Array:
        """transformers' ``ConvLayer``: LayerNorm(out + act(conv(embeddings))) at real tokens,
        0 at padding; each token's window reads only its own sentence. [b, t, h] -> [b, t, h]."""
        c, p, o = self.config, self.precision, options(self.config)
        h, width, groups = c.hidden_size, o.conv_kernel_size, o.conv_groups
        kernel = self.param("conv_kernel", init, (width, h // groups, h))
        bias = self.param("conv_bias", zeros, (h,))
        half = (width - 1) // 2
        length = embeddings.shape[1]
        padded = jnp.pad(embeddings, ((0, 0), (half, half), (0, 0)))
        padded_segments = jnp.pad(segment_ids, ((0, 0), (half, half)))
        grouped = kernel.reshape(width, h // groups, groups, h // groups)  # tap, in, group, out
        conv = jnp.zeros_like(embeddings)
        for tap in range(width):  # neighbour t - half + tap, zero outside the sentence
            neighbour = jax.lax.dynamic_slice_in_dim(padded, tap, length, axis=1)
            same = jax.lax.dynamic_slice_in_dim(padded_segments, tap, length, axis=1) \
                == segment_ids
            neighbour = neighbour * same[..., None].astype(neighbour.dtype)
            split = neighbour.reshape(*neighbour.shape[:2], groups, h // groups)
            conv = conv + einsum("btgi,igo->btgo", split, grouped[tap],
                                 precision=p).reshape(conv.shape)
        real = (segment_ids > 0)[..., None].astype(out.dtype)
        conv = ACTIVATIONS[o.conv_act]((conv + bias) * real)
        return LayerNorm(c.layer_norm_eps, name="conv_norm")(out + conv) * real
