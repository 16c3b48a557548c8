"""Profiles and diffs in Python (SPEC §11, §16): ``headprobe.profile``, ``headprobe.load_profile``
and ``headprobe.diff``, what ``headprobe profile`` and ``headprobe diff`` compute, on the same
code (`headprobe.engine.profiling`, `headprobe.regression`) and the same forward cache.

A model is a loaded model (``headprobe.load``), or a model spec loaded here only if a sentence
misses the cache; one side of a diff may also be a `Profile` or the path of a saved profile
file. Sentences are a list of strings (or `Sentence` objects), a `pathlib.Path` of a sentence
file, or None: the bundled English set the commands use. The cache is the commands' (``True``:
``cache_dir`` of ./pyproject.toml's ``[tool.headprobe]``, ``$HEADPROBE_CACHE_DIR``, else the
user cache), another folder, or ``False`` for none.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from headprobe.cache.entries import ForwardCache
from headprobe.claims.sentences import parse_annotated
from headprobe.claims.spec import LEVELS, Sentence
from headprobe.engine.claim_api import check_choice
from headprobe.engine.models import ModelHandle, ModelRegistry
from headprobe.engine.profiling import (
    Side,
    check_profile_level,
    check_profile_sentences,
    check_sides,
    compute_profile,
)
from headprobe.errors import ClaimFileError, UsageError
from headprobe.model.base import EncoderModel
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.progress import ProgressFactory, progress_bars
from headprobe.regression.diff import DEFAULT_TOLERANCE, ProfileDiff, diff_profiles
from headprobe.regression.profiles import Profile, looks_like_profile, read_profile
from headprobe.sentence_sets import load_sentences
from headprobe.settings import read_settings

ModelLike = ModelHandle | EncoderModel | str | os.PathLike[str]
SideLike = ModelLike | Profile
Sentences = Iterable[str | Sentence] | os.PathLike[str] | None
CacheOption = bool | str | os.PathLike[str]


class _Session:
    """What one call uses: a registry for model specs, the forward cache, progress bars."""

    def __init__(self, cache: CacheOption) -> None:
        if not isinstance(cache, (bool, str, os.PathLike)):
            raise UsageError(f"cache: expected True, False or a folder, got {cache!r}")
        enabled = cache is not False
        folder = None if isinstance(cache, bool) else cache
        root = cache_root(folder or (read_settings(Path(".")).cache_dir if enabled else None))
        self.registry = ModelRegistry(
            memo_root=root if enabled else None,
            programs=False if compilation_cache_disabled() else root / "jax")
        self.cache = ForwardCache(root, enabled=enabled)
        self.progress: ProgressFactory | None = progress_bars(0)

    def model(self, model: ModelLike) -> ModelHandle:
        """A handle to ``model``: as given, or a spec resolved through the registry (its
        weights load only when a sentence misses the cache)."""
        if isinstance(model, ModelHandle):
            return model
        if isinstance(model, EncoderModel):
            return ModelHandle.of(model)
        if isinstance(model, (str, os.PathLike)):
            return self.registry.handle(os.fspath(model))
        raise UsageError(f"model: expected a loaded model (headprobe.load) or a model spec, "
                         f"got {type(model).__name__} {model!r}")

    def side(self, side: SideLike) -> Side:
        """One side of a diff: a `Profile`, a saved profile (a ``.json`` file that exists), or
        a model."""
        if isinstance(side, Profile):
            return side
        if isinstance(side, (str, os.PathLike)) and looks_like_profile(side):
            return read_profile(side)
        return self.model(side)


@contextmanager
def _session(cache: CacheOption) -> Iterator[_Session]:
    session = _Session(cache)
    try:
        yield session
    finally:
        session.cache.close()


def profile(model: ModelLike, sentences: Sentences = None, *, level: str = "token",
            effects: bool = False, cache: CacheOption = True) -> Profile:
    """Every head's standard statistics over ``sentences`` (``headprobe profile``)."""
    check_choice("level", level, LEVELS)
    with _session(cache) as session:
        handle = session.model(model)
        texts, _ = sentence_texts(sentences)
        return compute_profile(handle, texts, level=level, cache=session.cache,
                               progress=session.progress, effects=_flag("effects", effects))


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """A profile file (``headprobe profile -o``, `Profile.save`); a `UsageError` naming the
    file for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"path: expected the path of a profile file, got "
                         f"{type(path).__name__} {path!r}")
    return read_profile(path)


def diff(a: SideLike, b: SideLike, sentences: Sentences = None, *, level: str | None = None,
         tolerance: float = DEFAULT_TOLERANCE, effects: bool = False,
         cache: CacheOption = True) -> ProfileDiff:
    """Which heads changed from ``a`` to ``b`` (``headprobe diff``): models are profiled on
    ``sentences`` (None: the sentences of a profile given in this process, else the bundled
    set) at ``level`` (None: a given profile's, else token); profiles are checked against
    what is asked for."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise UsageError(f"tolerance: expected a number >= 0, got {tolerance!r}")
    if level is not None:
        check_choice("level", level, LEVELS)
    effects = _flag("effects", effects)
    with _session(cache) as session:
        sides = (session.side(a), session.side(b))
        names = tuple(_name(given, side) for given, side in zip((a, b), sides))
        check_sides(sides, names, effects=effects, effects_option="effects",
                    profile_effects="headprobe.profile(..., effects=True)")
        given = [side for side in sides if isinstance(side, Profile)]
        texts, label = _diff_sentences(sentences, given)
        chosen = level if level is not None else given[0].level if given else "token"
        for side, name in zip(sides, names):  # before anything is profiled
            if isinstance(side, Profile) and level is not None:
                check_profile_level(side, name, level)
            if isinstance(side, Profile):  # the texts are known: bundled, given or a profile's
                check_profile_sentences(side, name, texts, label, sentences_option="sentences")
        a_profile, b_profile = (
            side if isinstance(side, Profile) else
            compute_profile(side, texts, level=chosen, cache=session.cache,
                            progress=session.progress, effects=effects)
            for side in sides)
        return diff_profiles(a_profile, b_profile, tolerance)


def _diff_sentences(sentences: Sentences, given: list[Profile]) -> tuple[list[str], str]:
    """The texts a diff profiles its models on: ``sentences``; else those of a profile
    computed in this process (a profile file keeps only their digest); else the bundled set."""
    if sentences is None:
        for found in given:
            if found.texts:
                return list(found.texts), f"the sentences of the profile of {found.model}"
    return sentence_texts(sentences)


def sentence_texts(sentences: Sentences) -> tuple[list[str], str]:
    """``(texts, what they are)``: a list of strings (``[text]{label}`` annotations read as in
    sentence files) or `Sentence` objects; a `pathlib.Path` of a sentence file; None: the
    bundled English set. A bare string is a `UsageError` (one sentence or a file?)."""
    if sentences is None or isinstance(sentences, os.PathLike):
        found, label = load_sentences(sentences)
        return [s.text for s in found], label
    if isinstance(sentences, str):
        raise UsageError(f"sentences: expected a list of sentences or a pathlib.Path of a "
                         f"sentence file, got one string {sentences[:40]!r}; write [text] for "
                         f"one sentence, Path(file) for a file")
    texts = []
    for index, sentence in enumerate(sentences):
        if isinstance(sentence, Sentence):
            texts.append(sentence.text)
            continue
        try:
            texts.append(parse_annotated(sentence, "python").text)
        except ClaimFileError as error:
            raise UsageError(f"sentences[{index}]: {error.message}") from None
    return texts, f"the {len(texts)} sentences given"


def _name(given: SideLike, side: Side) -> str:
    """A side as its user named it (for messages)."""
    if isinstance(given, (str, os.PathLike)):
        return os.fspath(given)
    return side.model if isinstance(side, Profile) else side.name


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name}: expected True or False, got {value!r}")
    return value
