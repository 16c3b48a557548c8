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


class Outputs(NamedTuple):
    """What `forward` returns (``None`` for what was not asked for).

    attentions: float32 [batch, layer, head, query, key]
    hidden_states: float32 [batch, layer + 1, token, hidden], embeddings first
    logits: float32 [batch, token, vocab]
    """

    attentions: jax.Array
    hidden_states: jax.Array | None
    logits: jax.Array | None


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
    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [b, t, h], mask [b, q, k] bool (True: q may attend to k)
        -> (context [b, q, n, d], probs [b, n, q, k])."""
        c, p = self.config, self.precision
        n, d, h = c.num_attention_heads, c.head_dim, c.hidden_size
        qkv_kernel = self.param("kernel", _init, (h, 3, n, d))
        qkv_bias = self.param("bias", nn.initializers.zeros, (3, n, d))
        qkv = _einsum("bth,hcnd->cbtnd", x, qkv_kernel, precision=p) + qkv_bias[:, None, None]
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = _einsum("bqnd,bknd->bnqk", query, key, precision=p) * (d ** -0.5)
        scores = jnp.where(mask[:, None], scores.astype(jnp.float32),
                           jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1)
        context = _einsum("bnqk,bknd->bqnd", probs.astype(x.dtype), value, precision=p)
        return context, probs


class Layer(nn.Module):
    """One post-LN transformer layer."""

    config: EncoderConfig
    precision: str

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [b, t, h], mask [b, q, k] -> (x [b, t, h], attention probs [b, n, q, k])."""
        c, p = self.config, self.precision
        h, n, d, i = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
        context, probs = SelfAttention(c, p, name="qkv")(x, mask)
        out_kernel = self.param("out_kernel", _init, (n, d, h))
        out_bias = self.param("out_bias", nn.initializers.zeros, (h,))
        attended = _einsum("bqnd,ndh->bqh", context, out_kernel, precision=p) + out_bias
        x = LayerNorm(c.layer_norm_eps, name="attention_norm")(attended + x)
        inner_kernel = self.param("intermediate_kernel", _init, (h, i))
        inner_bias = self.param("intermediate_bias", nn.initializers.zeros, (i,))
        inner = ACTIVATIONS[c.hidden_act](
            _einsum("bth,hi->bti", x, inner_kernel, precision=p) + inner_bias)
        outer_kernel = self.param("output_kernel", _init, (i, h))
        outer_bias = self.param("output_bias", nn.initializers.zeros, (h,))
        outer = _einsum("bti,ih->bth", inner, outer_kernel, precision=p) + outer_bias
        return LayerNorm(c.layer_norm_eps, name="output_norm")(outer + x), probs


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
                 band: int | None = None) -> Outputs:
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        mask = same & (segment_ids[:, None, :] > 0)  # [b, q, k]
        if band is not None:  # key j of a query's band: key starts[q] + j of its row
            assert starts is not None  # `forward` checks it
            last = input_ids.shape[1] - 1
            band_keys = jnp.minimum(starts[:, :, None] + jnp.arange(band)[None, None], last)
        x = self.embeddings(input_ids, position_ids)
        hidden, attentions = [x], []
        for index in range(num_layers):
            x, probs = self.layers[self.config.group_of(index)](x, mask)
            hidden.append(x)
            if band is not None:  # [b, n, q, k] -> [b, n, q, band]
                probs = jnp.take_along_axis(probs, band_keys[:, None], axis=-1)
            if heads is None:
                attentions.append(probs)
            else:
                attentions += [probs[:, head] for layer, head in heads if layer == index]
        logits = self.mlm(x, self.embeddings.word) if with_logits else None
        return Outputs(attentions=jnp.stack(attentions, axis=1),
                       hidden_states=jnp.stack(hidden, axis=1) if with_hidden else None,
                       logits=logits)

    def init_all(self, input_ids: jax.Array) -> Outputs:
        """Initialise every parameter (used for shapes: ``jax.eval_shape``)."""
        return self(input_ids, jnp.ones_like(input_ids), jnp.zeros_like(input_ids),
                    num_layers=self.config.num_hidden_layers, with_hidden=False, with_logits=True)


def forward(params: Params, input_ids: jax.Array, segment_ids: jax.Array,
            position_ids: jax.Array, starts: jax.Array | None = None, *, config: EncoderConfig,
            num_layers: int | None = None, with_hidden: bool = True, with_logits: bool = False,
            heads: tuple[tuple[int, int], ...] | None = None, band: int | None = None,
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
    outputs = Encoder(config, precision).apply({"params": params}, input_ids, segment_ids,
                                               position_ids, starts, num_layers=depth,
                                               with_hidden=with_hidden,
                                               with_logits=with_logits, heads=heads, band=band)
    return cast(Outputs, outputs)  # flax types apply() as Any | (value, mutated variables)


def param_shapes(config: EncoderConfig, *, with_mlm_head: bool = True) -> Params:
    """The parameter tree's shapes (``jax.ShapeDtypeStruct`` leaves), without allocating."""
    ids = jnp.zeros((1, 2), jnp.int32)
    shapes = jax.eval_shape(lambda: Encoder(config).init(jax.random.PRNGKey(0), ids,
                                                         method=Encoder.init_all))["params"]
    if not with_mlm_head:
        shapes = {k: v for k, v in shapes.items() if k != "mlm"}
    return shapes
