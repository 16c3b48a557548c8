"""A model whose weights load on first use: a warm re-run needs only its fingerprint and tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headprobe.cache.fingerprints import Fingerprint, fingerprint_result, model_fingerprint


@dataclass
class DeferredModel:
    """A model whose weights load on first use; ``fingerprint`` and ``tokenize`` need no weights.

    Any other attribute (``run``, ``iter_runs``, ``name`` ...) loads the model through ``load``.
    """

    load: Callable[[], Any]
    folder: Path
    tokenizer: Any
    num_layers: int
    num_heads: int
    memo_root: Path | None = None
    background: Future[Fingerprint] | None = None  # a fingerprint already being computed
    _model: Any = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = (fingerprint_result(self.background)
                                 if self.background is not None
                                 else model_fingerprint(self.folder, memo_root=self.memo_root))
        return self._fingerprint

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        return self.tokenizer.encode(texts)

    def model(self) -> Any:
        if self._model is None:
            self._model = self.load()
        return self._model

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.model(), name)
