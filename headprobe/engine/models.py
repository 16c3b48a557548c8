"""The models of a process: each resolved once, fingerprinted in the background, loaded late.

Two model types stand in the layers. `headprobe.model.loaded.Model` is a loaded encoder (its
weights on the JAX device). `ModelHandle`, here, is what everything above the model layer holds:
a model by spec, whose name, sizes, fingerprint and tokens come from its files
(`headprobe.model.info.ModelInfo`), whose weights load on the first forward pass, and which
carries the Python claim API (``handle.claim("L2H9: token -> next")``). `headprobe.load` gives
a handle to a model it has just loaded; `ModelRegistry` gives handles of a run's models, each
spec resolved and loaded at most once.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headprobe import notebook
from headprobe.cache.fingerprints import Fingerprint, fingerprint_result, start_fingerprint
from headprobe.engine.claim_api import ClaimQuery, Recorder, build_claim
from headprobe.errors import HeadprobeError
from headprobe.model.base import as_texts
from headprobe.model.families import read_config
from headprobe.model.info import ModelInfo, inspect_model
from headprobe.model.loaded import load_info
from headprobe.runs import Encoding, Run

if TYPE_CHECKING:  # only for annotations here
    from headprobe.model.base import EncoderModel as Model


class ModelHandle:
    """A model by spec. ``name``, ``fingerprint``, the sizes and ``tokenize`` need only its
    files; ``run``, ``iter_runs`` and every other attribute of a loaded
    `headprobe.model.loaded.Model` (``config``, ``path``, ``has_mlm_head`` ...) load it through
    ``load`` on first use. ``recorder`` is told of every claim decided through `claim` (the
    pytest plugin records them for report.json; a script passes none)."""

    def __init__(self, load: Callable[[], Model], info: ModelInfo | None,
                 fingerprint: Future[Fingerprint] | None, *,
                 recorder: Recorder | None = None) -> None:
        self._load = load
        self._info = info
        self._fingerprint = fingerprint
        self._model: Model | None = None
        self.recorder = recorder

    @classmethod
    def of(cls, model: Model, *, recorder: Recorder | None = None) -> ModelHandle:
        """A handle to a model already loaded."""
        handle = cls(lambda: model, None, None, recorder=recorder)
        handle._model = model
        return handle

    def with_recorder(self, recorder: Recorder | None) -> ModelHandle:
        """The same model (loaded once for both), telling ``recorder`` of its decided claims."""
        handle = ModelHandle(self.model, self._info, self._fingerprint, recorder=recorder)
        handle._model = self._model
        return handle

    def __repr__(self) -> str:
        if self._model is not None:
            return repr(self._model)
        return f"ModelHandle({self.name!r}, not loaded)"

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16), from the model's files when it is not loaded:
        showing a handle loads no weights and waits for no fingerprint."""
        if self._model is not None:
            return self._model._repr_mimebundle_(include, exclude)
        assert self._info is not None  # a handle without its model has its files' info
        info = self._info
        try:
            family = read_config(info.folder).model_type
        except HeadprobeError:
            family = "?"
        rows = notebook.model_rows(family=family, kind=info.kind, layers=info.num_layers,
                                   heads=info.num_heads, fingerprint=self._fingerprint_now(),
                                   max_length=info.max_length, mlm_head=info.has_mlm_head,
                                   windows=info.windows or ())
        text, markup = notebook.described(f"{info.spec} (weights not loaded yet)", rows)
        return notebook.bundle(text, markup, include, exclude)

    def _fingerprint_now(self) -> str:
        """The fingerprint if it is known now, else what is being done about it."""
        future = self._fingerprint
        if future is None:
            return "computed when the model loads"
        if not future.done():
            return "being computed"
        return self.fingerprint if future.exception() is None else "could not be computed"

    @property
    def name(self) -> str:
        return self._info.spec if self._info is not None else self.model().name

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is not None:
            return fingerprint_result(self._fingerprint)
        return self.model().fingerprint

    @property
    def num_layers(self) -> int:
        return self._info.num_layers if self._info is not None else self.model().num_layers

    @property
    def measures_outputs(self) -> bool:
        """Whether what heads write (SPEC §14) can be measured: not on an ONNX export."""
        if self._info is not None:
            return self._info.measures_outputs
        return self.model().measures_outputs

    @property
    def kind(self) -> str:
        """``checkpoint``, or ``ONNX export (KIND)``."""
        return self._info.kind if self._info is not None else self.model().kind

    @property
    def num_heads(self) -> int:
        return self._info.num_heads if self._info is not None else self.model().num_heads

    @property
    def max_length(self) -> int:
        return self._info.max_length if self._info is not None else self.model().max_length

    @property
    def windows(self) -> tuple[int | None, ...]:
        """Per layer, how far its heads reach each side (local layers), or None."""
        if self._info is not None and self._info.windows is not None:
            return self._info.windows
        return self.model().windows

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        if self._info is not None:
            return self._info.tokenizer.encode(as_texts(texts))
        return self.model().tokenize(texts)

    def model(self) -> Model:
        """The loaded model (loaded now if it is not yet)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def iter_runs(self, texts: Sequence[str], **options: Any) -> Iterator[tuple[int, Run]]:
        return self.model().iter_runs(texts, **options)

    def run(self, texts: Sequence[str], **options: Any) -> list[Run]:
        return self.model().run(texts, **options)

    def claim(self, text: str, *, level: str = "token", per: str = "pool",
              quantifier: str = "each", baseline: str | None = None,
              margin: float = 0.0, average: str = "pool",
              weighting: str = "attention") -> ClaimQuery:
        """A claim about this model's heads, to measure in a script, a notebook or a test:
        ``model.claim("L2H9: token -> next").over(sentences).argmax()`` (docs/python-api.md)."""
        return build_claim(self, text, level=level, per=per, quantifier=quantifier,
                           baseline=baseline, margin=margin, average=average,
                           weighting=weighting)

    def __getattr__(self, attribute: str) -> Any:
        # Called only for what the handle itself lacks: the loaded model's own attributes. Not
        # for the protocols that tools probe for (copy, pickle, IPython's display hooks): asking
        # whether a handle has one must not load a model.
        if attribute.startswith(("__", "_repr_", "_ipython_")) or attribute in (
                "_model", "_load", "_info", "_fingerprint"):
            raise AttributeError(attribute)
        return getattr(self.model(), attribute)


class ModelRegistry:
    """Every model of a run, by spec: its `ModelInfo` (or why it cannot be had), its
    fingerprint future and, once needed, the loaded model.

    ``memo_root``: where fingerprints are remembered (None: nowhere); ``programs``: where
    compiled programs are kept (`headprobe.load`'s ``compilation_cache``: a folder, True for
    the default one, or False); ``fingerprints``: hash each model's files in the background as
    soon as it is resolved (else a handle's fingerprint is the loaded model's, on demand);
    ``tokenizer``: where ONNX exports without their own config.json and tokenizer take them
    from (``--tokenizer``, SPEC §15)."""

    def __init__(self, *, memo_root: Path | None, programs: Path | bool,
                 fingerprints: bool = True, tokenizer: str | None = None) -> None:
        self.memo_root = memo_root
        self.programs = programs
        self.tokenizer = tokenizer
        self._hash_early = fingerprints
        self._infos: dict[str, ModelInfo | None] = {}
        self._errors: dict[str, HeadprobeError] = {}
        self._fingerprints: dict[str, Future[Fingerprint]] = {}
        self._models: dict[str, Model] = {}

    def info(self, spec: str) -> ModelInfo | None:
        """Config and tokenizer of ``spec``, or None when it cannot be had (see `errors`)."""
        if spec not in self._infos:
            try:
                info = inspect_model(spec, tokenizer=self.tokenizer)
            except HeadprobeError as error:
                self._infos[spec] = None
                self._errors[spec] = error
                return None
            self._infos[spec] = info
            if self._hash_early:  # hashed while collection goes on; cache lookups need it
                self._fingerprints[spec] = start_fingerprint(info.location,
                                                             memo_root=self.memo_root)
        return self._infos[spec]

    @property
    def errors(self) -> dict[str, HeadprobeError]:
        """Why each model that cannot be had cannot be had, by spec."""
        return dict(self._errors)

    def loaded(self, spec: str) -> Model:
        """The loaded model (weights on the device), once per spec, from the folder `info`
        resolved (the spec is resolved once); raises `HeadprobeError`."""
        if spec not in self._models:

            info = self.info(spec)
            if info is None:
                raise self._errors[spec]
            self._models[spec] = load_info(info, name=spec, compilation_cache=self.programs)
            # JAX, Flax and the weights are hundreds of thousands of long-lived objects that
            # every full garbage collection would walk again: move everything alive now out of
            # the collector's reach.
            gc.freeze()
        return self._models[spec]

    def handle(self, spec: str, *, recorder: Recorder | None = None) -> ModelHandle:
        """``spec`` as a handle whose weights load only when something needs a forward pass;
        a model that cannot be had raises its `HeadprobeError`."""
        info = self.info(spec)
        if info is None:
            raise self._errors[spec]
        handle = ModelHandle(lambda: self.loaded(spec), info, self._fingerprints.get(spec),
                             recorder=recorder)
        if spec in self._models:
            handle._model = self._models[spec]
        return handle
