"""Hypothesis files as pytest collectors and items (pytest's documented YAML pattern).

`HypothesisFile` parses a YAML file (pure, `headprobe.claims.files`), checks it against the model's
config and tokenizer (heads in range, sentences that fit), and yields one `ClaimItem` per claim and
concrete head (``FILE::ID[L3H10]``) — or one per claim for the ``any``/``none`` quantifiers
(``FILE::ID[L*H*]``). Each item carries its `ClaimJob` and asks the run's `HeadprobeSession` for
its result (`HeadprobeSession.result_of`: the first ask evaluates every collected item's job
together, so every model is loaded once and every distinct sentence is run once).

What must end the run as a usage error rather than as one file's collection error (sentence
files outside the project, models that cannot be had) is noted on the session while files are
collected and raised once collection ends (`raise_collection_errors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from headprobe.claims.files import load_hypothesis_file_partly
from headprobe.claims.jobs import ClaimJob
from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.claims.spec import HypothesisFile as ParsedFile
from headprobe.errors import (
    ClaimFileError,
    ClaimWarning,
    FileOutsideProject,
    HeadprobeError,
    collected,
)
from headprobe.evaluation.checks import fixed_offset
from headprobe.evaluation.results import ClaimResult
from headprobe.heads import Head, expand_heads
from headprobe.model.export.runner import needs_checkpoint
from headprobe.model.info import ModelInfo
from headprobe.pytest_plugin.session import HeadprobeSession, headprobe_session
from headprobe.regression.unchanged import unmeasured
from headprobe.report.terminal import failure_text, reproduce_command


class ClaimFailed(Exception):
    """Raised by `ClaimItem.runtest` for a failing result; rendered by `repr_failure`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class HypothesisFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        """The file's claim items, once every claim checks out against its model; every
        independent mistake of the file is reported at once."""
        session = headprobe_session(self.config)
        hfile, errors = load_hypothesis_file_partly(self.path, session.options.files_under)
        outside = [error for error in errors if isinstance(error, FileOutsideProject)]
        if outside:  # a usage error once collection ends (`raise_collection_errors`)
            session.outside.extend(outside)
            errors = [error for error in errors if not isinstance(error, FileOutsideProject)]
        if any(spec.expect.is_unchanged for spec in hfile.claims):
            try:  # a snapshot file that cannot be used is a mistake of this file too
                session.snapshots.load(self.path)
            except ClaimFileError as error:
                errors.append(error)
        items: list[pytest.Item] = []
        for spec in hfile.claims:
            try:
                items += self._claim_items(session, hfile, spec)
            except ClaimFileError as error:
                errors.append(error)
        if errors:
            raise collected(errors)
        return iter(items)

    def _claim_items(self, session: HeadprobeSession, hfile: ParsedFile,
                     spec: ClaimSpec) -> list[pytest.Item]:
        model_spec = session.options.model_for(spec.model or hfile.model)
        info = session.models.info(model_spec)
        if info is None:  # cannot be had: a usage error raised once collection ends
            session.model_requests[model_spec].append(f"{self.nodeid}:{spec.line} ({spec.id})")
            return []
        heads = _expand_heads(spec, info.num_layers, info.num_heads)
        if spec.measure.effect == "kl" and info.has_mlm_head is False:
            raise ClaimFileError(f"'kl' compares the masked-LM distributions, and "
                                 f"{model_spec} has no masked-LM head; use effect: hidden or "
                                 f"embedding, or a checkpoint with its MLM head",
                                 file=spec.file, line=spec.line, field="effect")
        if not info.measures_outputs and (spec.measure.kind == "effect"
                                          or spec.weighting != "attention"):
            what = "effect" if spec.measure.kind == "effect" else "norm"  # after the field
            raise ClaimFileError(needs_checkpoint(what, model_spec), file=spec.file,
                                 line=spec.line,
                                 field="measure" if spec.measure.kind == "effect"
                                 else "weighting")
        sets = session.sentence_sets
        sentences = tuple(sets.sentences(hfile, spec.over, info))
        if spec.baseline == "offset":
            self._warn_if_unbeatable(spec, sentences, info)
        templates = tuple(t for name in spec.over
                          if (t := hfile.sets[name].template) is not None and t.generate)
        items: list[pytest.Item] = []
        for label, group in _groups(spec, heads):
            name = f"{spec.id}[{label}]"
            # The id is given as text: pytest >= 9.2 parses a text id's "[...]" as its
            # parameters, as it does for its own parametrized tests, so that --lf matches.
            nodeid = f"{self.nodeid}::{name}"
            job = ClaimJob(key=nodeid, spec=spec, heads=group, model_spec=model_spec,
                           sentences=sentences, templates=templates,
                           unknown_sentences=sets.unknown(hfile, spec.over, info),
                           display_file=self.nodeid)
            items.append(_item(self, name, nodeid, job))
        return items

    def _warn_if_unbeatable(self, spec: ClaimSpec, sentences: tuple[Sentence, ...],
                            info: ModelInfo) -> None:
        """A ``baseline: offset`` claim whose targets sit at one offset from every source can
        never beat the baseline: say so at collection."""
        offset = fixed_offset(spec, sentences, info.tokenizer.encode([s.text for s in sentences]))
        if offset is not None:
            self.warn(ClaimWarning(
                f"{self.nodeid}:{spec.line}: {spec.id}: every source's target includes the "
                f"token at offset {offset:+d}, so always attending to i{offset:+d} scores 1.0: "
                f"'{spec.claim_text}' can never beat the offset baseline. Remove "
                f"'baseline: offset', or claim a target that is not a fixed offset."))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | object:  # type: ignore[override]
        if isinstance(excinfo.value, HeadprobeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _item(parent: HypothesisFile, name: str, nodeid: str, job: ClaimJob) -> ClaimItem:
    item = ClaimItem.from_parent(parent, name=name, nodeid=nodeid, job=job)
    if job.spec.skip is not None:
        item.add_marker(pytest.mark.skip(reason=job.spec.skip))
    if job.spec.xfail is not None:
        item.add_marker(pytest.mark.xfail(reason=job.spec.xfail, strict=False))
    item.add_marker(pytest.mark.headprobe)
    return item


def _groups(spec: ClaimSpec, heads: tuple[Head, ...]) -> list[tuple[str, tuple[Head, ...]]]:
    """One item per head for ``each``; one item over every head otherwise, and for an effect
    claim whose heads are removed ``together`` (SPEC §14.2)."""
    if spec.quantifier == "each" and not spec.measure.together:
        return [(str(h), (h,)) for h in heads]
    return [(",".join(map(str, spec.claim.heads)), heads)]


def _expand_heads(spec: ClaimSpec, num_layers: int, num_heads: int) -> tuple[Head, ...]:
    try:
        return expand_heads(spec.claim.heads, num_layers, num_heads)
    except ClaimFileError as error:
        raise error.located(file=spec.file, line=spec.claim_line or spec.line,
                            field=spec.claim_field) from None


class ClaimItem(pytest.Item):
    def __init__(self, *, job: ClaimJob, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.job = job
        self.result: ClaimResult | None = None

    def runtest(self) -> None:
        session = headprobe_session(self.config)
        record = session.recorder
        missing = session.unrecorded(self.job)
        if missing is not None:  # nothing recorded to compare with: one line, nothing measured
            spec = self.job.spec
            self.result = unmeasured(spec, ",".join(map(str, self.job.heads)),
                                     self.job.model_spec, missing,
                                     tolerance=spec.tolerance or 0.0)
            record.record(self.nodeid, self.result)
            raise ClaimFailed(missing)
        result = session.result_of(self)
        run = session.options
        if not result.passed:
            result = dataclasses.replace(result, reproduce=reproduce_command(
                self.nodeid, seed=run.seed if self.job.templates else None,
                model=run.model_override))
        self.result = result
        record.record(self.nodeid, result)
        if not result.passed:
            raise ClaimFailed(failure_text(self.job, result,
                                           session.run_dir() if result.figures else None,
                                           run.root))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],  # type: ignore[override]
                     style: str | None = None) -> str | object:
        if isinstance(excinfo.value, ClaimFailed):
            return excinfo.value.text
        if isinstance(excinfo.value, HeadprobeError):
            return f"ERROR: {excinfo.value}"
        return super().repr_failure(excinfo, style)  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int, str]:
        spec = self.job.spec
        return self.path, spec.line - 1, f"{spec.id} [{spec.claim_text}]"


def raise_collection_errors(session: HeadprobeSession) -> None:
    """After collection: sentence files outside the project, then models that cannot be had,
    end the run as a usage error (exit 4), saying which claims asked for each model and how
    to run the others."""
    if session.outside:
        raise pytest.UsageError("\n".join(dict.fromkeys(str(error)
                                                         for error in session.outside)))
    registry = session.made("models")
    errors = registry.errors if registry is not None else {}
    if not errors:
        return
    run = session.options
    messages = []
    for spec, error in errors.items():
        asked = session.model_requests.get(spec, [])
        shown = ", ".join(asked[:5]) + (f" and {len(asked) - 5} more" if len(asked) > 5 else "")
        messages.append(f"{error}{run.unnamed_model_hint(spec)}"
                        + (f"\nAsked for by: {shown}." if asked else ""))
    messages.append("To run the other claims, name their files (headprobe check FILE ...), or "
                    "run these on a model you have with --model SPEC.")
    raise pytest.UsageError("\n".join(messages))
