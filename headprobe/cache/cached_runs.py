"""Runs through the forward cache: cached runs rebuilt from entries, the rest from the model.

A cached `Run` carries tokens, ids, word ids and offsets from the tokenizer and an ``attentions``
array of the usual shape ``[layer, head, query, key]`` up to the deepest head asked for; the heads
that were not asked for are NaN, so using one by mistake cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from headprobe.cache.entries import EntryKey, ForwardCache, encoding_digest
from headprobe.cachefiles import source_digest
from headprobe.heads import Head
from headprobe.runs import Run


def head_pairs(heads: Sequence[Head]) -> list[tuple[int, int]]:
    """The 0-based ``(layer, head)`` pairs an entry stores for ``heads``, sorted, each once."""
    return sorted({h.index for h in heads})


def stored_attentions(run: Run, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """float32 ``[pair, query, key]``: a copy of the run's attention of the heads in ``pairs``."""
    layers, indices = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    return run.attentions[layers, indices]


def weighted_fingerprint(fingerprint: str, weighting: str) -> str:
    """What the forward cache keys a model's runs by: its fingerprint, and, when the weighting
    is not plain attention, the weighting and a digest of the encoder that computes it (norm
    weights are kept apart from attentions, SPEC §14.1, and from other code's)."""
    if weighting == "attention":
        return fingerprint
    return f"{fingerprint};weighting={weighting};{source_digest('model/encoder.py')[:16]}"


def entry_key(fingerprint: str, encoding: Any) -> EntryKey:
    """The cache key of one tokenized sentence of the model ``fingerprint``."""
    return EntryKey(fingerprint, encoding.text, encoding_digest(encoding))


def cached_run(encoding: Any, stored: np.ndarray, heads: Sequence[tuple[int, int]], *,
               num_layers: int, num_heads: int) -> Run:
    """A `Run` from a tokenizer encoding and the stored ``[head, q, k]`` of ``heads`` (0-based):
    attentions ``[num_layers, num_heads, q, k]``, NaN where no head was stored."""
    n = len(encoding)
    attentions = np.full((num_layers, num_heads, n, n), np.nan, dtype=np.float32)
    layers, indices = zip(*heads) if heads else ((), ())
    attentions[list(layers), list(indices)] = stored
    return Run(**encoding.encoding_fields(), attentions=attentions)


def forward_runs(texts: Sequence[str], heads: Sequence[Head], *, fingerprint: str,
                 encode: Callable[[Sequence[str]], Sequence[Any]], num_layers: int,
                 num_heads: int, load_model: Callable[[], Any], cache: ForwardCache | None,
                 write: bool = True, weighting: str = "attention") -> Iterator[tuple[int, Run]]:
    """``(index into texts, Run)`` for every text: cached runs first, then the model (loaded only
    if some text misses) over the rest, whose needed heads are written to the cache (unless
    ``write=False``: `headprobe check` writes each entry itself, once, with its scores); what
    it wrote is flushed when the iteration ends.

    Runs cover layers 1..deepest head. ``encode`` is the model's tokenizer (``Tokenizer.encode``);
    ``num_layers`` and ``num_heads`` are the model's (they bound what an entry may hold);
    ``cache`` None (or disabled): every text goes through the model. ``weighting="norm"``: the
    runs' attentions are the norm weights of SPEC §14.1 (kept under their own keys).
    """
    if not texts:
        return
    pairs = head_pairs(heads)
    depth = max(layer for layer, _ in pairs) + 1
    missed: list[int] = []
    encodings = encode(texts)
    keys = [entry_key(weighted_fingerprint(fingerprint, weighting), encoding)
            for encoding in encodings]
    most = num_layers * num_heads
    if cache is not None and not cache.enabled:
        cache = None
    if cache is not None:
        for index, encoding in enumerate(encodings):
            stored = cache.get(keys[index], pairs, len(encoding), max_heads=most)
            if stored is None:
                missed.append(index)
            else:
                yield index, cached_run(encoding, stored, pairs, num_layers=depth,
                                        num_heads=num_heads)
    else:
        missed = list(range(len(texts)))
    if not missed:
        return
    model = load_model()
    # copy=False: the runs are views into their batch's output, used and dropped by the caller
    # (the entry written to the cache is a copy of the stored heads).
    try:
        for position, run in model.iter_runs([texts[i] for i in missed], hidden_states=False,
                                             mlm_logits=False, num_layers=depth, copy=False,
                                             encodings=[encodings[i] for i in missed],
                                             heads=pairs, weighting=weighting):
            if write and cache is not None:
                cache.put(keys[missed[position]], pairs, stored_attentions(run, pairs),
                          max_heads=most)
            yield missed[position], run
    finally:
        if write and cache is not None:
            cache.flush()
