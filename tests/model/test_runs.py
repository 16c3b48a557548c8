"""Model.run / iter_runs: order, shapes, padding invariance, partial depth, batching, compiles."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import headprobe
from headprobe.errors import UsageError
from headprobe.model import packing
from headprobe.model.loaded import (
    MIN_BATCH_TOKENS,
    batch_rows,
    compilation_cache_dir,
    enable_compilation_cache,
    plan_batches,
)

TINY_WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "big", "red", "hat", "sun"]


def tiny_sentence(words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(TINY_WORDS, size=words))


@pytest.fixture(scope="module")
def tiny(checkpoints):
    pytest.importorskip("torch")
    return headprobe.load(str(checkpoints("tiny-gelu", hidden_act="gelu")))


def test_runs_come_back_in_input_order_with_tokenizer_fields(minilm):
    texts = ["The photographer's dog ran.", "Hi.", "Then I picked up a [MASK] from the table."]
    runs = minilm.run(texts)
    assert [r.text for r in runs] == texts
    assert runs[0].tokens == ["[CLS]", "the", "photographer", "'", "s", "dog", "ran", ".", "[SEP]"]
    assert runs[0].word_ids == (None, 0, 1, 2, 3, 4, 5, 6, None)
    assert runs[0].offsets[2] == (4, 16) and runs[0].word_text(3) == "'"
    assert runs[2].tokens[6] == "[MASK]" and not runs[2].special_mask[6]
    assert runs[1].attentions.shape == (6, 12, 4, 4)
    assert runs[1].hidden_states.shape == (7, 4, 384)
    assert runs[1].mlm_logits is None
    np.testing.assert_allclose(runs[2].attentions.sum(axis=-1), 1.0, atol=1e-5)


def test_tokenize_matches_the_tokens_of_a_run_without_running(minilm):
    encoding = minilm.tokenize(["Cats sleep."])[0]
    assert encoding.tokens == ["[CLS]", "cats", "sleep", ".", "[SEP]"]
    assert encoding.input_ids.dtype == np.int32 and len(encoding) == 5


@pytest.mark.parametrize("batch_size", [16, 1])
def test_a_sentence_alone_and_packed_with_others_attend_the_same(minilm, sentences, batch_size):
    longest = max(sentences, key=len)
    others = [*sentences[40:60], longest]
    lengths = [len(e) for e in minilm.tokenize(others)]
    for text in (sentences[0], sentences[2]):
        alone = minilm.run([text], batch_size=batch_size)[0]
        (batch, *_) = plan_batches([len(minilm.tokenize([text])[0]), *lengths], 16,
                                   minilm.max_length, heads_out=72)
        shared = [p for p in batch.placed if p.row == next(
            q.row for q in batch.placed if q.index == 0)]
        assert len(shared) > 1  # it shares its row with other sentences
        packed = minilm.run([text, *others], batch_size=16)[0]
        # Within the parity tolerances against Hugging Face (attentions 1e-5, hidden states
        # 1e-4): another batch shape may vectorise or block the matmuls and the GELU
        # differently on CPU, which moves values by float32 rounding (measured: up to 1.3e-6
        # in an attention, ~2e-6 in hidden states).
        np.testing.assert_allclose(alone.attentions, packed.attentions, atol=1e-5, rtol=0)
        np.testing.assert_allclose(alone.hidden_states, packed.hidden_states, atol=1e-4, rtol=0)
        assert np.abs(alone.attentions - packed.attentions).max() < 5e-6


def test_first_layers_only_match_the_full_run_and_skip_logits(tiny):
    texts = [tiny_sentence(5, 0), tiny_sentence(3, 1)]
    full = tiny.run(texts)
    partial = tiny.run(texts, num_layers=1)
    assert partial[0].attentions.shape == (1, 3, 7, 7)
    assert partial[0].hidden_states.shape == (2, 7, 15)
    assert partial[0].mlm_logits is None and full[0].mlm_logits is not None
    np.testing.assert_allclose(partial[0].attentions, full[0].attentions[:1], atol=1e-6)


def test_hidden_states_and_logits_are_left_out_when_not_asked(tiny):
    run = tiny.run([tiny_sentence(4, 2)], hidden_states=False, mlm_logits=False)[0]
    assert run.hidden_states is None and run.mlm_logits is None


def test_iter_runs_yields_every_index_once_with_its_own_text(tiny):
    texts = [tiny_sentence(n, n) for n in (9, 2, 5, 7, 3)]
    pairs = list(tiny.iter_runs(texts, batch_size=2))
    assert sorted(index for index, _ in pairs) == list(range(5))
    assert all(run.text == texts[index] for index, run in pairs)


def test_runs_without_a_copy_are_views_with_the_same_values(tiny):
    texts = [tiny_sentence(words, seed) for seed, words in enumerate((3, 9, 5, 12))]
    copied = dict(tiny.iter_runs(texts, hidden_states=True, mlm_logits=False))
    viewed = dict(tiny.iter_runs(texts, hidden_states=True, mlm_logits=False, copy=False))
    for index, run in viewed.items():
        assert not run.attentions.flags.owndata  # a slice of the batch's array
        flags = copied[index].attentions.flags
        assert flags.owndata and flags.c_contiguous
        assert np.array_equal(run.attentions, copied[index].attentions)
        assert np.array_equal(run.hidden_states, copied[index].hidden_states)


def test_runs_from_given_encodings_equal_runs_that_tokenize_and_skip_the_tokenizer(tiny,
                                                                                  monkeypatch):
    texts = [tiny_sentence(words, seed) for seed, words in enumerate((4, 11, 6))]
    fresh = dict(tiny.iter_runs(texts, hidden_states=False, mlm_logits=False))
    encodings = tiny.tokenize(texts)

    def no_tokenizing(texts):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tiny, "tokenize", no_tokenizing)
    given = dict(tiny.iter_runs(texts, hidden_states=False, mlm_logits=False,
                                encodings=encodings))
    for index, run in given.items():
        assert run.tokens == fresh[index].tokens
        assert np.array_equal(run.attentions, fresh[index].attentions)


def test_encodings_that_do_not_match_the_texts_are_a_usage_error(tiny):
    texts = ["the cat sat", "a dog"]
    encodings = tiny.tokenize(texts)
    for wrong in (encodings[:1], encodings[::-1]):
        with pytest.raises(UsageError, match=r"encodings: expected model\.tokenize\(texts\)"):
            list(tiny.iter_runs(texts, encodings=wrong))


def test_many_lengths_compile_one_program(checkpoints):
    pytest.importorskip("torch")
    model = headprobe.load(str(checkpoints("tiny-gelu", hidden_act="gelu")))
    texts = [tiny_sentence(1 + i % 16, i) for i in range(150)]
    lengths = [len(e) for e in model.tokenize(texts)]
    assert len(set(lengths)) == 16
    runs = model.run(texts, batch_size=8)
    assert len(runs) == 150
    # compiled here, or loaded from the program store when an earlier process compiled it
    assert model.compile_count + model.loaded_count == 1


def test_text_longer_than_the_model_takes_is_a_usage_error(tiny):
    with pytest.raises(UsageError, match=r"has 22 tokens with its special tokens; .* at most 19"):
        tiny.run([tiny_sentence(20, 0)])


@pytest.mark.parametrize("kwargs, message", [
    ({"num_layers": 3}, r"num_layers: expected an integer in 1\.\.2"),
    ({"num_layers": 0}, r"num_layers: expected an integer in 1\.\.2"),
    ({"batch_size": 0}, "batch_size: expected a positive integer"),
])
def test_bad_run_arguments_are_usage_errors(tiny, kwargs, message):
    with pytest.raises(UsageError, match=message):
        tiny.run(["the cat"], **kwargs)


def test_a_single_string_must_be_wrapped_in_a_list(tiny):
    with pytest.raises(UsageError, match=r"wrap it in a list"):
        tiny.run("the cat")


def test_rows_hold_the_longest_sentence_in_the_smallest_row_length_that_packs_tightly():
    assert packing.row_length_for([5, 40, 127], 512) == 128
    assert packing.row_length_for([5, 129], 512) == 256
    assert packing.row_length_for([300], 512) == 512
    assert packing.row_length_for([12], 19) == 19  # never beyond the model's maximum
    assert packing.row_length_for([16] * 40, 512) == 32  # two to a row: no padding
    # 33 tokens each: one to a row of 64 wastes half; rows of 128 hold three
    assert packing.row_length_for([33] * 90, 512) == 128


def test_a_sentence_longer_than_every_row_length_gets_a_row_of_about_its_length():
    # a model reading 8,192 tokens (ModernBERT) must not pad 1,024 tokens to 8,192
    assert packing.row_length_for([1024], 8192) == 1024
    assert packing.row_length_for([3000, 40], 8192) == 3072
    assert packing.row_length_for([513], 8192) == 768
    assert packing.row_length_for([8000], 8192) == 8192
    assert packing.row_length_for([600], 700) == 700  # never beyond the model's maximum


def test_packing_places_every_sentence_once_without_overflowing_a_row():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(5, 60, size=500)]
    rows = packing.pack(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert len(rows) * 128 / sum(lengths) - 1 < 0.03  # best fit decreasing: under 3% padding
    with pytest.raises(ValueError, match="does not fit"):
        packing.pack([130], 128)


def test_batches_have_one_shape_and_few_padded_tokens():
    rng = np.random.default_rng(1)
    lengths = [int(n) for n in rng.integers(8, 50, size=1860)]
    batches = plan_batches(lengths, 32, 512, heads_out=1)
    assert len({(b.rows, b.row_length) for b in batches}) == 1
    assert sorted(i for b in batches for i in b.indices) == list(range(1860))
    assert packing.padded_fraction(batches) <= 0.03
    for batch in batches:  # sentences do not overlap within a row
        for row in range(batch.rows):
            spans = sorted((p.start, p.start + p.length) for p in batch.placed if p.row == row)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_rows_per_batch_bounded_by_batch_size_output_bytes_and_the_token_floor():
    assert batch_rows(100, 32, 128, heads_out=1) <= 32
    assert batch_rows(100, 32, 128, heads_out=144, band=48) * 144 * 128 * 48 * 4 <= \
        packing.BATCH_OUTPUT_BYTES
    assert batch_rows(1, 1, 16, heads_out=1) * 16 >= MIN_BATCH_TOKENS
    assert batch_rows(3, 32, 128, heads_out=1, multiple=4) % 4 == 0


def test_batch_arrays_restart_positions_and_number_segments():
    batch = packing.PackedBatch(rows=2, row_length=8, placed=(
        packing.Placed(0, 0, 0, 3), packing.Placed(1, 0, 3, 4), packing.Placed(2, 1, 0, 2)))
    ids = {0: np.array([5, 6, 7]), 1: np.array([8, 9, 10, 11]), 2: np.array([12, 13])}
    tokens, segments, positions, starts = packing.batch_arrays(batch, ids, pad_token_id=0,
                                                              position_offset=False)
    assert tokens[0].tolist() == [5, 6, 7, 8, 9, 10, 11, 0]
    assert segments.tolist() == [[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 0, 0, 0, 0, 0, 0]]
    assert positions[0].tolist() == [0, 1, 2, 0, 1, 2, 3, 0]
    assert starts[0].tolist() == [0, 0, 0, 3, 3, 3, 3, 0]  # where each token's sentence begins
    _, _, roberta, _ = packing.batch_arrays(batch, ids, pad_token_id=1, position_offset=True)
    assert roberta[0].tolist() == [2, 3, 4, 2, 3, 4, 5, 1]  # pad + 1 + index; padding: pad


def test_compilation_cache_lives_in_the_user_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("HEADPROBE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir() == tmp_path / "xdg" / "headprobe" / "jax"
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(tmp_path / "base"))
    assert compilation_cache_dir() == tmp_path / "base" / "jax"


def test_enable_compilation_cache_sets_jax_options(tmp_path):
    import jax

    before = jax.config.jax_compilation_cache_dir
    try:
        folder = enable_compilation_cache(tmp_path / "jaxcache")
        assert folder.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jaxcache")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
        assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_importing_headprobe_and_the_model_api_does_not_import_jax():
    code = ("import sys, headprobe, headprobe.model.loaded, headprobe.model.resolve; "
            "print(sorted(m for m in ('jax', 'flax', 'transformers', 'torch', 'matplotlib') "
            "if m in sys.modules))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": root})
    assert out.stdout.strip() == "[]"
