"""``headprobe.view``: a model run on one sentence, made into the interactive view of SPEC §16.

The HTML is built by `headprobe.report.view` from plain numbers; here the sentence goes through
the model (once per weighting the view holds) and each head's matrix is read at both levels
exactly as claims read it (`headprobe.evaluation.positions.level_view`: at word level a word's
row is the mean of its pieces' rows, attention to a word the sum over its pieces). The size is
checked from the tokens, before the model runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from headprobe.claims.spec import LEVELS
from headprobe.errors import ClaimFileError, UsageError
from headprobe.evaluation.positions import level_view
from headprobe.heads import Head, HeadPattern, check_in_range, expand_heads, parse_head_patterns
from headprobe.outputs import check_file, write_file
from headprobe.report.view import (
    LEVEL_NAMES,
    SCALE,
    ViewData,
    ViewLevel,
    check_size,
    frame_height,
    iframe,
    render_view,
)
from headprobe.runs import Run

WEIGHTINGS = ("attention", "norm")


@dataclass(frozen=True, eq=False)
class View:
    """An interactive view of where heads look, as one self-contained HTML document (`html`).

    In Jupyter or VS Code it shows itself (in a sandboxed ``<iframe srcdoc>``); `save` writes
    it to a file to open in a browser."""

    html: str
    text: str
    model: str
    heads: tuple[str, ...]
    level: str
    weighting: str
    height: int = 480

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        heads = self.heads[0] if len(self.heads) == 1 else f"{len(self.heads)} heads"
        return (f"<View {heads} of {self.model} on {shown!r} ({self.level} level, "
                f"{self.weighting}; .save(path) writes the HTML)>")

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the document to ``path`` whole (a temporary file beside it, renamed into
        place); returns the path. A place that cannot be written is a `UsageError` naming it."""
        target = check_file(path, "save")
        write_file(target, self.html.encode("utf-8", errors="backslashreplace"), what="view")
        return os.fspath(path)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self),
                "text/html": iframe(self.html, height=self.height,
                                    title=f"headprobe view of {', '.join(self.heads[:3])}")}


def view(model: Any, sentence: str, heads: Any = None, level: str = "token",
         weighting: str = "attention", *, heads_option: str = "heads") -> View:
    """The interactive view of ``heads`` of ``model`` on ``sentence`` (see `headprobe.view`);
    ``heads_option`` names the caller's way to pick heads in errors (``--head``)."""
    if isinstance(model, str) or not hasattr(model, "run"):
        raise UsageError(f"model: expected a loaded model (headprobe.load(...)), got "
                         f"{type(model).__name__} {model!r:.60}; write "
                         f"headprobe.view(headprobe.load(SPEC), sentence)")
    if not isinstance(sentence, str):
        raise UsageError(f"sentence: expected one text (a str), got {type(sentence).__name__} "
                         f"{sentence!r:.60}; a view shows one sentence")
    _check_choice("level", level, LEVELS)
    _check_choice("weighting", weighting, WEIGHTINGS)
    chosen = pick_heads(heads, model.num_layers, model.num_heads, option=heads_option)
    if model.measures_outputs:
        weightings: tuple[str, ...] = (weighting, *(w for w in WEIGHTINGS if w != weighting))
    elif weighting == "norm":
        raise UsageError(f"weighting='norm' needs the model's value and output weights, which "
                         f"{model.name} (an ONNX export) does not give; use the checkpoint, or "
                         f"weighting='attention'")
    else:
        weightings = ("attention",)
    (encoding,) = model.tokenize([sentence])
    words = _word_count(encoding.word_ids)
    check_size(len(chosen), (len(encoding.tokens), words), len(weightings),
               heads_option=heads_option)
    depth = max(head.layer for head in chosen)
    runs = {w: model.run([sentence], hidden_states=False, mlm_logits=False, num_layers=depth,
                         weighting=w)[0] for w in weightings}
    data = view_data(runs, chosen, model_name=model.name, windows=model.windows, level=level,
                     weighting=weighting)
    return View(render_view(data), text=sentence, model=model.name,
                heads=data.heads, level=level, weighting=weighting, height=frame_height(data))


def view_data(runs: Mapping[str, Run], heads: Sequence[Head], *, model_name: str,
              windows: Sequence[int | None] | None, level: str, weighting: str,
              title: str = "", notes: Sequence[str] = (),
              expected: Iterable[tuple[int, int]] | None = None,
              pinned: int | None = None) -> ViewData:
    """The numbers of a view: ``runs`` (one sentence, by weighting; the first weighting's run
    gives the positions), every head of ``heads`` at both levels, rounded to 4 decimals.
    ``windows``: per layer, how far a local layer's heads reach (`Model.windows`).
    ``expected``: ``(query, key)`` cells at ``level`` that a claim expects (outlined).
    ``pinned``: the position at ``level`` shown when the page opens."""
    first = next(iter(runs.values()))
    targets: dict[int, list[int]] | None = None
    if expected is not None:
        targets = {}
        for query, key in expected:
            targets.setdefault(int(query), []).append(int(key))
    levels = {}
    for name in LEVEL_NAMES:
        shown = level_view(first, name)
        levels[name] = ViewLevel(
            labels=tuple(str(label) for label in shown.labels),
            spans=tuple((int(g[0]), int(g[-1])) for g in shown.groups),
            special=tuple(bool(s) for s in shown.special),
            expected=None if targets is None or name != level else tuple(
                tuple(targets.get(q, ())) for q in range(shown.size)))
    weights = {w: {name: _matrices(run, name, heads) for name in LEVEL_NAMES}
               for w, run in runs.items()}
    halves = tuple(None if windows is None else windows[head.layer - 1] for head in heads)
    return ViewData(model=model_name, text=first.text, heads=tuple(str(h) for h in heads),
                    halves=halves, levels=levels, weights=weights, level=level,
                    weighting=weighting, title=title, notes=tuple(notes), pinned=pinned)


def _matrices(run: Run, level: str, heads: Sequence[Head]) -> list[list[int]]:
    """Per head, its ``[query, key]`` weights at ``level`` flattened, in units of 1/SCALE."""
    shown = level_view(run, level)
    stack = shown.rows(tuple(heads), np.arange(shown.size))  # [head, query, key]
    scaled = np.rint(np.clip(np.nan_to_num(np.asarray(stack, dtype=np.float64)), 0.0, 1.0)
                     * SCALE).astype(np.int64)
    return [matrix.ravel().tolist() for matrix in scaled]


def pick_heads(heads: Any, num_layers: int, num_heads: int, *,
               option: str = "heads") -> tuple[Head, ...]:
    """The heads a view shows, counted from 1, in order, each once: every head for None; else
    ``"L2H9"``, a pattern such as ``"L2H*"`` or ``"L2H9,L3H1"``, or a list of such names or of
    1-based ``(layer, head)`` pairs. A bad one is a `UsageError` naming ``option``."""
    if heads is None:
        items: list[Any] = ["L*H*"]
    elif isinstance(heads, (str, Head)) or _is_pair(heads):
        items = [heads]
    elif isinstance(heads, Iterable):
        items = list(heads)
    else:
        items = [heads]
    try:
        patterns: list[HeadPattern] = []
        for item in items:
            patterns += _patterns(item, option)
        for pattern in patterns:
            check_in_range(pattern, num_layers, num_heads)
        chosen = expand_heads(patterns, num_layers, num_heads)
    except ClaimFileError as error:
        raise UsageError(f"{option}: {error.message}") from None
    except TypeError:
        raise UsageError(f"{option}: expected a head such as 'L2H9', a pattern such as 'L2H*', "
                         f"or a list of them or of (layer, head) pairs counted from 1, got "
                         f"{heads!r:.60}") from None
    if not chosen:
        raise UsageError(f"{option}: no heads given; name one such as 'L2H9'")
    return chosen


def _patterns(item: Any, option: str) -> list[HeadPattern]:
    if isinstance(item, Head):
        return [HeadPattern(item.layer, item.head)]
    if isinstance(item, str):
        return list(parse_head_patterns(item))
    if _is_pair(item):
        layer, head = item
        if layer < 1 or head < 1:
            raise ClaimFileError(f"{tuple(item)}: layers and heads are counted from 1 "
                                 f"((1, 1) is the first head, L1H1)")
        return [HeadPattern(layer, head)]
    raise TypeError(item)


def _word_count(word_ids: Sequence[int | None]) -> int:
    """How many words `Run.word_groups` makes of these word ids (each special token one)."""
    return sum(1 for i, word in enumerate(word_ids)
               if word is None or i == 0 or word != word_ids[i - 1])


def _is_pair(item: Any) -> bool:
    """A 1-based ``(layer, head)``."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and all(
        isinstance(x, int) and not isinstance(x, bool) for x in item)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f"{name}: expected one of {', '.join(map(repr, choices))}, got "
                         f"{value!r}")
