"""Attention diagrams: pixel sizes, grey levels per cell, outlines at the right cells, PNG
output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from headprobe.errors import UsageError
from headprobe.report import figures
from headprobe.report.figures import (
    ACTUAL_COLOR,
    EXPECTED_COLOR,
    attention_figure,
    figure_size_pixels,
    grey_levels,
    overview_figure,
    overview_layout,
    render_png,
    save_png,
)


def rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])


def pixels(figure) -> np.ndarray:
    """uint8 [row, column, 3] of the rendered PNG, top row first."""
    return np.asarray(Image.open(io.BytesIO(render_png(figure))).convert("RGB"))


def distinct_weights(rows: int, cols: int) -> np.ndarray:
    """Every cell a different weight, and w[i, j] != w[j, i] so a transposed grid is caught."""
    return np.arange(rows * cols, dtype=np.float32).reshape(rows, cols) / (rows * cols - 1)


class Grid:
    """Pixel boxes of the cells of an attention_figure, from its axes' position."""

    def __init__(self, figure, image: np.ndarray, rows: int, cols: int) -> None:
        box = figure.axes[0].get_window_extent()
        self.image = image
        self.cell_w = (box.x1 - box.x0) / cols
        self.cell_h = (box.y1 - box.y0) / rows
        self.left = box.x0
        self.top = image.shape[0] - box.y1           # display y grows upwards, PNG rows down

    def cell(self, query: int, key: int, margin: int = 0) -> np.ndarray:
        x0 = round(self.left + key * self.cell_w) + margin
        y0 = round(self.top + query * self.cell_h) + margin
        return self.image[y0:y0 + int(self.cell_h) - 2 * margin,
                          x0:x0 + int(self.cell_w) - 2 * margin]

    def centre(self, query: int, key: int) -> np.ndarray:
        x = int(self.left + (key + 0.5) * self.cell_w)
        y = int(self.top + (query + 0.5) * self.cell_h)
        return self.image[y, x]


def count_color(block: np.ndarray, color: str) -> int:
    return int((block == rgb(color)).all(axis=-1).sum())


def test_grey_level_is_round_255_times_weight_clipped():
    weights = np.array([[0.0, 0.1, 0.5], [1.0, 1.2, -0.1]])
    assert grey_levels(weights).tolist() == [[0, 26, 128], [255, 255, 0]]


@pytest.mark.parametrize("tokens", [5, 13, 60])
def test_png_has_the_pixel_size_that_depends_only_on_the_token_count(tokens):
    labels = [f"w{i}" for i in range(tokens)]
    long_labels = ["a-very-long-wordpiece-label"] * tokens
    figure = attention_figure(distinct_weights(tokens, tokens), labels, title="claim")
    other = attention_figure(distinct_weights(tokens, tokens), long_labels,
                             title="a\nmuch longer title\nover\nmany lines")
    image = pixels(figure)
    assert image.shape[:2] == pixels(other).shape[:2]
    width, height = figure_size_pixels(tokens)
    assert image.shape == (height, width, 3)


def test_bigger_sentences_get_smaller_cells_but_stay_readable():
    assert figures.cell_pixels(5) > figures.cell_pixels(30) >= figures.cell_pixels(60) >= 16
    assert figures.label_font_pixels(figures.cell_pixels(60)) >= 8


def test_each_cell_centre_has_the_grey_of_its_weight_rows_are_queries():
    rows = 7
    weights = distinct_weights(rows, rows)
    figure = attention_figure(weights, [f"t{i}" for i in range(rows)],
                              expected=[(2, 3)], actual=[(4, 1)])
    grid = Grid(figure, pixels(figure), rows, rows)
    expected_grey = grey_levels(weights)
    for query in range(rows):
        for key in range(rows):
            assert grid.centre(query, key).tolist() == [expected_grey[query, key]] * 3, \
                (query, key)


def test_expected_and_actual_outlines_sit_on_their_cells_only():
    rows = 6
    weights = distinct_weights(rows, rows)
    expected, actual = [(2, 3), (5, 0)], [(4, 1), (2, 3)]
    figure = attention_figure(weights, [f"t{i}" for i in range(rows)],
                              expected=expected, actual=actual)
    grid = Grid(figure, pixels(figure), rows, rows)
    for query in range(rows):
        for key in range(rows):
            # The outer 2 px of a cell may touch a neighbour's outline after pixel snapping.
            inner = grid.cell(query, key, margin=2)
            assert (count_color(inner, EXPECTED_COLOR) > 0) == ((query, key) in expected), \
                ("expected", query, key)
            assert (count_color(inner, ACTUAL_COLOR) > 0) == ((query, key) in actual), \
                ("actual", query, key)


def test_expected_outline_is_at_the_cell_border_and_actual_inside_it():
    figure = attention_figure(distinct_weights(4, 4), list("abcd"), expected=[(1, 2)],
                              actual=[(1, 2)])
    grid = Grid(figure, pixels(figure), 4, 4)
    cell = grid.cell(1, 2)
    border = np.concatenate([cell[:3].reshape(-1, 3), cell[-3:].reshape(-1, 3),
                             cell[:, :3].reshape(-1, 3), cell[:, -3:].reshape(-1, 3)])
    assert count_color(border[None], EXPECTED_COLOR) > 0
    assert count_color(border[None], ACTUAL_COLOR) == 0
    middle = cell[cell.shape[0] // 5:-cell.shape[0] // 5, cell.shape[1] // 5:-cell.shape[1] // 5]
    assert count_color(middle, ACTUAL_COLOR) > 0


def test_labels_title_and_legend_are_drawn():
    figure = attention_figure(distinct_weights(3, 3), ["[CLS]", "hello", "[SEP]"],
                              expected=[(1, 2)], actual=[(1, 1)],
                              title="L2H5: token -> next\nargmax 0.31, expected >= 0.8")
    labels = figure.axes[0].texts
    assert [t.get_text() for t in labels if t.get_rotation() == 0] == ["[CLS]", "hello", "[SEP]"]
    assert [t.get_text() for t in labels if t.get_rotation() == 90] == ["[CLS]", "hello", "[SEP]"]
    texts = [t.get_text() for t in figure.texts]
    assert any("L2H5: token -> next" in t and "expected >= 0.8" in t for t in texts)
    legend_labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend_labels == ["expected target (solid)", "actual argmax (dashed)"]


def test_legend_names_only_the_outlines_drawn():
    only_actual = attention_figure(distinct_weights(3, 3), list("abc"), actual=[(0, 1)])
    assert [t.get_text() for t in only_actual.legends[0].get_texts()] == [
        "actual argmax (dashed)"]
    assert attention_figure(distinct_weights(3, 3), list("abc")).legends == []


def test_long_labels_and_titles_are_shortened():
    assert figures.shorten("supercalifragilistic") == "supercalifr…"
    assert figures.shorten("line\nbreak") == "line break"
    title = figures.wrap_title("one\ntwo\nthree\nfour\nfive", 40)
    assert title.splitlines() == ["one", "two", "three", "four…"]


def test_wrong_matrix_shape_is_a_clear_error():
    with pytest.raises(UsageError, match=r"shape \[query, key\] = \(3, 3\).*got shape \(3, 4\)"):
        attention_figure(np.zeros((3, 4)), ["a", "b", "c"])


def test_outline_cell_outside_the_grid_is_a_clear_error():
    with pytest.raises(UsageError, match=r"cell \(3, 0\) is outside the 3x3 grid"):
        attention_figure(np.zeros((3, 3)), ["a", "b", "c"], expected=[(3, 0)])


def test_overview_has_one_labelled_panel_per_head_with_exact_greys():
    layers, heads, tokens = 2, 3, 5
    rng = np.random.default_rng(7)
    attentions = rng.random((layers, heads, tokens, tokens)).astype(np.float32)
    figure = overview_figure(attentions, [f"t{i}" for i in range(tokens)], "title")
    image = pixels(figure)
    layout = overview_layout(layers, heads, tokens)
    assert image.shape == (layout["height"], layout["width"], 3)
    texts = {t.get_text() for t in figure.texts}
    assert {f"L{l}H{h}" for l in (1, 2) for h in (1, 2, 3)} <= texts
    assert "L0H1" not in texts and "L3H1" not in texts
    panel, block = layout["panel"], layout["panel"] / tokens
    grey = grey_levels(attentions)
    for layer in range(layers):
        for head in range(heads):
            top = layout["top"] + layer * layout["row_step"]
            left = layout["left"] + head * layout["step"]
            for query, key in [(0, 4), (4, 0), (2, 3)]:
                y = top + int((query + 0.5) * block)
                x = left + int((key + 0.5) * block)
                assert image[y, x].tolist() == [grey[layer, head, query, key]] * 3
            assert panel >= tokens


def test_overview_rejects_attentions_that_do_not_match_the_labels():
    with pytest.raises(UsageError, match=r"\[layer, head, query, key\].*got shape \(2, 3, 4\)"):
        overview_figure(np.zeros((2, 3, 4)), ["a"] * 4)


def test_save_png_writes_a_valid_png_atomically_and_overwrites(tmp_path):
    target = tmp_path / "sub" / "Attention_Layer1_Head2.png"
    figure = attention_figure(distinct_weights(3, 3), ["a", "b", "c"])
    save_png(figure, target)
    first = target.read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    save_png(attention_figure(np.zeros((4, 4)), list("abcd")), target)
    assert target.read_bytes() != first
    assert [p.name for p in target.parent.iterdir()] == [target.name]   # no temp files left


def test_redrawing_a_figure_gives_the_same_png_as_a_new_figure():
    labels = ["[CLS]", "a", "b", "c", "[SEP]"]
    first, second = distinct_weights(5, 5), distinct_weights(5, 5).T.copy()
    reused = attention_figure(first, labels, expected=[(1, 2)], actual=[(0, 4)], title="one")
    figures.redraw_attention_figure(reused, second, actual=[(3, 3)], title="two")
    fresh = attention_figure(second, labels, actual=[(3, 3)], title="two")
    assert render_png(reused) == render_png(fresh)


def test_redrawing_with_another_size_is_a_clear_error():
    figure = attention_figure(distinct_weights(3, 3), list("abc"))
    with pytest.raises(UsageError, match=r"\(3, 3\).*got shape \(4, 4\)"):
        figures.redraw_attention_figure(figure, np.zeros((4, 4)))


def test_documented_sizes_stay_true():
    # docs/figures.md quotes these; change both together.
    assert figure_size_pixels(12) == (776, 843)
    assert figure_size_pixels(60) == (1377, 1444)
