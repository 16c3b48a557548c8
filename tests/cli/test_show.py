"""``headprobe show``: one head or every head of a sentence as PNG diagrams, on the bundled
MiniLM."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import headprobe
from headprobe.cli import main
from headprobe.commands.common import loaded_model
from headprobe.commands.show import diagram_name, word_grid
from headprobe.heads import Head
from headprobe.report.figures import figure_size_pixels, grey_levels, scale_top

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXT = "Then I picked up a [MASK] from the photographer's embroidered tablecloth."

_real_load = headprobe.load
_loaded: dict = {}


def cached_load(spec=None, **options):
    """headprobe.load, once per spec per test session (the CLI still resolves --model itself)."""
    if spec not in _loaded:
        _loaded[spec] = _real_load(spec, **options)
    return _loaded[spec]


_handles: dict = {}


def cached_loaded_model(option, tokenizer=None):
    """`show`'s model, once per --model per test session (the CLI still parses and checks)."""
    if (option, tokenizer) not in _handles:
        _handles[option, tokenizer] = loaded_model(option, tokenizer)
    return _handles[option, tokenizer]


@pytest.fixture
def fast_load(monkeypatch):
    monkeypatch.setattr("headprobe.commands.show.loaded_model", cached_loaded_model)


@pytest.fixture(scope="module")
def minilm_run():
    model = cached_load(MINILM)
    (run,) = model.run([TEXT])
    return run


def png(path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))


def grid_centres(image: np.ndarray, tokens: int) -> np.ndarray:
    """Grey levels at the cell centres of an attention_figure PNG, from its layout."""
    from headprobe.report import figures

    layout = figures._grid_layout(tokens, tokens)
    top = image.shape[0] - layout["bottom"] - layout["grid_h"]
    cell = layout["cell"]
    centres = [[image[top + q * cell + cell // 2, layout["left"] + k * cell + cell // 2, 0]
                for k in range(tokens)] for q in range(tokens)]
    return np.array(centres)


def test_one_head_default_file_name_in_the_current_folder(tmp_path, monkeypatch, capsys,
                                                          fast_load, minilm_run):
    monkeypatch.chdir(tmp_path)
    assert main(["show", TEXT, "--head", "L2H5", "--model", MINILM]) == 0
    written = tmp_path / "Attention_Layer2_Head5.png"
    assert capsys.readouterr().out.splitlines() == ["Attention_Layer2_Head5.png"]
    image = png(written)
    tokens = len(minilm_run.tokens)
    width, height = figure_size_pixels(tokens)
    assert image.shape == (height, width, 3)
    # The grid is layer 2, head 5 counted from 1: attentions[1, 4], rows = queries; white is
    # the largest weight of the figure.
    weights = minilm_run.attentions[1, 4]
    assert np.array_equal(grid_centres(image, tokens), grey_levels(weights, scale_top(weights)))
    assert not np.array_equal(grid_centres(image, tokens),
                              grey_levels(weights.T, scale_top(weights)))


def test_output_file_is_honoured(tmp_path, capsys, fast_load):
    target = tmp_path / "out" / "mine.png"
    assert main(["show", "The cat sat.", "--head", "L1H1", "-o", str(target),
                 "--model", MINILM]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_bytes().startswith(b"\x89PNG")


def test_all_heads_write_72_diagrams_and_an_overview(tmp_path, capsys, fast_load):
    folder = tmp_path / "diagrams"
    assert main(["show", "The cat sat on the mat.", "--all", "-o", str(folder),
                 "--model", MINILM]) == 0
    expected = {diagram_name(Head(l, h)) for l in range(1, 7) for h in range(1, 13)}
    names = {p.name for p in folder.iterdir()}
    assert names == expected | {"overview.png"}
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 73 and printed[-1] == str(folder / "overview.png")
    assert printed[0] == str(folder / "Attention_Layer1_Head1.png")


def test_word_level_draws_one_row_per_word(tmp_path, fast_load, minilm_run):
    target = tmp_path / "w.png"
    assert main(["show", TEXT, "--head", "L1H3", "--level", "word", "-o", str(target),
                 "--model", MINILM]) == 0
    groups = minilm_run.word_groups()
    words = len(groups)
    assert words < len(minilm_run.tokens)         # tablecloth is two wordpieces
    image = png(target)
    assert image.shape[:2] == figure_size_pixels(words)[::-1]
    grid = word_grid(minilm_run.attentions[0, 2], groups)
    expected = grey_levels(grid, scale_top(grid))
    assert np.array_equal(grid_centres(image, words), expected)


def test_word_grid_averages_rows_and_sums_columns():
    matrix = np.array([[0.1, 0.2, 0.3, 0.4],
                       [0.5, 0.1, 0.1, 0.3],
                       [0.2, 0.2, 0.2, 0.4],
                       [0.0, 0.6, 0.3, 0.1]])
    groups = [[0], [1, 2], [3]]
    grid = word_grid(matrix, groups)
    assert grid.shape == (3, 3)
    np.testing.assert_allclose(grid[0], [0.1, 0.5, 0.4])
    np.testing.assert_allclose(grid[1], [0.35, 0.3, 0.35])    # mean of rows 1 and 2
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)


@pytest.mark.parametrize("head, message", [
    ("L7H1", "layer 7 in L7H1 is out of range: this model has layers 1..6"),
    ("L1H13", "head 13 in L1H13 is out of range: this model has heads 1..12"),
    ("L0H1", "counted from 1"),
    ("L3H*", "one concrete head"),
])
def test_bad_heads_are_usage_errors(head, message, tmp_path, capsys, fast_load):
    assert main(["show", "The cat sat.", "--head", head, "-o", str(tmp_path / "x.png"),
                 "--model", MINILM]) == 4
    error = capsys.readouterr().err
    assert error.startswith("ERROR: --head: ") and message in error
    assert not (tmp_path / "x.png").exists()


def _one_error(capsys) -> str:
    """The one ``ERROR:`` line a usage error prints, nothing else."""
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
    assert captured.err.startswith("ERROR: "), captured
    return captured.err.strip()


@pytest.mark.parametrize("which, words", [(["--head", "L1H1"], "not a regular file"),
                                          (["--all"], "not a folder")])
def test_show_into_a_fifo_fails_before_the_model_loads_and_leaves_it(tmp_path, capsys,
                                                                     monkeypatch, which, words):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["show", "The cat sat.", *which, "-o", str(fifo),
                 "--model", "nobody/no-such-model"]) == 4
    error = _one_error(capsys)  # about the output, not "could not be found"
    assert error.startswith(f"ERROR: -o {fifo}: is a named pipe (FIFO)") and words in error
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_show_all_checks_every_diagram_before_writing_any(tmp_path, capsys, fast_load):
    folder = tmp_path / "diagrams"
    folder.mkdir()
    fifo = folder / diagram_name(Head(3, 4))
    os.mkfifo(fifo)  # renaming a diagram over it would replace the pipe with a file
    assert main(["show", "The cat sat.", "--all", "-o", str(folder), "--model", MINILM]) == 4
    error = _one_error(capsys)
    assert error.startswith(f"ERROR: -o {fifo}: is a named pipe (FIFO), not a regular file")
    assert [p.name for p in folder.iterdir()] == [fifo.name]  # nothing written
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_head_or_all_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "The cat sat."])
    assert exit_info.value.code == 2
    assert "one of the arguments --head --all is required" in capsys.readouterr().err


def test_default_model_comes_from_pyproject_after_the_option_and_the_file(tmp_path):
    from headprobe.settings import choose_model, read_settings

    (tmp_path / "pyproject.toml").write_text('[tool.headprobe]\nmodel = "some/model"\n')
    settings = read_settings(tmp_path)
    assert choose_model(None, None, settings) == "some/model"
    assert choose_model(None, "file/model", settings) == "file/model"
    assert choose_model("cli/model", "file/model", settings) == "cli/model"
    (tmp_path / "elsewhere").mkdir()
    assert choose_model(None, None, read_settings(tmp_path / "elsewhere")) == "bert-base-uncased"


def test_a_named_model_works_in_a_folder_whose_pyproject_is_not_headprobes(tmp_path):
    # Only the default model comes from ./pyproject.toml: with --model it is not read at all.
    (tmp_path / "pyproject.toml").write_text("[tool.headprobe]\nsomething_else = 1\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    named = subprocess.run(
        [sys.executable, "-m", "headprobe.cli", "show", "A cat sat.", "--head", "L1H1",
         "--model", MINILM], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert named.returncode == 0, named.stderr
    unnamed = subprocess.run(
        [sys.executable, "-m", "headprobe.cli", "show", "A cat sat.", "--head", "L1H1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert unnamed.returncode == 4 and "unknown key(s) something_else" in unnamed.stderr


def test_command_line_end_to_end_without_traceback(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "headprobe.cli", "show", "A [MASK] sat.", "--head", "L6H12",
         "--model", MINILM], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Attention_Layer6_Head12.png"
    assert (tmp_path / "Attention_Layer6_Head12.png").stat().st_size > 1000
    missing = subprocess.run(
        [sys.executable, "-m", "headprobe.cli", "show", "x", "--head", "L1H1", "--model",
         str(tmp_path / "no-such-model")], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300)
    assert missing.returncode == 4
    assert missing.stderr.startswith("ERROR: ") and "Traceback" not in missing.stderr
