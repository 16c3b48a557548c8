"""Deterministic English sentences of 8-40 words for the benchmarks (no corpus, no network).

`make_sentences(count, seed)` builds each sentence from clauses (subject, verb, object, place,
adverb) joined with commas and conjunctions until it reaches a target word count drawn uniformly
from ``min_words..max_words``. Every word is in bert-base-uncased's vocabulary.
"""

from __future__ import annotations

import random

SUBJECTS = ["the old farmer", "my neighbour", "a tired student", "the small child", "she", "he",
            "the driver", "two children", "our teacher", "the woman next door", "they", "i",
            "the young doctor", "a quiet man", "the cook", "her brother"]
VERBS = ["picked up", "carried", "painted", "found", "dropped", "sold", "cleaned", "moved",
         "opened", "watched", "bought", "fixed", "borrowed", "hid", "washed", "described"]
OBJECTS = ["a red chair", "the heavy box", "an old map", "the broken lamp", "a glass of water",
           "the blue door", "some fresh bread", "the letter", "a wooden table", "the green bike",
           "his coat", "the garden gate", "a small dog", "the kitchen window", "her keys"]
PLACES = ["in the garden", "near the river", "at the station", "under the bed", "on the roof",
          "behind the school", "across the street", "in the morning", "after dinner",
          "before the storm", "by the old bridge", "inside the shop"]
ADVERBS = ["slowly", "quickly", "carefully", "quietly", "suddenly", "happily", "again", "finally"]
JOINS = [", and", ", but", " while", " because", ", so", " before", " after", " when"]


def _clause(rng: random.Random) -> list[str]:
    words = [rng.choice(SUBJECTS)]
    if rng.random() < 0.4:
        words.append(rng.choice(ADVERBS))
    words += [rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.7:
        words.append(rng.choice(PLACES))
    return " ".join(words).split()


def make_sentence(rng: random.Random, words: int) -> str:
    out = _clause(rng)
    while len(out) < words:
        join = rng.choice(JOINS)
        if join.startswith(","):
            out[-1] += ","
        out += join.strip(", ").split() + _clause(rng)
    out = out[:words]
    text = " ".join(out).strip(",")
    return text[0].upper() + text[1:] + "."


def make_sentences(count: int, seed: int = 0, min_words: int = 8, max_words: int = 40) -> list[str]:
    """``count`` sentences (distinct), lengths uniform in ``min_words..max_words`` words."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        text = make_sentence(rng, rng.randint(min_words, max_words))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


if __name__ == "__main__":  # pragma: no cover - a quick look
    for line in make_sentences(5):
        print(line)
