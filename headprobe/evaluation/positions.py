"""Positions at a level, and the sources and targets of a claim among them (SPEC §3).

Pure numpy. A `LevelView` is one `Run` seen at ``level: token`` (wordpieces) or ``level: word``
(the tokenizer's words from `Run.word_groups`, each special token a word of its own). It is built
once per (run, level) and cached, so many claims over the same run share it; word-level attention
matrices are computed lazily, only for the heads asked for, and cached too.

A `Selection` is what a claim picks out of one view: the counted source positions, a boolean
target matrix ``[source, position]`` and how many sources were left out for having no target.
A claim without a target (``measure: entropy``) counts every source and has no target cells.
"""

from __future__ import annotations

import functools
import unicodedata
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headprobe.claims.spec import LEVELS, Source, Span, Target
from headprobe.claims.wordregex import WordPattern, WordRegexError, compile_word_regex
from headprobe.errors import ClaimFileError
from headprobe.heads import Head
from headprobe.runs import Run

_STEPS = {"next": 1, "previous": -1, "self": 0}


@dataclass(frozen=True, eq=False)
class _Text:
    """What a view's text-derived fields are computed from (the run's, not the run itself)."""

    text: str
    tokens: tuple[str, ...]
    labels: tuple[str, ...]  # what figures call each token (`Encoding.display_tokens`)
    offsets: tuple[tuple[int, int], ...]
    token_groups: tuple[tuple[int, ...], ...]  # token positions per word
    token_word: np.ndarray  # int [token]: the word each token belongs to
    special_token: np.ndarray  # bool [token]


@dataclass(frozen=True, eq=False)
class LevelView:
    """A run at one level. Every per-position array has length ``size``.

    It holds the run's attention array but not the `Run` itself, so the per-run cache entry
    goes away with the run. The fields made from the text (``labels``, ``word_texts``, ``chars``,
    ``piece_offsets``) are computed on first use: most claims need none of them.

    Attributes:
      attentions: the run's float32 ``[layer, head, query, key]`` (token level).
      level: ``"token"`` or ``"word"``.
      groups: per position, the token positions it is made of (one each at token level).
      special: bool ``[position]``: ``[CLS]``, ``[SEP]`` and other specials, never ``[MASK]``.
      is_cls, is_sep, is_mask: bool ``[position]``.
      word_of: int ``[position]``: which word a position belongs to (for ``same-word``).
      labels: what a position is called in figures: the wordpiece, or the word's text.
      word_texts: per position, the whole word it belongs to (for ``word:REGEX``).
      chars: per position, its own characters (for ``punct``).
      piece_offsets: per position, the character ranges of its pieces (for ``span:LABEL``).
    """

    attentions: np.ndarray
    level: str
    groups: tuple[tuple[int, ...], ...]
    special: np.ndarray
    is_cls: np.ndarray
    is_sep: np.ndarray
    is_mask: np.ndarray
    word_of: np.ndarray
    _text: _Text = field(repr=False)
    _matrices: dict = field(default_factory=dict, repr=False)  # head -> [word, word]
    _stacks: dict = field(default_factory=dict, repr=False)  # heads -> [head, word, word]
    _selections: dict = field(default_factory=dict, repr=False)

    @functools.cached_property
    def _token_word_texts(self) -> tuple[str, ...]:
        """Per token: its whole word's text (specials: the token itself)."""
        t = self._text
        word_text = list(t.tokens)
        for pieces in t.token_groups:
            if not t.special_token[pieces[0]]:
                text = t.text[t.offsets[pieces[0]][0]:t.offsets[pieces[-1]][1]]
                for i in pieces:
                    word_text[i] = text
        return tuple(word_text)

    @functools.cached_property
    def word_texts(self) -> tuple[str, ...]:
        return tuple(self._token_word_texts[pieces[0]] for pieces in self.groups)

    @functools.cached_property
    def labels(self) -> tuple[str, ...]:
        return self._text.labels if self.level == "token" else self.word_texts

    @functools.cached_property
    def chars(self) -> tuple[str, ...]:
        if self.level == "word":
            return self.labels
        t = self._text
        return tuple(t.tokens[i] if t.special_token[i] else _token_chars(t, i)
                     for i in range(len(t.tokens)))

    @functools.cached_property
    def piece_offsets(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        return tuple(tuple(self._text.offsets[i] for i in pieces) for pieces in self.groups)

    @property
    def size(self) -> int:
        return len(self.groups)

    def matrix(self, head: Head) -> np.ndarray:
        """``[query, key]`` attention of ``head`` at this level."""
        return self.rows((head,), np.arange(self.size))[0]

    def rows(self, heads: tuple[Head, ...], sources: np.ndarray) -> np.ndarray:
        """``[head, source, position]``: the attention rows of ``sources`` per head (the run's
        float32 at token level, float64 at word level).

        At word level a word's row is the mean of its pieces' rows and attention to a word is
        the sum over its pieces (Clark et al. 2019): ``W = mean_rows(G)ᵀ · A · G`` with ``G`` the
        ``[token, word]`` membership; word matrices are computed once per head and cached.
        """
        heads = tuple(heads)
        if self.level == "token":
            layers, indices = head_indices(self.attentions, heads)
            sources = np.asarray(sources, dtype=np.int64)
            if len(heads) == 1:  # the common case: a [query, key] view, then its rows
                return self.attentions[layers[0], indices[0]][sources][None]
            return self.attentions[layers, indices][:, sources]
        stacked = self._stacks.get(heads)  # [h, word, word] when computed for these heads
        if stacked is not None:
            return stacked[:, sources]
        missing = [head for head in dict.fromkeys(heads) if head not in self._matrices]
        if missing:
            tokens = self.attentions[head_indices(self.attentions, tuple(missing))]  # [h, q, k]
            if self.size == tokens.shape[-1]:  # every word one piece: W = A, exactly
                words = tokens.astype(np.float64)
            else:
                owner = self._text.token_word
                membership = np.zeros((tokens.shape[-1], self.size))  # [token, word]
                membership[np.arange(owner.size), owner] = 1.0
                mean_rows = membership / membership.sum(axis=0, keepdims=True)
                words = mean_rows.T @ tokens.astype(np.float64) @ membership  # [h, word, word]
            self._matrices.update(zip(missing, words))
            if tuple(missing) == heads:
                self._stacks[heads] = words
                return words[:, sources]
        return np.stack([self._matrices[head][sources] for head in heads])


def head_indices(attentions: np.ndarray, heads: tuple[Head, ...]) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(layers, heads)`` index arrays into ``attentions[layer, head]`` (via
    `Head.index`), range-checked against the run."""
    return _head_indices(attentions.shape[0], attentions.shape[1], tuple(heads))


@functools.lru_cache(maxsize=1024)
def _head_indices(num_layers: int, num_heads: int,
                  heads: tuple[Head, ...]) -> tuple[np.ndarray, np.ndarray]:
    for head in heads:
        layer, index = head.index
        if not (0 <= layer < num_layers and 0 <= index < num_heads):
            raise ClaimFileError(
                f"head {head} is out of range: this model has layers 1..{num_layers} "
                f"and heads 1..{num_heads} (counted from 1, as in L1H1)")
    pairs = np.array([head.index for head in heads], dtype=np.int64).reshape(-1, 2)
    layers, indices = pairs[:, 0].copy(), pairs[:, 1].copy()
    layers.flags.writeable = indices.flags.writeable = False  # shared by every caller
    return layers, indices


# Per run: its `LevelView`s by level, and under "" the `_RunTokens` both are built from.
_VIEWS: weakref.WeakKeyDictionary[Run, dict[str, Any]] = weakref.WeakKeyDictionary()


def level_view(run: Run, level: str) -> LevelView:
    """The cached `LevelView` of ``run`` at ``level`` (``"token"`` or ``"word"``)."""
    views = _VIEWS.setdefault(run, {})
    if level not in views:
        if level not in LEVELS:
            raise ClaimFileError(f"level must be 'token' or 'word', got {level!r}")
        if "" not in views:  # what both levels are made from, once per run
            views[""] = _run_tokens(run)
        views[level] = _build_view(views[""], level)
    return views[level]


def _token_chars(text: _Text, position: int) -> str:
    start, end = text.offsets[position]
    if end > start:
        return text.text[start:end]
    token = text.tokens[position]
    return token[2:] if token.startswith("##") else token


@dataclass(frozen=True, eq=False)
class _RunTokens:
    """A run's token-level fields that both of its views are built from."""

    attentions: np.ndarray
    text: _Text
    is_mask: np.ndarray  # bool [token]
    is_cls: np.ndarray
    is_sep: np.ndarray


def _run_tokens(run: Run) -> _RunTokens:
    tokens = tuple(run.tokens)
    attentions = np.asarray(run.attentions)
    if attentions.ndim != 4 or attentions.shape[2:] != (len(tokens), len(tokens)):
        raise ValueError(
            f"run attentions must be [layer, head, query, key] with {len(tokens)} query and key "
            f"positions (one per token), got shape {attentions.shape}")
    names = run.specials  # the tokenizer's own cls, sep and mask tokens (SPEC §7b)
    ids = np.asarray(run.input_ids)
    is_mask_token = names.where("mask", list(tokens), ids)
    special_token = np.asarray(run.special_mask, dtype=bool) & ~is_mask_token
    token_groups = tuple(tuple(pieces) for pieces in run.word_groups())
    # word groups are contiguous runs of pieces, in order
    token_word = np.repeat(np.arange(len(token_groups), dtype=np.int64),
                           [len(pieces) for pieces in token_groups])
    is_cls = names.where("cls", list(tokens), ids) & special_token
    is_sep = names.where("sep", list(tokens), ids) & special_token
    for shared in (is_mask_token, special_token, token_word, is_cls, is_sep):
        shared.flags.writeable = False  # both views may hold them
    return _RunTokens(
        attentions=attentions,
        text=_Text(run.text, tokens, tuple(run.display_tokens), tuple(run.offsets), token_groups,
                   token_word, special_token),
        is_mask=is_mask_token, is_cls=is_cls, is_sep=is_sep)


def _build_view(base: _RunTokens, level: str) -> LevelView:
    text = base.text
    size = len(text.tokens)
    if level == "token" or len(text.token_groups) == size:  # every word one piece
        groups = text.token_groups if level == "word" else tuple((i,) for i in range(size))
        word_of = text.token_word  # at word level, with one-piece words: 0, 1, 2, ...

        def any_piece(flags: np.ndarray) -> np.ndarray:
            return flags
    else:
        groups = text.token_groups
        word_of = np.arange(len(groups), dtype=np.int64)
        starts = np.array([pieces[0] for pieces in groups], dtype=np.int64)

        def any_piece(flags: np.ndarray) -> np.ndarray:
            return np.logical_or.reduceat(flags, starts)

    return LevelView(
        attentions=base.attentions, level=level, groups=groups,
        special=any_piece(text.special_token), is_cls=any_piece(base.is_cls),
        is_sep=any_piece(base.is_sep), is_mask=any_piece(base.is_mask), word_of=word_of,
        _text=text)


@dataclass(frozen=True)
class Selection:
    """What a claim picks out of one view.

    Attributes:
      sources: int ``[source]``: the counted source positions (each has at least one target).
      targets: bool ``[source, position]``: the target set of each counted source.
      left_out: sources dropped because their target set was empty.
    """

    sources: np.ndarray
    targets: np.ndarray
    left_out: int

    @property
    def n(self) -> int:
        return int(self.sources.shape[0])


def select(view: LevelView, source: Source, target: Target | None,
           spans: tuple[Span, ...] = ()) -> Selection:
    """Counted sources and their targets for one claim in one view (cached per view). Without
    a target every source is counted, with an all-False target matrix."""
    key = (source, target, spans)
    if key not in view._selections:
        candidates = np.flatnonzero(source_mask(view, source, spans))
        if target is None:
            view._selections[key] = Selection(
                sources=candidates, targets=np.zeros((candidates.size, view.size), dtype=bool),
                left_out=0)
            return view._selections[key]
        targets = target_masks(view, target, candidates, spans)  # [candidate, position]
        counted = targets.any(axis=1)
        view._selections[key] = Selection(
            sources=candidates[counted], targets=targets[counted],
            left_out=int((~counted).sum()))
    return view._selections[key]


def reach(groups: Sequence[Sequence[int]], half: int,
          rows: np.ndarray | None = None) -> np.ndarray:
    """bool ``[row, position]``: positions (tokens, or words made of the token positions
    ``groups``) at most ``half`` tokens from each of ``rows`` (default: every position): what
    a head of a local layer can attend to. Memory: rows x positions."""
    first = np.array([group[0] for group in groups], dtype=np.int32)
    last = np.array([group[-1] for group in groups], dtype=np.int32)
    chosen = np.arange(len(groups)) if rows is None else np.asarray(rows, dtype=np.int64)
    a, b = first[chosen][:, None], first[None, :]
    gap = np.maximum(a, b) - np.minimum(last[chosen][:, None], last[None, :])
    return gap <= half


def within_window(view: LevelView, selection: Selection, half: int) -> Selection:
    """``selection`` for a head that attends only ``half`` tokens each side (a local layer,
    SPEC §7c): targets it cannot reach are dropped, and a source none of whose targets it can
    reach is left out (its attention there is 0 by construction, not by behaviour). At word
    level a word reaches another when any of their tokens are at most ``half`` apart."""
    targets = selection.targets & reach(view.groups, half, selection.sources)
    counted = targets.any(axis=1)
    return Selection(sources=selection.sources[counted], targets=targets[counted],
                     left_out=selection.left_out + int((~counted).sum()))


def source_mask(view: LevelView, source: Source, spans: tuple[Span, ...]) -> np.ndarray:
    """bool ``[position]``: which positions are sources."""
    kind = source.kind
    if kind == "token":
        return ~view.special
    if kind == "all":
        return np.ones(view.size, dtype=bool)
    if kind in ("mask", "cls", "sep", "word", "span"):
        return _shared_mask(view, kind, source.arg, spans)
    raise ClaimFileError(f"unknown source kind {kind!r}")


def target_masks(view: LevelView, target: Target, sources: np.ndarray,
                 spans: tuple[Span, ...]) -> np.ndarray:
    """bool ``[source, position]``: the targets of every source in ``sources``."""
    sources = np.asarray(sources, dtype=np.int64)
    kind = target.kind
    if kind in _STEPS or kind == "offset":
        step = _STEPS[kind] if kind in _STEPS else int(target.offset or 0)
        masks = np.zeros((sources.size, view.size), dtype=bool)
        keys = sources + step
        inside = (keys >= 0) & (keys < view.size)
        masks[np.flatnonzero(inside), keys[inside]] = True
        return masks
    if kind == "same-word":
        masks = (view.word_of[sources][:, None] == view.word_of[None, :]) & ~view.special
        masks[np.arange(sources.size), sources] = False
        return masks
    shared = _punct_mask(view) if kind == "punct" else (
        _shared_mask(view, kind, target.arg, spans)
        if kind in ("mask", "cls", "sep", "word", "span") else None)
    if shared is None:
        raise ClaimFileError(f"unknown target kind {kind!r}")
    return np.broadcast_to(shared, (sources.size, view.size)).copy()


def _shared_mask(view: LevelView, kind: str, arg: str | None,
                 spans: tuple[Span, ...]) -> np.ndarray:
    """The kinds that mean the same as a source and as a target."""
    if kind == "mask":
        return view.is_mask.copy()
    if kind == "cls":
        return view.is_cls.copy()
    if kind == "sep":
        return view.is_sep.copy()
    if kind == "word":
        pattern = _compile(arg or "")
        return np.array([not special and pattern.fullmatch(text) is not None
                         for special, text in zip(view.special, view.word_texts)], dtype=bool)
    ranges = [(s.start, s.end) for s in spans if s.label == arg]
    return np.array([not special and any(_overlaps(piece, r) for piece in pieces for r in ranges)
                     for special, pieces in zip(view.special, view.piece_offsets)], dtype=bool)


def _overlaps(piece: tuple[int, int], span: tuple[int, int]) -> bool:
    return piece[1] > piece[0] and piece[0] < span[1] and span[0] < piece[1]


def _punct_mask(view: LevelView) -> np.ndarray:
    return np.array([not special and bool(chars) and
                     all(unicodedata.category(c).startswith("P") for c in chars)
                     for special, chars in zip(view.special, view.chars)], dtype=bool)


def _compile(regex: str) -> WordPattern:
    try:
        return compile_word_regex(regex)
    except WordRegexError as error:
        raise ClaimFileError(f"word:{regex} is not a valid regular expression ({error}); "
                             f"write one such as word:the|a") from None
