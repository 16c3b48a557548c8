"""Text for the terminal: the failure of one claim, and the summary lines after a run.

Pure formatting of `ClaimResult` values (and the `ClaimJob` a YAML claim's result came from);
no pytest.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Collection, Sequence
from pathlib import Path

from headprobe.claims.jobs import ClaimJob
from headprobe.evaluation.results import ClaimResult, HeadValue, format_value

SHOWN_HEADS = 3  # heads of an any/none claim listed in a failure; report.json has them all


def measured_line(result: ClaimResult) -> str:
    """``argmax = 0.412, CI [0.380, 0.445], expected >= 0.8 (n=1234, left out 55)``; a
    ``per: sentence`` failure leads with the sentences that miss (``argmax: 2 of 12 sentences
    below 0.8 (worst 0.610), expected >= 0.8 in every sentence; over all sentences 0.856, CI
    [...] (n=..., left out ...)``), and another reason to fail follows the numbers."""
    if result.expect == "unchanged" and result.recorded is None and result.value is None \
            and result.failure:
        return result.failure  # not recorded, so not measured: the line says how to record it
    ci = interval_text(result.ci, result.ci_note)
    expected = result.expect
    if result.expect == "unchanged" and result.recorded is not None:
        expected = (f"unchanged from {format_value(result.recorded.get('value'))} "
                    f"(tolerance {result.tolerance:g})")
    measure = result.measure + (" (mean of sentences)" if result.average == "sentence" else "") \
        + (f", weighting: {result.weighting}" if result.weighting != "attention" else "")
    counts = f"(n={result.n}, left out {result.left_out})"
    if result.sentences_failed:
        text = (f"{measure}: {result.failure}, expected {expected} in every sentence; over all "
                f"sentences {format_value(result.value)}{ci} {counts}")
    else:
        text = f"{measure} = {format_value(result.value)}{ci}, expected {expected} {counts}"
        if _failure_in_line(result):
            text += f"; {result.failure}"
    if result.baseline:
        text += (f"; best offset baseline k={result.baseline.offset:+d}: "
                 f"{format_value(result.baseline.value)}")
        if result.failed_only_on_baseline:
            text += " (not beaten: that is why it fails)"
    return text


def interval_text(ci: tuple[float, float] | None, note: str | None) -> str:
    """``, CI [0.380, 0.445]``, ``, CI n/a (1 sentence, the bootstrap needs 4)`` or nothing."""
    if ci:
        return f", CI [{format_value(ci[0])}, {format_value(ci[1])}]"
    return f", CI n/a ({note})" if note else ""


def _failure_in_line(result: ClaimResult) -> bool:
    """Whether `measured_line` says ``failure`` (an unchanged claim's is too long: it has a
    line of its own)."""
    return result.failure is not None and result.expect != "unchanged"


def head_line(head: HeadValue) -> str:
    """``L6H1: 0.412, CI [0.380, 0.445], n=1234, left out 55 (meets the expectation)``."""
    ci = interval_text(head.ci, head.ci_note)
    verdict = "meets the expectation" if head.passed else "does not meet it"
    return (f"{head.head}: {format_value(head.value)}{ci}, n={head.n}, left out "
            f"{head.left_out} ({verdict})")


def failure_text(job: ClaimJob, result: ClaimResult, run_dir: Path | None, cwd: Path) -> str:
    """What pytest shows for a failing YAML claim: the claim, the measured line, the model, the
    counterexamples or worst sentences, warnings, figures, the why and how to reproduce it."""
    spec = job.spec
    lines = [f"claim {spec.claim_text!r} failed on {result.head} ({spec.quantifier}, "
             f"level {spec.level}, per {spec.per}"
             + (f", average {spec.average})" if spec.average != "pool" else ")"),
             "  " + measured_line(result),
             f"  model: {result.model}"]
    if result.failure and not _failure_in_line(result):
        lines.append(f"  {result.failure}")
    if result.heads:
        shown = result.heads[:SHOWN_HEADS]
        lines.append(f"  heads ({len(result.heads)} matched, best first):")
        lines += [f"    {head_line(head)}" for head in shown]
        if len(result.heads) > len(shown):
            lines.append(f"    ... and {len(result.heads) - len(shown)} more in report.json")
    if result.counterexamples:
        lines.append(f"  counterexamples ({len(result.counterexamples)} of "
                     f"{result.sentences} sentences fail; simplest first):")
        lines += [f"    - {text}" for text in result.counterexamples[:5]]
        if len(result.counterexamples) > 5:
            lines.append(f"    ... and {len(result.counterexamples) - 5} more in report.json")
    elif result.worst:
        lines.append("  worst sentences:")
        lines += [f"    - {job.sentences[i].text}" for i in result.worst]
    for warning in result.warnings:
        lines.append(f"  warning: {warning}")
    if result.figures and run_dir is not None:
        lines.append("  figures:")
        lines += [f"    {_relative(run_dir / f, cwd)}" for f in result.figures]
    if spec.why:
        lines.append(f"  why: {spec.why}")
    if result.reproduce:
        lines.append(f"  reproduce: {result.reproduce}")
    return "\n".join(lines)


def reproduce_command(nodeid: str, *, seed: int | None = None,
                      model: str | None = None) -> str:
    """``headprobe check 'FILE::ID[L3H10]' [--seed N] [--model SPEC]``: this claim alone."""
    command = f"headprobe check {shlex.quote(nodeid)}"
    if seed is not None:
        command += f" --seed {seed}"
    if model is not None:
        command += f" --model {shlex.quote(model)}"
    return command


def _relative(path: Path, cwd: Path) -> str:
    try:
        return os.path.relpath(path, cwd)
    except ValueError:  # another drive on Windows
        return str(path)


def summary_lines(recorded: Sequence[tuple[str, ClaimResult]], report: Path | None,
                  expected_failures: Collection[str] = ()) -> list[str]:
    """One line per failure (``XFAIL`` for items marked ``xfail``) and per weak claim, then
    where the report went."""
    lines: list[str] = []
    failures = [(nodeid, r) for nodeid, r in recorded if not r.passed]
    weak = [(nodeid, r) for nodeid, r in recorded if r.warnings]
    if failures or weak:
        lines.append("")
        lines.append("=" * 20 + " headprobe " + "=" * 20)
    for nodeid, result in failures:
        word = "XFAIL" if nodeid in expected_failures else "FAILED"
        lines.append(f"{word} {nodeid}: {measured_line(result)}")
    for nodeid, result in weak:
        for warning in result.warnings:
            lines.append(f"WARNING {nodeid}: {warning}")
    if report is not None:
        lines.append(f"headprobe report: {report}")
        lines.append(f"headprobe report (HTML): {report.with_name('index.html')}")
    return lines
