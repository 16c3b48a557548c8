"""The YAML text of a hypothesis file composed into nodes, or one located `ClaimFileError`.

`compose` keeps the nodes (``yaml.compose``), not Python values, so that every later error can
name its line. Before composing it refuses, at their line, what no hypothesis file needs and the
composer would choke on: nesting deeper than `MAX_DEPTH` and explicit tags (``!!int``, ``!foo``,
``!!python/name:...``). `Loader` is PyYAML's safe loader, except that a date-like scalar stays
text. Reading the composed nodes as typed fields is `headprobe.claims.yaml_fields`.
"""

from __future__ import annotations

import re
from typing import ClassVar

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import Node

from headprobe.errors import ClaimFileError

__all__ = ["MAX_DEPTH", "Loader", "compose"]

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists a hypothesis file may have (a real one has 5)."""


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a date-like scalar (``2001-02-30``) stays text: in a
    hypothesis file it is a sentence, an id or a malformed value, never a date."""

    # types-PyYAML declares this an instance variable; PyYAML keeps it on the class
    yaml_implicit_resolvers: ClassVar[  # type: ignore[misc]  # types-PyYAML: instance var
        dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def compose(text: str, file: str) -> Node:
    """The root node of ``text`` (the content of ``file``, named in errors); an empty file, a
    YAML syntax error, a tag or too deep a nesting raises `ClaimFileError` at its line."""
    try:
        _check_events(text, file)
        root = yaml.compose(text, Loader=Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        context = f" {error.context}" if error.context else ""
        raise ClaimFileError(f"not valid YAML: {error.problem}{context}{_yaml_hint(text, error)}",
                             file=file, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise ClaimFileError(f"not valid YAML: {error}", file=file, line=1) from None
    if root is None:
        raise ClaimFileError("the file is empty; a hypothesis file is a mapping with "
                             "'sentences:' and 'hypotheses:'", file=file, line=1)
    return root


def _check_events(text: str, file: str) -> None:
    """Refuse tags and nesting deeper than `MAX_DEPTH`. Walks the event stream, which needs no
    recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        line = event.start_mark.line + 1 if event.start_mark else 1
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and not isinstance(event, AliasEvent):
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise ClaimFileError(f"YAML tags such as {shown!r} are not used in hypothesis "
                                 f"files; remove the tag (quote a value that starts with '!')",
                                 file=file, line=line)
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ClaimFileError(f"lists and mappings are nested more than {MAX_DEPTH} "
                                     f"levels deep here; a hypothesis file needs about 5",
                                     file=file, line=line)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


def _yaml_hint(text: str, error: yaml.MarkedYAMLError) -> str:
    """The usual cause of a YAML error in a hypothesis file, when we can see it."""
    lines = text.splitlines()
    for mark in (error.context_mark, error.problem_mark):
        if mark is not None and mark.line < len(lines) and re.match(
                r"\s*(-\s*)?expect\s*:\s*>", lines[mark.line]):
            return "; quote the expectation, as in expect: \">= 0.8\" (a bare '>' starts a " \
                   "YAML folded block)"
    return ""
