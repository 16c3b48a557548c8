"""The parsed form of claims and hypothesis files: frozen, serialisable, no behaviour.

`language` parses claim strings into these; `files` parses YAML hypothesis files into these;
`headprobe.evaluation` evaluates them against model runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from headprobe.heads import HeadPattern

SOURCE_KINDS = ("token", "all", "mask", "cls", "sep", "word", "span")
TARGET_KINDS = ("next", "previous", "self", "offset", "cls", "sep", "mask", "punct",
                "same-word", "word", "span")
MEASURES = ("argmax", "mass", "topk", "entropy", "effect")
WEIGHTINGS: tuple[Literal["attention", "norm"], ...] = ("attention", "norm")
ABLATIONS: tuple[Literal["mean", "zero"], ...] = ("mean", "zero")
EFFECTS: tuple[Literal["hidden", "embedding", "kl"], ...] = ("hidden", "embedding", "kl")
LEVELS: tuple[Literal["token", "word"], ...] = ("token", "word")
QUANTIFIERS: tuple[Literal["each", "any", "none"], ...] = ("each", "any", "none")
PERS: tuple[Literal["pool", "sentence"], ...] = ("pool", "sentence")
AVERAGES: tuple[Literal["pool", "sentence"], ...] = ("pool", "sentence")
BASELINES: tuple[Literal["offset"], ...] = ("offset",)


@dataclass(frozen=True)
class Source:
    """Query positions examined. ``arg`` is the regex for ``word``, the label for ``span``;
    ``all`` is every real position, ``[CLS]`` and ``[SEP]`` included (SPEC §13)."""

    kind: Literal["token", "all", "mask", "cls", "sep", "word", "span"]
    arg: str | None = None

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


@dataclass(frozen=True)
class Target:
    """Key positions per source. ``offset`` is the signed step for next/previous/self/offset
    (next = +1, previous = -1, self = 0); ``arg`` the regex or label for word/span."""

    kind: Literal["next", "previous", "self", "offset", "cls", "sep", "mask", "punct",
                  "same-word", "word", "span"]
    arg: str | None = None
    offset: int | None = None

    def __str__(self) -> str:
        if self.kind == "offset":
            return f"offset:{self.offset:+d}"
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


@dataclass(frozen=True)
class Claim:
    """``heads ":" source "->" target``, or ``heads ":" source`` (``target`` None) for
    ``measure: entropy``, which needs no target (SPEC §13)."""

    heads: tuple[HeadPattern, ...]
    source: Source
    target: Target | None

    def __str__(self) -> str:
        text = f"{','.join(map(str, self.heads))}: {self.source}"
        return text if self.target is None else f"{text} -> {self.target}"


@dataclass(frozen=True)
class Measure:
    """What a claim measures. ``effect`` (SPEC §14.2) removes heads: ``ablation`` (mean or
    zero), ``effect`` (hidden, embedding or kl) and ``together`` (all the claim's heads at
    once) say how; they are None for every other measure."""

    kind: Literal["argmax", "mass", "topk", "entropy", "effect"] = "argmax"
    k: int | None = None
    ablation: Literal["mean", "zero"] | None = None
    effect: Literal["hidden", "embedding", "kl"] | None = None
    together: bool | None = None

    def __str__(self) -> str:
        if self.kind == "effect":
            return f"effect:{self.effect} ({self.ablation} ablation" + \
                (", heads together)" if self.together else ")")
        return f"topk:{self.k}" if self.kind == "topk" else self.kind

    @property
    def is_share(self) -> bool:
        """argmax and topk are shares of sources (Wilson intervals); mass, entropy and effect
        are means (bootstrap intervals)."""
        return self.kind in ("argmax", "topk")

    @property
    def needs_target(self) -> bool:
        """Every measure but entropy and effect is about the attention on a claim's targets."""
        return self.kind not in ("entropy", "effect")


@dataclass(frozen=True)
class Expectation:
    """``>= 0.8``, ``< 0.3``, ``between 0.2 and 0.5`` (bounds inclusive); numbers in [0, 1].
    ``unchanged`` (SPEC §10) holds for any value: it is decided against a snapshot
    (`headprobe.regression.snapshots`)."""

    op: Literal[">=", ">", "<=", "<", "between", "unchanged"]
    low: float
    high: float | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text or (f"between {self.low} and {self.high}" if self.op == "between"
                             else f"{self.op} {self.low}")

    @property
    def is_unchanged(self) -> bool:
        return self.op == "unchanged"

    def holds(self, value: float) -> bool:
        if self.op == "unchanged":
            return True
        if self.op == ">=":
            return value >= self.low
        if self.op == ">":
            return value > self.low
        if self.op == "<=":
            return value <= self.low
        if self.op == "<":
            return value < self.low
        return self.low <= value <= (self.high if self.high is not None else 1.0)

    def holds_interval(self, low: float, high: float) -> bool:
        """The whole interval [low, high] meets the expectation (for ``confidence``)."""
        return self.holds(low) and self.holds(high)


@dataclass(frozen=True)
class Span:
    """``[text]{label}`` after annotation removal: characters ``start:end`` of the sentence."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence ready to tokenize: ``text`` has annotations removed; ``spans`` are labelled
    character ranges of ``text``; ``origin`` says where it came from (file:line or template)."""

    text: str
    spans: tuple[Span, ...] = ()
    origin: str = ""
    slot_values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Template:
    """A template set: ``template`` with ``{slot}`` references, and slot values."""

    template: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]
    generate: int | None = None


@dataclass(frozen=True)
class SentenceSet:
    """A named set. ``sentences`` are all its sentences, except for a ``generate: N`` template,
    whose sentences are drawn at run time from ``template``."""

    name: str
    sentences: tuple[Sentence, ...] = ()
    template: Template | None = None
    line: int | None = None


@dataclass(frozen=True)
class ClaimSpec:
    """One entry of a hypothesis file's ``hypotheses:`` list, validated."""

    file: str
    line: int
    id: str
    claim: Claim
    over: tuple[str, ...]
    expect: Expectation
    measure: Measure = Measure()
    level: Literal["token", "word"] = "token"
    quantifier: Literal["each", "any", "none"] = "each"
    per: Literal["pool", "sentence"] = "pool"
    average: Literal["pool", "sentence"] = "pool"  # sentence: the mean of sentences' values
    confidence: float | None = None
    model: str | None = None
    skip: str | None = None
    xfail: str | None = None
    baseline: Literal["offset"] | None = None
    margin: float = 0.0
    why: str | None = None
    tolerance: float | None = None  # expect: unchanged
    claim_text: str = ""
    claim_line: int | None = None  # where the claim (or its head: field) is written
    claim_field: str = "claim"
    weighting: Literal["attention", "norm"] = "attention"  # SPEC §14.1


@dataclass(frozen=True)
class HypothesisFile:
    path: str
    model: str | None
    level: Literal["token", "word"]
    sets: dict[str, SentenceSet] = field(default_factory=dict)
    claims: tuple[ClaimSpec, ...] = ()
    unknown_words: Literal["error", "allow"] = "error"  # sentences with [UNK]: error, or count
