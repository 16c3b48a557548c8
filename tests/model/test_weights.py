"""Renaming Hugging Face weights into headprobe's Flax tree (pure, no files)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from headprobe.errors import ModelFormatError
from headprobe.model.config import BertConfig
from headprobe.model.encoder import param_shapes
from headprobe.model.weights import convert, flax_to_state_dict

CONFIG = BertConfig(vocab_size=23, hidden_size=15, num_hidden_layers=2, num_attention_heads=3,
                    intermediate_size=11, hidden_act="gelu", max_position_embeddings=19,
                    type_vocab_size=4, layer_norm_eps=1e-12, pad_token_id=0)
H, N, D, I = 15, 3, 5, 11


def torch_state(config: BertConfig = CONFIG, *, prefix: str = "bert.", mlm: bool = True,
                seed: int = 0) -> dict[str, np.ndarray]:
    """A random state dict with PyTorch names and [out, in] Linear weights."""
    rng = np.random.default_rng(seed)
    c = config
    shapes = {"embeddings.word_embeddings.weight": (c.vocab_size, c.hidden_size),
              "embeddings.position_embeddings.weight": (c.max_position_embeddings, c.hidden_size),
              "embeddings.token_type_embeddings.weight": (c.type_vocab_size, c.hidden_size),
              "embeddings.LayerNorm.weight": (c.hidden_size,),
              "embeddings.LayerNorm.bias": (c.hidden_size,),
              "embeddings.position_ids": (1, c.max_position_embeddings),
              "pooler.dense.weight": (c.hidden_size, c.hidden_size)}
    for j in range(c.num_hidden_layers):
        p = f"encoder.layer.{j}."
        for part in ("query", "key", "value"):
            shapes[p + f"attention.self.{part}.weight"] = (c.hidden_size, c.hidden_size)
            shapes[p + f"attention.self.{part}.bias"] = (c.hidden_size,)
        shapes[p + "attention.output.dense.weight"] = (c.hidden_size, c.hidden_size)
        shapes[p + "attention.output.dense.bias"] = (c.hidden_size,)
        shapes[p + "intermediate.dense.weight"] = (c.intermediate_size, c.hidden_size)
        shapes[p + "intermediate.dense.bias"] = (c.intermediate_size,)
        shapes[p + "output.dense.weight"] = (c.hidden_size, c.intermediate_size)
        shapes[p + "output.dense.bias"] = (c.hidden_size,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"] = (c.hidden_size,)
            shapes[p + norm + ".bias"] = (c.hidden_size,)
    state = {prefix + k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    if mlm:
        for k, s in {"cls.predictions.transform.dense.weight": (c.hidden_size, c.hidden_size),
                     "cls.predictions.transform.dense.bias": (c.hidden_size,),
                     "cls.predictions.transform.LayerNorm.weight": (c.hidden_size,),
                     "cls.predictions.transform.LayerNorm.bias": (c.hidden_size,),
                     "cls.predictions.bias": (c.vocab_size,)}.items():
            state[k] = rng.standard_normal(s).astype(np.float32)
    return state


def test_converted_tree_has_exactly_the_shapes_the_model_declares():
    params, has_head = convert(torch_state(), CONFIG)
    assert has_head
    declared = jax.tree_util.tree_map(lambda s: s.shape, param_shapes(CONFIG))
    assert jax.tree_util.tree_map(np.shape, params) == declared


def test_query_key_value_are_fused_per_head_from_out_in_weights():
    state = torch_state()
    params, _ = convert(state, CONFIG)
    kernel = params["layers_1"]["qkv"]["kernel"]  # [hidden, q/k/v, head, head_dim]
    bias = params["layers_1"]["qkv"]["bias"]  # [q/k/v, head, head_dim]
    for which, part in enumerate(("query", "key", "value")):
        weight = state[f"bert.encoder.layer.1.attention.self.{part}.weight"]  # [out, in]
        for i, head, dim in [(0, 0, 0), (14, 2, 4), (7, 1, 3)]:
            assert kernel[i, which, head, dim] == weight[head * D + dim, i]
        assert bias[which, 2, 4] == state[f"bert.encoder.layer.1.attention.self.{part}.bias"][14]


def test_attention_output_kernel_is_split_by_head():
    state = torch_state()
    params, _ = convert(state, CONFIG)
    out = params["layers_0"]["out_kernel"]  # [head, head_dim, hidden]
    weight = state["bert.encoder.layer.0.attention.output.dense.weight"]  # [out, in]
    assert out[2, 1, 9] == weight[9, 2 * D + 1]
    np.testing.assert_array_equal(params["layers_0"]["intermediate_kernel"],
                                  state["bert.encoder.layer.0.intermediate.dense.weight"].T)


def test_with_or_without_bert_prefix_gives_the_same_tree():
    with_prefix, _ = convert(torch_state(prefix="bert."), CONFIG)
    without, _ = convert(torch_state(prefix=""), CONFIG)
    jax.tree_util.tree_map(np.testing.assert_array_equal, with_prefix, without)


def test_old_gamma_beta_layer_norm_names_are_accepted():
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                      "LayerNorm.beta"): v
             for k, v in torch_state().items()}
    params, _ = convert(state, CONFIG)
    np.testing.assert_array_equal(params["embeddings"]["norm"]["scale"],
                                  state["bert.embeddings.LayerNorm.gamma"])


def test_checkpoint_without_cls_weights_has_no_masked_lm_head():
    params, has_head = convert(torch_state(mlm=False), CONFIG)
    assert not has_head
    assert "mlm" not in params


def test_decoder_bias_under_its_tied_name_is_used():
    state = torch_state()
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    params, _ = convert(state, CONFIG)
    np.testing.assert_array_equal(params["mlm"]["bias"], state["cls.predictions.decoder.bias"])


def test_missing_weights_are_all_named():
    state = torch_state()
    del state["bert.encoder.layer.1.attention.self.key.weight"]
    del state["cls.predictions.transform.dense.bias"]
    with pytest.raises(ModelFormatError) as info:
        convert(state, CONFIG, source="m/model.safetensors")
    message = str(info.value)
    assert message.startswith("m/model.safetensors: missing weight(s)")
    assert "'encoder.layer.1.attention.self.key.weight'" in message
    assert "'cls.predictions.transform.dense.bias'" in message


def test_wrong_shape_names_weight_expected_and_actual_shape():
    state = torch_state()
    state["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((12, 15), np.float32)
    with pytest.raises(ModelFormatError, match=r"'encoder\.layer\.0\.intermediate\.dense\.weight' "
                                               r"has shape \[12, 15\], expected \[11, 15\]"):
        convert(state, CONFIG)


def test_weights_for_more_layers_than_the_config_are_an_error():
    state = torch_state(BertConfig(**{**CONFIG.__dict__, "num_hidden_layers": 3}))
    with pytest.raises(ModelFormatError, match="layer index 2 but config.json says "
                                               "num_hidden_layers 2"):
        convert(state, CONFIG)


def test_flax_layout_flattens_to_torch_names_and_layouts():
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)  # [in, out]
    tree = {"params": {"bert": {
        "embeddings": {"word_embeddings": {"embedding": np.ones((4, 2))},
                       "LayerNorm": {"scale": np.ones(2), "bias": np.zeros(2)}},
        "encoder": {"layer": {"0": {"intermediate": {"dense": {"kernel": kernel,
                                                               "bias": np.zeros(3)}}}}}}}}
    flat = flax_to_state_dict(tree)
    assert set(flat) == {"bert.embeddings.word_embeddings.weight",
                         "bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias",
                         "bert.encoder.layer.0.intermediate.dense.weight",
                         "bert.encoder.layer.0.intermediate.dense.bias"}
    assert flat["bert.encoder.layer.0.intermediate.dense.weight"].shape == (3, 2)
    assert flat["bert.encoder.layer.0.intermediate.dense.weight"][2, 1] == kernel[1, 2]
