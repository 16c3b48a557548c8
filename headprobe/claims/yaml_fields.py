"""Typed fields read from the composed YAML nodes of one hypothesis file.

`Fields` turns a node into the value a field needs (a mapping of known keys, a string, a choice,
a number, ...) or raises a `ClaimFileError` that names ``file:line: field``, says what was wrong,
shows the bad value and what is valid. It knows nothing of claims or sentence sets: callers name
the field and the example to show. Scalars are typed as YAML types them (dates stay text); a
mapping's merge keys (``<<: *defaults``) are expanded, up to `MAX_MERGED_KEYS` keys. One `Fields`
reads one file: PyYAML's constructor, which it holds, remembers the nodes it has built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from headprobe.claims.textfile import describe_character, first_unprintable
from headprobe.claims.yaml_document import Loader
from headprobe.errors import ClaimFileError, did_you_mean

__all__ = ["MAX_MERGED_KEYS", "Entries", "Fields", "line"]

MAX_MERGED_KEYS = 10_000
"""Most keys a mapping may have once YAML merge keys (``<<: *defaults``) are expanded."""

Entries = dict[str, tuple[Node, Node]]
"""A mapping's ``{key: (key_node, value_node)}``."""

T = TypeVar("T")
C = TypeVar("C", bound=str)  # one of the choices of a field

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               list: "a list", dict: "a mapping"}


def line(node: Node) -> int:
    """The 1-based line ``node`` starts at."""
    return node.start_mark.line + 1


@dataclass
class Fields:
    """Typed access to the composed YAML nodes of ``file``; every error names
    ``file:line: field``."""

    file: str
    _constructor: Any = field(default_factory=lambda: Loader(""))

    def error(self, node: Node, fieldname: str | None, message: str) -> ClaimFileError:
        return ClaimFileError(message, file=self.file, line=line(node), field=fieldname)

    def locate(self, error: ClaimFileError, node: Node, fieldname: str) -> ClaimFileError:
        return error.located(file=self.file, line=line(node), field=fieldname)

    def value(self, node: Node, fieldname: str | None = None) -> Any:
        """The Python value of a node (scalars as YAML types them; dates stay text)."""
        if isinstance(node, MappingNode):
            return {}
        if isinstance(node, SequenceNode):
            return []
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as error:
            shown = repr(node.value if len(node.value) <= 40 else node.value[:37] + "...")
            reason = getattr(error, "problem", None) or str(error)
            raise self.error(node, fieldname, f"cannot read the value {shown}: {reason}"
                             ) from None

    def describe(self, node: Node) -> str:
        value = self.value(node)
        if value is None:
            return "nothing (null)"
        kind = _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")
        return kind if isinstance(node, (MappingNode, SequenceNode)) else f"{value!r} ({kind})"

    def wrong_type(self, node: Node, fieldname: str, expected: str) -> ClaimFileError:
        return self.error(node, fieldname, f"expected {expected}, got {self.describe(node)}")

    def mapping(self, node: Node, fieldname: str | None, expected: str,
                keys: tuple[str, ...] | None) -> Entries:
        """``{key: (key_node, value_node)}``; duplicate or (if ``keys``) unknown keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.wrong_type(node, fieldname or "", expected)
        self._check_duplicates(node, fieldname)
        if _merged_size(node, {}) > MAX_MERGED_KEYS:
            raise self.error(node, fieldname, f"the merge keys ('<<:') here expand to more "
                                              f"than {MAX_MERGED_KEYS:,} keys; write the "
                                              f"mapping out")
        try:
            self._constructor.flatten_mapping(node)  # YAML merge keys ('<<: *defaults')
        except yaml.MarkedYAMLError as error:
            raise self.error(node, fieldname, f"bad merge key: {error.problem}") from None
        entries: Entries = {}
        for key_node, value_node in node.value:  # merged keys first, so later ones win
            key = self.value(key_node, fieldname)
            where = f"{fieldname}.{key}" if fieldname else str(key)
            if not isinstance(key, str):
                raise self.error(key_node, fieldname, f"keys must be names, got "
                                                      f"{self.describe(key_node)}")
            if keys is not None and key not in keys:
                raise self.error(key_node, where, f"unknown field {key!r}{did_you_mean(key, keys)}"
                                                  f"; valid fields here: {', '.join(keys)}")
            entries[key] = (key_node, value_node)
        return entries

    def _check_duplicates(self, node: MappingNode, fieldname: str | None) -> None:
        """PyYAML silently keeps the last of two equal keys; we say so instead."""
        seen: dict[object, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.value(key_node, fieldname)
            if key in seen:
                where = f"{fieldname}.{key}" if fieldname else str(key)
                raise self.error(key_node, where, f"{key!r} is given twice (first at line "
                                                  f"{line(seen[key])}); keep one")
            seen[key] = key_node

    def string(self, node: Node, fieldname: str, example: str) -> str:
        """A non-empty printable string, stripped."""
        value = self.value(node, fieldname)
        if not isinstance(value, str) or not value.strip():
            what = "an empty string" if isinstance(value, str) else self.describe(node)
            raise self.error(node, fieldname, f"expected a string such as {example!r}, got {what}")
        bad = first_unprintable(value)
        if bad is not None:  # written with a YAML escape ("\udcff", "\x00"): the file is printable
            raise self.error(node, fieldname, f"{describe_character(value[bad])} at character "
                                              f"{bad + 1} of {value!r}; remove it ({fieldname} "
                                              f"is printable text)")
        return value.strip()

    def text(self, node: Node, fieldname: str) -> str:
        """A scalar exactly as written (``no`` stays ``'no'``, ``1.50`` stays ``'1.50'``,
        ``2001-02-30`` stays ``'2001-02-30'``)."""
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.wrong_type(node, fieldname, "text")
        return str(node.value)

    def choice(self, node: Node, fieldname: str, choices: tuple[C, ...]) -> C:
        value = self.value(node, fieldname)
        for choice in choices:
            if isinstance(value, str) and value.strip() == choice:
                return choice
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        raise self.error(node, fieldname, f"expected one of {', '.join(choices)}, got "
                                          f"{self.describe(node)}{hint}")

    def number(self, node: Node, fieldname: str) -> float:
        value = self.value(node, fieldname)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong_type(node, fieldname, "a number")
        try:
            return float(value)
        except OverflowError:
            raise self.error(node, fieldname, "the number is far too large; write a number "
                                              "between 0 and 1") from None

    def boolean(self, node: Node, fieldname: str) -> bool:
        value = self.value(node, fieldname)
        if not isinstance(value, bool):
            raise self.wrong_type(node, fieldname, "true or false")
        return value

    def positive_int(self, node: Node, fieldname: str, maximum: int) -> int:
        value = self.value(node, fieldname)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.wrong_type(node, fieldname, "a positive whole number such as 50")
        if value > maximum:
            raise self.error(node, fieldname, f"{node.value} is more than {maximum:,}, the "
                                              f"most this field takes")
        return value

    def parsed(self, node: Node, fieldname: str, parse: Callable[[Any], T]) -> T:
        """``parse`` applied to the node's value; its `ClaimFileError` is located here."""
        try:
            return parse(self.value(node, fieldname))
        except ClaimFileError as error:
            raise self.locate(error, node, fieldname) from None

    def optional(self, entries: Entries, key: str, read: Callable[[Node], T]) -> T | None:
        """``read`` the value of ``key``; absent or null means not given."""
        if key not in entries or self.value(entries[key][1], key) is None:
            return None
        return read(entries[key][1])


def _merged_size(node: MappingNode, sizes: dict[int, int]) -> int:
    """How many keys ``node`` has once its merge keys are expanded (memoised in ``sizes`` by
    node; a mapping that merges itself counts as too many)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = MAX_MERGED_KEYS + 1  # while counting: a cycle is too many
    total = 0
    for key, value in node.value:
        if key.tag != "tag:yaml.org,2002:merge":
            total += 1
            continue
        merged = value.value if isinstance(value, SequenceNode) else [value]
        total += sum(_merged_size(m, sizes) if isinstance(m, MappingNode) else 1
                     for m in merged)
        if total > MAX_MERGED_KEYS:
            break
    sizes[id(node)] = total
    return total
