"""Attention diagrams as `matplotlib.figure.Figure` objects (SPEC §6), and saving them as PNG.

One function per kind of figure:

- `attention_figure`: one head's grid ``[query, key]`` for one sentence: rows are the attending
  tokens (queries), columns the attended tokens (keys). Grey level ``round(255 * weight)`` on an
  absolute scale (0 black, 1 white, as the original attention-diagram projects draw it), no
  interpolation, expected target cells outlined solid orange, the actual argmax cells dashed
  sky-blue (colour and line style differ, so colour-blind readers can tell them apart); for a
  head of a local layer (SPEC §7c) the edges of what each row can reach, dotted bluish green.
- `overview_figure`: every head of a sentence in one image, layers as rows, heads as columns, on
  the absolute scale (0 black, 1 white), so that panels compare with each other.
- `changes_figure` (``diff``) and `head_grid_figure` (``discover``): a layers x heads grid of
  labelled cells, one per head, named from 1.

The pixel size of a figure depends only on the number of tokens (and, for the overview, on the
number of layers and heads), never on the text of the labels: long labels are shortened with ``…``
and long titles are wrapped to at most `TITLE_LINES` lines.

Text is text: every label and title is drawn with ``parse_math=False``, so a ``$`` in a sentence
or claim is a dollar sign, never matplotlib mathtext.

matplotlib is imported inside the functions: importing this module costs nothing. Figures are built
without pyplot (nothing stays alive in a global figure manager) and drawn with the Agg canvas.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from headprobe.atomic import write_atomic
from headprobe.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

DPI = 100
EXPECTED_COLOR = "#E69F00"   # Okabe-Ito orange: expected target cells, solid outline
ACTUAL_COLOR = "#56B4E9"     # Okabe-Ito sky blue: actual argmax cells, dashed inner outline
WINDOW_COLOR = "#009E73"     # Okabe-Ito bluish green: the edges of a local head's window
BACKGROUND = "#FFFFFF"
PANEL_GAP_COLOR = (214, 222, 232)
TITLE_LINES = 4
MAX_LABEL_CHARS = 12
_TITLE_PX = 14
_LEGEND_PX = 44
_SCALE_PX = 12  # the width of the grey scale beside the grid
_SCALE_GAP_PX = 10


# --------------------------------------------------------------------------------------------
# Pure helpers: grey levels and layout numbers.

def grey_levels(matrix: np.ndarray, top: float = 1.0) -> np.ndarray:
    """uint8 ``[query, key]``: ``round(255 * w / top)`` with ``w / top`` clipped to [0, 1]
    (NaN is 0): black is 0, white is ``top`` and above."""
    weights = np.nan_to_num(np.asarray(matrix, dtype=np.float64), nan=0.0)
    return np.rint(255.0 * np.clip(weights / top, 0.0, 1.0)).astype(np.uint8)


def scale_top(matrix: np.ndarray) -> float:
    """The weight drawn white in a diagram of ``matrix``: its largest weight (1 when it has no
    positive one), so that a diffuse head is as readable as a sharp one."""
    weights = np.nan_to_num(np.asarray(matrix, dtype=np.float64), nan=0.0)
    top = float(weights.max()) if weights.size else 0.0
    return top if top > 0 else 1.0


def cell_pixels(num_tokens: int) -> int:
    """Side of one grid cell in pixels: large for short sentences, 20 px at 60 tokens."""
    return int(min(48, max(16, 1200 // max(num_tokens, 1))))


def label_font_pixels(cell: int) -> int:
    return int(min(15, max(8, round(cell * 0.6))))


def shorten(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A token label of at most ``limit`` characters; newlines and tabs become spaces."""
    text = " ".join(str(label).split()) if str(label).strip() else repr(str(label))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def wrap_title(title: str, width_chars: int, max_lines: int = TITLE_LINES) -> str:
    """Wrap each line of ``title`` to ``width_chars``; keep at most ``max_lines`` lines."""
    lines: list[str] = []
    for line in str(title).splitlines() or [""]:
        lines.extend(textwrap.wrap(line, max(width_chars, 10)) or [""])
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max(width_chars - 1, 1)].rstrip() + "…"
    return "\n".join(lines)


def _check_matrix(matrix: np.ndarray, rows: int, cols: int, what: str) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape != (rows, cols):
        raise UsageError(
            f"{what}: expected an attention matrix of shape [query, key] = ({rows}, {cols}) to "
            f"match the labels, got shape {array.shape}; pass one head of one sentence, e.g. "
            f"run.attentions[layer, head]")
    return array


def _check_cells(cells: Sequence[tuple[int, int]], rows: int, cols: int, what: str
                 ) -> list[tuple[int, int]]:
    checked = []
    for cell in cells:
        query, key = (int(c) for c in cell)
        if not (0 <= query < rows and 0 <= key < cols):
            raise UsageError(
                f"{what}: cell {tuple(cell)} is outside the {rows}x{cols} grid; cells are 0-based "
                f"(query, key) pairs")
        checked.append((query, key))
    return checked


# --------------------------------------------------------------------------------------------
# Figures.

def attention_figure(matrix: np.ndarray, labels: Sequence[str], *,
                     expected: Sequence[tuple[int, int]] = (),
                     actual: Sequence[tuple[int, int]] = (),
                     title: str = "", col_labels: Sequence[str] | None = None,
                     reach: np.ndarray | None = None) -> Figure:
    """One head's attention for one sentence.

    Args:
      matrix: float ``[query, key]`` post-softmax weights; rows are the attending tokens.
      labels: the row (query) labels; also the column labels unless ``col_labels`` is given.
      expected: 0-based ``(query, key)`` cells of the claimed targets (solid orange outline).
      actual: 0-based ``(query, key)`` cells the head attends to most (dashed sky-blue outline).
      title: one or more lines (claim, value against expectation, model).
      reach: bool ``[query, key]``, for a head of a local layer: the cells its window reaches
        (their edges are drawn); None for a head that sees the whole sentence.
    Returns:
      A Figure of ``figure_size_pixels(rows, cols)`` pixels at `DPI`.
    """
    from matplotlib.figure import Figure

    row_labels = [shorten(label) for label in labels]
    column_labels = row_labels if col_labels is None else [shorten(label) for label in col_labels]
    rows, cols = len(row_labels), len(column_labels)
    if rows == 0 or cols == 0:
        raise UsageError("attention_figure: no tokens to draw; the labels are empty")
    _check_matrix(matrix, rows, cols, "attention_figure")
    layout = _grid_layout(rows, cols)
    width, height = layout["width"], layout["height"]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    axes = figure.add_axes((layout["left"] / width, layout["bottom"] / height,
                            layout["grid_w"] / width, layout["grid_h"] / height))
    axes.imshow(np.zeros((rows, cols, 3), dtype=np.uint8), interpolation="nearest",
                aspect="auto", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5), resample=False)
    axes.set_xlim(-0.5, cols - 0.5)
    axes.set_ylim(rows - 0.5, -0.5)
    _label_axes(axes, row_labels, column_labels, layout["font_px"], layout["cell"])
    figure.text(0.5, 1 - 8 / height, "", ha="center", va="top", fontsize=_TITLE_PX * 72 / DPI,
                linespacing=1.3, gid="title", parse_math=False)
    figure.text(10 / width, 4 / height,
                "rows: attending token (query) · columns: attended token (key) · "
                "grey: black 0, white the largest weight (scale at the right)",
                ha="left", va="bottom", fontsize=7, color="#444444", parse_math=False)
    _add_scale(figure, layout)
    return redraw_attention_figure(figure, matrix, expected=expected, actual=actual, title=title,
                                   reach=reach)


def _add_scale(figure: Figure, layout: dict[str, int]) -> None:
    """A grey bar beside the grid, black (0) at the bottom to white (the top weight) at the top;
    its end labels are set by `redraw_attention_figure`."""
    width, height = layout["width"], layout["height"]
    bar_h = min(layout["grid_h"], 200)
    left = layout["left"] + layout["grid_w"] + _SCALE_GAP_PX
    bottom = layout["bottom"] + layout["grid_h"] - bar_h
    bar = figure.add_axes((left / width, bottom / height, _SCALE_PX / width, bar_h / height))
    ramp = np.linspace(255, 0, 256).astype(np.uint8)[:, None]
    bar.imshow(np.repeat(np.stack([ramp] * 3, axis=-1), 2, axis=1), aspect="auto",
               interpolation="nearest", extent=(0, 1, 0, 1))
    bar.set_xticks([])
    bar.set_yticks([])
    for value, gid in ((0.0, "scale-low"), (1.0, "scale-high")):
        bar.text(1.25, value, "", transform=bar.transAxes, ha="left", va="center",
                 fontsize=7, color="#333333", gid=gid, parse_math=False)


def redraw_attention_figure(figure: Figure, matrix: np.ndarray, *,
                            expected: Sequence[tuple[int, int]] = (),
                            actual: Sequence[tuple[int, int]] = (),
                            title: str = "", reach: np.ndarray | None = None) -> Figure:
    """Draw another matrix of the same size (another head, same sentence) into a figure made by
    `attention_figure`, in place: labels stay, grid, outlines, legend and title change.

    Much cheaper than a new figure when drawing every head of a sentence; save each figure
    before redrawing it.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    axes = figure.axes[0]
    image = axes.images[0]
    grid = image.get_array()
    if grid is None:
        raise UsageError("redraw_attention_figure: the figure has no attention grid; draw it "
                         "with attention_figure first")
    rows, cols = grid.shape[:2]
    weights = _check_matrix(matrix, rows, cols, "attention_figure")
    expected_cells = _check_cells(expected, rows, cols, "attention_figure: expected")
    actual_cells = _check_cells(actual, rows, cols, "attention_figure: actual")
    width, height = figure.bbox.width, figure.bbox.height
    top = scale_top(weights)
    image.set_data(np.stack([grey_levels(weights, top)] * 3, axis=-1))
    for text in figure.axes[1].texts if len(figure.axes) > 1 else []:
        if text.get_gid() == "scale-low":
            text.set_text("0")
        elif text.get_gid() == "scale-high":
            text.set_text(f"{top:.3g}")
    for patch in list(axes.patches):
        patch.remove()
    for legend in list(figure.legends):
        legend.remove()
    for collection in list(axes.collections):
        if collection.get_gid() == "window":
            collection.remove()

    cell = _grid_layout(rows, cols)["cell"]
    line_px = max(2, cell // 10)
    half = (line_px / 2) / cell                    # keep the solid outline inside its own cell
    for query, key in expected_cells:
        axes.add_patch(Rectangle((key - 0.5 + half, query - 0.5 + half), 1 - 2 * half,
                                 1 - 2 * half, fill=False, edgecolor=EXPECTED_COLOR,
                                 linewidth=line_px * 72 / DPI, antialiased=False,
                                 linestyle="-", zorder=3))
    inset = 0.22
    for query, key in actual_cells:
        axes.add_patch(Rectangle((key - 0.5 + inset, query - 0.5 + inset), 1 - 2 * inset,
                                 1 - 2 * inset, fill=False, edgecolor=ACTUAL_COLOR,
                                 linewidth=line_px * 72 / DPI, antialiased=False,
                                 linestyle=(0, (2, 1)), zorder=4))

    if reach is not None:
        _draw_window(axes, np.asarray(reach, dtype=bool), rows, cols, line_px)

    chars = int((width - 20) / (_TITLE_PX * 0.6))
    (title_text,) = [t for t in figure.texts if t.get_gid() == "title"]
    title_text.set_text(wrap_title(title, chars))
    handles = []
    if expected_cells:
        handles.append(Line2D([], [], color=EXPECTED_COLOR, linestyle="-", linewidth=2.5,
                              label="expected target (solid)"))
    if actual_cells:
        handles.append(Line2D([], [], color=ACTUAL_COLOR, linestyle="--", linewidth=2.5,
                              label="actual argmax (dashed)"))
    if reach is not None:
        handles.append(Line2D([], [], color=WINDOW_COLOR, linestyle=":", linewidth=2.5,
                              label="local window (dotted)"))
    if handles:
        figure.legend(handles=handles, loc="lower left", bbox_to_anchor=(4 / width, 16 / height),
                      ncol=len(handles), frameon=False, fontsize=8, handlelength=2.2,
                      borderaxespad=0.2)
    return figure


def _draw_window(axes, reach: np.ndarray, rows: int, cols: int, line_px: int) -> None:
    """The left and right edges of each row's reachable cells (a staircase band)."""
    from matplotlib.collections import LineCollection

    if reach.shape != (rows, cols):
        raise UsageError(f"attention_figure: reach has shape {reach.shape}, expected "
                         f"{(rows, cols)}")
    segments = []
    for row in range(rows):
        reached = np.flatnonzero(reach[row])
        if reached.size == 0 or reached.size == cols:
            continue
        for edge in (reached[0] - 0.5, reached[-1] + 0.5):
            segments.append([(edge, row - 0.5), (edge, row + 0.5)])
    axes.add_collection(LineCollection(segments, colors=WINDOW_COLOR, linestyles=":",
                                       linewidths=line_px * 72 / DPI, zorder=5, gid="window"))


def figure_size_pixels(rows: int, cols: int | None = None) -> tuple[int, int]:
    """``(width, height)`` in pixels of an `attention_figure` with that many rows and columns."""
    layout = _grid_layout(rows, rows if cols is None else cols)
    return layout["width"], layout["height"]


def _grid_layout(rows: int, cols: int) -> dict[str, int]:
    cell = cell_pixels(max(rows, cols))
    font_px = label_font_pixels(cell)
    label_px = round(MAX_LABEL_CHARS * font_px * 0.62) + 8
    title_px = int(TITLE_LINES * _TITLE_PX * 1.35) + 14
    grid_w, grid_h = cols * cell, rows * cell
    left, right = label_px + 6, 16 + _SCALE_GAP_PX + _SCALE_PX + 36
    top = title_px + label_px + 6
    bottom = _LEGEND_PX + 8
    width = max(520, left + grid_w + right)
    height = top + grid_h + bottom
    return {"cell": cell, "font_px": font_px, "grid_w": grid_w, "grid_h": grid_h,
            "left": left, "bottom": bottom, "width": width, "height": height}


def _label_axes(axes, row_labels: list[str], column_labels: list[str], font_px: int,
                cell: int) -> None:
    """Token labels as plain texts beside the grid (cheaper to draw than tick labels)."""
    size = font_px * 72 / DPI
    gap = 4 / cell                                  # 4 px between a label and the grid
    axes.set_axis_off()
    for row, label in enumerate(row_labels):
        axes.text(-0.5 - gap, row, label, ha="right", va="center", fontsize=size,
                  clip_on=False, parse_math=False)
    for column, label in enumerate(column_labels):
        axes.text(column, -0.5 - gap, label, ha="center", va="bottom", rotation=90,
                  parse_math=False,
                  fontsize=size, clip_on=False)


def overview_figure(attentions: np.ndarray, labels: Sequence[str], title: str = "") -> Figure:
    """All heads of one sentence: a panel per head, layers as rows and heads as columns.

    Args:
      attentions: float ``[layer, head, query, key]`` for one sentence.
      labels: the token labels (listed under the panels).
    Panels are labelled ``L{layer}H{head}`` counted from 1, and drawn pixel for pixel (each weight
    a block of pixels of grey ``round(255 * w)``, no interpolation).
    """
    from matplotlib.figure import Figure

    array = np.asarray(attentions)
    tokens = len(labels)
    if array.ndim != 4 or array.shape[2:] != (tokens, tokens):
        raise UsageError(
            f"overview_figure: expected attentions of shape [layer, head, query, key] with "
            f"query = key = {tokens} (the number of labels), got shape {array.shape}")
    layers, heads = array.shape[:2]
    layout = overview_layout(layers, heads, tokens)
    width, height = layout["width"], layout["height"]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    figure.figimage(_overview_mosaic(array, layout), xo=0, yo=layout["bottom"], origin="upper")
    panel, step = layout["panel"], layout["step"]
    for layer in range(layers):
        for head in range(heads):
            x = layout["left"] + head * step + panel / 2
            y = height - layout["top"] - layer * layout["row_step"] + 2
            figure.text(x / width, y / height, f"L{layer + 1}H{head + 1}", ha="center",
                        parse_math=False,
                        va="bottom", fontsize=8)
    chars = int((width - 20) / (_TITLE_PX * 0.6))
    figure.text(0.5, 1 - 6 / height, wrap_title(title, chars, max_lines=2), ha="center",
                va="top", fontsize=_TITLE_PX * 72 / DPI, parse_math=False)
    token_line = "tokens: " + " ".join(shorten(label) for label in labels)
    figure.text(8 / width, (layout["bottom"] - 6) / height,
                wrap_title(token_line, int((width - 16) / 6.2), max_lines=3),
                ha="left", va="top", fontsize=7, color="#333333", linespacing=1.25,
                parse_math=False)
    return figure


def changes_figure(changes: np.ndarray, statistics: Sequence[Sequence[str]], *,
                   tolerance: float, title: str = "") -> Figure:
    """A layers x heads grid coloured by each head's largest |change| between two profiles.

    Args:
      changes: float ``[layer, head]``: each head's largest change (signed).
      statistics: ``[layer][head]``: the statistic of that change, shown in the cell.
      tolerance: cells whose |change| exceeds it are outlined and their names in bold.
    Cells are labelled ``L{layer}H{head}`` counted from 1 with the change; a colour bar gives
    the scale (white: no change).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    values = np.asarray(changes, dtype=np.float64)
    if values.ndim != 2:
        raise UsageError(f"changes_figure: expected changes of shape [layer, head], got "
                         f"{values.shape}")
    layers, heads = values.shape
    cell_w, cell_h = 86, 46
    width = max(560, 90 + heads * cell_w + 110)
    height = 120 + layers * cell_h + 40
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    grid_left, grid_bottom = 60, 40
    axes = figure.add_axes((grid_left / width, grid_bottom / height,
                            heads * cell_w / width, layers * cell_h / height))
    top = max(float(np.abs(values).max()), tolerance, 1e-9)
    image = axes.imshow(np.abs(values), cmap="Reds", vmin=0.0, vmax=top, aspect="auto",
                        interpolation="nearest", extent=(-0.5, heads - 0.5, layers - 0.5, -0.5))
    axes.set_xticks(range(heads), [f"H{h + 1}" for h in range(heads)], fontsize=8)
    axes.set_yticks(range(layers), [f"L{layer + 1}" for layer in range(layers)], fontsize=8)
    axes.xaxis.tick_top()
    for layer in range(layers):
        for head in range(heads):
            change = values[layer, head]
            beyond = abs(change) > tolerance
            dark = abs(change) > 0.6 * top
            statistic = shorten(statistics[layer][head], 18) if abs(change) >= 5e-4 else "—"
            axes.text(head, layer, f"L{layer + 1}H{head + 1}\n{change:+.3f}\n{statistic}",
                      ha="center", va="center", fontsize=6,
                      color="white" if dark else "black",
                      fontweight="bold" if beyond else "normal", parse_math=False)
            if beyond:
                axes.add_patch(Rectangle((head - 0.47, layer - 0.47), 0.94, 0.94, fill=False,
                                         edgecolor="#1b1b1b", linewidth=1.5))
    bar = figure.add_axes(((grid_left + heads * cell_w + 20) / width, grid_bottom / height,
                           14 / width, layers * cell_h / height))
    figure.colorbar(image, cax=bar, label="largest |change|")
    chars = int((width - 20) / (_TITLE_PX * 0.6))
    figure.text(0.5, 1 - 8 / height, wrap_title(title, chars, max_lines=3), ha="center",
                va="top", fontsize=_TITLE_PX * 72 / DPI, parse_math=False)
    return figure


def head_grid_figure(texts: Sequence[Sequence[str]], colours: Sequence[Sequence[str]], *,
                     legend: Sequence[tuple[str, str]] = (),
                     outlined: Sequence[tuple[int, int]] = (), title: str = "") -> Figure:
    """A layers x heads grid, each cell coloured and labelled (``discover --figure``).

    Args:
      texts: ``[layer][head]``: the text of each cell under its name ``L{layer}H{head}``
        (counted from 1); empty for a plain cell.
      colours: ``[layer][head]``: each cell's fill (a matplotlib colour; white for plain).
      legend: ``(colour, what it means)`` pairs, drawn under the grid.
      outlined: 0-based ``(layer, head)`` cells drawn with a heavy outline.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    layers = len(texts)
    heads = max((len(row) for row in texts), default=0)
    if layers == 0 or heads == 0 or len(colours) != layers \
            or any(len(row) != len(texts[i]) for i, row in enumerate(colours)):
        raise UsageError("head_grid_figure: texts and colours must both be [layer][head] with "
                         "at least one cell")
    cell_w, cell_h = 86, 46
    width = max(560, 90 + heads * cell_w + 40)
    legend_h = 30 if legend else 0
    height = 120 + layers * cell_h + 40 + legend_h
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    grid_left, grid_bottom = 60, 40 + legend_h
    axes = figure.add_axes((grid_left / width, grid_bottom / height,
                            heads * cell_w / width, layers * cell_h / height))
    axes.set_xlim(-0.5, heads - 0.5)
    axes.set_ylim(layers - 0.5, -0.5)
    axes.set_xticks(range(heads), [f"H{h + 1}" for h in range(heads)], fontsize=8)
    axes.set_yticks(range(layers), [f"L{layer + 1}" for layer in range(layers)], fontsize=8)
    axes.xaxis.tick_top()
    boxed = set(outlined)
    for layer in range(layers):
        for head in range(len(texts[layer])):
            axes.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1,
                                     facecolor=colours[layer][head], edgecolor="#BBBBBB",
                                     linewidth=0.5))
            text = shorten(texts[layer][head], 14) if texts[layer][head].strip() else ""
            axes.text(head, layer, f"L{layer + 1}H{head + 1}" + (f"\n{text}" if text else ""),
                      ha="center", va="center", fontsize=6.5, color="black",
                      fontweight="bold" if (layer, head) in boxed else "normal",
                      parse_math=False)
            if (layer, head) in boxed:
                axes.add_patch(Rectangle((head - 0.46, layer - 0.46), 0.92, 0.92, fill=False,
                                         edgecolor="#1b1b1b", linewidth=1.8))
    if legend:
        figure.legend(handles=[Patch(facecolor=colour, edgecolor="#888888", label=meaning)
                               for colour, meaning in legend],
                      loc="lower left", bbox_to_anchor=(grid_left / width, 6 / height),
                      ncol=min(4, len(legend)), frameon=False, fontsize=8)
    chars = int((width - 20) / (_TITLE_PX * 0.6))
    figure.text(0.5, 1 - 8 / height, wrap_title(title, chars, max_lines=3), ha="center",
                va="top", fontsize=_TITLE_PX * 72 / DPI, parse_math=False)
    return figure


def side_by_side_figure(matrix_a: np.ndarray, matrix_b: np.ndarray, labels: Sequence[str], *,
                        title_a: str, title_b: str, title: str = "") -> Figure:
    """One head on one sentence in model A and model B, side by side, on one grey scale
    (white: the larger of the two figures' largest weights), with that scale beside them."""
    from matplotlib.figure import Figure

    names = [shorten(label) for label in labels]
    n = len(names)
    _check_matrix(matrix_a, n, n, "side_by_side_figure (A)")
    _check_matrix(matrix_b, n, n, "side_by_side_figure (B)")
    top = max(scale_top(matrix_a), scale_top(matrix_b))
    cell = cell_pixels(n)
    font = label_font_pixels(cell) * 72 / DPI
    label_px = round(MAX_LABEL_CHARS * label_font_pixels(cell) * 0.62) + 8
    panel = n * cell
    width = label_px + 2 * panel + 60 + 80
    height = 110 + label_px + panel + 30
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    for index, (matrix, caption) in enumerate(((matrix_a, title_a), (matrix_b, title_b))):
        left = label_px + index * (panel + 40)
        axes = figure.add_axes((left / width, 30 / height, panel / width, panel / height))
        grey = grey_levels(matrix, top)
        axes.imshow(np.stack([grey] * 3, axis=-1), interpolation="nearest", aspect="auto",
                    extent=(-0.5, n - 0.5, n - 0.5, -0.5))
        axes.set_axis_off()
        for position, name in enumerate(names):
            if index == 0:
                axes.text(-0.5 - 4 / cell, position, name, ha="right", va="center",
                          fontsize=font, clip_on=False, parse_math=False)
            axes.text(position, -0.5 - 4 / cell, name, ha="center", va="bottom", rotation=90,
                      fontsize=font, clip_on=False, parse_math=False)
        figure.text((left + panel / 2) / width, (40 + panel + label_px) / height,
                    wrap_title(caption, int(panel / 7), max_lines=2), ha="center", va="bottom",
                    fontsize=8, parse_math=False)
    bar = figure.add_axes(((label_px + 2 * panel + 50) / width, 30 / height, 12 / width,
                           min(panel, 200) / height))
    ramp = np.linspace(255, 0, 256).astype(np.uint8)[:, None]
    bar.imshow(np.repeat(np.stack([ramp] * 3, axis=-1), 2, axis=1), aspect="auto",
               extent=(0, 1, 0, 1))
    bar.set_xticks([])
    bar.set_yticks([0, 1], ["0", f"{top:.3g}"], fontsize=7)
    bar.yaxis.tick_right()
    chars = int((width - 20) / (_TITLE_PX * 0.6))
    figure.text(0.5, 1 - 6 / height, wrap_title(title, chars, max_lines=3), ha="center",
                va="top", fontsize=_TITLE_PX * 72 / DPI, parse_math=False)
    return figure


def overview_layout(layers: int, heads: int, tokens: int) -> dict[str, int]:
    panel = int(min(144, max(64, 4 * tokens)))
    gap, label = 8, 14
    step, row_step = panel + gap, panel + gap + label
    left = 8
    top = 2 * _TITLE_PX + 16 + label
    bottom = 56
    width = max(400, left + heads * step)
    height = top + layers * row_step + bottom - label
    return {"panel": panel, "step": step, "row_step": row_step, "left": left, "top": top,
            "bottom": bottom, "width": width, "height": height, "label": label}


def _overview_mosaic(attentions: np.ndarray, layout: dict[str, int]) -> np.ndarray:
    """uint8 RGB ``[pixel row, pixel column, 3]`` of all panels, top-left origin."""
    layers, heads, tokens = attentions.shape[0], attentions.shape[1], attentions.shape[2]
    panel, step, row_step = layout["panel"], layout["step"], layout["row_step"]
    height = layout["height"] - layout["bottom"] - layout["top"] + layout["label"]
    mosaic = np.empty((height, layout["width"], 3), dtype=np.uint8)
    mosaic[:] = 255
    pick = (np.arange(panel) * tokens) // panel          # nearest-neighbour upsampling
    for layer in range(layers):
        top = layer * row_step + layout["label"]
        for head in range(heads):
            left = layout["left"] + head * step
            block = grey_levels(attentions[layer, head])[np.ix_(pick, pick)]
            mosaic[top - 1:top + panel + 1, left - 1:left + panel + 1] = PANEL_GAP_COLOR
            mosaic[top:top + panel, left:left + panel] = block[..., None]
    return mosaic


# --------------------------------------------------------------------------------------------
# Output.

def render_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, at its own size and DPI (no tight bounding box)."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor=figure.get_facecolor(),
                   metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def save_png(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write the figure as PNG at ``path`` atomically (a temp file beside it, then a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, render_png(figure), mode=0o644)
    return target
