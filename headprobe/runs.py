"""What one forward pass over one sentence gives back (SPEC §9): plain numpy, no JAX.

Axes are 0-based and carry no padding: ``attentions[layer, head, query, key]``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from headprobe import notebook


class SpecialNames(NamedTuple):
    """The tokenizer's own tokens that claims call ``cls``, ``sep`` and ``mask`` (``<s>``,
    ``</s>``, ``<mask>`` for RoBERTa): their names and, when known, their ids (a token is one
    of them when its id is; without ids, when its string is)."""

    cls: str = "[CLS]"
    sep: str = "[SEP]"
    mask: str = "[MASK]"
    cls_id: int | None = None
    sep_id: int | None = None
    mask_id: int | None = None

    def where(self, role: str, tokens: list[str], ids: np.ndarray) -> np.ndarray:
        """bool ``[token]``: the positions holding the ``role`` (cls, sep, mask) token."""
        token_id = getattr(self, f"{role}_id")
        if token_id is not None and len(ids) == len(tokens):
            return np.asarray(ids) == token_id
        name = getattr(self, role)
        return np.array([t == name for t in tokens], dtype=bool)


@dataclass(frozen=True, eq=False)
class Encoding:
    """One text, tokenized with the special tokens added (what a run is built on).

    Attributes:
      text: the text as given (``[MASK]`` written in it, even when the model's mask token is
        another string; offsets point into this text).
      tokens: the tokenizer's tokens, its ``cls`` token first and ``sep`` token last.
      input_ids: int32 ``[token]``.
      word_ids: per token, the index of the tokenizer's word it belongs to (fast tokenizer's
        word ids); ``None`` for special tokens.
      offsets: per token, ``(start, end)`` character offsets into ``text``; ``(0, 0)`` for specials.
      labels: per token, what figures show: the token without a tokenizer's markers (``Ġ``,
        ``▁``, byte-level codes), or None for the tokens themselves (WordPiece's ``##`` stays).
      specials: the tokenizer's names for ``cls``, ``sep`` and ``mask``.
    """

    text: str
    tokens: list[str]
    input_ids: np.ndarray
    word_ids: tuple[int | None, ...]
    offsets: tuple[tuple[int, int], ...]
    labels: tuple[str, ...] | None = field(default=None, kw_only=True)
    specials: SpecialNames = field(default=SpecialNames(), kw_only=True)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def display_tokens(self) -> tuple[str, ...]:
        """What to call each token in figures and tables (`labels`, else the tokens)."""
        return tuple(self.tokens) if self.labels is None else self.labels

    def encoding_fields(self) -> dict[str, Any]:
        """This encoding's fields, to build a `Run` from."""
        return {f.name: getattr(self, f.name) for f in fields(Encoding)}


@dataclass(frozen=True, eq=False)
class Run(Encoding):
    """One sentence through the model: its `Encoding`'s fields, and

    Attributes:
      attentions: float32 ``[layer, head, query, key]``, post-softmax, real positions only.
      hidden_states: float32 ``[layer + 1, token, hidden]`` (embeddings first), or ``None`` when
        not asked for.
      mlm_logits: float32 ``[token, vocab]``, or ``None`` without a masked-LM head.
      output_norms: float32 ``[layer, head, token]``: each head's ``||o_h(i)|| / ||x(i)||``
        (SPEC §14.3), or ``None`` when not asked for.
      special_mask: bool ``[token]``, True for ``[CLS]``/``[SEP]``/other special tokens.
    """

    attentions: np.ndarray
    hidden_states: np.ndarray | None = None
    mlm_logits: np.ndarray | None = None
    output_norms: np.ndarray | None = None
    special_mask: np.ndarray = field(default=None)  # type: ignore[arg-type]  # __post_init__ fills it

    def __post_init__(self) -> None:
        if self.special_mask is None:
            mask = np.array([w is None for w in self.word_ids], dtype=bool)
            object.__setattr__(self, "special_mask", mask)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        layers, heads = self.attentions.shape[:2]
        return (f"Run({notebook.one_line(self.text)!r}, {self.num_tokens} tokens, "
                f"{layers} layers x {heads} heads)")

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        """What a notebook shows (SPEC §16): the tokens, and per head where most rows look
        (the share of them) shaded by the mean of the rows' largest weights."""
        labels = self.display_tokens
        looks, shares, focus = head_behaviours(self.attentions)
        layers, heads = self.attentions.shape[:2]
        cells = [[notebook.Cell(value=f"{looks[layer][head]} {shares[layer, head]:.2f}",
                                shade=float(focus[layer, head]),
                                title=f"L{layer + 1}H{head + 1}: the most attended token is "
                                      f"{looks[layer][head]} for {shares[layer, head]:.0%} of "
                                      f"the tokens; mean largest weight "
                                      f"{focus[layer, head]:.3f}")
                  for head in range(heads)] for layer in range(layers)]
        caption = ("each head: where most tokens look (their most attended token: previous, "
                   "next, self, cls, sep or other) and the share of tokens that do; darker: "
                   "larger weights (the mean of each token's largest)")
        title = f"Run of {len(self.tokens)} tokens, {layers} layers x {heads} heads"
        markup = notebook.page(title, notebook.note(self.text),
                               notebook.tokens(labels, self.special_mask.tolist()),
                               notebook.grid(cells, caption=caption))
        text = "\n".join([f"{title}: {self.text!r}", "tokens: " + " ".join(labels)])
        return notebook.bundle(text, markup, include, exclude)

    def word_groups(self) -> list[list[int]]:
        """Token positions grouped into words, in order; each special token is a word of its own.

        Returns a list over words of the token positions in that word (Clark et al. 2019 grouping).
        """
        groups: list[list[int]] = []
        last_word: int | None = None
        for position, word in enumerate(self.word_ids):
            if word is None or word != last_word:
                groups.append([position])
            else:
                groups[-1].append(position)
            last_word = word
        return groups

    def word_text(self, position: int) -> str:
        """The whole word (from the original text) that the token at ``position`` belongs to."""
        word = self.word_ids[position]
        if word is None:
            return self.tokens[position]
        pieces = [i for i, w in enumerate(self.word_ids) if w == word]
        return self.text[self.offsets[pieces[0]][0]:self.offsets[pieces[-1]][1]]


def head_behaviours(attentions: np.ndarray) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Per head, where most rows of ``attentions [layer, head, query, key]`` look: ``(names
    [layer][head], shares [layer, head], focus [layer, head])``. A row looks at its most
    attended key: ``previous``, ``next``, ``self``, ``cls`` (the first token), ``sep`` (the
    last) or ``other``; the name is the commonest, its share how many rows look there, and
    ``focus`` the mean of the rows' largest weights."""
    layers, heads, length = attentions.shape[:3]
    if length == 0:
        return [["other"] * heads for _ in range(layers)], np.zeros((layers, heads)), \
            np.zeros((layers, heads))
    top = attentions.argmax(axis=-1)  # [layer, head, query]
    rows = np.arange(length)
    kinds = np.full(top.shape, 5)  # other
    for code, hit in enumerate((top == 0, top == length - 1, top == rows, top == rows - 1,
                                top == rows + 1)):
        kinds = np.where(hit, code, kinds)  # the later wins: self, previous, next over cls/sep
    names = ("cls", "sep", "self", "previous", "next", "other")
    counts = np.stack([(kinds == code).sum(axis=-1) for code in range(len(names))], axis=-1)
    common = counts.argmax(axis=-1)
    shares = counts.max(axis=-1) / length
    focus = attentions.max(axis=-1).mean(axis=-1)
    return [[names[code] for code in row] for row in common.tolist()], shares, focus

