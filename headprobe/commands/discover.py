"""``headprobe discover [--model SPEC] [--sentences FILE] [--for "SOURCE -> TARGET"] [--level L]
[-o FILE.yaml] [--figure FILE.png]``: what the heads do, and the claims that say so (SPEC §12).

Without ``--for``, every head's profile is matched against the behaviour catalogue
(`headprobe.discovery.catalogue`) and the findings are printed as a table. With ``--for``, every
head is ranked for that claim with its value, interval and the best fixed-offset baseline, and
the best heads that beat the baseline with confidence are proposed (`headprobe.discovery.ranking`).

``-o`` writes a hypothesis file of the findings or proposals (`headprobe.discovery.writer`),
read back with the hypothesis-file reader before it is saved; ``--figure`` draws the layers x
heads grid. Exit codes: 0 something was found (and written), 1 nothing was found (nothing is
written), 4 bad input (nothing is written); argparse's own errors are 2. Everything that can be
wrong with the input, the output paths included, is checked before the model runs.

For the bundled set, ``-o FILE.yaml`` copies it to ``FILE.sentences.txt``; a file of that name
is kept when it holds exactly the bundled set, and otherwise never overwritten (a usage error
saying what to do). The copy and the hypothesis file are written whole in a staging folder
beside them, then the copy takes its name (never replacing a file), then the hypothesis file:
a run stopped at any point leaves a hypothesis file that points at sentences that exist.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from headprobe.cache.cached_runs import forward_runs
from headprobe.claims.files import parse_hypothesis_text
from headprobe.claims.language import effect_measure, parse_claim, parse_measure
from headprobe.claims.spec import EFFECTS, Claim, ClaimSpec, Expectation, Measure, Sentence
from headprobe.commands.common import CommandContext, add_model_options, command_context
from headprobe.discovery.catalogue import (
    CATALOGUE,
    NOOP_FRACTION,
    Behaviour,
    Finding,
    closest,
    find_behaviours,
    margins,
    strongest,
)
from headprobe.discovery.importance import (
    REMOVABLE,
    Importance,
    importance_claims,
    rank_importance,
)
from headprobe.discovery.margins import Margin, margin_text, parts_of, result_margins
from headprobe.discovery.ranking import Ranked, rank_heads, threshold
from headprobe.discovery.writer import (
    Provenance,
    WrittenClaim,
    hypothesis_file,
    interval_text,
    slug,
)
from headprobe.engine.effect_claims import measure_effects
from headprobe.engine.profiling import compute_profile
from headprobe.errors import ClaimFileError, ExitCode, UsageError, did_you_mean
from headprobe.evaluation.accumulate import ClaimAccumulator
from headprobe.evaluation.results import format_value
from headprobe.heads import Head, parse_head
from headprobe.outputs import (
    cannot_write,
    check_file,
    holds_exactly,
    publish_new,
    staging_folder,
    write_file,
    write_new_file,
)
from headprobe.progress import bar_or_none
from headprobe.report.figures import head_grid_figure, render_png
from headprobe.sentence_sets import BUNDLED_LABEL, bundled_path, load_sentences

SHOWN = 20
DEFAULT_TOP = 3
KIND_COLOURS = {"diagonal": "#9CCBEC", "vertical": "#F3C57A", "broad": "#A8DDB5"}
PROPOSED_COLOUR, BEATS_COLOUR = "#9CCBEC", "#E4F1FA"
IMPORTANT_COLOUR, REMOVABLE_COLOUR = "#F3C57A", "#D9D9D9"
KIND_MEANING = {"diagonal": "a relative position (Kovaleva's diagonal)",
                "vertical": "a fixed kind of token (Kovaleva's vertical)",
                "broad": "broad attention"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "discover", help="find what heads do, and write the claims that say so",
        description="Match every head against a catalogue of behaviours (previous, next and "
                    "other offsets, self, same-word, punctuation, [SEP], [CLS], broad), or rank "
                    "every head for one claim with --for, and write the findings as a "
                    "hypothesis file. Exit 0: found; 1: nothing found; 4: bad input.",
        epilog='Examples: headprobe discover --model sentence-transformers/all-MiniLM-L6-v2 -o '
               'discovered.yaml --figure behaviours.png;  headprobe discover --for "span:adv -> '
               'span:verb" --sentences adverbs.txt --level word')
    add_model_options(parser)
    parser.add_argument("--for", dest="claim", metavar='"SOURCE -> TARGET"',
                        help='rank every head for this claim, e.g. "span:adv -> span:verb" on '
                             'annotated sentences, or "word:it -> cls"')
    parser.add_argument("--measure", default=None, metavar="MEASURE",
                        help="with --for: argmax (default), mass, topk:K or entropy")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N",
                        help=f"with --for: propose at most N heads; with --importance: mark "
                             f"at most N heads important (default {DEFAULT_TOP})")
    parser.add_argument("--importance", action="store_true",
                        help="rank every head by what removing it does (mean ablation), mark "
                             "the removable ones (SPEC §14.4)")
    parser.add_argument("--effect", choices=EFFECTS, default=None,
                        help="with --importance: hidden (default: the last hidden state), "
                             "embedding (the mean-pooled sentence embedding) or kl (the "
                             "masked-LM distribution; needs an MLM head)")
    parser.add_argument("-o", "--output", metavar="FILE.yaml",
                        help="write the findings as a hypothesis file")
    parser.add_argument("--figure", metavar="FILE.png",
                        help="draw the layers x heads grid labelled by behaviour")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help=f"with --for: list every head (default: the best {SHOWN})")
    return parser


def run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    request = _parse_for(args) if args.claim else None
    sentences, label = load_sentences(args.sentences)
    if not sentences:
        raise UsageError(f"{args.sentences}: no sentences (one a line; blank lines and lines "
                         f"starting with '#' are skipped); discover needs some to measure")
    if request is not None:
        _check_spans(request[0], sentences, label)
    context = command_context(args)
    try:
        model = context.model(args.model)
        unknown = context.check_sentences(args.model, sentences, label)
        heads = tuple(Head(layer, head) for layer in range(1, model.num_layers + 1)
                      for head in range(1, model.num_heads + 1))
        if args.importance:
            claims, grid, table = _importance(args, context, model, sentences, label, heads)
            legend = [(IMPORTANT_COLOUR, "important"), (REMOVABLE_COLOUR, "removable")]
            title = (f"{model.name}: what removing each head does (effect:{args.effect or 'hidden'}"
                     f", mean ablation; #rank value), {len(sentences)} sentences")
        elif request is None:
            claims, grid, table = _discover(args, context, model, sentences, label, heads)
            legend = [(KIND_COLOURS[k], KIND_MEANING[k]) for k in KIND_COLOURS]
            title = (f"{model.name}: the behaviour each head shows most strongly (the value of "
                     f"its statistic); {len(sentences)} sentences, level {args.level}")
        else:
            claims, grid, table = _rank(args, context, model, sentences, label, heads, *request)
            legend = [(PROPOSED_COLOUR, "proposed"), (BEATS_COLOUR, "beats the baseline")]
            title = (f"{model.name}: every head ranked for {args.claim.strip()} "
                     f"({request[1]}, level {args.level}; #rank value)")
    finally:
        context.cache.close()
    # Files first, then the table: a reader that stops early (| head) loses no file.
    # The figure is drawn before anything is written, so a failure to draw writes nothing.
    png = _draw(grid, model.num_layers, model.num_heads, legend, title) if args.figure else None
    written = []
    if claims and args.output:
        written.append(_write_file(args, model.name, label, len(sentences), claims, unknown))
    if png is not None:
        write_file(Path(args.figure), png, what="figure")
        written.append(f"figure: {args.figure}")
    if unknown:
        table.append(f"note: {unknown} of the {len(sentences)} sentences have words the "
                     f"vocabulary of {model.name} cannot spell; they were read as [UNK]"
                     + (" (the file says unknown_words: allow)" if claims and args.output
                        else ""))
    print("\n".join(table))
    if not claims and args.output:
        written.append(f"nothing written to {args.output}: no claim to write")
    print("\n".join(written))
    sys.stdout.flush()
    return int(ExitCode.OK if claims else ExitCode.TESTS_FAILED)


# --- input checks ----------------------------------------------------------------------------


def _check_outputs(args: argparse.Namespace) -> None:
    if args.output and Path(args.output).suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(f"-o {args.output}: a hypothesis file's name ends in .yaml or .yml")
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise UsageError(f"--figure {args.figure}: the figure is a PNG; name it FILE.png")
    if args.top < 1:
        raise UsageError(f"--top {args.top}: propose at least 1 head")
    if args.measure is not None and not args.claim:
        raise UsageError("--measure goes with --for (the catalogue has its own measures)")
    if args.importance and args.claim:
        raise UsageError("--importance ranks heads by removing them; --for ranks them for one "
                         "claim: choose one")
    if args.effect is not None and not args.importance:
        raise UsageError("--effect goes with --importance")
    # Every file discover may write, checked before the model runs and before any is written.
    if args.output:
        output = check_file(args.output, "-o")
        if args.sentences is None:
            copy = check_file(sentences_copy(output), "-o")
            _keep_copy(copy, args.output)
    if args.figure:
        check_file(args.figure, "--figure")


def sentences_copy(output: Path) -> Path:
    """Where ``-o FILE.yaml`` copies the bundled sentence set: ``FILE.sentences.txt``."""
    return output.with_name(output.stem + ".sentences.txt")


def _keep_copy(copy: Path, output: str) -> bool:
    """True when the copy of the bundled set is there already, byte for byte; False when it is
    not there; a `UsageError` when another file has its name (never overwritten)."""
    return holds_exactly(
        copy, bundled_path().read_bytes(), where=f"-o {output}",
        fix=f"move it away, or, if it holds the sentences you mean, pass it with --sentences "
            f"{copy} (the file then points at it), or choose another -o name")


def _parse_for(args: argparse.Namespace) -> tuple[Claim, Measure]:
    """The --for claim over every head, and its measure; errors are usage errors."""
    try:
        measure = parse_measure(args.measure) if args.measure is not None else Measure()
        claim = parse_claim(f"L*H*: {args.claim.strip()}")
    except ClaimFileError as error:
        raise UsageError(f"--for {args.claim!r}: {error.message}") from None
    if measure.needs_target and claim.target is None:
        raise UsageError(f"--for {args.claim!r}: give a target, as in 'token -> next' (only "
                         f"--measure entropy is measured without one)")
    if not measure.needs_target and claim.target is not None:
        raise UsageError(f"--for {args.claim!r}: --measure entropy needs no target; write "
                         f"--for {str(claim.source)!r}")
    return claim, measure


def _check_spans(claim: Claim, sentences: Sequence[Sentence], label: str) -> None:
    """Every span label the claim names is marked in some sentence."""
    known = {span.label for sentence in sentences for span in sentence.spans}
    for role, part in (("source", claim.source), ("target", claim.target)):
        if part is None or part.kind != "span" or part.arg in known:
            continue
        listed = (f"labels there: {', '.join(sorted(known))}" if known else
                  "no sentence there has an annotated span; mark them as [text]{label}, "
                  "one sentence a line, and pass the file with --sentences")
        raise UsageError(f"--for: the {role} span:{part.arg} is not marked in any sentence of "
                         f"{label}{did_you_mean(part.arg or '', known)}; {listed}")


# --- without --for: the catalogue ------------------------------------------------------------


def _discover(args: argparse.Namespace, context: CommandContext, model, sentences, label,
              heads) -> tuple[list[WrittenClaim], dict[Head, tuple[str, str]], list[str]]:

    profile = compute_profile(model, [s.text for s in sentences], level=args.level,
                              cache=context.cache, progress=context.progress)
    findings = find_behaviours(profile.per_sentence, heads)
    shown = {f.behaviour.name for f in findings}
    nearest = [(entry, closest(profile.per_sentence, heads, entry))
               for entry in CATALOGUE if entry.name not in shown]
    table = findings_table(findings, model.name, label, len(sentences), args.level, len(heads),
                           nearest)
    grid = {head: (f"{f.behaviour.label}{' no-op' if f.noop else ''} {format_value(f.value)}",
                   KIND_COLOURS[f.behaviour.kind]) for head, f in strongest(findings).items()}
    parts = parts_of([s.sources for s in profile.per_sentence],
                     "words" if args.level == "word" else "tokens")
    lows = margins(profile.per_sentence, heads, findings, parts)
    return [_claim_of(f, label, low) for f, low in zip(findings, lows)], grid, table


def findings_table(findings: list[Finding], model: str, label: str, count: int, level: str,
                   heads: int,
                   nearest: Sequence[tuple[Behaviour, Finding | None]] = ()) -> list[str]:
    """The findings as aligned text: a headline, one line per finding, each behaviour no head
    shows with its closest head (``nearest``), and a summary."""
    unit = "words" if level == "word" else "tokens"
    lines = [f"discover: {model}, {count} sentences of {label}, level {level}",
             f"{'behaviour':<10} {'head':<7} {'measure':<8} {'value':>6}  {'95% CI':<16} "
             f"{'n':>7}  criterion (on the 95% lower bound)"]
    for f in findings:
        noop = (f"; no-op sink: output-norm {format_value(f.output_norm)}"
                if f.noop and f.output_norm is not None else "")
        lines.append(f"{f.behaviour.name:<10} {f.head!s:<7} {f.measure:<8} "
                     f"{format_value(f.value):>6}  "
                     f"[{format_value(f.ci[0])}, {format_value(f.ci[1])}]  {f.n:>7}  "
                     f"{f.short_criterion}{noop}")
    for entry, near in nearest:
        if near is None:
            lines.append(f"no {entry.name} head (nothing counted)")
            continue
        lines.append(f"no {entry.name} head; closest {near.head} {near.measure} "
                     f"{format_value(near.value)} [{format_value(near.ci[0])}, "
                     f"{format_value(near.ci[1])}] ({near.short_criterion})")
    lines.append(f"{len(findings)} findings on {len({f.head for f in findings})} of {heads} "
                 f"heads (n counts {unit}; docs/discover.md explains each behaviour)")
    return lines


def _claim_of(finding: Finding, label: str, margin: Margin) -> WrittenClaim:
    entry = finding.behaviour
    target = f" -> {entry.target}" if entry.target is not None else ""
    what = {"argmax": "share of tokens that look most at it", "mass": "mean attention on it",
            "entropy": "mean normalised entropy"}[finding.measure]
    noop = (f" A no-op sink: it writes little (output-norm {format_value(finding.output_norm)},"
            f" below {NOOP_FRACTION:g} of the median head's)."
            if finding.noop and finding.output_norm is not None else "")
    why = (f"headprobe discover: {entry.name} ({entry.meaning}). {finding.measure} "
           f"({what}) {format_value(finding.value)}, {interval_text(finding.ci)}, "
           f"n={finding.n}, {finding.sentences} sentences of {label}; criterion: "
           f"{finding.criterion}.{noop} {margin_text(margin)}.")
    return WrittenClaim(id=f"{entry.name}-{finding.head}",
                        claim=f"{finding.head}: token{target}", measure=finding.measure,
                        expect=threshold(margin.low, finding.value), why=why)


# --- with --importance: every head removed ---------------------------------------------------


def _importance(args: argparse.Namespace, context: CommandContext, model, sentences, label,
                heads) -> tuple[list[WrittenClaim], dict[Head, tuple[str, str]], list[str]]:
    effect = args.effect or "hidden"
    spec = ClaimSpec(file=label, line=0, id="importance", claim=parse_claim("L*H*: token"),
                     over=("discovery",), expect=Expectation(">=", 0.0),
                     measure=effect_measure("mean", effect), level=args.level,
                     claim_text="L*H*: token")
    with bar_or_none(context.progress, len(sentences), "effects") as bar:
        accumulator = measure_effects(model, spec, sentences, heads, bar.advance)
    results = accumulator.head_results(model=model.name, fingerprint=model.fingerprint)
    ranked = rank_importance(results, args.top)
    table = importance_table(ranked, model.name, effect, label, len(sentences),
                             limit=None if args.verbose else SHOWN)
    grid = {parse_head(e.result.head): (f"#{e.rank} {format_value(e.result.value)}",
                                        IMPORTANT_COLOUR if e.important else
                                        REMOVABLE_COLOUR if e.removable else "#FFFFFF")
            for e in ranked}
    unit = "words" if args.level == "word" else "tokens"
    margins_by_head = {r.head: m for r, m in zip(results, result_margins(accumulator, unit))}
    return (importance_claims(ranked, effect, label, len(sentences), margins_by_head), grid,
            table)


def importance_table(ranked: list[Importance], model: str, effect: str, label: str,
                     count: int, limit: int | None = SHOWN) -> list[str]:
    lines = [f"discover --importance: {model}, effect:{effect} (mean ablation), {count} "
             f"sentences of {label}",
             f"{'rank':>4}  {'head':<7} {'effect':>7}  {'95% CI':<18} {'n':>6}  verdict"]
    shown = ranked if limit is None else ranked[:limit]
    for entry in shown:
        r = entry.result
        ci = "" if r.ci is None else f"[{format_value(r.ci[0])}, {format_value(r.ci[1])}]"
        verdict = ("important" if entry.important else
                   f"removable (upper bound < {REMOVABLE:g})" if entry.removable else "")
        lines.append(f"{entry.rank:>4}  {r.head:<7} {format_value(r.value):>7}  {ci:<18} "
                     f"{r.n:>6}  {verdict}")
    removable = [e for e in ranked if e.removable]
    if len(shown) < len(ranked):
        lines.append(f"... {len(ranked) - len(shown)} more heads (-v lists them all)")
    important = [e.result.head for e in ranked if e.important]
    lines.append(f"important: {', '.join(important) or 'none'}; removable: "
                 f"{', '.join(e.result.head for e in removable) or 'none'}")
    return lines


# --- with --for: one claim, every head ranked ------------------------------------------------


def _rank(args: argparse.Namespace, context: CommandContext, model, sentences, label, heads,
          claim: Claim, measure: Measure
          ) -> tuple[list[WrittenClaim], dict[Head, tuple[str, str]], list[str]]:

    spec = ClaimSpec(file=label, line=0, id="for", claim=claim, over=("discovery",),
                     expect=Expectation(">=", 0.0), measure=measure, level=args.level,
                     baseline="offset" if measure.needs_target else None,
                     claim_text=f"L*H*: {args.claim.strip()}")
    accumulator = ClaimAccumulator(spec, heads, windows=model.windows)
    runs = forward_runs([s.text for s in sentences], heads, fingerprint=model.fingerprint,
                        encode=model.tokenize, num_layers=model.num_layers,
                        num_heads=model.num_heads, load_model=lambda: model, cache=context.cache)
    progress = context.progress
    if progress is None:
        for index, run in runs:
            accumulator.add(index, sentences[index], run)
    else:
        with progress(len(sentences), "discover") as bar:
            for index, run in runs:
                accumulator.add(index, sentences[index], run)
                bar.advance()
    results = accumulator.head_results(model=model.name, fingerprint=model.fingerprint)
    if all(r.value is None for r in results):
        why = results[0].warnings[0] if results[0].warnings else "no source was counted"
        raise UsageError(f"--for {args.claim!r} on {len(sentences)} sentences of {label} "
                         f"(level {args.level}): {why}")
    ranked = rank_heads(results, args.top)
    table = ranking_table(ranked, spec, label, len(sentences),
                          limit=None if args.verbose else SHOWN)
    unit = "words" if args.level == "word" else "tokens"
    margins_by_head = {r.head: m for r, m in zip(results, result_margins(accumulator, unit))}
    source_target = args.claim.strip()
    claims = []
    for entry in ranked:
        if not entry.proposed:
            continue
        result = entry.result
        assert result.value is not None and result.ci is not None
        baseline = (f"; the best fixed offset, k={result.baseline.offset:+d}, scores "
                    f"{format_value(result.baseline.value)}" if result.baseline else "")
        why = (f"headprobe discover --for {source_target!r}: rank {entry.rank} of {len(heads)} "
               f"heads. {measure} {format_value(result.value)}, {interval_text(result.ci)}, "
               f"n={result.n}, {result.left_out} left out, {len(sentences)} sentences of "
               f"{label}{baseline}. {margin_text(margins_by_head[result.head])}.")
        claims.append(WrittenClaim(id=f"{slug(source_target)}-{result.head}",
                                   claim=f"{result.head}: {source_target}", measure=str(measure),
                                   expect=threshold(margins_by_head[result.head].low,
                                                    result.value),
                                   why=why, baseline=result.baseline is not None))
    grid = {parse_head(e.result.head): (f"#{e.rank} {format_value(e.result.value)}",
                                        PROPOSED_COLOUR if e.proposed else
                                        (BEATS_COLOUR if e.beats_baseline else "#FFFFFF"))
            for e in ranked}
    return claims, grid, table


def ranking_table(ranked: list[Ranked], spec: ClaimSpec, label: str, count: int,
                  limit: int | None = SHOWN) -> list[str]:
    first = ranked[0].result
    lines = [f"discover --for: {spec.claim_text} ({spec.measure}, level {spec.level}), "
             f"{first.model}, {count} sentences of {label}"]
    if first.baseline is not None:
        lines.append(f"best fixed-offset baseline: k={first.baseline.offset:+d} scores "
                     f"{format_value(first.baseline.value)}; a head is proposed when its lower "
                     f"95% bound is above it")
    lines.append(f"{'rank':>4}  {'head':<7} {'value':>6}  {'95% CI':<16} {'n':>6} "
                 f"{'left out':>8}  verdict")
    shown = ranked if limit is None else ranked[:limit]
    for entry in shown:
        r = entry.result
        ci = "" if r.ci is None else f"[{format_value(r.ci[0])}, {format_value(r.ci[1])}]"
        verdict = ("proposed" if entry.proposed else
                   "beats the baseline" if entry.beats_baseline else
                   "does not beat the baseline" if r.baseline is not None else "")
        lines.append(f"{entry.rank:>4}  {r.head:<7} {format_value(r.value):>6}  {ci:<16} "
                     f"{r.n:>6} {r.left_out:>8}  {verdict}")
    if len(shown) < len(ranked):
        lines.append(f"... {len(ranked) - len(shown)} more heads (-v lists them all)")
    proposed = [e.result.head for e in ranked if e.proposed]
    lines.append(f"proposed: {', '.join(proposed)}" if proposed else
                 "proposed: none (no head beats the baseline with 95% confidence)")
    return lines


# --- output ---------------------------------------------------------------------------------


def _write_file(args: argparse.Namespace, model: str, label: str, count: int,
                claims: list[WrittenClaim], unknown: int) -> str:
    """The hypothesis file, read back before it replaces anything; for the bundled set, a copy
    of its sentences beside it (an installed package's path is no place to point a committed
    file at), never over a file headprobe did not write."""
    output = Path(args.output)
    folder = output.parent
    copy: Path | None = None
    if args.sentences is None:
        copy = sentences_copy(output)
        sentences_path = copy.name
    else:
        sentences_path = os.path.relpath(Path(args.sentences).resolve(), folder.resolve())
    provenance = Provenance(
        model=model, level=args.level, sentences_path=Path(sentences_path).as_posix(),
        sentences_label=label if copy is None else f"{BUNDLED_LABEL} (copied to {copy.name})",
        sentence_count=count, date=datetime.date.today().isoformat(), unknown_words=unknown,
        command=" ".join(shlex.quote(a) for a in ["headprobe", "discover", *sys.argv[2:]])
        if sys.argv[1:2] == ["discover"] else "headprobe discover")
    text = hypothesis_file(provenance, claims)
    new_copy = copy if copy is not None and not _keep_copy(copy, args.output) else None
    try:
        _write_together(output, text, new_copy, claims)
    except FileExistsError:  # a file took the copy's name while the model ran
        raise UsageError(f"-o {args.output}: {copy} appeared while discover ran; headprobe "
                         f"does not overwrite it: move it away and run again") from None
    except OSError as error:
        raise cannot_write(output, error) from None
    # A sentence file outside the output's folder may be outside the project, where check
    # reads a hypothesis file's sentences only when allowed: say how.
    outside = Path(sentences_path).is_absolute() or Path(sentences_path).parts[:1] == ("..",)
    allow = (f" --allow-files-under {shlex.quote(str(Path(args.sentences).resolve().parent))}"
             if outside and args.sentences is not None else "")
    return (f"wrote {len(claims)} claims to {output}"
            + (f" and the sentences they were found on to {copy}" if new_copy else
               f" (its sentences: {copy}, kept as it was)" if copy else "")
            + f"; check them on other sentences: headprobe check {shlex.quote(str(output))}{allow}")


def _write_together(output: Path, text: str, copy: Path | None,
                    claims: list[WrittenClaim]) -> None:
    """The hypothesis file and, when ``copy`` is given, the new copy of the bundled set: both
    written whole in a staging folder beside them and the file read back there; then the copy
    takes its name (never replacing a file), then the hypothesis file takes its own. Whenever
    the run stops, the hypothesis file at ``output`` is the old one or the new one, and points
    at sentences that exist; an exception (Ctrl-C included) removes the new copy."""
    with staging_folder(output.parent) as stage:
        if copy is not None:
            write_new_file(stage / copy.name, bundled_path().read_bytes())
        _verified(text, output, stage if copy is not None else output.parent, claims)
        write_new_file(stage / output.name, text.encode("utf-8"))
        if copy is not None:
            publish_new(stage / copy.name, copy)
        try:
            os.replace(stage / output.name, output)
        except BaseException:
            if copy is not None:
                copy.unlink(missing_ok=True)
            raise


def _verified(text: str, output: Path, base: Path, claims: list[WrittenClaim]) -> None:
    """The text is a valid hypothesis file whose sentence set resolves (relative to ``base``,
    where the sentence file is or is staged) and whose claims read back as written."""
    try:
        read = parse_hypothesis_text(text, str(output), base_dir=base)
        if [(c.id, c.claim_text, c.why) for c in read.claims] != \
                [(c.id, c.claim, c.why) for c in claims]:
            raise ClaimFileError("its claims read back differently from what was meant")
    except ClaimFileError as error:  # a bug here, not the user's input
        raise RuntimeError(f"discover wrote a hypothesis file it cannot read back: "
                           f"{error}") from None


def _draw(grid: dict[Head, tuple[str, str]], layers: int, heads: int,
          legend: list[tuple[str, str]], title: str) -> bytes:
    """The PNG of the layers x heads grid."""

    texts = [[grid.get(Head(layer, head), ("", "#FFFFFF"))[0] for head in range(1, heads + 1)]
             for layer in range(1, layers + 1)]
    colours = [[grid.get(Head(layer, head), ("", "#FFFFFF"))[1] for head in range(1, heads + 1)]
               for layer in range(1, layers + 1)]
    return render_png(head_grid_figure(texts, colours, legend=legend, title=title))
