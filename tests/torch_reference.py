"""An independent PyTorch reference for SPEC §14 (what heads contribute), computed with hooks on
Hugging Face's own models, for the tests to compare headprobe's JAX values against.

Contract. Every function takes a transformers model of one of the families of SPEC §7b (BERT,
RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, ALBERT), loaded in eval mode, float32, with eager
attention (``attn_implementation="eager"``), and ONE sentence's ``ids`` (a list of ints, special
tokens included: a batch of 1, no padding). Results are float64 NumPy arrays; ``t`` is the
number of tokens, ``L`` the number of layer applications (ALBERT's shared layer counts once per
application), ``heads`` the heads per layer, ``d`` the head size and ``H = heads * d``.

- ``attentions(model, ids) -> [L, heads, t(q), t(k)]``: the attention probabilities
  (``output_attentions=True``).
- ``norm_weights(model, ids) -> [L, heads, t(q), t(k)]``: Kobayashi et al. 2020,
  ``||a_ij (x_j W_V^h + b_V^h) W_O^h||`` renormalised to sum to 1 over each query's keys
  (SPEC §14.1); ``x`` the layer's input, ``W_O^h`` the head's columns of the attention output
  dense layer, without its bias.
- ``output_norms(model, ids) -> [L, heads, t]``: ``||o_h(i)|| / ||x(i)||`` with ``o_h(i)`` the
  head's columns of the output dense applied to the head's context (its weighted values),
  before the bias (SPEC §14.3).
- ``context_means(model, list_of_ids) -> [L, heads, d]``: each head's context averaged over
  every token of every sentence (``[CLS]``/``[SEP]`` included): the vectors of mean ablation.
- ``effects(model, ids, heads, ablation, effect, means=None, together=False) -> [variant, t]``:
  SPEC §14.2. ``heads`` are 0-based ``(layer, head)`` pairs; one variant per head (each removed
  alone) or, with ``together``, one variant with all of them removed. A head is removed by a
  forward pre-hook on the attention output dense layer that overwrites the head's slice of its
  input (the concatenated contexts, head h = columns ``h*d:(h+1)*d``) with zero
  (``ablation="zero"``) or with ``means[layer][head]`` (``ablation="mean"``). ``effect``:
  ``hidden`` ``||h' - h|| / ||h||`` of the last hidden state per token; ``embedding``
  ``1 - cos(mean_t h', mean_t h)`` repeated at every token; ``kl`` ``KL(p || p')`` of the
  masked-LM softmax per token (needs a ``*ForMaskedLM`` model). The last hidden state is always
  the base model's (``model.base_model``) output.

Where transformers 5 keeps things (``parts``): BERT, RoBERTa, XLM-RoBERTa and ELECTRA
``base.encoder.layer[i].attention.self`` (``query/key/value``; it returns the context already
reshaped to ``[1, t, H]``) and ``.attention.output.dense``; DeBERTa-v2 the same with
``query_proj/key_proj/value_proj``; DistilBERT
``base.transformer.layer[i].attention`` (``q_lin/k_lin/v_lin/out_lin``, the output projection
inside the attention module); ModernBERT ``base.layers[i]`` (pre-norm: the values come from
``attn.Wqkv`` on ``attn_norm(x)``, x the layer's input; ``attn.Wo`` without bias); ALBERT one
module per layer group,
``base.encoder.albert_layer_groups[g].albert_layers[j].attention`` (``query/key/value/dense``)
applied once per layer, so hooks count their calls within a forward to know the application.
Nothing here imports headprobe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra")
ABLATIONS = ("zero", "mean")
EFFECTS = ("hidden", "embedding", "kl")


@dataclass(frozen=True)
class Parts:
    """The modules of one layer application's self-attention."""

    attention: Any  # its first input is the layer's input x [1, t, H]
    value: Any  # nn.Linear: x [1, t, H] -> every head's values [1, t, H]
    dense: Any  # nn.Linear: contexts [1, t, H] (head h = columns h*d:(h+1)*d) -> [1, t, H]
    heads: int
    head_dim: int


def parts(model) -> list[Parts]:
    """Per layer application, in the order the forward runs them, the modules needed."""
    base = model.base_model
    kind = model.config.model_type
    found: list[Parts] = []
    if kind in BERT_LIKE:
        for layer in base.encoder.layer:
            self_attention = layer.attention.self
            found.append(Parts(self_attention, self_attention.value, layer.attention.output.dense,
                               self_attention.num_attention_heads,
                               self_attention.attention_head_size))
    elif kind == "distilbert":
        for layer in base.transformer.layer:
            attention = layer.attention
            found.append(Parts(attention, attention.v_lin, attention.out_lin, attention.n_heads,
                               attention.attention_head_size))
    elif kind == "albert":
        config = model.config
        groups = base.encoder.albert_layer_groups
        for i in range(config.num_hidden_layers):  # the group choice of AlbertTransformer
            group = groups[int(i / (config.num_hidden_layers / config.num_hidden_groups))]
            for layer in group.albert_layers:
                attention = layer.attention
                found.append(Parts(attention, attention.value, attention.dense,
                                   attention.num_attention_heads, attention.attention_head_size))
    elif kind == "deberta-v2":  # disentangled attention; the same modules under other names
        for layer in base.encoder.layer:
            self_attention = layer.attention.self
            found.append(Parts(self_attention, self_attention.value_proj,
                               layer.attention.output.dense,
                               self_attention.num_attention_heads,
                               self_attention.attention_head_size))
    elif kind == "modernbert":  # pre-norm: the values of the normed input; the layer's input x
        for layer in base.layers:
            found.append(Parts(layer, _modernbert_values(layer), layer.attn.Wo,
                               model.config.num_attention_heads, layer.attn.head_dim))
    else:
        raise ValueError(f"no reference for model_type {kind!r}")
    return found


def _modernbert_values(layer) -> Callable[[Any], Any]:
    """x [t, H] -> every head's values [t, H]: the last third of ``Wqkv`` on ``attn_norm(x)``."""
    width = layer.attn.Wqkv.out_features // 3
    return lambda x: layer.attn.Wqkv(layer.attn_norm(x))[..., 2 * width:]


def _has_masked_lm(model) -> bool:
    return type(model).__name__.endswith("ForMaskedLM")


def _forward(model, ids: Sequence[int], *,
             on_input: Callable[[int, Any], None] | None = None,
             on_context: Callable[[int, Any], Any] | None = None,
             on_output: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
    """One forward of ``ids`` with hooks: ``on_input(application, x [t, H])`` sees each
    attention's input, ``on_context(application, context [t, H])`` the output dense's input and
    may return a replacement, ``on_output(application, y [t, H])`` the output dense's output
    (bias included). Returns torch tensors: ``hidden`` [t, H] (the base model's last hidden
    state), ``logits`` [t, vocab] or None, ``attentions`` [L, heads, t, t]."""
    import torch

    applications = parts(model)
    order: dict[tuple[int, str], list[int]] = {}  # (module id, role) -> its applications
    for index, part in enumerate(applications):
        order.setdefault((id(part.attention), "input"), []).append(index)
        order.setdefault((id(part.dense), "dense"), []).append(index)
    calls = dict.fromkeys(order, 0)

    def application(module, role: str) -> int:
        key = (id(module), role)
        index = order[key][calls[key]]
        calls[key] += 1
        return index

    def input_hook(module, args, kwargs):
        # transformers 5 passes hidden_states=; DistilBERT in 4.x passes query=.
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("query"))
        index = application(module, "input")
        if on_input is not None:
            on_input(index, x[0])

    def context_hook(module, args):
        index = application(module, "dense")
        if on_context is not None:
            replaced = on_context(index, args[0][0])
            if replaced is not None:
                return (replaced[None], *args[1:])
        return None

    def output_hook(module, args, output):
        index = order[(id(module), "dense")][calls[(id(module), "dense")] - 1]
        if on_output is not None:
            on_output(index, output[0])

    captured: dict[str, Any] = {}

    def base_hook(module, args, output):
        captured["hidden"] = output[0][0]

    handles = [model.base_model.register_forward_hook(base_hook)]
    hooked: set[int] = set()
    for part in applications:
        if id(part.attention) not in hooked:
            hooked.add(id(part.attention))
            handles.append(part.attention.register_forward_pre_hook(input_hook, with_kwargs=True))
        if id(part.dense) not in hooked:
            hooked.add(id(part.dense))
            handles.append(part.dense.register_forward_pre_hook(context_hook))
            handles.append(part.dense.register_forward_hook(output_hook))
    try:
        with torch.no_grad():
            out = model(input_ids=torch.as_tensor([list(ids)], dtype=torch.long),
                        output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    if any(calls[key] != len(indices) for key, indices in order.items()):
        raise AssertionError(f"hooks saw {calls}, expected {order}")
    if len(out.attentions) != len(applications):
        raise AssertionError(f"{len(out.attentions)} attentions for {len(applications)} layers")
    return {"hidden": captured["hidden"],
            "logits": out.logits[0] if _has_masked_lm(model) else None,
            "attentions": torch.stack([a[0] for a in out.attentions])}


def attentions(model, ids: Sequence[int]) -> np.ndarray:
    """[L, heads, t(q), t(k)]: the attention probabilities."""
    return _forward(model, ids)["attentions"].double().numpy()


def _inputs(model, ids: Sequence[int]) -> tuple[dict[int, Any], Any]:
    """(x per application [t, H] float32 torch, attentions [L, heads, t, t] torch)."""
    xs: dict[int, Any] = {}
    out = _forward(model, ids, on_input=lambda index, x: xs.__setitem__(index, x.clone()))
    return xs, out["attentions"]


def norm_weights(model, ids: Sequence[int]) -> np.ndarray:
    """[L, heads, t(q), t(k)]: ``||a_ij (x_j W_V^h + b_V^h) W_O^h||``, each query row
    renormalised to sum to 1 (Kobayashi et al. 2020)."""
    import torch

    xs, probabilities = _inputs(model, ids)
    layers = []
    with torch.no_grad():
        for index, part in enumerate(parts(model)):
            t = xs[index].shape[0]
            values = part.value(xs[index]).double().reshape(t, part.heads, part.head_dim)
            weight = part.dense.weight.double()  # [H_out, H_in]
            rows = []
            for head in range(part.heads):
                columns = slice(head * part.head_dim, (head + 1) * part.head_dim)
                transformed = values[:, head] @ weight[:, columns].T  # [t(k), H]
                a = probabilities[index, head].double()  # [t(q), t(k)]
                rows.append((a[:, :, None] * transformed[None]).norm(dim=-1))  # [q, k]
            norms = torch.stack(rows)
            layers.append(norms / norms.sum(dim=-1, keepdim=True))
    return torch.stack(layers).numpy()


def _head_outputs(model, ids: Sequence[int]) -> dict[str, np.ndarray]:
    """Per application, float64: ``heads_out`` [L, heads, t, H] (o_h(i): the head's columns of
    the output dense applied to its context, no bias), ``x`` [L, t, H] (the layer's input),
    ``context`` [L, t, H], ``dense_out`` [L, t, H] (the dense layer's own output) and ``bias``
    [L, H]."""
    import torch

    xs: dict[int, Any] = {}
    contexts: dict[int, Any] = {}
    dense_out: dict[int, Any] = {}
    _forward(model, ids, on_input=lambda i, x: xs.__setitem__(i, x.clone()),
             on_context=lambda i, c: contexts.__setitem__(i, c.clone()),
             on_output=lambda i, y: dense_out.__setitem__(i, y.clone()))
    applications = parts(model)
    heads_out = []
    with torch.no_grad():
        for index, part in enumerate(applications):
            weight = part.dense.weight.double()
            context = contexts[index].double()
            per_head = []
            for head in range(part.heads):
                columns = slice(head * part.head_dim, (head + 1) * part.head_dim)
                per_head.append(context[:, columns] @ weight[:, columns].T)
            heads_out.append(torch.stack(per_head))
        bias = torch.stack([torch.zeros(part.dense.out_features, dtype=torch.float64)
                            if part.dense.bias is None else part.dense.bias.double()
                            for part in applications])

    def stacked(per_application: dict[int, Any]) -> np.ndarray:
        return torch.stack([per_application[i].double()
                            for i in range(len(applications))]).numpy()

    return {"heads_out": torch.stack(heads_out).numpy(), "x": stacked(xs),
            "context": stacked(contexts), "dense_out": stacked(dense_out), "bias": bias.numpy()}


def output_norms(model, ids: Sequence[int]) -> np.ndarray:
    """[L, heads, t]: ``||o_h(i)|| / ||x(i)||``."""
    found = _head_outputs(model, ids)
    return (np.linalg.norm(found["heads_out"], axis=-1)
            / np.linalg.norm(found["x"], axis=-1)[:, None, :])


def context_means(model, sentences: Sequence[Sequence[int]]) -> np.ndarray:
    """[L, heads, d]: each head's context averaged over every token of every sentence."""
    applications = parts(model)
    sums = [np.zeros(part.heads * part.head_dim) for part in applications]
    tokens = 0

    def add(index: int, context) -> None:
        sums[index] += context.double().sum(dim=0).numpy()

    for ids in sentences:
        _forward(model, ids, on_context=add)
        tokens += len(ids)
    return np.stack([total.reshape(part.heads, part.head_dim) / tokens
                     for total, part in zip(sums, applications)])


def _ablated(model, ids: Sequence[int], removed: Sequence[tuple[int, int]], ablation: str,
             means=None) -> dict[str, Any]:
    """``_forward`` with the heads ``removed`` (``(layer, head)`` pairs) replaced by zero or by
    ``means[layer][head]`` at every token."""
    import torch

    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}")
    if ablation == "mean" and means is None:
        raise ValueError("ablation='mean' needs means (context_means)")
    applications = parts(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in removed:
        if not (0 <= layer < len(applications) and 0 <= head < applications[layer].heads):
            raise ValueError(f"no head ({layer}, {head})")
        by_layer.setdefault(layer, []).append(head)

    def replace(index: int, context):
        if index not in by_layer:
            return None
        d = applications[index].head_dim
        context = context.clone()
        for head in by_layer[index]:
            if ablation == "zero":
                context[:, head * d:(head + 1) * d] = 0.0
            else:
                context[:, head * d:(head + 1) * d] = torch.as_tensor(
                    np.asarray(means[index][head]), dtype=context.dtype)
        return context

    return _forward(model, ids, on_context=replace)


def _effect(effect: str, clean: dict[str, Any], ablated: dict[str, Any]) -> np.ndarray:
    """[t]: one variant's effect per token."""
    import torch

    h, h2 = clean["hidden"].double(), ablated["hidden"].double()
    if effect == "hidden":
        return ((h2 - h).norm(dim=-1) / h.norm(dim=-1)).numpy()
    if effect == "embedding":
        cosine = torch.nn.functional.cosine_similarity(h2.mean(dim=0), h.mean(dim=0), dim=0)
        return np.full(h.shape[0], 1.0 - cosine.item())
    log_p = torch.log_softmax(clean["logits"].double(), dim=-1)
    log_q = torch.log_softmax(ablated["logits"].double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).numpy()


def effects(model, ids: Sequence[int], heads: Sequence[tuple[int, int]], ablation: str = "mean",
            effect: str = "hidden", means=None, together: bool = False) -> np.ndarray:
    """[variant, t]: the effect of removing each head alone (one variant per head, in order) or,
    with ``together``, all of them at once (one variant)."""
    if effect not in EFFECTS:
        raise ValueError(f"effect must be one of {EFFECTS}, not {effect!r}")
    if effect == "kl" and not _has_masked_lm(model):
        raise ValueError(f"effect='kl' needs a *ForMaskedLM model, not {type(model).__name__}")
    clean = _forward(model, ids)
    variants = [list(heads)] if together else [[pair] for pair in heads]
    return np.stack([_effect(effect, clean, _ablated(model, ids, removed, ablation, means))
                     for removed in variants])
