"""Hypothesis files as pytest collectors and items (pytest's documented YAML pattern).

`HypothesisFile` parses a YAML file (pure, `headprobe.claims.files`), checks it against the model's
config and tokenizer (heads in range, sentences that fit), and yields one `ClaimItem` per claim and
concrete head (``FILE::ID[L3H10]``) — or one per claim for the ``any``/``none`` quantifiers
(``FILE::ID[L*H*]``). Items are evaluated together by `headprobe.session`, so every model is loaded
once and every distinct sentence is run once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from headprobe.claims.spec import ClaimSpec, Sentence
from headprobe.errors import ClaimFileError, HeadprobeError
from headprobe.heads import Head


class ClaimFailed(Exception):
    """Raised by `ClaimItem.runtest` for a failing result; rendered by `repr_failure`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class HypothesisFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from headprobe.claims.files import load_hypothesis_file
        from headprobe.session import get_context

        context = get_context(self.config)
        hfile = load_hypothesis_file(self.path)
        display = self.nodeid
        for spec in hfile.claims:
            model_spec = context.model_spec_for(spec.model or hfile.model)
            info = context.model_info(model_spec)
            if info is None:  # cannot be had: a usage error raised once collection ends
                continue
            heads = _expand_heads(spec, info.num_layers, info.num_heads)
            sentences = context.sentences_for(spec, hfile, info)
            templates = tuple(hfile.sets[name].template for name in spec.over
                              if hfile.sets[name].template is not None
                              and hfile.sets[name].template.generate)
            if spec.quantifier == "each":
                groups: list[tuple[str, tuple[Head, ...]]] = [(str(h), (h,)) for h in heads]
            else:
                groups = [(",".join(map(str, spec.claim.heads)), tuple(heads))]
            for label, group in groups:
                name = f"{spec.id}[{label}]"
                # The id is given as text: pytest >= 9.2 parses a text id's "[...]" as its
                # parameters, as it does for its own parametrized tests, so that --lf matches.
                item = ClaimItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}",
                                             spec=spec,
                                             heads=group, model_spec=model_spec,
                                             sentences=sentences, display_file=display,
                                             templates=templates)
                if spec.skip is not None:
                    item.add_marker(pytest.mark.skip(reason=spec.skip))
                if spec.xfail is not None:
                    item.add_marker(pytest.mark.xfail(reason=spec.xfail, strict=False))
                item.add_marker(pytest.mark.headprobe)
                yield item

    def repr_failure(self, excinfo):  # type: ignore[override]
        if isinstance(excinfo.value, HeadprobeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _expand_heads(spec: ClaimSpec, num_layers: int, num_heads: int) -> list[Head]:
    heads: list[Head] = []
    for pattern in spec.claim.heads:
        try:
            expanded = pattern.expand(num_layers, num_heads)
        except ClaimFileError as error:
            raise error.located(file=spec.file, line=spec.claim_line or spec.line,
                                field=spec.claim_field) from None
        heads.extend(h for h in expanded if h not in heads)
    return heads


class ClaimItem(pytest.Item):
    def __init__(self, *, spec: ClaimSpec, heads: tuple[Head, ...], model_spec: str,
                 sentences: Sequence[Sentence], display_file: str,
                 templates: tuple = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.heads = heads
        self.model_spec = model_spec
        self.sentences = tuple(sentences)
        self.display_file = display_file
        self.templates = templates
        self.result = None

    def runtest(self) -> None:
        from headprobe.session import get_context

        context = get_context(self.config)
        try:
            self.result = context.result_for(self)
        except Exception:
            context.note_error()
            raise
        if not self.result.passed:
            raise ClaimFailed(context.failure_text(self, self.result))

    def repr_failure(self, excinfo, style=None):  # type: ignore[override]
        if isinstance(excinfo.value, ClaimFailed):
            return excinfo.value.text
        if isinstance(excinfo.value, HeadprobeError):
            return f"ERROR: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.spec.line - 1, f"{self.spec.id} [{self.spec.claim_text}]"
