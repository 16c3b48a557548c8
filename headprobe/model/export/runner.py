"""An ONNX export as a model: the graph run in onnxruntime, each layer's attention
probabilities returned as extra outputs (SPEC §15).

The numbers are what the export computes, by construction: the graph is run as it is, with
onnxruntime's default session options, and the tensors its Softmax nodes produce are read
(`headprobe.model.export.graph` places them). Every sentence runs **alone** (a batch of one, no
padding): a dynamically quantised export scales its activations per tensor, so a sentence
batched or padded with others gets other numbers, and the sentence alone is the definition.
Float exports run the same way, so one rule holds for every export (docs/models.md).

What heads write (``weighting="norm"``, output norms, head-removal effects: SPEC §14) needs the
value and output weights, which headprobe does not read out of a graph: asking for them is a
`UsageError` that says to use the checkpoint the export was made from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError, UsageError
from headprobe.model.base import EncoderModel
from headprobe.model.config import EncoderConfig
from headprobe.model.export import graph
from headprobe.model.export.graph import check_size
from headprobe.model.export.locate import ExportFiles
from headprobe.model.families import family_of, read_config
from headprobe.model.tokenize import Tokenizer, load_tokenizer
from headprobe.runs import Encoding, Run


class ExportModel(EncoderModel):
    """An ONNX export loaded into an onnxruntime session. Build with `load_export`."""

    measures_outputs = False

    def __init__(self, *, name: str, files: ExportFiles, config: EncoderConfig,
                 tokenizer: Tokenizer, placed: graph.PlacedGraph, session: Any,
                 digest: str) -> None:
        super().__init__(name=name, path=files.graph, config=config, tokenizer=tokenizer,
                         has_mlm_head=placed.logits is not None)
        self.files = files
        self.placed = placed
        self.kind = f"ONNX export ({placed.kind})"
        self._session = session
        self._fingerprint = digest
        self.loaded_count = 0
        self.compile_count = 0
        self.program_seconds = 0.0

    @property
    def fingerprint(self) -> str:
        """``sha256:`` of the export file."""
        return self._fingerprint

    def iter_runs(self, texts: Sequence[str], *, hidden_states: bool = True,
                  mlm_logits: bool = True, num_layers: int | None = None,
                  batch_size: int = 32, copy: bool = True,
                  encodings: Sequence[Encoding] | None = None,
                  heads: Sequence[tuple[int, int]] | None = None, weighting: str = "attention",
                  output_norms: bool = False) -> Iterator[tuple[int, Run]]:
        """Yield ``(index into texts, Run)``, each text run alone (see the module docstring).
        As `headprobe.model.base.EncoderModel.run`, except that runs carry no hidden states
        (an export gives its last layer's at most) and ``weighting="norm"`` and
        ``output_norms`` are a `UsageError`."""
        depth = self._check_run_options(num_layers, weighting, batch_size)
        if weighting != "attention":
            raise self._needs_checkpoint("weighting: norm")
        if output_norms:
            raise self._needs_checkpoint("output-norm")
        encodings = self._encodings(texts, encodings)
        selected = self._check_heads(heads, depth)
        with_logits = bool(mlm_logits) and self.has_mlm_head and depth == self.num_layers
        names = list(self.placed.attentions[:depth])
        if with_logits:
            names.append(str(self.placed.logits))
        for index, encoding in enumerate(encodings):
            outputs = self._run_one(encoding, names)
            length = len(encoding)
            attentions = np.stack([
                graph.check_attention(out, length, self.num_heads, node, self.files.graph)
                for out, node in zip(outputs[:depth], self.placed.nodes)])
            if selected is not None:
                keep = np.full(attentions.shape[:2], False)
                keep[tuple(zip(*selected))] = True
                attentions[~keep] = np.nan
            self.padded_tokens += length
            yield index, Run(**encoding.encoding_fields(), attentions=attentions,
                             mlm_logits=self._logits(outputs[-1], length) if with_logits
                             else None)

    def _run_one(self, encoding: Encoding, names: list[str]) -> list[np.ndarray]:
        length = len(encoding)
        feeds = {}
        for value in self.placed.inputs:
            if value.name == "input_ids":
                array = np.asarray(encoding.input_ids)
            elif value.name == "attention_mask":
                array = np.ones(length)
            elif value.name == "token_type_ids":
                array = np.zeros(length)
            else:  # position_ids
                offset = self.config.pad_token_id + 1 if self.config.position_offset else 0
                array = np.arange(length) + offset
            feeds[value.name] = array.astype(value.dtype)[None]
        try:
            return list(self._session.run(names, feeds))
        except Exception as error:  # onnxruntime's own errors: a graph it cannot run
            text = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ModelFormatError(f"{self.files.graph}: onnxruntime could not run the export "
                                   f"on {encoding.text[:60]!r}: {text}") from None

    def _logits(self, array: np.ndarray, length: int) -> np.ndarray:
        vocab = self.config.vocab_size
        if array.shape != (1, length, vocab):
            raise ModelFormatError(f"{self.files.graph}: output 'logits' has shape "
                                   f"{tuple(array.shape)}; expected (1, {length}, {vocab}) "
                                   "(masked-LM logits over config.json's vocabulary)")
        return np.asarray(array[0], dtype=np.float32)

    def iter_effects(self, texts: Sequence[str], heads: Sequence[tuple[int, int]], *,
                     ablation: str = "mean", effect: str = "hidden", together: bool = False,
                     means: np.ndarray | None = None,
                     encodings: Sequence[Encoding] | None = None
                     ) -> Iterator[tuple[int, np.ndarray]]:
        raise self._needs_checkpoint("measure: effect")

    def context_means(self, texts: Sequence[str], *,
                      encodings: Sequence[Encoding] | None = None) -> np.ndarray:
        raise self._needs_checkpoint("mean ablation")

    def _needs_checkpoint(self, what: str) -> UsageError:
        return UsageError(needs_checkpoint(what, self.name))


def needs_checkpoint(what: str, name: str) -> str:
    """Why ``what`` (SPEC §14) cannot be had from the export ``name``."""
    return (f"{what} needs the value and output weights of each head, and {name} is an ONNX "
            "export, whose weights headprobe does not read (SPEC §15): measure it on the "
            "checkpoint the export was made from")


def read_export(files: ExportFiles, config: EncoderConfig) -> tuple[Any, graph.PlacedGraph,
                                                                     str]:
    """(the parsed graph, its placed heads, its fingerprint), every check of
    `headprobe.model.export.graph` passed."""
    check_size(files.graph)
    data = files.graph.read_bytes()
    parsed, external = graph.parse(data, files.graph)
    placed = graph.place_heads(parsed, files.graph, config.num_hidden_layers, config.vocab_size)
    digest = hashlib.sha256(data)
    for path in external:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return parsed, placed, "sha256:" + digest.hexdigest()


def load_export(files: ExportFiles, *, name: str) -> ExportModel:
    """The export ``files`` names, ready to run (see the module docstring)."""
    _, onnxruntime = graph.require_onnx(str(files.graph))
    config = read_config(files.companion)
    parsed, placed, digest = read_export(files, config)
    outputs = placed.attentions + ((placed.logits,) if placed.logits else ())
    program = graph.with_outputs(parsed, outputs)
    del parsed
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the runtime's notes are not the user's
    try:
        session = onnxruntime.InferenceSession(program, options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:
        text = (str(error).strip().splitlines() or [type(error).__name__])[0][:400]
        raise ModelFormatError(f"{files.graph}: onnxruntime cannot run the export: "
                               f"{text}") from None
    tokenizer = load_tokenizer(files.companion, family_of(config.model_type))
    return ExportModel(name=name, files=files, config=config, tokenizer=tokenizer,
                       placed=placed, session=session, digest=digest)

