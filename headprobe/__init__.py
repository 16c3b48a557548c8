"""headprobe: pytest for attention heads.

``headprobe.load(spec)`` gives a loaded model (a `headprobe.engine.models.ModelHandle`): its
attention arrays (``model.run``), every attribute of `headprobe.model.loaded.Model`, and its
claim builder (``model.claim("L2H9: token -> next").over(sentences).argmax()``), in a test, a
script or a notebook. ``import headprobe`` is cheap: the model code (JAX) and the evaluation
(numpy) are imported on first use of `load`.
"""

from __future__ import annotations

import typing as _typing

from headprobe._version import __version__

if _typing.TYPE_CHECKING:  # pragma: no cover
    from headprobe.engine.models import ModelHandle

__all__ = ["__version__", "load"]


def load(spec: str | None = None, **options: _typing.Any) -> ModelHandle:
    """Load a BERT-family model: a local folder, or a hub id with optional ``@revision``.

    Resolution (SPEC §7): local directory; installed package bundling the hub id; the Hugging Face
    cache; a download through huggingface_hub. ``None`` means ``bert-base-uncased``.
    """
    # JAX and numpy: imported only when a model is loaded.
    from headprobe.engine.models import ModelHandle
    from headprobe.model.loaded import load as _load

    return ModelHandle.of(_load(spec, **options))


def __dir__() -> list[str]:
    return sorted(__all__)
