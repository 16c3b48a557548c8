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
    from headprobe.engine.views import View

__all__ = ["__version__", "load", "view"]


def load(spec: str | None = None, **options: _typing.Any) -> ModelHandle:
    """Load a BERT-family model: a local folder, or a hub id with optional ``@revision``.

    Resolution (SPEC §7): local directory; installed package bundling the hub id; the Hugging Face
    cache; a download through huggingface_hub. ``None`` means ``bert-base-uncased``.
    """
    # JAX and numpy: imported only when a model is loaded.
    from headprobe.engine.models import ModelHandle
    from headprobe.model.loaded import load as _load

    return ModelHandle.of(_load(spec, **options))


def view(model: _typing.Any, sentence: str, heads: _typing.Any = None, level: str = "token",
         weighting: str = "attention") -> View:
    """An interactive view of where ``model``'s heads look on ``sentence`` (SPEC §16): one
    self-contained HTML document (no network) that shows itself in Jupyter and VS Code;
    ``.save(path)`` writes it for a browser. Hover, click or focus a token to see where it looks;
    pick a head, switch token/word level and weighting.

    ``model``: what `load` returns. ``heads``: ``"L2H9"``, a pattern (``"L2H*"``), a list of
    names or of 1-based ``(layer, head)`` pairs, or None for every head. ``level`` and
    ``weighting`` (``"attention"``, or ``"norm"``: SPEC §14.1) are shown first; a model that
    measures outputs carries both weightings. A view holds at most 144 x 128 x 128 weights (every
    head of a 12 x 12 model on a 128-token sentence, at one level and weighting); more is a
    `UsageError` saying to pick fewer heads or a shorter sentence.
    """
    # numpy and the model's runs: imported only when a view is made.
    from headprobe.engine.views import view as _view

    return _view(model, sentence, heads=heads, level=level, weighting=weighting)


def __dir__() -> list[str]:
    return sorted(__all__)
