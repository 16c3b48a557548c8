"""Failure diagrams: a failing result's worst sentences drawn as PNGs into a run's folder,
each beside its interactive view (SPEC §16: ``figures/<stem>_<rank>.html``, the result's
``views``) that index.html embeds.

Pure of pytest and of models: callers pass the runs of the sentences to draw (from the forward
cache or the model). A figure or view that cannot be made becomes a warning on the result, never
a lost result.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headprobe.atomic import write_atomic
from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.engine.views import view_data
from headprobe.evaluation import attention_view
from headprobe.evaluation.positions import level_view, reach
from headprobe.evaluation.results import ClaimResult, format_value
from headprobe.evaluation.views import AttentionView, effect_view, windowed
from headprobe.heads import Head, parse_head
from headprobe.report.figures import attention_figure, save_png
from headprobe.report.view import MAX_NUMBERS, count_numbers, render_view
from headprobe.runs import Run

MAX_FIGURES_PER_RESULT = 3
MORE_HEADS = 2  # an any/none claim's next best heads drawn, on its worst sentence


@dataclass(frozen=True)
class FigureRequest:
    """What to draw for one failing result: a head and sentences (worst first)."""

    head: Head
    sentences: tuple[Sentence, ...]


def figure_requests(result: ClaimResult, sentences: Sequence[Sentence]) -> list[FigureRequest]:
    """The result's head on its worst sentences and, for an any/none claim, its next best heads
    on the worst one; nothing for a result without worst sentences."""
    if not result.worst:
        return []
    chosen = tuple(sentences[i] for i in result.worst[:MAX_FIGURES_PER_RESULT])
    first = result.head.split("+")[0]  # heads removed together: the first one's attention
    requests = [FigureRequest(parse_head(first), chosen)]
    others = [h.head for h in result.heads if h.head != result.head][:MORE_HEADS]
    requests += [FigureRequest(parse_head(name), chosen[:1]) for name in others]
    return requests


def draw_failure_figures(spec: ClaimSpec, result: ClaimResult,
                         requests: Sequence[tuple[FigureRequest, Sequence[Run]]], *,
                         folder: Path, display_file: str,
                         effects: Sequence[Sequence[np.ndarray]] | None = None,
                         windows: Sequence[int | None] | None = None) -> ClaimResult:
    """``result`` with the diagrams of each request's sentences (whose runs are given, in order)
    saved under ``folder/figures``, and beside each its interactive view; their paths in
    ``figures`` and ``views`` are relative to ``folder``. A figure or view that cannot be made
    becomes a warning of the result. ``effects``: for an effect claim, per request the effect at
    each token ``[token]`` of each of its sentences. ``windows``: per layer, how far a local
    layer's heads reach (their window is drawn)."""
    paths: list[str] = []
    views: list[str] = []
    problems: list[str] = []
    for number, (request, runs) in enumerate(requests):
        drawn, shown, failed = _draw(
            spec, result, request, runs, folder=folder, display_file=display_file,
            effects=None if effects is None else effects[number], windows=windows)
        paths += drawn
        views += shown
        problems += failed
    return dataclasses.replace(result, figures=tuple(paths), views=tuple(views),
                               warnings=tuple(result.warnings) + tuple(problems))


def _draw(spec: ClaimSpec, result: ClaimResult, request: FigureRequest, runs: Sequence[Run], *,
          folder: Path, display_file: str, effects: Sequence[np.ndarray] | None = None,
          windows: Sequence[int | None] | None = None
          ) -> tuple[list[str], list[str], list[str]]:
    """(paths drawn, views written, problems) for one head's sentences."""

    head = request.head
    half = None if windows is None else windows[head.layer - 1]
    paths: list[str] = []
    views: list[str] = []
    problems: list[str] = []
    stem = safe_name(f"{Path(display_file).stem}_{spec.id}_{head}")
    removed = "" if effects is None else (
        f" removed; attention of {head}" if result.head != str(head) else " removed") + \
        "; row labels: effect there, token"
    for rank, (sentence, run) in enumerate(zip(request.sentences, runs), start=1):
        whole = (attention_view(spec, head, sentence, run, half) if effects is None
                 else effect_view(spec, head, sentence, run, effects[rank - 1]))
        view = windowed(whole)
        title = (f"{spec.claim_text}   [{result.head if effects is not None else head}"
                 f"{removed}]\n"
                 f"{spec.measure} = {format_value(view.value)} on this sentence; "
                 f"{'mean of sentences' if spec.average == 'sentence' else 'overall'} "
                 f"{format_value(result.value)} (n={result.n}), expected {spec.expect}"
                 f"{baseline_note(result, spec)}\n"
                 f"model: {result.model}" + (f"\n{view.note}" if view.note else ""))
        relative = Path("figures") / f"{stem}_{rank}.png"
        cells = None
        if half is not None:
            cells = reach(level_view(run, spec.level).groups, half,
                          np.asarray(view.rows))[:, list(view.columns)]
            title += f"\n{head} is in a local layer: it reaches {half} tokens each side"
        try:
            figure = attention_figure(view.matrix, view.labels, expected=view.expected,
                                      actual=view.actual, title=title,
                                      col_labels=view.column_labels, reach=cells)
            save_png(figure, folder / relative)
        except Exception as error:  # a figure is never worth the result
            problems.append(f"figure {rank} of {head} could not be drawn "
                            f"({type(error).__name__}: {error})")
        else:
            paths.append(relative.as_posix())
        page = relative.with_suffix(".html")
        try:
            _write_view(spec, result, head, run, whole, folder / page, windows=windows)
        except Exception as error:  # nor is a view
            problems.append(f"interactive view {rank} of {head} was not written "
                            f"({type(error).__name__}: {error})")
        else:
            views.append(page.as_posix())
    return paths, views, problems


def _write_view(spec: ClaimSpec, result: ClaimResult, head: Head, run: Run, whole: AttentionView,
                path: Path, *, windows: Sequence[int | None] | None) -> None:
    """The interactive view of ``head`` on one sentence (SPEC §16) at ``path``: the claim's
    level and weighting first, both levels, the claim's targets outlined and the first source
    that misses them pinned (``whole``: the diagram's cells before any window cut them)."""
    sizes = (len(level_view(run, "token").groups), len(level_view(run, "word").groups))
    if count_numbers(1, sizes, 1) > MAX_NUMBERS:
        raise ValueError(f"a sentence of {sizes[0]} tokens is too long for an interactive view "
                         f"(at most {MAX_NUMBERS:,} weights); its PNG shows a window of it")
    note = (f"{spec.measure} = {format_value(whole.value)} on this sentence; overall "
            f"{format_value(result.value)}, expected {spec.expect}")
    data = view_data({spec.weighting: run}, (head,), model_name=result.model, windows=windows,
                     level=spec.level, weighting=spec.weighting, title=spec.claim_text,
                     notes=(note,), expected=whole.expected or None, pinned=_first_miss(whole))
    write_atomic(path, render_view(data).encode("utf-8", errors="backslashreplace"),
                 mode=0o644)


def _first_miss(whole: AttentionView) -> int | None:
    """The first source whose argmax (or top K) hits none of its targets, else the first
    source, else None."""
    hits = set(whole.expected) & set(whole.actual)
    sources = sorted({query for query, _ in whole.expected})
    missing = [q for q in sources if not any(query == q for query, _ in hits)]
    first = missing or sources
    return first[0] if first else None


def baseline_note(result: ClaimResult, spec: ClaimSpec) -> str:
    """``; must beat offset k=-1 (0.500) by 0.1`` when a baseline decided (part of) the
    verdict."""
    if result.baseline is None:
        return ""
    margin = f" by {spec.margin:g}" if spec.margin else ""
    return (f"; must beat offset k={result.baseline.offset:+d} "
            f"({format_value(result.baseline.value)}){margin}")


def safe_name(text: str) -> str:
    """A file-name stem from user text: letters, digits, ``_.-``; at most 120 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]
