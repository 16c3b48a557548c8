"""The ``slots:`` and ``sentences:`` of a hypothesis file (SPEC §2), read into `SentenceSet`s.

`read_slots` reads the top-level ``slots:`` (named value lists). `read_sets` reads every named
set under ``sentences:``: an inline list of annotated sentences, a path to a sentence file
(relative to the hypothesis file's folder, and under ``files_under`` when that is given), or a
template mapping (``template:``, ``slots:``, ``generate:``) whose slots may name a top-level
list. Each set is read on its own: a set in error is kept in `Mistakes` and named in
`FileSets.broken`, so that claims over it are not reported a second time. The span labels of
each good set are in `FileSets.labels`, for checking the claims' ``span:`` labels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from headprobe.claims.mistakes import Mistakes
from headprobe.claims.sentences import (
    Location,
    check_sentence_file_place,
    check_slot_values,
    check_template,
    expand_template,
    parse_annotated,
    read_sentence_file,
    render_template,
    template_slot_names,
)
from headprobe.claims.spec import Sentence, SentenceSet, Template
from headprobe.claims.yaml_fields import Fields, line
from headprobe.errors import ClaimFileError, did_you_mean

__all__ = ["MAX_GENERATE", "SET_KEYS", "FileSets", "read_sets", "read_slots"]

SET_KEYS = ("template", "slots", "generate")
MAX_GENERATE = 10_000
"""Largest ``generate: N`` of a template set."""
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")

Slots = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class FileSets:
    """The sets of a file that read well, the span labels each uses, and the names of the sets
    whose mistakes are already kept."""

    sets: dict[str, SentenceSet]
    labels: dict[str, set[str]]
    broken: frozenset[str]


def read_slots(fields: Fields, node: Node) -> Slots:
    """The top-level ``slots:`` mapping of names to value lists."""
    return _slot_lists(fields, node, "slots", None)


def read_sets(fields: Fields, mistakes: Mistakes, node: Node, slots: Slots, base_dir: Path,
              files_under: tuple[Path, ...] | None) -> FileSets:
    """Every set under ``sentences:`` (``node``); ``slots`` are the top-level lists, sentence
    files lie relative to ``base_dir`` and under ``files_under`` (None: anywhere)."""
    reader = _SetReader(fields, slots, base_dir, files_under)
    sets: dict[str, SentenceSet] = {}
    labels: dict[str, set[str]] = {}
    broken: set[str] = set()
    named = mistakes.attempt(lambda: fields.mapping(node, "sentences",
                                                    "a mapping of set names to sets", None))
    for name, (key_node, set_node) in (named or {}).items():
        made = mistakes.attempt(partial(reader.sentence_set, name, key_node, set_node))
        if made is None:
            broken.add(name)
            continue
        sets[name] = made
        labels[name] = _labels(made)
    return FileSets(sets, labels, frozenset(broken))


def _slot_lists(fields: Fields, node: Node, fieldname: str,
                references: Mapping[str, tuple[str, ...]] | None) -> Slots:
    """``{name: [values]}``; with ``references`` (a template's ``slots``, given the top-level
    lists) a value may also name a top-level list."""
    lists: Slots = {}
    for name, (key_node, value_node) in fields.mapping(node, fieldname, "a mapping of slot "
                                                       "names to lists of values", None).items():
        where = f"{fieldname}.{name}"
        if not _NAME.match(name):
            raise fields.error(key_node, where, f"slot name {name!r} may only contain letters, "
                                                f"digits, '_' and '-'")
        if isinstance(value_node, ScalarNode) and references is not None:
            lists[name] = _slot_reference(fields, value_node, where, references)
            continue
        if not isinstance(value_node, SequenceNode):
            raise fields.wrong_type(value_node, where, "a list of values" + (
                " or the name of a list under 'slots:'" if references is not None else ""))
        values = tuple(fields.text(item, where) for item in value_node.value)
        try:
            lists[name] = check_slot_values(name, values)
        except ClaimFileError as error:
            raise fields.locate(error, value_node, where) from None
    return lists


def _slot_reference(fields: Fields, node: Node, fieldname: str,
                    file_slots: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    name = fields.string(node, fieldname, "animals")
    if name not in file_slots:
        known = ", ".join(file_slots) or "none (add a top-level 'slots:' mapping)"
        raise fields.error(node, fieldname, f"no slot list called {name!r} under 'slots:'"
                                            f"{did_you_mean(name, file_slots)}; lists "
                                            f"defined: {known}")
    return file_slots[name]


@dataclass(frozen=True)
class _SetReader:
    """Reads one named set in any of its three forms."""

    fields: Fields
    file_slots: Slots
    base_dir: Path
    files_under: tuple[Path, ...] | None  # where sentence files may be (None: anywhere)

    def sentence_set(self, name: str, key_node: Node, node: Node) -> SentenceSet:
        fields, where = self.fields, f"sentences.{name}"
        if not _NAME.match(name):
            raise fields.error(key_node, where, f"set name {name!r} may only contain letters, "
                                                f"digits, '_' and '-'")
        if isinstance(node, SequenceNode):
            return SentenceSet(name, self.inline_sentences(node, where), line=line(key_node))
        if isinstance(node, MappingNode):
            return self.template_set(name, key_node, node, where)
        value = fields.value(node, where)
        if isinstance(value, str) and value.strip():
            path = Path(os.path.normpath(self.base_dir / value.strip()))
            origin = Location(fields.file, line(node), where)
            if self.files_under is not None:
                check_sentence_file_place(path, self.files_under, origin, value.strip())
            sentences = read_sentence_file(path, origin)
            return SentenceSet(name, tuple(sentences), line=line(key_node))
        raise fields.wrong_type(node, where, "a list of sentences, a path to a text file (one "
                                             "sentence a line) or a mapping with 'template:'")

    def inline_sentences(self, node: SequenceNode, where: str) -> tuple[Sentence, ...]:
        fields = self.fields
        if not node.value:
            raise fields.error(node, where, "the set has no sentences; add at least one")
        sentences = []
        for index, item in enumerate(node.value):
            text = fields.text(item, f"{where}[{index}]")
            try:
                sentences.append(parse_annotated(text, origin=f"{fields.file}:{line(item)}"))
            except ClaimFileError as error:
                raise fields.locate(error, item, f"{where}[{index}]") from None
        return tuple(sentences)

    def template_set(self, name: str, key_node: Node, node: Node, where: str) -> SentenceSet:
        fields = self.fields
        entries = fields.mapping(node, where, "a template mapping", SET_KEYS)
        if "template" not in entries:
            raise fields.error(node, f"{where}.template", "missing: a set written as a mapping "
                                                          "needs 'template:' (and 'slots:')")
        template_node = entries["template"][1]
        template = fields.string(template_node, f"{where}.template", "The {animal} sat.")
        try:
            names = template_slot_names(template)
        except ClaimFileError as error:
            raise fields.locate(error, template_node, f"{where}.template") from None
        has_slots = ("slots" in entries
                     and fields.value(entries["slots"][1], f"{where}.slots") is not None)
        slots = _slot_lists(fields, entries["slots"][1], f"{where}.slots",
                            self.file_slots) if has_slots else {}
        for slot in names:  # reuse a file-level list of the same name
            if slot not in slots and slot in self.file_slots:
                slots[slot] = self.file_slots[slot]
        generate = fields.optional(entries, "generate",
                                   lambda n: fields.positive_int(n, f"{where}.generate",
                                                                 MAX_GENERATE))
        origin = f"{fields.file}:{line(template_node)}"
        try:
            ordered = check_template(template, slots)
            sentences = () if generate else tuple(expand_template(template, slots, origin))
        except ClaimFileError as error:
            raise fields.locate(error, template_node, f"{where}.template") from None
        return SentenceSet(name, sentences, Template(template, ordered, generate),
                           line=line(key_node))


def _labels(sentence_set: SentenceSet) -> set[str]:
    """Span labels used by a set (for a ``generate`` template, by its first combination)."""
    sentences = list(sentence_set.sentences)
    template = sentence_set.template
    if template is not None and not sentences:
        sentences = [render_template(template.template,
                                     {name: values[0] for name, values in template.slots})]
    return {span.label for sentence in sentences for span in sentence.spans}
