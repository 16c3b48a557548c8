"""What one forward pass over one sentence gives back (SPEC §9): plain numpy, no JAX.

Axes are 0-based and carry no padding: ``attentions[layer, head, query, key]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Encoding:
    """One text, tokenized with the special tokens added (what a run is built on).

    Attributes:
      text: the exact string that was tokenized.
      tokens: wordpieces, ``[CLS]`` first and ``[SEP]`` last.
      input_ids: int32 ``[token]``.
      word_ids: per token, the index of the tokenizer's word it belongs to (fast tokenizer's
        word ids); ``None`` for special tokens.
      offsets: per token, ``(start, end)`` character offsets into ``text``; ``(0, 0)`` for specials.
    """

    text: str
    tokens: list[str]
    input_ids: np.ndarray
    word_ids: tuple[int | None, ...]
    offsets: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True, eq=False)
class Run(Encoding):
    """One sentence through the model: its `Encoding`'s fields, and

    Attributes:
      attentions: float32 ``[layer, head, query, key]``, post-softmax, real positions only.
      hidden_states: float32 ``[layer + 1, token, hidden]`` (embeddings first), or ``None`` when
        not asked for.
      mlm_logits: float32 ``[token, vocab]``, or ``None`` without a masked-LM head.
      special_mask: bool ``[token]``, True for ``[CLS]``/``[SEP]``/other special tokens.
    """

    attentions: np.ndarray
    hidden_states: np.ndarray | None = None
    mlm_logits: np.ndarray | None = None
    special_mask: np.ndarray = field(default=None)  # type: ignore[arg-type]  # __post_init__ fills it

    def __post_init__(self) -> None:
        if self.special_mask is None:
            mask = np.array([w is None for w in self.word_ids], dtype=bool)
            object.__setattr__(self, "special_mask", mask)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

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
