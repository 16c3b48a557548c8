"""Failure diagrams: a failing result's worst sentences drawn as PNGs into a run's folder.

Pure of pytest and of models: callers pass the runs of the sentences to draw (from the forward
cache or the model). A figure that cannot be drawn becomes a warning on the result, never a lost
result.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.evaluation import attention_view
from headprobe.evaluation.positions import level_view, reach
from headprobe.evaluation.results import ClaimResult, format_value
from headprobe.evaluation.views import effect_view, windowed
from headprobe.heads import Head, parse_head
from headprobe.report.figures import attention_figure, save_png
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
    saved under ``folder/figures``; their paths in ``figures`` are relative to ``folder``. A
    figure that cannot be drawn becomes a warning of the result. ``effects``: for an effect
    claim, per request the effect at each token ``[token]`` of each of its sentences.
    ``windows``: per layer, how far a local layer's heads reach (their window is drawn)."""
    paths: list[str] = []
    problems: list[str] = []
    for number, (request, runs) in enumerate(requests):
        drawn, failed = _draw(spec, result, request, runs, folder=folder,
                              display_file=display_file,
                              effects=None if effects is None else effects[number],
                              half=None if windows is None else windows[request.head.layer - 1])
        paths += drawn
        problems += failed
    return dataclasses.replace(result, figures=tuple(paths),
                               warnings=tuple(result.warnings) + tuple(problems))


def _draw(spec: ClaimSpec, result: ClaimResult, request: FigureRequest, runs: Sequence[Run], *,
          folder: Path, display_file: str, effects: Sequence[np.ndarray] | None = None,
          half: int | None = None) -> tuple[list[str], list[str]]:
    """(paths drawn, problems) for one head's sentences."""

    head = request.head
    paths: list[str] = []
    problems: list[str] = []
    stem = safe_name(f"{Path(display_file).stem}_{spec.id}_{head}")
    removed = "" if effects is None else (
        f" removed; attention of {head}" if result.head != str(head) else " removed") + \
        "; row labels: effect there, token"
    for rank, (sentence, run) in enumerate(zip(request.sentences, runs), start=1):
        view = windowed(attention_view(spec, head, sentence, run) if effects is None
                        else effect_view(spec, head, sentence, run, effects[rank - 1]))
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
            cells = reach(level_view(run, spec.level).groups, half)[
                np.ix_(view.rows, view.columns)]
            title += f"\n{head} is in a local layer: it reaches {half} tokens each side"
        try:
            figure = attention_figure(view.matrix, view.labels, expected=view.expected,
                                      actual=view.actual, title=title,
                                      col_labels=view.column_labels, reach=cells)
            save_png(figure, folder / relative)
        except Exception as error:  # a figure is never worth the result
            problems.append(f"figure {rank} of {head} could not be drawn "
                            f"({type(error).__name__}: {error})")
            continue
        paths.append(relative.as_posix())
    return paths, problems


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
