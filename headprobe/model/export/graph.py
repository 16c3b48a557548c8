"""An ONNX export's graph: is it one headprobe can read, and which tensors are the attention
probabilities of each layer (SPEC §15). Pure functions of the parsed `onnx.ModelProto`.

An **attention** is a ``Softmax`` over the last axis whose output reaches a matrix product
(``MatMul``, ``MatMulInteger``, ``Einsum``...) through at most `MAX_HOPS` nodes that only pass
it on (casts, the NaN clean-up of exported ``scaled_dot_product_attention``, dynamic
quantisation): the probabilities that weigh the values. The graph's nodes are in topological
order (ONNX requires it), so the k-th attention is layer k's (ALBERT's shared layer appears once
per application). Their count must be the ``num_hidden_layers`` of the export's config.json; the
head count is checked on every run (`check_attention`).

Weights in external data files (what ``torch.onnx.export(..., dynamo=True)`` writes) are read
from files beside the graph only (`external_files`). Refused, each a `ModelFormatError` naming
the file (and the node where there is one): bytes that are not an ONNX model, a graph the ONNX
checker rejects, external data elsewhere, an op outside the standard ONNX ops and onnxruntime's
``com.microsoft`` ones, attention fused into one op (`FUSED_ATTENTION`: its probabilities never
exist as a tensor), a graph with no attention or another count of them than config.json says,
and inputs headprobe cannot feed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError, UsageError
from headprobe.model.modelfiles import require_regular_file

#: The largest export file (and its external data) read, in MiB: a protobuf's own limit.
MAX_EXPORT_MB = 2048
#: Ops that compute attention inside one node (onnxruntime's fusions; ONNX opset 23).
FUSED_ATTENTION = frozenset({
    "Attention", "MultiHeadAttention", "PackedAttention", "PackedMultiHeadAttention",
    "QAttention", "GroupQueryAttention", "SparseAttention", "DecoderAttention",
    "DecoderMaskedMultiHeadAttention", "DecoderMaskedSelfAttention", "LongformerAttention",
    "PagedAttention"})
#: Nodes that pass attention probabilities on to the matrix product unchanged in meaning.
PASS_ON = frozenset({"Cast", "Where", "IsNaN", "Identity", "Dropout", "DynamicQuantizeLinear",
                     "QuantizeLinear", "DequantizeLinear", "Not", "Equal"})
PRODUCTS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul", "Einsum", "FusedMatMul",
                      "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})
MAX_HOPS = 4
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
RUNTIME_DOMAIN = "com.microsoft"
#: What headprobe feeds each input of the graph it knows by name.
INPUT_ROLES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
DYNAMIC_QUANTISATION = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
                                  "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})


@dataclass(frozen=True)
class GraphInput:
    """A graph input: its name (one of `INPUT_ROLES`) and numpy dtype."""

    name: str
    dtype: Any


@dataclass(frozen=True)
class PlacedGraph:
    """Where the heads are: per layer application, the attention tensor and its Softmax node;
    the inputs to feed; the masked-LM logits output, if any; the export's kind (for people)."""

    attentions: tuple[str, ...]
    nodes: tuple[str, ...]
    inputs: tuple[GraphInput, ...]
    logits: str | None
    kind: str

    @property
    def num_layers(self) -> int:
        return len(self.attentions)


def check_size(graph: Path) -> int:
    """The file's size in bytes; a file that is not a regular file, empty, or over
    `MAX_EXPORT_MB` is a `ModelFormatError`."""
    require_regular_file(graph)
    size = os.stat(graph).st_size
    if size > MAX_EXPORT_MB << 20:
        raise ModelFormatError(f"{graph}: {size / 2**20:.0f} MiB; headprobe reads ONNX exports "
                               f"of at most {MAX_EXPORT_MB} MiB (a protobuf's limit)")
    if size == 0:
        raise ModelFormatError(f"{graph}: empty file; expected an ONNX export")
    return size


def require_onnx(what: str) -> tuple[Any, Any]:
    """(onnx, onnxruntime), or a `UsageError` saying what to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UsageError(f"{what} is an ONNX export; reading it needs onnx and onnxruntime, "
                         "headprobe's onnx extra: pip install \"headprobe[onnx]\" (in a "
                         "checkout: pip install -e \".[onnx]\")") from None
    return onnx, onnxruntime


def parse(data: bytes, file: Path) -> tuple[Any, tuple[Path, ...]]:
    """The `onnx.ModelProto` in ``data`` (the bytes of ``file``), checked (see the module
    docstring), its external data read in; and the external data files. A `ModelFormatError`
    for anything that is not an ONNX model headprobe can read."""
    onnx, _ = require_onnx(str(file))
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:
        raise ModelFormatError(f"{file}: not an ONNX model ({_first_line(error)}); expected a "
                               "file written by torch.onnx.export or Optimum") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"{file}: not an ONNX model (no graph nodes); expected a file "
                               "written by torch.onnx.export or Optimum")
    external = _load_external(model, file)
    _check_ops(model, file)
    try:
        onnx.checker.check_model(model)
    except Exception as error:
        raise ModelFormatError(f"{file}: the ONNX checker rejects the graph: "
                               f"{_first_line(error)}") from None
    return model, external


def external_files(model: Any, file: Path) -> tuple[Path, ...]:
    """The external data files ``model`` (read from ``file``) keeps weights in, in the order
    it names them, each checked: a relative name inside the file's folder, a regular file; all
    together at most `headprobe.model.export.locate.MAX_EXPORT_MB`. A `ModelFormatError`
    otherwise."""
    import onnx

    folder = file.parent.resolve()
    found: dict[Path, None] = {}
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = {entry.key: entry.value for entry in tensor.external_data}
        name = fields.get("location", "")
        path = (folder / name).resolve()
        if not name or Path(name).is_absolute() or ".." in Path(name).parts or \
                path.parent != folder:
            raise ModelFormatError(f"{file}: weight {tensor.name!r} names external data "
                                   f"{name!r}; headprobe reads external data only from a file "
                                   "beside the graph")
        if not path.exists():
            raise ModelFormatError(f"{file}: weight {tensor.name!r} is in {name!r}, which is "
                                   "not beside the graph; copy the export's data file with it")
        require_regular_file(path)
        found[path] = None
    total = sum(p.stat().st_size for p in found)
    if total + file.stat().st_size > MAX_EXPORT_MB << 20:
        raise ModelFormatError(f"{file}: {total / 2**20:.0f} MiB of external data; headprobe "
                               f"reads exports of at most {MAX_EXPORT_MB} MiB")
    return tuple(found)


def graph_files(file: Path) -> tuple[Path, ...]:
    """The export ``file`` and its external data files (`external_files`): what its
    fingerprint hashes."""
    onnx, _ = require_onnx(str(file))
    check_size(file)
    try:
        model = onnx.load_model_from_string(file.read_bytes())
    except Exception as error:
        raise ModelFormatError(f"{file}: not an ONNX model ({_first_line(error)})") from None
    return (file, *external_files(model, file))


def _tensors(model: Any) -> list[Any]:
    return [*model.graph.initializer,
            *(a.t for node in model.graph.node for a in node.attribute if a.HasField("t"))]


def _load_external(model: Any, file: Path) -> tuple[Path, ...]:
    """Read the checked external data (`external_files`) into ``model``; returns its files."""
    files = external_files(model, file)
    if not files:
        return files
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(file.parent))
    except Exception as error:
        raise ModelFormatError(f"{file}: its external data cannot be read: "
                               f"{_first_line(error)}") from None
    return files


def _check_ops(model: Any, file: Path) -> None:
    import onnx

    for node in model.graph.node:
        where = f"{file}: node {node.name or node.output[0]!r} ({node.op_type})"
        if node.op_type in FUSED_ATTENTION and node.domain in (*STANDARD_DOMAINS, RUNTIME_DOMAIN):
            raise ModelFormatError(
                f"{where} computes attention inside one fused op, so its probabilities are never "
                "a tensor headprobe can read: export without attention fusion (opset 17-22, no "
                "onnxruntime.transformers optimizer, Optimum's -O1 at most)")
        if node.domain in STANDARD_DOMAINS:
            if not onnx.defs.has(node.op_type, ""):
                raise ModelFormatError(f"{where}: not a standard ONNX op; headprobe runs the "
                                       "standard ops and onnxruntime's com.microsoft ones")
        elif node.domain != RUNTIME_DOMAIN:
            raise ModelFormatError(f"{where}: an op of domain {node.domain!r}, which headprobe "
                                   "does not know; it runs the standard ONNX ops and "
                                   "onnxruntime's com.microsoft ones")


def place_heads(model: Any, file: Path, num_layers: int, vocab_size: int) -> PlacedGraph:
    """The graph's attentions in layer order, its inputs and logits (see the module
    docstring); ``num_layers`` and ``vocab_size`` are config.json's."""
    graph = model.graph
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0) or \
        {o.domain: o.version for o in model.opset_import}.get("ai.onnx", 0)
    attentions, nodes = [], []
    for node in graph.node:
        if node.op_type != "Softmax" or node.domain not in STANDARD_DOMAINS:
            continue
        if not _reaches_product(node.output[0], consumers):
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
        if axis not in (-1, 3):
            raise ModelFormatError(f"{file}: node {node.name or node.output[0]!r} (Softmax) "
                                   f"normalises over axis {axis}; headprobe reads attention "
                                   "normalised over the keys (the last axis)")
        attentions.append(node.output[0])
        nodes.append(node.name or node.output[0])
    if not attentions:
        raise ModelFormatError(f"{file}: no attention found (a Softmax whose probabilities "
                               "multiply the values); headprobe reads encoder exports of the "
                               "BERT family")
    if len(attentions) != num_layers:
        raise ModelFormatError(f"{file}: {len(attentions)} attention Softmax nodes, but its "
                               f"config.json says num_hidden_layers {num_layers}: the export and "
                               "config.json are not of the same model (pass --tokenizer with "
                               "the folder it was exported from)")
    return PlacedGraph(tuple(attentions), tuple(nodes), _inputs(graph, file),
                       _logits(graph, vocab_size), kind_of(model))


def _reaches_product(name: str, consumers: dict[str, list[Any]]) -> bool:
    frontier, seen = [name], {name}
    for _ in range(MAX_HOPS + 1):
        following: list[str] = []
        for tensor in frontier:
            for node in consumers.get(tensor, ()):
                if node.op_type in PRODUCTS:
                    return True
                if node.op_type in PASS_ON:
                    following.extend(o for o in node.output if o not in seen)
                    seen.update(node.output)
        frontier = following
    return False


def _inputs(graph: Any, file: Path) -> tuple[GraphInput, ...]:
    from onnx.helper import tensor_dtype_to_np_dtype

    initialised = {t.name for t in graph.initializer}
    found = []
    for value in graph.input:
        if value.name in initialised:
            continue
        if value.name not in INPUT_ROLES:
            raise ModelFormatError(f"{file}: graph input {value.name!r} is not one headprobe "
                                   f"can feed ({', '.join(INPUT_ROLES)})")
        elem = value.type.tensor_type.elem_type
        dtype = np.dtype(tensor_dtype_to_np_dtype(elem)) if elem else np.dtype(np.int64)
        if dtype.kind not in "iu":
            raise ModelFormatError(f"{file}: graph input {value.name!r} is {dtype}; expected "
                                   "integer token ids and masks")
        found.append(GraphInput(value.name, dtype))
    if "input_ids" not in {i.name for i in found}:
        raise ModelFormatError(f"{file}: the graph has no input_ids input; expected an encoder "
                               "export taking input_ids (and attention_mask, token_type_ids)")
    return tuple(found)


def _logits(graph: Any, vocab_size: int) -> str | None:
    """The masked-LM logits output: ``logits`` of rank 3 whose last size is the vocabulary's
    (or unknown until run)."""
    for value in graph.output:
        dims = value.type.tensor_type.shape.dim
        if value.name == "logits" and len(dims) == 3 and (
                not dims[2].HasField("dim_value") or dims[2].dim_value == vocab_size):
            return str(value.name)
    return None


def kind_of(model: Any) -> str:
    """What the export computes in, for people: ``dynamic int8``, ``weight-only int8``,
    ``float16`` or ``float32``."""
    import onnx

    ops = {node.op_type for node in model.graph.node}
    types = {t.data_type for t in model.graph.initializer if len(t.dims) >= 2}
    if ops & DYNAMIC_QUANTISATION:
        return "dynamic int8"
    if "DequantizeLinear" in ops or "MatMulNBits" in ops or \
            types & {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4,
                     onnx.TensorProto.UINT4}:
        return "weight-only int8"
    if onnx.TensorProto.FLOAT16 in types:
        return "float16"
    return "float32"


def with_outputs(model: Any, names: tuple[str, ...]) -> bytes:
    """The model's bytes with ``names`` added to the graph's outputs (types left to the
    runtime), so that one run returns them; the computation is otherwise the same."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    copy.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    return bytes(copy.SerializeToString())


def check_attention(array: np.ndarray, length: int, num_heads: int, node: str,
                    file: Path) -> np.ndarray:
    """One run's attention tensor as float32 ``[head, query, key]``; a shape other than
    ``[1, heads, t, t]`` (or ``[heads, t, t]``) is a `ModelFormatError` naming the node."""
    if array.shape in ((1, num_heads, length, length), (num_heads, length, length)):
        return np.asarray(array, dtype=np.float32).reshape(num_heads, length, length)
    raise ModelFormatError(f"{file}: node {node!r} (Softmax) gives attention of shape "
                           f"{tuple(array.shape)} for a {length}-token sentence; expected "
                           f"(1, {num_heads}, {length}, {length}) with the config.json's "
                           f"{num_heads} heads: headprobe cannot place its heads")


def _first_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text[:300]
