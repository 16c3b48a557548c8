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
    import os

    from headprobe.engine.models import ModelHandle
    from headprobe.engine.profile_api import CacheOption, ModelLike, Sentences, SideLike
    from headprobe.engine.views import View
    from headprobe.regression.diff import ProfileDiff
    from headprobe.regression.profiles import Profile

__all__ = ["__version__", "diff", "load", "load_profile", "profile", "view"]


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


def profile(model: ModelLike, sentences: Sentences = None, *, level: str = "token",
            effects: bool = False, cache: CacheOption = True) -> Profile:
    """Every head's standard statistics over ``sentences`` (SPEC §11; ``headprobe profile``).

    ``model``: what `load` returns, or a model spec (loaded only if a sentence misses the
    cache). ``sentences``: a list of strings, a `pathlib.Path` of a sentence file, or None for
    the bundled English set. ``level``: token or word; ``effects``: also ``effect:hidden``
    (about one forward pass per head). ``cache``: the commands' forward cache (True), another
    folder, or False. The `Profile` shows itself in Jupyter; ``.save(path)`` writes its file.
    """
    # numpy and the model code: imported only when a profile is made.
    from headprobe.engine.profile_api import profile as _profile

    return _profile(model, sentences, level=level, effects=effects, cache=cache)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """A profile file (``headprobe profile -o``, ``Profile.save``); a `UsageError` naming the
    file for anything else."""
    from headprobe.engine.profile_api import load_profile as _load_profile

    return _load_profile(path)


def diff(a: SideLike, b: SideLike, sentences: Sentences = None, *, level: str | None = None,
         tolerance: float = 0.05, effects: bool = False,
         cache: CacheOption = True) -> ProfileDiff:
    """Which heads changed from ``a`` to ``b`` (SPEC §11; ``headprobe diff``): each a loaded
    model, a model spec, a `Profile` or the path of a saved profile (``*.json``).

    Models are profiled on ``sentences`` (None: those of a profile made in this process, else
    the bundled English set) at ``level`` (None: a given profile's, else token). A head changed
    when its largest |change| exceeds ``tolerance``. Sides that cannot be compared (other
    sizes, levels or sentences) are a `UsageError`. The `ProfileDiff` shows itself in Jupyter
    (changes grid and table); ``.changed`` lists the changed heads, ``.heads`` every head.
    """
    from headprobe.engine.profile_api import diff as _diff

    return _diff(a, b, sentences, level=level, tolerance=tolerance, effects=effects,
                 cache=cache)


def __dir__() -> list[str]:
    return sorted(__all__)
