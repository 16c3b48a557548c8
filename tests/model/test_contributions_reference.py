"""Pins down tests/torch_reference.py (the PyTorch reference of SPEC §14) without headprobe: its
hooks against hook-free computations on the same random checkpoints (tests/families.py).

- the hooks see each layer application's input (ALBERT's shared layer: one per application);
- removing a head by the hook equals running a derived model whose attention output dense has
  the head's columns zeroed (zero ablation), or zeroed with the bias shifted by the columns
  applied to the head's mean context (mean ablation); for ALBERT the shared columns remove the
  head in every application, so the hook removes it in all layers together;
- context means, norm weights and output norms equal the value projection, the attention and
  the output dense's columns applied by hand (float64 NumPy from the modules' weights), and the
  heads' outputs plus the bias add up to the output dense's own output.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch_reference as ref
from families import write_family_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.torch

FAMILIES = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "modernbert",
            "deberta-v2"]
TEXTS = ["The turtle moved slowly across the road.", "A cat sat.",
         "Then I picked up a cup from the table."]


@pytest.fixture(scope="session")
def reference_model(tmp_path_factory):
    """``reference_model(family)``: (masked-LM model, [ids per text]), written and loaded once."""
    root = tmp_path_factory.mktemp("contributions-reference")

    @functools.cache
    def load(family: str):
        folder = write_family_checkpoint(root / family, family, masked_lm=True)
        model = transformers.AutoModelForMaskedLM.from_pretrained(
            folder, attn_implementation="eager").eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        return model, [tokenizer(text)["input_ids"] for text in TEXTS]

    return load


def numpy(tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def plain_outputs(model, ids) -> tuple[np.ndarray, np.ndarray]:
    """(last hidden state [t, H], masked-LM logits [t, vocab]) without any hook."""
    batch = torch.as_tensor([ids])
    with torch.no_grad():
        hidden = model.base_model(input_ids=batch).last_hidden_state[0]
        logits = model(input_ids=batch).logits[0]
    return numpy(hidden), numpy(logits)


def hidden_states(model, ids) -> np.ndarray:
    """[L, t, H]: each layer application's input, from ``output_hidden_states``."""
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor([ids]), output_hidden_states=True)
    return np.stack([numpy(h[0]) for h in out.hidden_states[:-1]])


def by_hand_effects(clean, ablated) -> dict[str, np.ndarray]:
    """The three effects per token from plain outputs, in NumPy."""
    (h, logits), (h2, logits2) = clean, ablated
    hidden = np.linalg.norm(h2 - h, axis=-1) / np.linalg.norm(h, axis=-1)
    a, b = h.mean(axis=0), h2.mean(axis=0)
    embedding = 1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    p, q = log_softmax(logits), log_softmax(logits2)
    return {"hidden": hidden, "embedding": np.full(len(h), embedding),
            "kl": (np.exp(p) * (p - q)).sum(axis=-1)}


def head_columns(part: ref.Parts, head: int) -> slice:
    return slice(head * part.head_dim, (head + 1) * part.head_dim)


def values_by_hand(part: ref.Parts, x: np.ndarray) -> np.ndarray:
    """[t, H]: x W_V^T + b_V in float64; ModernBERT's (pre-norm, fused Wqkv) from its own
    modules, in float32."""
    if isinstance(part.value, torch.nn.Linear):
        return x @ numpy(part.value.weight).T + numpy(part.value.bias)
    with torch.no_grad():
        return numpy(part.value(torch.as_tensor(x, dtype=torch.float32)))


def contexts_by_hand(model, ids) -> np.ndarray:
    """[L, t, H]: attention @ (x W_V^T + b_V) per head, from the layer inputs and attentions."""
    xs = hidden_states(model, ids)
    probabilities = ref.attentions(model, ids)
    found = []
    for index, part in enumerate(ref.parts(model)):
        values = values_by_hand(part, xs[index])
        per_head = [probabilities[index, head] @ values[:, head_columns(part, head)]
                    for head in range(part.heads)]
        found.append(np.concatenate(per_head, axis=-1))
    return np.stack(found)


@pytest.mark.parametrize("family", FAMILIES)
def test_hooks_see_each_layer_input(reference_model, family):
    model, sentences = reference_model(family)
    applications = ref.parts(model)
    assert len(applications) == model.config.num_hidden_layers
    xs, _ = ref._inputs(model, sentences[0])
    np.testing.assert_allclose(np.stack([numpy(xs[i]) for i in range(len(applications))]),
                               hidden_states(model, sentences[0]), rtol=0, atol=1e-6)
    probabilities = ref.attentions(model, sentences[0])
    t = len(sentences[0])
    assert probabilities.shape == (len(applications), applications[0].heads, t, t)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_ablation_equals_zeroed_columns(reference_model, family):
    model, sentences = reference_model(family)
    applications = ref.parts(model)
    layers = len(applications)
    # ALBERT's columns are shared: zeroing them removes the head in every application.
    cases = ([[(layer, 2) for layer in range(layers)]] if family == "albert"
             else [[(0, 1)], [(layers - 1, 3)], [(1, 0)]])
    for removed in cases:
        derived = copy.deepcopy(model)
        derived_parts = ref.parts(derived)
        with torch.no_grad():
            for layer, head in removed:
                derived_parts[layer].dense.weight[:, head_columns(derived_parts[layer], head)] = 0
        for ids in sentences:
            clean, ablated = plain_outputs(model, ids), plain_outputs(derived, ids)
            hooked = ref._ablated(model, ids, removed, "zero")
            np.testing.assert_allclose(numpy(hooked["hidden"]), ablated[0], rtol=0, atol=1e-6)
            np.testing.assert_allclose(numpy(hooked["logits"]), ablated[1], rtol=0, atol=1e-5)
            expected = by_hand_effects(clean, ablated)
            assert expected["hidden"].max() > 1e-3  # the head matters: not a vacuous pass
            for effect, values in expected.items():
                found = ref.effects(model, ids, removed, "zero", effect, together=True)
                assert found.shape == (1, len(ids))
                np.testing.assert_allclose(found[0], values, rtol=0, atol=1e-6, err_msg=effect)


@pytest.mark.parametrize("family", ["bert", "distilbert", "albert"])
def test_mean_ablation_equals_shifted_bias(reference_model, family):
    model, sentences = reference_model(family)
    means = ref.context_means(model, sentences)
    applications = ref.parts(model)
    layers = len(applications)
    head = 1
    if family == "albert":  # shared columns: one mean vector for every application
        means[:, head] = means[0, head]
        removed = [(layer, head) for layer in range(layers)]
    else:
        removed = [(layers - 2, head)]
    derived = copy.deepcopy(model)
    derived_parts = ref.parts(derived)
    with torch.no_grad():
        for layer, _ in removed[:1]:
            dense = derived_parts[layer].dense
            columns = head_columns(derived_parts[layer], head)
            dense.bias += dense.weight[:, columns] @ torch.as_tensor(means[layer, head],
                                                                     dtype=torch.float32)
            dense.weight[:, columns] = 0
    for ids in sentences:
        clean, ablated = plain_outputs(model, ids), plain_outputs(derived, ids)
        expected = by_hand_effects(clean, ablated)
        for effect in ("hidden", "kl"):
            found = ref.effects(model, ids, removed, "mean", effect, means=means, together=True)
            np.testing.assert_allclose(found[0], expected[effect], rtol=0, atol=1e-5,
                                       err_msg=effect)


@pytest.mark.parametrize("family", ["bert", "albert"])
def test_each_head_alone_or_together(reference_model, family):
    model, sentences = reference_model(family)
    ids = sentences[0]
    means = ref.context_means(model, sentences)
    heads = [(0, 0), (1, 2), (2, 3)]
    alone = ref.effects(model, ids, heads, "mean", "embedding", means=means)
    assert alone.shape == (3, len(ids))
    assert np.all(alone == alone[:, :1])  # one value per sentence, repeated per token
    for row, pair in enumerate(heads):
        single = ref.effects(model, ids, [pair], "mean", "embedding", means=means, together=True)
        np.testing.assert_array_equal(single[0], alone[row])
    together = ref.effects(model, ids, heads, "mean", "embedding", means=means, together=True)
    assert together.shape == (1, len(ids))
    assert not np.allclose(together[0], alone[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_context_means_by_hand(reference_model, family):
    model, sentences = reference_model(family)
    contexts = np.concatenate([contexts_by_hand(model, ids) for ids in sentences], axis=1)
    applications = ref.parts(model)
    expected = contexts.mean(axis=1).reshape(len(applications), applications[0].heads, -1)
    np.testing.assert_allclose(ref.context_means(model, sentences), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_norm_weights_by_hand(reference_model, family):
    model, sentences = reference_model(family)
    for ids in sentences:
        weights = ref.norm_weights(model, ids)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-9)
        xs = hidden_states(model, ids)
        probabilities = ref.attentions(model, ids)
        for index, part in enumerate(ref.parts(model)):
            values = values_by_hand(part, xs[index])
            for head in range(part.heads):
                columns = head_columns(part, head)
                outputs = values[:, columns] @ numpy(part.dense.weight)[:, columns].T  # [t(k), H]
                key_norms = np.linalg.norm(outputs, axis=-1)
                expected = probabilities[index, head] * key_norms[None, :]
                expected /= expected.sum(axis=-1, keepdims=True)
                np.testing.assert_allclose(weights[index, head], expected, rtol=0, atol=1e-5)
        # value-aware: not the attention itself
        assert np.abs(weights - probabilities).max() > 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_output_norms_reconstruct_the_dense_output(reference_model, family):
    model, sentences = reference_model(family)
    for ids in sentences:
        found = ref._head_outputs(model, ids)
        np.testing.assert_allclose(found["heads_out"].sum(axis=1) + found["bias"][:, None, :],
                                   found["dense_out"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(found["context"], contexts_by_hand(model, ids), rtol=0,
                                   atol=1e-5)
        np.testing.assert_allclose(found["x"], hidden_states(model, ids), rtol=0, atol=1e-6)
        norms = ref.output_norms(model, ids)
        assert norms.shape == found["heads_out"].shape[:3]
        np.testing.assert_allclose(
            norms, np.linalg.norm(found["heads_out"], axis=-1)
            / np.linalg.norm(found["x"], axis=-1)[:, None, :], rtol=1e-12)


def test_usage_errors(reference_model):
    model, sentences = reference_model("bert")
    ids = sentences[0]
    with pytest.raises(ValueError, match="needs means"):
        ref.effects(model, ids, [(0, 0)], "mean", "hidden")
    with pytest.raises(ValueError, match="effect must be"):
        ref.effects(model, ids, [(0, 0)], "zero", "logits")
    with pytest.raises(ValueError, match="no head"):
        ref.effects(model, ids, [(0, 4)], "zero", "hidden")
    base = model.base_model
    with pytest.raises(ValueError, match="ForMaskedLM"):
        ref.effects(base, ids, [(0, 0)], "zero", "kl")
    # a base model's hidden effect is the masked-LM model's
    np.testing.assert_array_equal(ref.effects(base, ids, [(0, 0)], "zero", "hidden"),
                                  ref.effects(model, ids, [(0, 0)], "zero", "hidden"))
