"""ONNX exports made the way teams make them (SPEC §15), for the export tests:

- `export_folder`: a checkpoint exported with ``torch.onnx.export`` (opset 17, dynamic batch and
  sequence axes, eager attention), in the sentence-transformers layout (``FOLDER/onnx/model.onnx``
  with config.json and the tokenizer files in ``FOLDER``);
- `quantize_dynamic`: onnxruntime's dynamic int8 quantisation (``MatMulInteger``,
  ``DynamicQuantizeLinear``) of an export;
- `float16_copy`: onnxruntime's float16 conversion (weights and compute in float16, inputs and
  outputs kept);
- `fuse_attention`: onnxruntime's transformer optimizer, which fuses attention into one op;
- `reference_attentions`: an independent reading of an export: every ``Softmax`` output of the
  graph exposed with onnx's helpers and run in onnxruntime, the sentence alone.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_folder(checkpoint: Path, folder: Path, *, masked_lm: bool = False,
                  dynamo: bool = False) -> Path:
    """``checkpoint`` exported into ``folder/onnx/model.onnx``, its other files beside; returns
    ``folder``. ``masked_lm``: the export outputs ``logits`` (needs the MLM head)."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    for path in Path(checkpoint).iterdir():
        if path.is_file() and path.name != "model.safetensors":
            shutil.copy2(path, folder / path.name)
    auto = transformers.AutoModelForMaskedLM if masked_lm else transformers.AutoModel
    model = auto.from_pretrained(str(checkpoint), attn_implementation="eager").eval()
    config = model.config
    takes_types = config.model_type not in ("distilbert",)
    names = [n for n in INPUTS if takes_types or n != "token_type_ids"]
    ids = torch.tensor([[config.pad_token_id + 1, 5, 6, 7, 8, 9]], dtype=torch.long)
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
               "token_type_ids": torch.zeros_like(ids)}
    output = "logits" if masked_lm else "last_hidden_state"

    class Wrapped(torch.nn.Module):  # positional inputs -> the one output named above
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = self.model(**dict(zip(names, args)))
            return out.logits if masked_lm else out.last_hidden_state

    target = folder / "onnx" / "model.onnx"
    target.parent.mkdir(exist_ok=True)
    axes = {n: {0: "batch", 1: "sequence"} for n in (*names, output)}
    # The tracer warns about Python branches on shapes (transformers' masking code); the tests
    # make warnings errors, so they are silenced here, where they are expected.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", min=2)
            torch.onnx.export(Wrapped(), tuple(example[n] for n in names), str(target),
                              input_names=names, output_names=[output], opset_version=17,
                              dynamo=True, dynamic_shapes=(tuple({0: batch, 1: sequence}
                                                                 for _ in names),))
        else:
            torch.onnx.export(Wrapped(), tuple(example[n] for n in names), str(target),
                              input_names=names, output_names=[output], opset_version=17,
                              dynamic_axes=axes, dynamo=False)
    return folder


def quantize_dynamic(source: Path, target: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


def float16_copy(source: Path, target: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))
    return target


def fuse_attention(source: Path, target: Path, num_heads: int, hidden_size: int) -> Path:
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(source), model_type="bert", num_heads=num_heads,
                   hidden_size=hidden_size, opt_level=1).save_model_to_file(str(target))
    return target


def reference_attentions(path: Path, input_ids: np.ndarray) -> list[np.ndarray]:
    """Every Softmax output of the export at ``path`` (graph order) for one sentence's ids,
    computed by onnxruntime: a reading of the file that shares no code with headprobe."""
    import onnx
    import onnxruntime

    model = onnx.load(str(path))
    softmax = [n.output[0] for n in model.graph.node if n.op_type == "Softmax"]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in softmax)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    ids = np.asarray(input_ids, dtype=np.int64)[None]
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
             "token_type_ids": np.zeros_like(ids)}
    outputs = session.run(softmax, {k: v for k, v in feeds.items() if k in inputs})
    return [np.asarray(o, dtype=np.float32).reshape(o.shape[-3:]) for o in outputs]


def plain_outputs(path: Path, input_ids: np.ndarray) -> list[np.ndarray]:
    """The export's own outputs for one sentence, nothing exposed."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    ids = np.asarray(input_ids, dtype=np.int64)[None]
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
             "token_type_ids": np.zeros_like(ids)}
    return list(session.run(None, {k: v for k, v in feeds.items() if k in inputs}))
