"""Measure every head of a model on the shipped sentence data: the numbers behind hypotheses/.

    python hypotheses/tools/sweep.py                      # MiniLM, every probe, top 5 heads each
    python hypotheses/tools/sweep.py --top 3 --grid       # also a layer x head grid per probe
    python hypotheses/tools/sweep.py --only det --json sweep.json
    python hypotheses/tools/sweep.py --model path/to/bert --data my/data

It uses headprobe's own code for everything that decides a claim (sentence files, the claim
parser, `ClaimAccumulator`, `score_sentence`), so a figure printed here is the figure a hypothesis
file with the same claim, sentences and level will get. For each probe (a claim with ``L*H*``)
and every head it prints the ``argmax`` share with its 95% Wilson interval, the ``mass`` with its
bootstrap interval, the ``topk:2`` share, the lowest per-sentence ``argmax`` (what
``per: sentence`` needs), ``n`` and ``left_out``; for the
linguistic probes also the best fixed-offset baseline (``baseline: offset``). Heads are listed
best first by ``argmax``; sink probes (``cls``, ``sep``) also list the heads that put the least
mass there, for ``<=`` and ``none`` claims.

A diagnostic that is not a headprobe measure is printed last: per head, the mean over token rows
of the largest attention weight in the row ("peak"). A low peak means a broad head.

Nothing here downloads anything unless ``--model`` names a hub id that is not installed or cached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent / "data"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclasses.dataclass(frozen=True)
class Probe:
    """One claim to measure on every head: ``source -> target`` over one sentence file."""

    name: str
    data: str  # sentence file name in the data folder
    source: str
    target: str
    level: str = "token"
    baseline: bool = False
    sink: bool = False  # also list the heads with the least mass (for <= / none claims)


PROBES: tuple[Probe, ...] = (
    *(Probe(f"{t}", "everyday.txt", "token", t, sink=t in ("cls", "sep"))
      for t in ("next", "previous", "self", "cls", "sep", "punct", "same-word")),
    *(Probe(f"word-{t}", "everyday.txt", "token", t, level="word", sink=t in ("cls", "sep"))
      for t in ("next", "previous", "self", "cls", "sep", "punct")),
    Probe("mask-self", "everyday.txt", "mask", "self"),
    *(Probe(f"{name}{suffix}", data, src, tgt, level=level, baseline=True)
      for name, data, src, tgt in (
          ("det-noun", "determiners.txt", "span:det", "span:noun"),
          ("noun-det", "determiners.txt", "span:noun", "span:det"),
          ("pron-ante", "pronouns.txt", "span:pron", "span:ante"),
          ("adv-verb", "adverbs.txt", "span:adv", "span:verb"),
          ("verb-adv", "adverbs.txt", "span:verb", "span:adv"),
          ("obj-verb", "objects.txt", "span:obj", "span:verb"),
          ("verb-obj", "objects.txt", "span:verb", "span:obj"))
      for level, suffix in (("token", ""), ("word", "-word"))),
)


@dataclasses.dataclass(frozen=True)
class HeadFigures:
    head: str
    argmax: float | None
    ci: tuple[float, float] | None
    mass: float | None
    mass_ci: tuple[float, float] | None
    top2: float | None
    min_sentence_argmax: float | None
    n: int
    left_out: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def read_sentences(path: Path):
    from headprobe.claims.sentences import Location, read_sentence_file

    return read_sentence_file(path, Location(file=str(path)))


def claim_spec(probe: Probe, measure: str):
    """The `ClaimSpec` a hypothesis file would give for this probe on every head."""
    from headprobe.claims.language import parse_claim, parse_expectation, parse_measure
    from headprobe.claims.spec import ClaimSpec

    text = f"L*H*: {probe.source} -> {probe.target}"
    return ClaimSpec(file="<sweep>", line=0, id=probe.name, claim=parse_claim(text),
                     over=(probe.data,), expect=parse_expectation(">= 0"),
                     measure=parse_measure(measure), level=probe.level,  # type: ignore[arg-type]
                     baseline="offset" if probe.baseline else None, claim_text=text)


def measure_probe(probe: Probe, sentences: Sequence, runs: Sequence, heads: Sequence,
                  model_name: str) -> tuple[list[HeadFigures], dict | None]:
    """Figures for every head (in ``heads`` order) and the best offset baseline, if asked."""
    from headprobe.evaluation import ClaimAccumulator, score_sentence

    results = {}
    for measure in ("argmax", "mass", "topk:2"):
        spec = claim_spec(probe, measure)
        accumulator = ClaimAccumulator(spec, heads)
        for index, (sentence, run) in enumerate(zip(sentences, runs)):
            accumulator.add(index, sentence, run)
        results[measure] = accumulator.results(model=model_name, fingerprint="")
    argmax_spec = claim_spec(probe, "argmax")
    figures = []
    for head, share, mass, top2 in zip(heads, results["argmax"], results["mass"],
                                       results["topk:2"]):
        per_sentence = [score_sentence(argmax_spec, head, s, r).value
                        for s, r in zip(sentences, runs)]
        values = [v for v in per_sentence if v is not None]
        figures.append(HeadFigures(str(head), share.value, share.ci, mass.value, mass.ci,
                                   top2.value, min(values) if values else None, share.n,
                                   share.left_out))
    first = results["argmax"][0]
    baseline = first.baseline.to_json() if first.baseline is not None else None
    return figures, baseline


def peaks(runs: Sequence, num_layers: int, num_heads: int) -> np.ndarray:
    """float64 ``[layer, head]``: mean over non-special query rows of the row's largest weight."""
    total = np.zeros((num_layers, num_heads))
    count = 0
    for run in runs:
        rows = ~np.asarray(run.special_mask, dtype=bool) | np.array(
            [t == "[MASK]" for t in run.tokens])
        att = run.attentions[:, :, rows, :]  # [layer, head, source, key]
        total += att.max(axis=-1).sum(axis=-1)
        count += int(rows.sum())
    return total / max(count, 1)


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_probe(probe: Probe, figures: list[HeadFigures], baseline: dict | None, top: int,
                 grid: bool, num_heads: int) -> str:
    lines = [f"== {probe.name}: L*H*: {probe.source} -> {probe.target}  (level: {probe.level}, "
             f"over {probe.data})"]
    if baseline is not None:
        lines.append(f"   baseline: offset {baseline['offset']:+d} scores "
                     f"{_pct(baseline['value']).strip()}")
    header = ("   head     argmax  95% CI              mass   95% CI             top-2  "
              "min/sent      n  left_out")

    def interval(ci: tuple[float, float] | None) -> str:
        return "        -         " if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]"

    def row(f: HeadFigures) -> str:
        return (f"   {f.head:<7} {_pct(f.argmax)}  {interval(f.ci)}  {_pct(f.mass)}  "
                f"{interval(f.mass_ci)}  {_pct(f.top2)}  {_pct(f.min_sentence_argmax)}"
                f"  {f.n:6d}  {f.left_out:6d}")

    ranked = sorted(figures, key=lambda f: (-(f.argmax or 0), -(f.mass or 0)))
    lines += [header, *map(row, ranked[:top])]
    if probe.sink:
        lines.append("   least mass:")
        lines += [row(f) for f in sorted(figures, key=lambda f: f.mass or 0)[:top]]
    if grid:
        lines.append("   argmax by layer (rows) and head (columns):")
        for start in range(0, len(figures), num_heads):
            layer = figures[start:start + num_heads]
            cells = " ".join(f"{100 * (f.argmax or 0):3.0f}" for f in layer)
            lines.append(f"   L{start // num_heads + 1}: {cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model SPEC (default: MiniLM)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with the sentence files (default: hypotheses/data)")
    parser.add_argument("--top", type=int, default=5, help="heads listed per probe")
    parser.add_argument("--only", action="append", default=[],
                        help="only probes whose name contains this (repeatable)")
    parser.add_argument("--grid", action="store_true", help="print a layer x head grid too")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    import headprobe
    from headprobe.errors import HeadprobeError
    from headprobe.heads import Head

    probes = [p for p in PROBES if not args.only or any(o in p.name for o in args.only)]
    if not probes:
        print(f"no probe matches {args.only}; probes: {', '.join(p.name for p in PROBES)}",
              file=sys.stderr)
        return 4
    try:
        model = headprobe.load(args.model)
        files = sorted({p.data for p in probes})
        sentences = {f: read_sentences(args.data / f) for f in files}
        runs = {f: model.run([s.text for s in sentences[f]], hidden_states=False,
                             mlm_logits=False) for f in files}
    except HeadprobeError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 4
    heads = [Head(layer, head) for layer in range(1, model.num_layers + 1)
             for head in range(1, model.num_heads + 1)]
    report: dict = {"model": args.model, "probes": {}}
    print(f"model {args.model}: {model.num_layers} layers x {model.num_heads} heads; "
          + ", ".join(f"{f}: {len(sentences[f])} sentences" for f in files))
    for probe in probes:
        figures, baseline = measure_probe(probe, sentences[probe.data], runs[probe.data], heads,
                                          args.model)
        print(format_probe(probe, figures, baseline, args.top, args.grid, model.num_heads))
        report["probes"][probe.name] = {
            **dataclasses.asdict(probe), "baseline": baseline,
            "heads": [f.to_json() for f in figures]}
    if "everyday.txt" in runs:
        peak = peaks(runs["everyday.txt"], model.num_layers, model.num_heads)
        order = np.argsort(peak, axis=None)
        print("== peak: mean largest weight per token row (everyday.txt); broadest heads first")
        for flat in order[:args.top]:
            layer, head = np.unravel_index(flat, peak.shape)
            print(f"   L{layer + 1}H{head + 1:<4} {_pct(float(peak[layer, head]))}")
        report["peak"] = {f"L{l + 1}H{h + 1}": float(peak[l, h])
                          for l in range(peak.shape[0]) for h in range(peak.shape[1])}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
