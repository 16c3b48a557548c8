"""``headprobe diff A B [--sentences FILE] [--level L] [--tolerance T] [--json FILE] [-o DIR]``:
which heads changed between two checkpoints (SPEC §11).

A and B are each a model SPEC or a profile file (``*.json`` written by ``headprobe profile``).
Models are profiled on the same sentences (``--sentences``, else the bundled English set); a
profile over other sentences or at another level, or models of other sizes, are a usage error
(exit 4). The heads are printed ranked by their largest absolute change over the statistics, at
most 20 unless ``-v``. ``--json`` writes the diff; ``-o DIR`` draws ``changes.png`` (a layers x
heads grid coloured by each head's largest change) and, when both sides are models, A and B side
by side for the 5 most changed heads on the sentence where each changed most. Exit 0 when no
head changed beyond the tolerance, 1 when some did.

Every output is checked before anything is profiled or written (`headprobe.outputs`): a
``--json`` that is a folder, a device or a named pipe, a ``-o`` that is not a folder, a folder
that cannot be written, or a model too large for ``changes.png`` (more than `FIGURE_MAX` layers or
heads a layer) is a usage error with nothing written; so is a disk that fills while writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

from headprobe.cache.cached_runs import forward_runs
from headprobe.commands.common import CommandContext, add_model_options, command_context
from headprobe.engine.models import ModelHandle
from headprobe.engine.profiling import (
    Side,
    check_profile_level,
    check_profile_sentences,
    check_sides,
    compute_profile,
)
from headprobe.errors import ExitCode, UsageError
from headprobe.evaluation.positions import level_view
from headprobe.evaluation.profile_stats import pooled
from headprobe.evaluation.results import format_value
from headprobe.model.export.locate import companion_folder, export_graph
from headprobe.outputs import check_file, check_folder, write_file
from headprobe.regression.diff import (
    DEFAULT_TOLERANCE,
    SHOWN,
    HeadChange,
    ProfileDiff,
    diff_profiles,
    diff_table,
)
from headprobe.regression.profiles import (
    Profile,
    looks_like_profile,
    read_profile,
)
from headprobe.report.figures import changes_figure, render_png, side_by_side_figure
from headprobe.sentence_sets import load_sentences

DRAWN = 5
FIGURE_MAX = 64  # layers, and heads a layer, that changes.png draws (bert-large: 24 x 16)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "diff", help="which heads changed between two checkpoints",
        description="Profile two models (or read two profiles) on the same sentences and rank "
                    "every head by its largest change. Exit 0: no head changed beyond the "
                    "tolerance; 1: some did; 4: usage error.",
        epilog="Example: headprobe diff bert-base-uncased ./my-finetune --json diff.json -o "
               "diff/")
    parser.add_argument("a", metavar="A", help="a model SPEC or a profile file (.json)")
    parser.add_argument("b", metavar="B", help="a model SPEC or a profile file (.json)")
    add_model_options(parser, model=False)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"a head changed when its largest |change| exceeds this "
                             f"(default {DEFAULT_TOLERANCE})")
    parser.add_argument("--json", metavar="FILE", help="write the diff as JSON")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="draw changes.png (and side-by-side diagrams) into DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every head")
    parser.add_argument("--effects", action="store_true",
                        help="also compare effect:hidden, what removing each head does (SPEC "
                             "§14.3; costs about one forward pass per head, see "
                             "docs/regression.md)")
    return parser


def run(args: argparse.Namespace) -> int:
    json_path, folder = _check_outputs(args)  # before anything is profiled or written
    borrowed = None if args.tokenizer else borrowed_tokenizer(args.a, args.b)
    context = command_context(args, tokenizer=borrowed[1] if borrowed else None)
    try:
        sides = tuple(read_profile(spec) if looks_like_profile(spec) else context.model(spec)
                      for spec in (args.a, args.b))
        check_sides(sides, (args.a, args.b), effects=args.effects)
        if folder is not None:
            check_figure_size(sides[0])
        a, b = (_side(side, spec, args, context) for side, spec in zip(sides, (args.a, args.b)))
        diff = diff_profiles(a, b, args.tolerance)
        # Files first, then the table: a reader that stops early (| head) loses no file.
        written = _write_outputs(diff, json_path, folder, context)
    finally:
        context.cache.close()
    note = ([f"{borrowed[0]}: an ONNX export without config.json and tokenizer; using "
             f"those of {borrowed[1]}"] if borrowed else [])
    print("\n".join(note + diff_table(diff, limit=None if args.verbose else SHOWN)
                    + written))
    sys.stdout.flush()
    return int(ExitCode.TESTS_FAILED if diff.changed else ExitCode.OK)


def borrowed_tokenizer(a: str, b: str) -> tuple[str, str] | None:
    """(export, checkpoint) when one side is an ONNX export with no config.json and tokenizer
    of its own and the other a checkpoint: the export is read with the checkpoint's (the main
    use, SPEC §15: a checkpoint against its export). None otherwise."""
    for export, other in ((b, a), (a, b)):
        if looks_like_profile(export) or looks_like_profile(other):
            continue
        try:
            graph = export_graph(Path(export)) if Path(export).exists() else None
            other_graph = export_graph(Path(other)) if Path(other).exists() else None
        except UsageError:
            return None  # said again, in full, when the models are read
        if graph is None or other_graph is not None:
            continue
        try:
            companion_folder(graph)
        except UsageError:
            return export, other
    return None


def _check_outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """``--json FILE`` and ``-o DIR``, each a place that can be written, and not one place."""
    json_path = check_file(args.json, "--json") if args.json else None
    folder = check_folder(args.output, "-o") if args.output else None
    if json_path is not None and folder is not None \
            and json_path.resolve() == folder.resolve():
        raise UsageError(f"--json {args.json} and -o {args.output} are one path; give the "
                         f"JSON file another name")
    return json_path, folder


def _write_outputs(diff: ProfileDiff, json_path: Path | None, folder: Path | None,
                   context: CommandContext) -> list[str]:
    """Write ``--json`` and draw into ``-o`` once every file's place is checked; the lines
    that say where."""
    paths = figure_paths(diff, folder) if folder is not None else []
    for path in paths:
        check_file(path, "-o")
        if json_path is not None and path.resolve() == json_path.resolve():
            raise UsageError(f"--json {json_path}: -o draws {path.name} there; give the JSON "
                             f"file another name")
    lines = []
    if json_path is not None:
        text = json.dumps(diff.to_json(), indent=1, ensure_ascii=False) + "\n"
        write_file(json_path, text.encode("utf-8"), what="diff")
        lines.append(f"diff: {json_path}")
    if folder is not None:
        lines += [str(path) for path in draw(diff, folder, context)]
    return lines


def check_figure_size(side: Side) -> None:
    """``changes.png`` has a cell per head: at most `FIGURE_MAX` layers and heads a layer."""
    layers, heads = side.num_layers, side.num_heads
    if layers > FIGURE_MAX or heads > FIGURE_MAX:
        name = side.model if isinstance(side, Profile) else side.name
        raise UsageError(f"-o: changes.png draws a cell per head, for models of at most "
                         f"{FIGURE_MAX} layers of at most {FIGURE_MAX} heads; {name} has "
                         f"{layers:,} layers of {heads:,} heads; leave -o out (the table with "
                         f"-v, and --json, list every head)")


def _side(side: Side, spec: str, args: argparse.Namespace, context: CommandContext) -> Profile:
    """A profile file as it is, or a model profiled on the sentences of the command."""
    if isinstance(side, Profile):
        if args.sentences is not None or args.level != "token":
            check_profile_level(side, spec, args.level)
            if args.sentences is not None:
                sentences, label = load_sentences(args.sentences)
                check_profile_sentences(side, spec, [s.text for s in sentences], label)
        return side
    sentences, label = load_sentences(args.sentences)
    context.check_sentences(spec, sentences, label)
    return compute_profile(side, [s.text for s in sentences], level=args.level,
                           cache=context.cache, progress=context.progress,
                           effects=args.effects)


def figure_paths(diff: ProfileDiff, folder: Path) -> list[Path]:
    """The files `draw` writes in ``folder``."""
    paths = [folder / "changes.png"]
    if diff.a.per_sentence and diff.b.per_sentence:
        paths += [_side_by_side_path(change, folder) for change in diff.heads[:DRAWN]]
    return paths


def draw(diff: ProfileDiff, folder: Path, context: CommandContext) -> list[Path]:
    """``changes.png`` and, when both sides were profiled here, side-by-side diagrams of the
    most changed heads."""

    a = diff.a
    layers, heads = a.num_layers, a.num_heads
    grid = np.zeros((layers, heads))
    names = [["" for _ in range(heads)] for _ in range(layers)]
    for change in diff.heads:
        grid[change.head.layer - 1, change.head.head - 1] = change.change
        names[change.head.layer - 1][change.head.head - 1] = change.statistic
    title = (f"largest change per head: {diff.a.model} -> {diff.b.model}\n"
             f"{len(diff.changed)} heads beyond the tolerance {diff.tolerance:g} (outlined)")
    figure = changes_figure(grid, names, tolerance=diff.tolerance, title=title)
    paths = [write_file(folder / "changes.png", render_png(figure), what="figure")]
    if diff.a.per_sentence and diff.b.per_sentence:
        paths += [_side_by_side(diff, change, folder, context)
                  for change in diff.heads[:DRAWN]]
    return paths


def _side_by_side_path(change: HeadChange, folder: Path) -> Path:
    return folder / f"{change.head}_{change.statistic.replace(':', '-')}.png"


def _side_by_side(diff: ProfileDiff, change: HeadChange, folder: Path,
                  context: CommandContext) -> Path:
    """A and B of one head on the sentence where its statistic changed most."""

    a, b = diff.a, diff.b
    h = a.heads.index(change.head)
    per_a = np.array([pooled([n], len(a.heads), a.statistics)[h, a.statistics.index(
        change.statistic)] for n in a.per_sentence])
    per_b = np.array([pooled([n], len(b.heads), b.statistics)[h, b.statistics.index(
        change.statistic)] for n in b.per_sentence])
    moved = np.nan_to_num(np.abs(per_b - per_a), nan=-1.0)
    index = int(np.argmax(moved))
    text = a.texts[index]
    matrices = []
    for profile in (a, b):
        model = context.model(profile.model)
        ((_, run),) = forward_runs([text], [change.head], fingerprint=model.fingerprint,
                                   encode=model.tokenize, num_layers=model.num_layers,
                                   num_heads=model.num_heads, load_model=partial(_same, model),
                                   cache=context.cache)
        view = level_view(run, profile.level)
        matrices.append(view.matrix(change.head))
    figure = side_by_side_figure(
        matrices[0], matrices[1], view.labels,
        title_a=f"A: {a.model}\n{change.statistic} = {format_value(per_a[index])}",
        title_b=f"B: {b.model}\n{change.statistic} = {format_value(per_b[index])}",
        title=f"{change.head}: {change.statistic} {format_value(change.a)} -> "
              f"{format_value(change.b)} ({change.change:+.3f} over {a.count} sentences)\n"
              f"on the sentence where it changed most: {text}")
    return write_file(_side_by_side_path(change, folder), render_png(figure), what="figure")


def _same(model: ModelHandle) -> ModelHandle:
    return model
