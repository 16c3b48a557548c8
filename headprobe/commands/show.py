"""``headprobe show TEXT --head L3H10 [-o FILE]`` / ``--all [-o DIR]``: attention diagrams;
``--html FILE``: the interactive view (SPEC §16) instead.

One head gives one PNG (default ``Attention_Layer3_Head10.png`` in the current folder, the name
the original attention-diagram projects use); ``--all`` writes ``Attention_Layer{L}_Head{H}.png``
for every head (counted from 1) and ``overview.png`` with all heads in one image. ``--level word``
draws words instead of wordpieces: a word's row is the mean of its pieces' rows, attention to a
word the sum over its pieces (Clark et al. 2019). ``--weighting norm`` draws SPEC §14.1's
value-aware weights. The paths written are printed, one a line.

``--html FILE`` writes the interactive view of ``--head``'s head, or of every head, in place of
the PNGs (which are written too when ``-o`` asks for them); ``--level`` and ``--weighting`` are
what it shows first.

Every file's place is checked before anything is written (`headprobe.outputs`), ``-o`` before
the model loads: a named pipe, a device, a folder where a file goes or a file where the folder
goes is a usage error, and each file is written whole (a temporary file renamed into place).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from headprobe.commands.common import add_level_option, loaded_model
from headprobe.engine.views import WEIGHTINGS, view
from headprobe.errors import ClaimFileError, UsageError
from headprobe.evaluation.positions import reach
from headprobe.heads import Head, HeadPattern, check_in_range, parse_head
from headprobe.outputs import check_file, check_folder, write_file
from headprobe.report.figures import (
    attention_figure,
    overview_figure,
    redraw_attention_figure,
    render_png,
)
from headprobe.settings import add_model_option, add_tokenizer_option

if TYPE_CHECKING:  # pragma: no cover
    from headprobe.heads import Head
    from headprobe.runs import Run



def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "show", help="draw attention diagrams for a sentence",
        description="Draw a head's attention for one sentence as a grayscale grid (lighter = "
                    "more attention; rows attend to columns). TEXT may contain [MASK].",
        epilog="Examples: headprobe show 'The cat sat.' --head L3H10 ; "
               "headprobe show 'The cat sat.' --all -o diagrams/ ; "
               "headprobe show 'The cat sat.' --html view.html")
    parser.add_argument("text", metavar="TEXT", help="the sentence to draw")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--head", metavar="LxHy",
                       help="one head, counted from 1, e.g. L3H10 (layer 3, head 10); with "
                            "--html alone also a pattern or list (L3H*, L2H9,L3H1)")
    which.add_argument("--all", action="store_true",
                       help="every head, plus overview.png with all heads in one image")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="with --head: the PNG file (default Attention_Layer{L}_Head{H}.png); "
                             "with --all: the folder (default: the current folder)")
    parser.add_argument("--html", metavar="FILE",
                        help="write the interactive view (one HTML file, no network) of --head's "
                             "head, else of every head, instead of PNGs (-o: the PNGs too)")
    add_level_option(parser)
    parser.add_argument("--weighting", choices=WEIGHTINGS, default="attention",
                        help="attention (default), or norm: the size of each key's contribution "
                             "to the head's output (needs the checkpoint, not an ONNX export)")
    add_model_option(parser.add_argument)
    add_tokenizer_option(parser.add_argument)
    parser.set_defaults(show_parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if not (args.head or args.all or args.html):
        args.show_parser.error("one of the arguments --head --all is required (or --html FILE "
                               "for the interactive view of every head)")
    pngs = bool(args.output) or not args.html  # --html alone: the view, no PNGs
    if args.html and args.output and not (args.head or args.all):
        raise UsageError("-o writes PNGs of --head's head or of --all heads; with --html alone "
                         "only the interactive view is written: add --head or --all, or drop -o")
    # Before the model loads: a place that cannot be written fails at once.
    html = check_file(args.html, "--html") if args.html else None
    if args.output:
        (check_folder if args.all else check_file)(args.output, "-o")
    model = loaded_model(args.model, args.tokenizer)
    head = parse_cli_head(args.head, model.num_layers, model.num_heads) \
        if pngs and not args.all else None
    folder = Path(args.output or ".")
    if pngs and head is None:
        check_diagrams(folder, model.num_layers, model.num_heads, "-o")
    target = check_file(args.output or diagram_name(head), "-o") if head is not None else None
    paths: list[Path] = []
    if html is not None:
        shown = view(model, args.text, heads=args.head, level=args.level,
                     weighting=args.weighting, heads_option="--head")
        paths.append(write_file(html, shown.html.encode("utf-8", errors="backslashreplace"),
                                what="view"))
    if head is None and pngs:
        (sentence_run,) = model.run([args.text], hidden_states=False, mlm_logits=False,
                                    weighting=args.weighting)
        paths += write_diagrams(sentence_run, folder, model_name=model.name, level=args.level,
                                windows=model.windows, weighting=args.weighting)
    elif head is not None and target is not None:
        (sentence_run,) = model.run([args.text], hidden_states=False, mlm_logits=False,
                                    num_layers=head.layer, weighting=args.weighting)
        paths.append(write_head_diagram(sentence_run, head, target, model_name=model.name,
                                        level=args.level, windows=model.windows,
                                        weighting=args.weighting))
    return _printed(paths)


def _printed(paths: Sequence[Path]) -> int:
    for path in paths:
        print(path)
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# Model and head from the command line.

def parse_cli_head(text: str, num_layers: int, num_heads: int) -> Head:
    """``L3H10`` checked against the model; errors are usage errors naming ``--head``."""

    try:
        head = parse_head(text)
        check_in_range(HeadPattern(head.layer, head.head), num_layers, num_heads)
    except ClaimFileError as error:
        raise UsageError(f"--head: {error.message}") from None
    return head


def diagram_name(head: Head) -> str:
    """``Attention_Layer3_Head10.png`` for L3H10 (counted from 1)."""
    return f"Attention_Layer{head.layer}_Head{head.head}.png"


# --------------------------------------------------------------------------------------------
# Grids (pure).

def word_grid(matrix: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``[word, word]`` from ``[query, key]``: rows are the mean of a word's pieces' rows,
    columns the sum over its pieces. Each row still sums to 1 when the token rows did."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = np.stack([matrix[list(group)].mean(axis=0) for group in groups])
    return np.stack([rows[:, list(group)].sum(axis=1) for group in groups], axis=1)


def sentence_grid(sentence_run: Run, layer: int, head: int, level: str
                  ) -> tuple[np.ndarray, list[str]]:
    """The ``[query, key]`` grid and its labels for a 0-based ``(layer, head)``."""
    matrix = sentence_run.attentions[layer, head]
    if level == "token":
        return np.asarray(matrix), list(sentence_run.display_tokens)
    groups = sentence_run.word_groups()
    labels = [sentence_run.word_text(group[0]) for group in groups]
    return word_grid(matrix, groups), labels


def all_grids(sentence_run: Run, level: str) -> tuple[np.ndarray, list[str]]:
    """``[layer, head, query, key]`` at the level asked for, and its labels."""
    if level == "token":
        return np.asarray(sentence_run.attentions), list(sentence_run.display_tokens)
    layers, heads = sentence_run.attentions.shape[:2]
    grids = [[sentence_grid(sentence_run, l, h, level)[0] for h in range(heads)]
             for l in range(layers)]
    return np.asarray(grids), sentence_grid(sentence_run, 0, 0, level)[1]


# --------------------------------------------------------------------------------------------
# Writing the diagrams.

def _title(head_name: str, sentence_run: Run, model_name: str, level: str,
           weighting: str = "attention") -> str:
    shown = f"{level} level" + ("" if weighting == "attention" else f", weighting: {weighting}")
    return f"{head_name}  ({shown})\n{sentence_run.text}\nmodel: {model_name}"


def diagram_paths(folder: Path, num_layers: int, num_heads: int) -> list[Path]:
    """Where `write_diagrams` writes: every head's diagram, then ``overview.png``."""

    return [folder / diagram_name(Head(l, h))
            for l in range(1, num_layers + 1) for h in range(1, num_heads + 1)
            ] + [folder / "overview.png"]


def check_diagrams(folder: Path, num_layers: int, num_heads: int, option: str) -> None:
    """Every file `write_diagrams` would write in ``folder`` can be written (`check_folder`,
    `check_file`: not a named pipe, a device or a folder); else a `UsageError` naming
    ``option`` and the path, before anything is written."""
    check_folder(folder, option)
    for path in diagram_paths(folder, num_layers, num_heads):
        check_file(path, option)


def write_head_diagram(sentence_run: Run, head: Head, path: Path, *, model_name: str,
                       level: str = "token", figure=None,
                       windows: Sequence[int | None] | None = None,
                       weighting: str = "attention") -> Path:
    """One head's diagram at ``path``; the cells each row attends to most are outlined, and,
    for a head of a local layer (``windows``: per layer, as `Model.windows`), the edges of its
    window. Written whole (`headprobe.outputs.write_file`); the caller checked the place.

    ``figure``: a figure of this sentence to redraw instead of building a new one (faster).
    ``weighting``: what the run's attentions are (said in the title when not attention).
    """

    matrix, labels = sentence_grid(sentence_run, *head.index, level)
    actual = [(row, int(np.argmax(matrix[row]))) for row in range(len(labels))]
    title = _title(str(head), sentence_run, model_name, level, weighting)
    half = None if windows is None else windows[head.layer - 1]
    cells = None
    if half is not None:
        groups = ([[i] for i in range(len(labels))] if level == "token"
                  else sentence_run.word_groups())
        cells = reach(groups, half)
        title = title.replace("\n", f"; local layer: ±{half} tokens\n", 1)
    if figure is None:
        figure = attention_figure(matrix, labels, actual=actual, title=title, reach=cells)
    else:
        redraw_attention_figure(figure, matrix, actual=actual, title=title, reach=cells)
    return write_file(path, render_png(figure), what="diagram")


def write_diagrams(sentence_run: Run, folder: Path, *, model_name: str,
                   level: str = "token", option: str = "-o",
                   windows: Sequence[int | None] | None = None,
                   weighting: str = "attention") -> list[Path]:
    """``Attention_Layer{L}_Head{H}.png`` for every head, then ``overview.png``, in ``folder``;
    every place is checked (`check_diagrams`, errors naming ``option``) before the first is
    written."""

    layers, heads = sentence_run.attentions.shape[:2]
    check_diagrams(folder, layers, heads, option)
    grids, labels = all_grids(sentence_run, level)
    figure = attention_figure(grids[0, 0], labels)          # redrawn for every head
    paths = [write_head_diagram(sentence_run, Head(l, h), folder / diagram_name(Head(l, h)),
                                model_name=model_name, level=level, figure=figure,
                                windows=windows, weighting=weighting)
             for l in range(1, layers + 1) for h in range(1, heads + 1)]
    overview = overview_figure(grids, labels,
                               title=f"{sentence_run.text}\nmodel: {model_name} ({level} level"
                                     + ("" if weighting == "attention"
                                        else f", weighting: {weighting}") + ")")
    paths.append(write_file(folder / "overview.png", render_png(overview), what="diagram"))
    return paths
