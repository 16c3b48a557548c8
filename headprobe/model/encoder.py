"""The encoder in Flax (flax.linen), equal to Hugging Face's PyTorch models of every family
headprobe loads (SPEC §7b, §7c) in float32: `Encoder` runs the embeddings, layers and masked-LM
head of the family's body (`headprobe.model.encoders`: ``EncoderConfig.body``), each the same
way; the bodies hold what differs, and their module docstrings the parameter trees
`headprobe.model.weights.convert` builds.

The inputs are packed rows (`headprobe.model.packing`): token ids, segment ids (each sentence
of a row its own number, 0 for padding) and position ids (restarting per sentence; RoBERTa's
offset by the padding index, computed on the host as transformers computes them). A token
attends only to the tokens of its own segment: other keys get probability exactly 0, so a
sentence packed with others gets the outputs it gets alone. Token types are all 0.

Softmax runs in float32 with other segments' keys and padding masked out. ``heads`` selects
which heads' attentions are returned (all of the layers run, by default), so a check that needs
one head does not copy 144. Matmuls use ``precision="highest"`` by default so that accelerators
do not silently drop to TF32/bf16. `forward` is pure and unjitted: jit it at the outermost call
site (`headprobe.model.loaded`). Axis letters: `headprobe.model.blocks`.
"""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from headprobe.errors import UsageError
from headprobe.model.blocks import Ablation, Inputs, Outputs, attention_mask, repeat_inputs
from headprobe.model.config import EncoderConfig
from headprobe.model.encoders import body_of

Params = dict[str, Any]

WEIGHTINGS = ("attention", "norm")

__all__ = ["EFFECTS", "WEIGHTINGS", "Encoder", "Outputs", "context_sums", "effects", "forward",
           "param_shapes"]


class Encoder(nn.Module):
    """The encoder, optionally with the masked-LM head; runs the first ``num_layers`` layers
    (layer i with the parameters of ``config.group_of(i)``)."""

    config: EncoderConfig
    precision: str = "highest"

    def setup(self) -> None:
        c = self.config
        body = body_of(c)
        self.embeddings = body.embeddings(c, self.precision)
        self.layers = [body.layer(c, self.precision, index=j)
                       for j in range(c.num_parameter_layers)]
        self.mlm = body.head(c, self.precision)
        self.final = None if body.final is None else body.final(c, self.precision)

    def _inputs(self, input_ids: jax.Array, segment_ids: jax.Array,
                position_ids: jax.Array) -> tuple[jax.Array, Inputs]:
        x, extra, shared = self.embeddings(input_ids, segment_ids, position_ids)
        return x, Inputs(segment_ids, position_ids, attention_mask(segment_ids), extra, shared)

    def _layer(self, index: int, x: jax.Array, inputs: Inputs, **options: Any) -> Any:
        """Layer ``index`` (0-based) on x; the last layer's output through the final norm."""
        out = self.layers[self.config.group_of(index)](x, inputs, **options)
        if self.final is not None and index == self.config.num_hidden_layers - 1:
            out = out._replace(x=self.final(out.x))
        return out

    def __call__(self, input_ids: jax.Array, segment_ids: jax.Array, position_ids: jax.Array,
                 starts: jax.Array | None = None, *, num_layers: int, with_hidden: bool,
                 with_logits: bool, heads: tuple[tuple[int, int], ...] | None = None,
                 band: int | None = None, weighting: str = "attention",
                 with_output_norms: bool = False) -> Outputs:
        if band is not None:  # key j of a query's band: key starts[q] + j of its row
            assert starts is not None  # `forward` checks it
            last = input_ids.shape[1] - 1
            band_keys = jnp.minimum(starts[:, :, None] + jnp.arange(band)[None, None], last)
        x, inputs = self._inputs(input_ids, segment_ids, position_ids)
        hidden, attentions, norms = [x], [], []
        for index in range(num_layers):
            out = self._layer(index, x, inputs, weighting=weighting,
                              with_output_norms=with_output_norms)
            x = out.x
            hidden.append(x)
            if out.output_norms is not None:
                norms.append(out.output_norms)
            chosen = ([out.weights.dense()] if heads is None  # [b, n, q, k]
                      else [out.weights.head(head) for layer, head in heads  # [b, q, k]
                            if layer == index])
            for probs in chosen:
                if band is not None:  # [..., q, k] -> [..., q, band]
                    keys = band_keys if probs.ndim == 3 else band_keys[:, None]
                    probs = jnp.take_along_axis(probs, keys, axis=-1)
                attentions.append(probs)
        logits = self.mlm(x, self.embeddings.word) if with_logits else None
        return Outputs(attentions=jnp.stack(attentions, axis=1),
                       hidden_states=jnp.stack(hidden, axis=1) if with_hidden else None,
                       logits=logits,
                       output_norms=jnp.stack(norms, axis=1) if with_output_norms else None)

    def context_sums(self, input_ids: jax.Array, segment_ids: jax.Array,
                     position_ids: jax.Array) -> jax.Array:
        """float32 [layer, head, head dim]: each head's context summed over every real token of
        the batch (what mean ablation's replacement is the mean of)."""
        real = (segment_ids > 0).astype(jnp.float32)
        x, inputs = self._inputs(input_ids, segment_ids, position_ids)
        sums = []
        for index in range(self.config.num_hidden_layers):
            out = self._layer(index, x, inputs)
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
        x, inputs = self._inputs(input_ids, segment_ids, position_ids)
        layer_inputs, contexts = [], []  # the clean input and context of every layer
        for index in range(layers):
            layer_inputs.append(x)
            out = self._layer(index, x, inputs)
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
            variant_inputs = repeat_inputs(inputs, len(members))
            # The first layer from the clean context (its attention is the clean one); the
            # layers above on the variants side by side.
            y = self._layer(start, layer_inputs[start], inputs,
                            ablation=Ablation(jnp.asarray(which[:, start]), values[start]),
                            clean_context=contexts[start]).x
            for index in range(start + 1, layers):
                ablation = Ablation(jnp.asarray(which[:, index]), values[index]) \
                    if which[:, index].any() else None
                y = self._layer(index, y, variant_inputs, ablation=ablation).x
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
