"""What every loaded model offers, whatever computes it (SPEC §9): a name, sizes, a tokenizer,
a fingerprint, `run` / `iter_runs` over texts, and head-removal effects where the format allows.

`headprobe.model.loaded.Model` computes a checkpoint with headprobe's own JAX encoders;
`headprobe.model.export.runner.ExportModel` runs an ONNX export in onnxruntime. A new model
format is a new subclass: it implements `iter_runs` (and `iter_effects`, `context_means`, or
says why it cannot) and sets `measures_outputs`.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from pathlib import Path

import numpy as np

from headprobe import notebook
from headprobe.errors import UsageError
from headprobe.model.config import EncoderConfig
from headprobe.model.tokenize import Tokenizer
from headprobe.runs import Encoding, Run

WEIGHTINGS = ("attention", "norm")  # as `headprobe.model.encoder.WEIGHTINGS` (no JAX here)


class EncoderModel:
    """A loaded encoder: ``name``, ``path``, ``config``, ``tokenizer``, ``has_mlm_head``."""

    #: Whether the model can give what heads write (``weighting="norm"``, output norms,
    #: head-removal effects: SPEC §14), which needs its value and output weights.
    measures_outputs = True
    #: What the model is, for people (``checkpoint``, ``ONNX export (dynamic int8)``).
    kind = "checkpoint"

    def __init__(self, *, name: str, path: Path, config: EncoderConfig, tokenizer: Tokenizer,
                 has_mlm_head: bool) -> None:
        self.name = name
        self.path = Path(path)
        self.config = config
        self.tokenizer = tokenizer
        self.has_mlm_head = has_mlm_head
        self.padded_tokens = 0  # tokens computed (rows x row length), over every call

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, layers={self.num_layers}, "
                f"heads={self.num_heads}, mlm_head={self.has_mlm_head}, "
                f"path={str(self.path)!r})")

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16): name, family, sizes, fingerprint, max length,
        masked-LM head, local layers."""
        text, markup = notebook.described(self.name, self._display_rows())
        return notebook.bundle(text, markup, include, exclude)

    def _display_rows(self) -> list[tuple[str, str]]:
        return notebook.model_rows(family=self.config.model_type, kind=self.kind,
                                   layers=self.num_layers, heads=self.num_heads,
                                   fingerprint=self.fingerprint, max_length=self.max_length,
                                   mlm_head=self.has_mlm_head, windows=self.windows)

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def windows(self) -> tuple[int | None, ...]:
        """Per layer, how many positions each side its heads reach (a local layer), or None
        (the whole sentence): `EncoderConfig.windows`."""
        return self.config.windows

    @property
    def max_length(self) -> int:
        """The most tokens (``[CLS]`` and ``[SEP]`` included) one text may have."""
        return self.config.max_length

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """Tokens, ids, word ids and offsets per text, without running the model."""
        return self.tokenizer.encode(as_texts(texts))

    def run(self, texts: Sequence[str], *, hidden_states: bool = True, mlm_logits: bool = True,
            num_layers: int | None = None, batch_size: int = 32, weighting: str = "attention",
            output_norms: bool = False) -> list[Run]:
        """Run every text; one `Run` per text, in input order.

        ``mlm_logits`` are given only when the model has the masked-LM head and all layers run.
        ``num_layers`` runs only the first layers (attentions then cover those layers).
        ``batch_size``: the most packed rows per batch. ``weighting="norm"``: the runs'
        attentions are the value-aware weights of SPEC §14.1. ``output_norms``: the runs carry
        every head's ``||o_h(i)|| / ||x(i)||`` (SPEC §14.3).
        """
        runs: list[Run | None] = [None] * len(texts)
        for index, run in self.iter_runs(texts, hidden_states=hidden_states,
                                         mlm_logits=mlm_logits, num_layers=num_layers,
                                         batch_size=batch_size, weighting=weighting,
                                         output_norms=output_norms):
            runs[index] = run
        return runs  # type: ignore[return-value]

    def iter_runs(self, texts: Sequence[str], *, hidden_states: bool = True,
                  mlm_logits: bool = True, num_layers: int | None = None,
                  batch_size: int = 32, copy: bool = True,
                  encodings: Sequence[Encoding] | None = None,
                  heads: Sequence[tuple[int, int]] | None = None, weighting: str = "attention",
                  output_norms: bool = False) -> Iterator[tuple[int, Run]]:
        raise NotImplementedError

    def effects(self, texts: Sequence[str], heads: Sequence[tuple[int, int]], *,
                ablation: str = "mean", effect: str = "hidden", together: bool = False,
                means: np.ndarray | None = None) -> list[np.ndarray]:
        """Per text, float32 ``[variant, token]``: what removing heads does at each token
        (SPEC §14.2). See `iter_effects`."""
        found: list[np.ndarray | None] = [None] * len(texts)
        for index, values in self.iter_effects(texts, heads, ablation=ablation, effect=effect,
                                               together=together, means=means):
            found[index] = values
        return found  # type: ignore[return-value]

    def iter_effects(self, texts: Sequence[str], heads: Sequence[tuple[int, int]], *,
                     ablation: str = "mean", effect: str = "hidden", together: bool = False,
                     means: np.ndarray | None = None,
                     encodings: Sequence[Encoding] | None = None
                     ) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def context_means(self, texts: Sequence[str], *,
                      encodings: Sequence[Encoding] | None = None) -> np.ndarray:
        raise NotImplementedError

    # ---- checks every format shares ----

    def _check_run_options(self, num_layers: int | None, weighting: str,
                           batch_size: int) -> int:
        """The depth to run; a bad option is a `UsageError`."""
        depth = self._check_depth(num_layers)
        if weighting not in WEIGHTINGS:
            raise UsageError(f"weighting: expected one of {', '.join(WEIGHTINGS)}, "
                             f"got {weighting!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size: expected a positive integer, got {batch_size!r}")
        return depth

    def _encodings(self, texts: Sequence[str],
                   encodings: Sequence[Encoding] | None) -> list[Encoding]:
        """``encodings`` checked against ``texts``, else ``texts`` tokenized; lengths checked."""
        if encodings is None:
            encodings = self.tokenize(texts)
        else:
            encodings = list(encodings)
            texts = as_texts(texts)
            if len(encodings) != len(texts) or any(
                    getattr(e, "text", None) != t for e, t in zip(encodings, texts)):
                raise UsageError("encodings: expected model.tokenize(texts), one encoding per "
                                 "text in the same order")
        self._check_lengths(encodings)
        return list(encodings)

    def _check_depth(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) \
                or not 1 <= num_layers <= self.num_layers:
            raise UsageError(f"num_layers: expected an integer in 1..{self.num_layers} for "
                             f"{self.name}, got {num_layers!r}")
        return num_layers

    def _check_heads(self, heads: Sequence[tuple[int, int]] | None,
                     depth: int) -> tuple[tuple[int, int], ...] | None:
        """The selected heads in layer order, or None for every head of the layers run."""
        if heads is None:
            return None
        selected = tuple(sorted({(int(layer), int(head)) for layer, head in heads}))
        if not selected or any(not (0 <= layer < depth and 0 <= head < self.num_heads)
                               for layer, head in selected):
            raise UsageError(f"heads: expected 0-based (layer, head) pairs within "
                             f"{depth} layers and {self.num_heads} heads, got {heads!r}")
        if len(selected) == depth * self.num_heads:
            return None  # every head: the plain program
        return selected

    def _check_lengths(self, encodings: Sequence[Encoding]) -> None:
        for encoding in encodings:
            if len(encoding) > self.max_length:
                shown = encoding.text if len(encoding.text) <= 80 else encoding.text[:77] + "..."
                raise UsageError(
                    f"text {shown!r} has {len(encoding)} tokens with its special tokens; "
                    f"{self.name} takes at most {self.max_length}. Shorten or split it.")


def as_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of strings; a bare string or a non-string is a `UsageError`."""
    if isinstance(texts, str):
        raise UsageError(f"texts: expected a list of strings, got one string {texts[:40]!r}; "
                         "wrap it in a list: model.run([text]).")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise UsageError(f"texts: expected strings, got {type(bad[0]).__name__} {bad[0]!r}")
    return list(texts)
