"""SPEC §14 against an independent PyTorch computation: headprobe's value-aware (norm) weights,
output norms, context means and head-removal effects equal tests/torch_reference.py (hooks on
Hugging Face's own models) on the same checkpoint to 1e-4, for every family of tests/families.py
(with its masked-LM head) and for the bundled MiniLM.

headprobe runs a call's sentences together, several packed into one row (the tests check that
they are), the reference one sentence at a time (a batch of one), so a sentence's values must
not depend on its row-mates. Mean ablation is checked with headprobe's own means (``means=None``:
the mean over every token of all the texts of the call) against the reference's means over the
same sentences.

Cost: each (heads, effect, together) is one compiled program per model (2-5 s on a CPU; zero
and mean ablation share it), so each family removes its heads alone for one effect and together
for another (`EFFECTS`): every family's removal is checked alone and together with both
ablations, and every (effect, alone/together) pair in two families. The masked-LM KL runs
through four different heads (RoBERTa's, ALBERT's, DistilBERT's, ELECTRA's generator's).

An exact cross-check needs no PyTorch: zero-ablating one of MiniLM's heads equals running a
derived checkpoint whose output projection has that head's columns zeroed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch_reference as ref
from derived import derive, minilm_folder
from families import KINDS, write_family_checkpoint

import headprobe
from headprobe.model import packing

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.torch

FAMILIES = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "modernbert",
            "deberta-v2"]
# Four lengths (about 4 to 25 tokens): a row of 32 tokens holds two or three of them.
TEXTS = ["The turtle moved slowly across the road.", "A cat sat.",
         "Then I picked up a cup from the table near the window.", "Yes"]
# The first and the last layer, two heads of one layer (removed side by side / at once).
HEADS = [(0, 1), (0, 2), (1, 3), (2, 0)]
EFFECTS = {  # family -> (effect of each head removed alone, effect of all removed together)
    "bert": ("hidden", "embedding"), "roberta": ("embedding", "hidden"),
    "xlm-roberta": ("kl", "embedding"), "distilbert": ("hidden", "kl"),
    "electra": ("embedding", "kl"), "albert": ("kl", "hidden"),
    "modernbert": ("hidden", "kl"), "deberta-v2": ("kl", "hidden")}
TOLERANCE = 1e-4

MINILM_TEXTS = ["The keys to the cabinet are on the table.", "She sings.",
                "After the long meeting, the committee finally agreed on a new budget."]
MINILM_HEADS = [(0, 3), (2, 7), (5, 11)]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The reference's forwards are tiny: on a busy machine torch's thread pool makes each one
    many times slower (MiniLM: 0.6 s instead of 0.02 s with 2 threads on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Pair:
    """One checkpoint loaded on both sides, and its sentences' ids."""

    headprobe: Any  # headprobe.model.loaded.Model
    torch: Any  # transformers model, eval, eager attention
    texts: list[str]
    ids: list[list[int]]

    @functools.cached_property
    def reference_means(self) -> np.ndarray:
        return ref.context_means(self.torch, self.ids)


def pair_of(folder: Path, texts: list[str], torch_model, handle=None) -> Pair:
    handle = handle or headprobe.load(str(folder), compilation_cache=False)
    model = handle.model()
    ids = [list(e.input_ids) for e in model.tokenize(texts)]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert ids == [tokenizer(text)["input_ids"] for text in texts]  # the same input
    # Sentences share rows: packing is exercised (runs and effects plan rows the same way).
    _, rows = packing.choose_rows([len(i) for i in ids], model.max_length)
    assert len(rows) < len(texts), rows
    return Pair(model, torch_model, texts, ids)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """``family(name)``: the masked-LM checkpoint of a family on both sides, built once."""
    root = tmp_path_factory.mktemp("contributions")

    @functools.cache
    def make(name: str) -> Pair:
        folder = write_family_checkpoint(root / name, name, masked_lm=True)
        model = transformers.AutoModelForMaskedLM.from_pretrained(
            str(folder), attn_implementation="eager").eval()
        return pair_of(folder, TEXTS, model)

    return make


@pytest.fixture(scope="module")
def minilm_pair(minilm) -> Pair:
    folder = minilm_folder()
    model = transformers.AutoModel.from_pretrained(str(folder),
                                                   attn_implementation="eager").eval()
    return pair_of(folder, MINILM_TEXTS, model, handle=minilm)


def largest(found: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return max(float(np.abs(np.asarray(f, np.float64) - e).max())
               for f, e in zip(found, expected))


def check_norm_weights_and_output_norms(pair: Pair, name: str) -> None:
    runs = pair.headprobe.run(pair.texts, weighting="norm", output_norms=True)
    weights = [ref.norm_weights(pair.torch, ids) for ids in pair.ids]
    norms = [ref.output_norms(pair.torch, ids) for ids in pair.ids]
    for run, ids, expected_weights, expected_norms in zip(runs, pair.ids, weights, norms):
        assert run.attentions.shape == expected_weights.shape
        np.testing.assert_allclose(run.attentions, expected_weights, rtol=0, atol=TOLERANCE)
        assert run.output_norms.shape == expected_norms.shape
        np.testing.assert_allclose(run.output_norms, expected_norms, rtol=TOLERANCE,
                                   atol=TOLERANCE)
        # value-aware: not the attention (the comparison above could not pass with it)
        assert np.abs(ref.attentions(pair.torch, ids) - expected_weights).max() > 10 * TOLERANCE
    print(f"\n{name}: norm weights {largest([r.attentions for r in runs], weights):.2e}, "
          f"output norms {largest([r.output_norms for r in runs], norms):.2e} "
          f"(largest {max(float(n.max()) for n in norms):.3f})")


def check_effects(pair: Pair, name: str, heads, effect: str, together: bool) -> None:
    for ablation in ref.ABLATIONS:
        found = pair.headprobe.effects(pair.texts, heads, ablation=ablation, effect=effect,
                                       together=together)
        expected = [ref.effects(pair.torch, ids, heads, ablation, effect,
                                means=pair.reference_means, together=together)
                    for ids in pair.ids]
        variants = 1 if together else len(heads)
        for text, ids, values, reference in zip(pair.texts, pair.ids, found, expected):
            assert values.dtype == np.float32
            assert values.shape == reference.shape == (variants, len(ids))
            np.testing.assert_allclose(values, reference, rtol=0, atol=TOLERANCE,
                                       err_msg=f"{ablation} {effect}: {text!r}")
        # Each variant matters somewhere: not a comparison of zeros.
        assert np.all(np.max([e.max(axis=1) for e in expected], axis=0) > 2 * TOLERANCE)
        print(f"\n{name} {ablation} {effect}{' together' if together else ''}: "
              f"{largest(found, expected):.2e} "
              f"(largest {max(float(e.max()) for e in expected):.3f})")


# --- every family -------------------------------------------------------------------------------


def test_every_family_and_effect_is_covered():
    assert set(FAMILIES) == set(KINDS) == set(EFFECTS)
    for position in (0, 1):  # alone, together: each effect in at least two families
        chosen = [effects[position] for effects in EFFECTS.values()]
        assert all(chosen.count(effect) >= 2 for effect in ref.EFFECTS), chosen


@pytest.mark.parametrize("name", FAMILIES)
def test_norm_weights_and_output_norms_of_packed_sentences_match_torch_hooks(family, name):
    check_norm_weights_and_output_norms(family(name), name)


@pytest.mark.parametrize("name", FAMILIES)
def test_context_means_over_the_sentence_set_match_torch_hooks(family, name):
    pair = family(name)
    means = pair.headprobe.context_means(pair.texts)
    assert means.dtype == np.float32
    assert means.shape == pair.reference_means.shape
    np.testing.assert_allclose(means, pair.reference_means, rtol=0, atol=TOLERANCE)
    # over the whole set: one sentence's own means differ
    alone = ref.context_means(pair.torch, pair.ids[:1])
    assert np.abs(alone - pair.reference_means).max() > 10 * TOLERANCE
    print(f"\n{name}: context means {float(np.abs(means - pair.reference_means).max()):.2e}")


@pytest.mark.parametrize("name, effect", [(name, alone) for name, (alone, _) in EFFECTS.items()])
def test_removing_each_head_alone_matches_torch_hooks(family, name, effect):
    check_effects(family(name), name, HEADS, effect, together=False)


@pytest.mark.parametrize("name, effect",
                         [(name, together) for name, (_, together) in EFFECTS.items()])
def test_removing_heads_together_matches_torch_hooks(family, name, effect):
    check_effects(family(name), name, HEADS, effect, together=True)


# --- the bundled MiniLM ---------------------------------------------------------------------------


def test_minilm_norm_weights_and_output_norms_match_torch_hooks(minilm_pair):
    check_norm_weights_and_output_norms(minilm_pair, "minilm")


@pytest.mark.parametrize("effect", ["hidden", "embedding"])
def test_minilm_removing_each_head_alone_matches_torch_hooks(minilm_pair, effect):
    means = minilm_pair.headprobe.context_means(minilm_pair.texts)
    np.testing.assert_allclose(means, minilm_pair.reference_means, rtol=0, atol=TOLERANCE)
    check_effects(minilm_pair, "minilm", MINILM_HEADS, effect, together=False)


def zero_output_columns(layer: int, head: int, head_dim: int):
    """A `derive` transform: the head's columns of the layer's attention output dense zeroed."""
    def transform(state):
        name = f"encoder.layer.{layer}.attention.output.dense.weight"
        weight = state[name].copy()
        weight[:, head * head_dim:(head + 1) * head_dim] = 0.0
        return {**state, name: weight}
    return transform


def test_zero_ablation_equals_a_checkpoint_without_the_heads_output_columns(minilm, tmp_path):
    model = minilm.model()
    layer, head = MINILM_HEADS[1]
    folder = derive(tmp_path / "without-head",
                    zero_output_columns(layer, head, model.config.head_dim))
    derived = headprobe.load(str(folder), compilation_cache=False).model()
    # All of MINILM_HEADS: the program the MiniLM effect test compiled already.
    found = model.effects(MINILM_TEXTS, MINILM_HEADS, ablation="zero", effect="hidden")
    # Runs as the norm-weights test's (its program too); the weighting leaves hidden states be.
    runs = [m.run(MINILM_TEXTS, weighting="norm", output_norms=True) for m in (model, derived)]
    for text, clean, removed, values in zip(MINILM_TEXTS, *runs, found):
        h = clean.hidden_states[-1].astype(np.float64)
        h2 = removed.hidden_states[-1].astype(np.float64)
        expected = np.linalg.norm(h2 - h, axis=-1) / np.linalg.norm(h, axis=-1)
        assert expected.max() > 1e-3, text  # the head matters
        assert values.shape == (len(MINILM_HEADS), len(h))
        np.testing.assert_allclose(values[1], expected, rtol=0, atol=1e-5, err_msg=text)
        print(f"\nminilm derived L{layer}H{head} {text!r}: "
              f"{float(np.abs(values[1] - expected).max()):.2e}")
