"""The models an evaluation uses: resolved once, fingerprinted in the background, loaded late.

`ModelRegistry.info` resolves a spec and reads its config and tokenizer (collection needs no
more); the fingerprint is hashed meanwhile in a thread. `ModelRegistry.deferred` gives a
`DeferredModel`, whose fingerprint and tokens come from the files, so that a run served entirely
by the forward cache never loads the weights (or JAX). `ModelLike` is what evaluation needs of a
model: a loaded `headprobe.model.api.Model` and a `DeferredModel` both are one.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from headprobe.cache.fingerprints import Fingerprint, fingerprint_result, start_fingerprint
from headprobe.errors import HeadprobeError
from headprobe.modelinfo import ModelInfo, inspect_model
from headprobe.runs import Encoding, Run

if TYPE_CHECKING:  # the model code imports JAX: only for annotations here
    from headprobe.model.api import Model


class ModelLike(Protocol):
    """What evaluation asks of a model (`headprobe.model.api.Model` offers all of it)."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def num_heads(self) -> int: ...

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]: ...

    def iter_runs(self, texts: Sequence[str], *, hidden_states: bool = True,
                  mlm_logits: bool = True, num_layers: int | None = None, batch_size: int = 32,
                  copy: bool = True, encodings: Sequence[Encoding] | None = None,
                  ) -> Iterator[tuple[int, Run]]: ...

    def run(self, texts: Sequence[str], *, hidden_states: bool = True, mlm_logits: bool = True,
            num_layers: int | None = None, batch_size: int = 32) -> list[Run]: ...


class DeferredModel:
    """A model whose weights load on first use: ``name``, ``fingerprint``, the sizes and
    ``tokenize`` need only its files; ``iter_runs`` and ``run`` load it through ``load``."""

    def __init__(self, load: Callable[[], Model], info: ModelInfo,
                 fingerprint: Future[Fingerprint]) -> None:
        self._load = load
        self._info = info
        self._fingerprint = fingerprint
        self._model: Model | None = None

    @property
    def name(self) -> str:
        return self._info.spec

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def fingerprint(self) -> str:
        return fingerprint_result(self._fingerprint)

    @property
    def num_layers(self) -> int:
        return self._info.num_layers

    @property
    def num_heads(self) -> int:
        return self._info.num_heads

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        return self._info.tokenizer.encode(texts)

    def model(self) -> Model:
        if self._model is None:
            self._model = self._load()
        return self._model

    def iter_runs(self, texts: Sequence[str], **options: object) -> Iterator[tuple[int, Run]]:
        return self.model().iter_runs(texts, **options)  # type: ignore[arg-type]

    def run(self, texts: Sequence[str], **options: object) -> list[Run]:
        return self.model().run(texts, **options)  # type: ignore[arg-type]


class ModelRegistry:
    """Every model of a run, by spec: its `ModelInfo` (or why it cannot be had), its
    fingerprint future and, once needed, the loaded model.

    ``memo_root``: where fingerprints are remembered (None: nowhere); ``programs``: where
    compiled programs are kept (`headprobe.load`'s ``compilation_cache``: a folder, or False)."""

    def __init__(self, *, memo_root: Path | None, programs: Path | bool) -> None:
        self.memo_root = memo_root
        self.programs = programs
        self._infos: dict[str, ModelInfo | None] = {}
        self._errors: dict[str, HeadprobeError] = {}
        self._fingerprints: dict[str, Future[Fingerprint]] = {}
        self._models: dict[str, Model] = {}

    def info(self, spec: str) -> ModelInfo | None:
        """Config and tokenizer of ``spec``, or None when it cannot be had (see `errors`)."""
        if spec not in self._infos:
            try:
                info = inspect_model(spec)
            except HeadprobeError as error:
                self._infos[spec] = None
                self._errors[spec] = error
                return None
            self._infos[spec] = info
            # Hashed while collection goes on; the cache lookups need it first.
            self._fingerprints[spec] = start_fingerprint(info.folder, memo_root=self.memo_root)
        return self._infos[spec]

    @property
    def errors(self) -> dict[str, HeadprobeError]:
        """Why each model that cannot be had cannot be had, by spec."""
        return dict(self._errors)

    def loaded(self, spec: str) -> Model:
        """The loaded model (weights on the device), once per spec; raises `HeadprobeError`."""
        if spec not in self._models:
            import headprobe  # the model code imports JAX: only once a model is needed

            self._models[spec] = headprobe.load(spec, compilation_cache=self.programs)
            # JAX, Flax and the weights are hundreds of thousands of long-lived objects that
            # every full garbage collection would walk again: move everything alive now out of
            # the collector's reach.
            gc.freeze()
        return self._models[spec]

    def deferred(self, spec: str) -> ModelLike:
        """``spec`` as a model whose weights load only when something needs a forward pass
        (the loaded model itself once it is loaded)."""
        info = self.info(spec)
        if info is None or spec in self._models:
            return self.loaded(spec)
        return DeferredModel(lambda: self.loaded(spec), info, self._fingerprints[spec])
