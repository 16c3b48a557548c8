"""Hypothesis files (SPEC §2): YAML in, a validated `HypothesisFile` out.

The YAML is composed into nodes (``yaml.compose``) so that every error can say
``file:line: field: what was wrong, the bad value, what is valid``. Nothing here needs the model:
heads are checked against the model's size, and sentences against its tokenizer, at collection.

Top-level keys: ``model``, ``level``, ``slots`` (named value lists for templates),
``sentences`` (named sets) and ``hypotheses`` (the list of claims). See docs/hypothesis-files.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from headprobe.claims.language import (
    parse_claim,
    parse_expectation,
    parse_measure,
    parse_source,
    parse_target,
)
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
from headprobe.claims.spec import (
    AVERAGES,
    BASELINES,
    LEVELS,
    PERS,
    QUANTIFIERS,
    Claim,
    ClaimSpec,
    Expectation,
    HypothesisFile,
    Measure,
    Sentence,
    SentenceSet,
    Template,
)
from headprobe.claims.textfile import (
    TextFileProblem,
    check_printable,
    describe_character,
    first_unprintable,
    read_user_text,
)
from headprobe.errors import ClaimFileError, collected, did_you_mean
from headprobe.heads import parse_head_patterns

__all__ = [
    "CLAIM_KEYS",
    "SET_KEYS",
    "TOP_LEVEL_KEYS",
    "load_hypothesis_file",
    "load_hypothesis_file_partly",
    "looks_like_hypothesis_file",
    "parse_hypothesis_text",
]

TOP_LEVEL_KEYS = ("model", "level", "slots", "sentences", "hypotheses", "unknown_words")
UNKNOWN_WORDS: tuple[Literal["error", "allow"], ...] = ("error", "allow")
SET_KEYS = ("template", "slots", "generate")
CLAIM_KEYS = ("id", "claim", "head", "from", "to", "over", "measure", "expect", "why", "level",
              "quantifier", "per", "confidence", "model", "skip", "xfail", "baseline", "margin",
              "tolerance", "average")
DEFAULT_TOLERANCE = 0.02
"""How far an ``expect: unchanged`` claim's value may move from its snapshot (SPEC §10)."""
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_BAD_ID = re.compile(r"\s|\[|\]|::")
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists a hypothesis file may have (a real one has 5)."""
MAX_MERGED_KEYS = 10_000
"""Most keys a mapping may have once YAML merge keys (``<<: *defaults``) are expanded."""
MAX_GENERATE = 10_000
"""Largest ``generate: N`` of a template set."""
_TOP_LEVEL_HYPOTHESES = re.compile(r"^[\"']?hypotheses[\"']?[ \t]*:", re.MULTILINE)


class _Reported(Exception):
    """Raised instead of an error that would only repeat one already kept (a claim over a set
    that is itself in error)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a date-like scalar (``2001-02-30``) stays text: in a
    hypothesis file it is a sentence, an id or a malformed value, never a date."""

    # types-PyYAML declares this an instance variable; PyYAML keeps it on the class
    yaml_implicit_resolvers: ClassVar[  # type: ignore[misc]  # types-PyYAML: instance var
        dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

T = TypeVar("T")
C = TypeVar("C", bound=str)  # one of the choices of a field


def load_hypothesis_file(path: str | os.PathLike[str],
                         files_under: Sequence[Path] | None = None) -> HypothesisFile:
    """Read and validate one hypothesis file; raises `ClaimFileError` located at the bad spot
    (`ClaimFileErrors` for several). ``files_under``: see `load_hypothesis_file_partly`."""
    hfile, errors = load_hypothesis_file_partly(path, files_under)
    if errors:
        raise collected(errors)
    return hfile


def load_hypothesis_file_partly(path: str | os.PathLike[str],
                                files_under: Sequence[Path] | None = None,
                                ) -> tuple[HypothesisFile, list[ClaimFileError]]:
    """The file with every claim that reads well, and the mistakes of the others, so that a
    collector can check the good claims against the model and report every mistake at once.
    A file whose structure cannot be read at all raises `ClaimFileError`.

    ``files_under``: the resolved folders sentence files must lie in (symbolic links resolved;
    `check_sentence_file_place`), or None for any file (the user's own choice, not a file's)."""
    shown = os.fspath(path)
    try:
        text = read_user_text(path)
    except FileNotFoundError:
        raise ClaimFileError("no such hypothesis file; check the path", file=shown) from None
    except TextFileProblem as problem:
        raise ClaimFileError(str(problem), file=shown, line=problem.line or 1) from None
    except OSError as error:
        raise ClaimFileError(f"cannot read the hypothesis file: {error.strerror}",
                             file=shown) from None
    return _parse(text, shown, Path(path).parent, files_under)


def parse_hypothesis_text(text: str, file: str, base_dir: str | os.PathLike[str] = ".",
                          files_under: Sequence[Path] | None = None) -> HypothesisFile:
    """Validate the YAML ``text`` of a hypothesis file called ``file`` (used in errors);
    sentence-file paths are relative to ``base_dir`` (and must lie under ``files_under``)."""
    hfile, errors = _parse(text, file, base_dir, files_under)
    if errors:
        raise collected(errors)
    return hfile


def _parse(text: str, file: str, base_dir: str | os.PathLike[str],
           files_under: Sequence[Path] | None = None,
           ) -> tuple[HypothesisFile, list[ClaimFileError]]:
    try:
        check_printable(text)
    except TextFileProblem as problem:
        raise ClaimFileError(str(problem), file=file, line=problem.line) from None
    root = _compose(text, file)
    reader = _Reader(file, base_dir=Path(base_dir),
                     files_under=None if files_under is None else tuple(files_under))
    return reader.hypothesis_file(root), reader.errors


def looks_like_hypothesis_file(path: str | os.PathLike[str]) -> bool:
    """Cheap test for the pytest plugin: a ``hypotheses:`` key at the start of a line (the
    top level of a YAML mapping), in a readable UTF-8 text file.

    A file that is not valid YAML counts when it has that line (so that its error is reported);
    unreadable, oversized and special files do not.
    """
    try:
        text = read_user_text(path)
    except (OSError, TextFileProblem):
        return False
    return _TOP_LEVEL_HYPOTHESES.search(text) is not None


def _compose(text: str, file: str) -> Node:
    try:
        _check_events(text, file)
        root = yaml.compose(text, Loader=_Loader)
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
    """Refuse, at their line, what no hypothesis file needs and the composer would choke on:
    nesting deeper than `MAX_DEPTH` and explicit tags (``!!int``, ``!foo``,
    ``!!python/name:...``). Walks the event stream, which needs no recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
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


def _line(node: Node) -> int:
    return node.start_mark.line + 1


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               list: "a list", dict: "a mapping"}


@dataclass
class _Nodes:
    """Typed access to the composed YAML nodes of one file; every error names
    ``file:line: field``."""

    file: str
    _constructor: Any = field(default_factory=lambda: _Loader(""))
    errors: list[ClaimFileError] = field(default_factory=list)

    def attempt(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None when it raised a `ClaimFileError`, which is kept in ``errors``
        so that every independent mistake of a file is reported in one run."""
        try:
            return read()
        except _Reported:
            return None
        except ClaimFileError as error:
            self.errors.append(error)
            return None


    def error(self, node: Node, fieldname: str | None, message: str) -> ClaimFileError:
        return ClaimFileError(message, file=self.file, line=_line(node), field=fieldname)

    def locate(self, error: ClaimFileError, node: Node, fieldname: str) -> ClaimFileError:
        return error.located(file=self.file, line=_line(node), field=fieldname)

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
                keys: tuple[str, ...] | None) -> dict[str, tuple[Node, Node]]:
        """``{key: (key_node, value_node)}``; duplicate or (if ``keys``) unknown keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.wrong_type(node, fieldname or "", expected)
        self.check_duplicates(node, fieldname)
        if _merged_size(node, {}) > MAX_MERGED_KEYS:
            raise self.error(node, fieldname, f"the merge keys ('<<:') here expand to more "
                                              f"than {MAX_MERGED_KEYS:,} keys; write the "
                                              f"mapping out")
        try:
            self._constructor.flatten_mapping(node)  # YAML merge keys ('<<: *defaults')
        except yaml.MarkedYAMLError as error:
            raise self.error(node, fieldname, f"bad merge key: {error.problem}") from None
        entries: dict[str, tuple[Node, Node]] = {}
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

    def check_duplicates(self, node: MappingNode, fieldname: str | None) -> None:
        """PyYAML silently keeps the last of two equal keys; we say so instead."""
        seen: dict[object, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.value(key_node, fieldname)
            if key in seen:
                where = f"{fieldname}.{key}" if fieldname else str(key)
                raise self.error(key_node, where, f"{key!r} is given twice (first at line "
                                                  f"{_line(seen[key])}); keep one")
            seen[key] = key_node

    def string(self, node: Node, fieldname: str, example: str) -> str:
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

    def parsed(self, node: Node, fieldname: str, parse: Callable[[Any], T]) -> T:
        try:
            return parse(self.value(node, fieldname))
        except ClaimFileError as error:
            raise self.locate(error, node, fieldname) from None

    def optional(self, entries: dict[str, tuple[Node, Node]], key: str,
                 read: Callable[[Node], T]) -> T | None:
        """``read`` the value of ``key``; absent or null means not given."""
        if key not in entries or self.value(entries[key][1], key) is None:
            return None
        return read(entries[key][1])

    def positive_int(self, node: Node, fieldname: str, maximum: int) -> int:
        value = self.value(node, fieldname)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.wrong_type(node, fieldname, "a positive whole number such as 50")
        if value > maximum:
            raise self.error(node, fieldname, f"{node.value} is more than {maximum:,}, the "
                                              f"most this field takes")
        return value



@dataclass
class _Sets(_Nodes):
    """Reads slots and sentence sets (inline lists, sentence files, templates)."""

    base_dir: Path = Path(".")
    files_under: tuple[Path, ...] | None = None  # where sentence files may be (None: anywhere)
    file_slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    broken_sets: set[str] = field(default_factory=set)  # sets whose mistakes are reported


    def slot_lists(self, node: Node, fieldname: str,
                   references: bool = True) -> dict[str, tuple[str, ...]]:
        """``{name: [values]}``; with ``references`` (a template's ``slots``) a value may also
        name a file-level list."""
        lists: dict[str, tuple[str, ...]] = {}
        for name, (key_node, value_node) in self.mapping(node, fieldname, "a mapping of slot "
                                                         "names to lists of values", None).items():
            where = f"{fieldname}.{name}"
            if not _NAME.match(name):
                raise self.error(key_node, where, f"slot name {name!r} may only contain letters, "
                                                  f"digits, '_' and '-'")
            if isinstance(value_node, ScalarNode) and references:
                lists[name] = self.slot_reference(value_node, where)
                continue
            if not isinstance(value_node, SequenceNode):
                raise self.wrong_type(value_node, where, "a list of values" + (
                    " or the name of a list under 'slots:'" if references else ""))
            values = tuple(self.text(item, where) for item in value_node.value)
            try:
                lists[name] = check_slot_values(name, values)
            except ClaimFileError as error:
                raise self.locate(error, value_node, where) from None
        return lists

    def slot_reference(self, node: Node, fieldname: str) -> tuple[str, ...]:
        name = self.string(node, fieldname, "animals")
        if name not in self.file_slots:
            known = ", ".join(self.file_slots) or "none (add a top-level 'slots:' mapping)"
            raise self.error(node, fieldname, f"no slot list called {name!r} under 'slots:'"
                                              f"{did_you_mean(name, self.file_slots)}; lists "
                                              f"defined: {known}")
        return self.file_slots[name]

    def sentence_set(self, name: str, key_node: Node, node: Node) -> SentenceSet:
        where = f"sentences.{name}"
        if not _NAME.match(name):
            raise self.error(key_node, where, f"set name {name!r} may only contain letters, "
                                              f"digits, '_' and '-'")
        if isinstance(node, SequenceNode):
            return SentenceSet(name, self.inline_sentences(node, where), line=_line(key_node))
        if isinstance(node, MappingNode):
            return self.template_set(name, key_node, node, where)
        value = self.value(node, where)
        if isinstance(value, str) and value.strip():
            path = Path(os.path.normpath(self.base_dir / value.strip()))
            origin = Location(self.file, _line(node), where)
            if self.files_under is not None:
                check_sentence_file_place(path, self.files_under, origin, value.strip())
            sentences = read_sentence_file(path, origin)
            return SentenceSet(name, tuple(sentences), line=_line(key_node))
        raise self.wrong_type(node, where, "a list of sentences, a path to a text file (one "
                                           "sentence a line) or a mapping with 'template:'")

    def inline_sentences(self, node: SequenceNode, where: str) -> tuple[Sentence, ...]:
        if not node.value:
            raise self.error(node, where, "the set has no sentences; add at least one")
        sentences = []
        for index, item in enumerate(node.value):
            text = self.text(item, f"{where}[{index}]")
            try:
                sentences.append(parse_annotated(text, origin=f"{self.file}:{_line(item)}"))
            except ClaimFileError as error:
                raise self.locate(error, item, f"{where}[{index}]") from None
        return tuple(sentences)

    def template_set(self, name: str, key_node: Node, node: Node, where: str) -> SentenceSet:
        entries = self.mapping(node, where, "a template mapping", SET_KEYS)
        if "template" not in entries:
            raise self.error(node, f"{where}.template", "missing: a set written as a mapping "
                                                        "needs 'template:' (and 'slots:')")
        template_node = entries["template"][1]
        template = self.string(template_node, f"{where}.template", "The {animal} sat.")
        try:
            names = template_slot_names(template)
        except ClaimFileError as error:
            raise self.locate(error, template_node, f"{where}.template") from None
        has_slots = ("slots" in entries
                     and self.value(entries["slots"][1], f"{where}.slots") is not None)
        slots = self.slot_lists(entries["slots"][1], f"{where}.slots") if has_slots else {}
        for slot in names:  # reuse a file-level list of the same name
            if slot not in slots and slot in self.file_slots:
                slots[slot] = self.file_slots[slot]
        generate = self.optional(entries, "generate",
                                 lambda n: self.positive_int(n, f"{where}.generate",
                                                             MAX_GENERATE))
        origin = f"{self.file}:{_line(template_node)}"
        try:
            ordered = check_template(template, slots)
            sentences = () if generate else tuple(expand_template(template, slots, origin))
        except ClaimFileError as error:
            raise self.locate(error, template_node, f"{where}.template") from None
        return SentenceSet(name, sentences, Template(template, ordered, generate),
                           line=_line(key_node))



@dataclass
class _Reader(_Sets):
    """Reads a whole hypothesis file: its top-level keys, sets and claims."""

    def hypothesis_file(self, root: Node) -> HypothesisFile:
        top = self.mapping(root, None, "a mapping with 'sentences:' and 'hypotheses:' at the top "
                                       "of the file", TOP_LEVEL_KEYS)
        model = self.attempt(lambda: self.optional(
            top, "model", lambda n: self.string(n, "model", "bert-base-uncased")))
        level = self.attempt(lambda: self.optional(
            top, "level", lambda n: self.choice(n, "level", LEVELS))) or "token"
        unknown_words = self.attempt(lambda: self.optional(
            top, "unknown_words", lambda n: self.choice(n, "unknown_words", UNKNOWN_WORDS)))
        if "slots" in top:
            self.file_slots = self.attempt(lambda: self.slot_lists(
                top["slots"][1], "slots", references=False)) or {}
        sets: dict[str, SentenceSet] = {}
        labels: dict[str, set[str]] = {}
        if "sentences" in top:
            named = self.attempt(lambda: self.mapping(top["sentences"][1], "sentences",
                                                      "a mapping of set names to sets", None))
            for name, (key_node, node) in (named or {}).items():
                made = self.attempt(partial(self.sentence_set, name, key_node, node))
                if made is None:
                    self.broken_sets.add(name)
                    continue
                sets[name] = made
                labels[name] = _labels(made)
        if "hypotheses" not in top:
            self.errors.append(self.error(root, "hypotheses", "missing: a hypothesis file needs "
                                                              "a 'hypotheses:' list of claims"))
            claims: tuple[ClaimSpec, ...] = ()
        else:
            claims = self.claims(top["hypotheses"][1], level, sets, labels)
        return HypothesisFile(path=self.file, model=model, level=level, sets=sets,
                              claims=claims, unknown_words=unknown_words or "error")

    def claims(self, node: Node, level: Literal["token", "word"], sets: dict[str, SentenceSet],
               labels: dict[str, set[str]]) -> tuple[ClaimSpec, ...]:
        if not isinstance(node, SequenceNode):
            raise self.wrong_type(node, "hypotheses", "a list of hypotheses (each starting "
                                                      "with '- id:')")
        specs: list[ClaimSpec] = []
        first_line: dict[str, int] = {}
        for item in node.value:
            spec = self.attempt(partial(self.claim_spec, item, level, sets, labels))
            if spec is None:
                continue
            if spec.id in first_line:
                self.errors.append(self.error(item, "id", f"duplicate id {spec.id!r}: also used "
                                                          f"by the hypothesis at line "
                                                          f"{first_line[spec.id]}; ids must be "
                                                          f"unique in a file"))
                continue
            first_line[spec.id] = spec.line
            specs.append(spec)
        return tuple(specs)

    def claim_spec(self, node: Node, file_level: Literal["token", "word"],
                   sets: dict[str, SentenceSet], labels: dict[str, set[str]]) -> ClaimSpec:
        """One hypothesis; each of its fields is read on its own, so that all its independent
        mistakes are kept (`attempt`) before the claim is given up."""
        if not isinstance(node, MappingNode):
            raise self.wrong_type(node, "hypotheses", "a hypothesis mapping with 'id:', 'claim:', "
                                                      "'over:' and 'expect:'")
        entries = self.mapping(node, None, "a hypothesis mapping", CLAIM_KEYS)
        before = len(self.errors)
        for required in ("id", "over", "expect"):
            if required not in entries:
                self.errors.append(self.error(node, required, f"missing: every hypothesis needs "
                                                              f"{required!r}"))
        attempt, read = self.attempt, self.optional
        identifier = attempt(lambda: self.identifier(entries["id"][1])) if "id" in entries \
            else None
        written = attempt(lambda: self.claim(node, entries))
        over = attempt(lambda: self.over(entries["over"][1], sets)) if "over" in entries \
            else None
        if written is not None and over is not None:
            claim, _, claim_node, claim_field = written
            attempt(lambda: self.check_spans(claim, over, labels, claim_node, claim_field))
        expect = attempt(lambda: self.parsed(entries["expect"][1], "expect",
                                             parse_expectation)) if "expect" in entries else None
        baseline = attempt(lambda: read(entries, "baseline",
                                        lambda n: self.choice(n, "baseline", BASELINES)))
        measure = attempt(lambda: read(entries, "measure",
                                       lambda n: self.parsed(n, "measure", parse_measure)))
        level = attempt(lambda: read(entries, "level", lambda n: self.choice(n, "level", LEVELS)))
        quantifier = attempt(lambda: read(entries, "quantifier",
                                          lambda n: self.choice(n, "quantifier", QUANTIFIERS)))
        per = attempt(lambda: read(entries, "per", lambda n: self.choice(n, "per", PERS)))
        average = attempt(lambda: read(entries, "average",
                                       lambda n: self.choice(n, "average", AVERAGES)))
        confidence = attempt(lambda: read(entries, "confidence", self.confidence))
        model = attempt(lambda: read(entries, "model",
                                     lambda n: self.string(n, "model", "bert-base-uncased")))
        skip = attempt(lambda: read(entries, "skip",
                                    lambda n: self.string(n, "skip", "needs a GPU")))
        xfail = attempt(lambda: read(entries, "xfail",
                                     lambda n: self.string(n, "xfail", "known to fail")))
        margin = attempt(lambda: read(entries, "margin", lambda n: self.margin(n, baseline)))
        why = attempt(lambda: read(entries, "why", lambda n: self.string(n, "why", "the reason")))
        tolerance = attempt(lambda: read(entries, "tolerance", self.tolerance))
        if expect is not None:
            attempt(lambda: self.check_unchanged(node, entries, expect, quantifier, confidence,
                                                 baseline))
        if written is not None and (measure is not None or "measure" not in entries):
            attempt(lambda: self.check_target(node, entries, written, measure or Measure(),
                                              baseline))
        if len(self.errors) > before or identifier is None or written is None or over is None \
                or expect is None:
            raise _Reported  # what was wrong is in self.errors
        claim, claim_text, _, claim_field = written
        return ClaimSpec(
            file=self.file, line=_line(node), id=identifier, claim=claim, over=over,
            expect=expect, measure=measure or Measure(), level=level or file_level,
            quantifier=quantifier or "each", per=per or "pool", average=average or "pool",
            confidence=confidence,
            model=model, skip=skip, xfail=xfail, baseline=baseline, margin=margin or 0.0,
            why=why, tolerance=(tolerance if tolerance is not None else DEFAULT_TOLERANCE)
            if expect.is_unchanged else None,
            claim_text=claim_text,
            claim_line=_line(entries["claim" if claim_field else "head"][1]),
            claim_field=claim_field or "head")

    def identifier(self, node: Node) -> str:
        identifier = self.string(node, "id", "next-token")
        if _BAD_ID.search(identifier):
            raise self.error(node, "id", f"id {identifier!r} may not contain spaces, '[', ']' or "
                                         f"'::' (it becomes part of the test id FILE::ID[L3H10]); "
                                         f"use letters, digits, '-' and '_'")
        return identifier

    def claim(self, node: Node, entries: dict[str, tuple[Node, Node]],
              ) -> tuple[Claim, str, dict[str, Node], str | None]:
        """The claim, its text, and the node to blame for a source/target problem."""
        fields = [key for key in ("head", "from", "to") if key in entries]
        if "claim" in entries and fields:
            raise self.error(entries[fields[0]][0], fields[0], "give either 'claim:' or the "
                             "fields 'head:', 'from:' and 'to:', not both")
        if "claim" in entries:
            claim_node = entries["claim"][1]
            text = self.string(claim_node, "claim", "L2H5: token -> next")
            claim = self.parsed(claim_node, "claim", lambda value: parse_claim(value.strip()))
            return claim, text, {"source": claim_node, "target": claim_node}, "claim"
        if not fields:
            raise self.error(node, "claim", "missing: give 'claim: \"L2H5: token -> next\"' or "
                                            "the fields 'head:', 'from:' and 'to:'")
        for key in ("head", "from"):
            if key not in entries:
                raise self.error(node, key, "missing: the fields form needs 'head:', 'from:' "
                                            "and 'to:' (or write one 'claim:' instead)")
        head = self.string(entries["head"][1], "head", "L4H11")
        source = self.string(entries["from"][1], "from", "span:adv")
        target = self.string(entries["to"][1], "to", "span:verb") if "to" in entries else None
        claim = Claim(heads=self.parsed(entries["head"][1], "head",
                                        lambda v: parse_head_patterns(v.strip())),
                      source=self.parsed(entries["from"][1], "from", parse_source),
                      target=None if target is None
                      else self.parsed(entries["to"][1], "to", parse_target))
        text = f"{head}: {source}" if target is None else f"{head}: {source} -> {target}"
        return (claim, text, {"source": entries["from"][1],
                              "target": entries["to" if "to" in entries else "from"][1]}, None)

    def over(self, node: Node, sets: dict[str, SentenceSet]) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            raise self.error(node, "over", "the list is empty; name at least one sentence set")
        names: list[str] = []
        for item in items:
            name = self.string(item, "over", "everyday")
            if name in self.broken_sets:
                raise _Reported  # the set's own mistake is reported
            if name not in sets:
                known = ", ".join(sets) or "none (add a 'sentences:' mapping)"
                raise self.error(item, "over", f"no sentence set called {name!r}"
                                               f"{did_you_mean(name, sets)}; sets in this file: "
                                               f"{known}")
            if name not in names:
                names.append(name)
        return tuple(names)

    def check_spans(self, claim: Claim, over: tuple[str, ...], labels: dict[str, set[str]],
                    nodes: dict[str, Node], claim_field: str | None) -> None:
        known = set().union(*(labels[name] for name in over))
        for role, part in (("source", claim.source), ("target", claim.target)):
            if part is None or part.kind != "span" or part.arg is None or part.arg in known:
                continue
            fieldname = claim_field or ("from" if role == "source" else "to")
            listed = ", ".join(sorted(known)) if known else "none (mark spans as [text]{label})"
            raise self.error(nodes[role], fieldname,
                             f"unknown span label {part.arg!r}{did_you_mean(part.arg, known)} in "
                             f"the {role}: the sentences of {', '.join(over)} have labels: "
                             f"{listed}")

    def check_target(self, node: Node, entries: dict[str, tuple[Node, Node]],
                     written: tuple[Claim, str, dict[str, Node], str | None], measure: Measure,
                     baseline: str | None) -> None:
        """``measure: entropy`` takes no target and no baseline; every other measure needs a
        target (SPEC §13)."""
        claim, _, nodes, claim_field = written
        fieldname = claim_field or "to"
        if measure.needs_target and claim.target is None:
            if claim_field is None:
                raise self.error(node, "to",
                                 f"missing: the fields form needs 'head:', 'from:' and 'to:' "
                                 f"(measure {measure} needs a target, as in 'to: next'; only "
                                 f"'measure: entropy' is measured without one)")
            raise self.error(nodes["target"], fieldname,
                             f"the claim has no target: write it as 'HEADS: SOURCE -> TARGET', "
                             f"e.g. '{claim.heads[0]}: {claim.source} -> next'; only "
                             f"'measure: entropy' is measured without a target")
        if not measure.needs_target and claim.target is not None:
            raise self.error(nodes["target"], fieldname,
                             f"measure entropy needs no target: it measures how spread out the "
                             f"source rows are; write '{claim.heads[0]}: {claim.source}' "
                             f"(without '-> {claim.target}'), or choose another measure")
        if not measure.needs_target and baseline is not None:
            raise self.error(entries["baseline"][0], "baseline",
                             "'baseline: offset' compares with always attending to one position; "
                             "it does not apply to measure entropy; remove it")

    def confidence(self, node: Node) -> float:
        value = self.number(node, "confidence")
        if not 0 < value < 1:
            raise self.error(node, "confidence", f"{value:g} is not strictly between 0 and 1; "
                                                 f"write a level such as 0.95")
        return value

    def tolerance(self, node: Node) -> float:
        value = self.number(node, "tolerance")
        if not 0 <= value <= 1:
            raise self.error(node, "tolerance", f"{value:g} is outside [0, 1]; a tolerance is how "
                                                f"far a value may move, such as 0.02")
        return value

    def check_unchanged(self, node: Node, entries: dict[str, tuple[Node, Node]],
                        expect: Expectation, quantifier: str | None, confidence: float | None,
                        baseline: str | None) -> None:
        """``expect: unchanged`` compares each head's value with its snapshot: it takes a
        ``tolerance`` and no quantifier but ``each``, no ``confidence``, no ``baseline``."""
        if not expect.is_unchanged:
            if "tolerance" in entries:
                raise self.error(entries["tolerance"][0], "tolerance",
                                 "'tolerance' only applies with 'expect: unchanged'; remove it "
                                 "or compare with a snapshot")
            return
        conflicts = [("quantifier", quantifier not in (None, "each")),
                     ("confidence", confidence is not None), ("baseline", baseline is not None)]
        for name, conflict in conflicts:
            if conflict:
                raise self.error(entries[name][0], name,
                                 f"'{name}' does not go with 'expect: unchanged', which compares "
                                 f"every head's value with its snapshot; remove one of them")

    def margin(self, node: Node, baseline: str | None) -> float:
        if baseline is None:
            raise self.error(node, "margin", "'margin' only applies with 'baseline: offset'; "
                                             "add the baseline or remove the margin")
        value = self.number(node, "margin")
        if not 0 <= value <= 1:
            raise self.error(node, "margin", f"{value:g} is outside [0, 1]; a margin is a "
                                             f"difference of shares or masses, such as 0.1")
        return value


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


def _labels(sentence_set: SentenceSet) -> set[str]:
    """Span labels used by a set (for a ``generate`` template, by its first combination)."""
    sentences = list(sentence_set.sentences)
    template = sentence_set.template
    if template is not None and not sentences:
        sentences = [render_template(template.template,
                                     {name: values[0] for name, values in template.slots})]
    return {span.label for sentence in sentences for span in sentence.spans}
