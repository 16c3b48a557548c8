"""The verdict of an ``expect: unchanged`` claim on one head (SPEC §10), against its snapshot.

Pure: a result (its value measured as for any claim), what was recorded for it, the digest of
the sentences it was measured on, and the tolerance give the judged result. It fails with no
recorded value, with sentences other than those recorded on, or when |value - recorded| exceeds
the tolerance; ``failure`` says which, with both values, the change and both fingerprints.
With ``update`` (``--snapshot-update``) it passes unless it has no value, and is to be recorded.

A claim with no recorded value is not worth measuring: `headprobe check` fails it at once with
`not_recorded`'s one line (how to record it) and evaluates nothing for it.
"""

from __future__ import annotations

import dataclasses
import shlex

from headprobe.claims.spec import ClaimSpec
from headprobe.evaluation.results import ClaimResult, format_value
from headprobe.regression.snapshots import Recorded


def judge_unchanged(result: ClaimResult, recorded: Recorded | None, sentences_sha256: str,
                    tolerance: float, *, update: bool = False,
                    snapshot: str = "the snapshot file") -> ClaimResult:
    """``result`` judged against ``recorded`` (see the module docstring)."""
    if result.value is None:
        return dataclasses.replace(result, passed=False, recorded=_json(recorded))
    change = None if recorded is None else result.value - recorded.value
    judged = dataclasses.replace(result, recorded=_json(recorded), change=change,
                                 tolerance=tolerance)
    if update:
        return dataclasses.replace(judged, passed=True, failure=None)
    if recorded is None:
        return dataclasses.replace(judged, passed=False, failure=not_recorded(
            result.id, result.head, snapshot))
    if recorded.sentences_sha256 != sentences_sha256:
        return dataclasses.replace(judged, passed=False, failure=(
            f"the sentences changed since the value was recorded (sha256 "
            f"{recorded.sentences_sha256[:12]}... then, {sentences_sha256[:12]}... now): the "
            f"values cannot be compared; re-record with --snapshot-update once you have "
            f"reviewed the change"))
    if abs(change or 0.0) > tolerance:
        return dataclasses.replace(judged, passed=False, failure=(
            f"changed by {change:+.3f}: {format_value(result.value)} now, "
            f"{format_value(recorded.value)} recorded (tolerance {tolerance:g}); model "
            f"{result.model_fingerprint} now, {recorded.model_fingerprint} when recorded"))
    return dataclasses.replace(judged, passed=True)


def unmeasured(spec: ClaimSpec, head: str, model: str, failure: str, *,
               tolerance: float) -> ClaimResult:
    """The failed result of an ``expect: unchanged`` claim left unmeasured because nothing is
    recorded for it: no value, no interval, n 0, ``failure`` saying how to record it (so
    report.json and the HTML list it like any failure)."""
    return ClaimResult(file=spec.file, id=spec.id, head=head,
                       claim=spec.claim_text or str(spec.claim), measure=str(spec.measure),
                       level=spec.level, model=model, model_fingerprint="",
                       expect=str(spec.expect), value=None, ci=None, n=0, left_out=0,
                       passed=False, quantifier=spec.quantifier, why=spec.why,
                       average=spec.average, weighting=spec.weighting, recorded=None,
                       tolerance=tolerance,
                       failure=failure)


def not_recorded(claim_id: str, head: str, snapshot: str, hypothesis_file: str = "FILE",
                 model: str | None = None) -> str:
    """The one line that fails an ``expect: unchanged`` claim with no recorded value: where
    it was looked for and the command that records it."""
    command = f"headprobe check {shlex.quote(hypothesis_file)} --snapshot-update"
    if model is not None:
        command += f" --model {shlex.quote(model)}"
    return (f"not recorded: no value recorded for {claim_id} on {head} in {snapshot}; record "
            f"it with `{command}`, then review the snapshot file and commit it")


def _json(recorded: Recorded | None) -> dict[str, object] | None:
    return None if recorded is None else recorded.to_json()
