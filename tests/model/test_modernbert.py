"""ModernBERT's sliding-window layers (SPEC §7c): exact zeros outside the window, long rows in
query blocks equal to the dense masked product, sentences longer than the window equal to
Hugging Face's, and packing (rotary positions restart per sentence, windows never cross
sentences)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from families import write_family_checkpoint

import headprobe
from headprobe.model.encoders import modernbert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LONG = ["The old man who lived by the sea told the children a long story about the storm "
        "that came one night and carried the boats far out beyond the rocks.",
        "A cat sat.",
        "When the rain stopped, the farmers went back to the fields and the children ran to "
        "the river to watch the water rise over the stones near the bridge."]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_family_checkpoint(tmp_path_factory.mktemp("modernbert") / "m", "modernbert",
                                   max_position_embeddings=128)


def random_inputs(seed: int, t: int, segments: list[int]):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 3, t, 6)), jnp.float32) for _ in range(3))
    segment_ids = np.zeros((2, t), np.int32)
    start = 0
    for number, length in enumerate(segments, start=1):
        segment_ids[:, start:start + length] = number
        start += length
    return q, k, v, jnp.asarray(segment_ids)


@pytest.mark.parametrize("half", [1, 3, 8])
def test_blocked_local_attention_equals_the_dense_masked_product(half, monkeypatch):
    q, k, v, segments = random_inputs(half, 101, [40, 3, 50])  # 8 tokens of padding
    blocked_context, blocked = modernbert.local_attention(q, k, v, segments, half, "highest")
    assert isinstance(blocked, modernbert.Banded)
    monkeypatch.setattr(modernbert, "BLOCKED_FROM", 10**6)
    dense_context, dense = modernbert.local_attention(q, k, v, segments, half, "highest")
    assert isinstance(dense, headprobe.model.blocks.Dense)
    real = np.asarray(segments)[0] > 0  # padding rows are no one's attention
    np.testing.assert_allclose(np.asarray(blocked.dense())[:, :, real],
                               np.asarray(dense.dense())[:, :, real], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(blocked.head(2))[:, real],
                               np.asarray(dense.head(2))[:, real], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(blocked_context)[:, :, real],
                               np.asarray(dense_context)[:, :, real], rtol=0, atol=1e-6)
    factor = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 3, 101)), jnp.float32)
    np.testing.assert_allclose(np.asarray(blocked.per_key(factor).dense())[:, :, real],
                               np.asarray(dense.per_key(factor).dense())[:, :, real],
                               rtol=0, atol=1e-6)


def test_keys_outside_the_window_or_the_sentence_get_exactly_zero():
    half = 3
    q, k, v, segments = random_inputs(1, 61, [20, 3, 30])
    _, weights = modernbert.local_attention(q, k, v, segments, half, "highest")
    dense = np.asarray(weights.dense())  # [b, n, q, k]
    position = np.arange(61)
    far = np.abs(position[:, None] - position[None, :]) > half
    seg = np.asarray(segments)[0]
    other = (seg[:, None] != seg[None, :]) | (seg[None, :] == 0)
    assert (dense[:, :, seg > 0][:, :, (far | other)[seg > 0]] == 0.0).all()
    rows = dense[:, :, seg > 0].sum(axis=-1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-6)


def test_sentences_longer_than_the_window_and_a_block_match_hugging_face(folder):
    model = headprobe.load(str(folder), compilation_cache=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    torch_model = transformers.AutoModelForMaskedLM.from_pretrained(
        folder, attn_implementation="eager").eval()
    runs = model.run(LONG, batch_size=1)  # rows past BLOCKED_FROM windows: query blocks
    assert max(len(run.tokens) for run in runs) > modernbert.BLOCKED_FROM * 7
    for text, run in zip(LONG, runs):
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = torch_model(**ids, output_attentions=True, output_hidden_states=True)
        expected = torch.stack(out.attentions)[:, 0].numpy()
        np.testing.assert_allclose(run.attentions, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(run.hidden_states, torch.stack(out.hidden_states)[:, 0],
                                   rtol=0, atol=1e-4)
        np.testing.assert_allclose(run.mlm_logits, out.logits[0].numpy(), rtol=0, atol=1e-4)
        local = run.attentions[1]  # layer 1 is local (global every 2): 3 positions each side
        t = len(run.tokens)
        far = np.abs(np.arange(t)[:, None] - np.arange(t)[None, :]) > 3
        assert (local[:, far] == 0.0).all()


def test_a_sentence_packed_with_others_gets_what_it_gets_alone(folder):
    model = headprobe.load(str(folder), compilation_cache=False)
    alone = [model.run([text], batch_size=1)[0] for text in LONG]
    packed = model.run(LONG * 3, batch_size=16)
    for index, run in enumerate(packed):
        expected = alone[index % len(LONG)]
        np.testing.assert_allclose(run.attentions, expected.attentions, rtol=0, atol=1e-6)
        np.testing.assert_allclose(run.hidden_states, expected.hidden_states, rtol=0,
                                   atol=2e-6)


def test_rotary_angles_restart_per_sentence():
    positions = jnp.asarray([[0, 1, 2, 0, 1]])
    cos, sin = modernbert.rotary_angles(positions, 6, 10_000.0)
    np.testing.assert_array_equal(np.asarray(cos)[0, 3:], np.asarray(cos)[0, :2])
    assert jax.numpy.allclose(cos[0, 0], 1.0) and jax.numpy.allclose(sin[0, 0], 0.0)
