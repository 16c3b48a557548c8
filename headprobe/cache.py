"""The forward cache: the attention of the heads that claims need, per (model, sentence), on disk.

An unchanged re-run of ``headprobe check`` reads every run from here and never loads the weights
or JAX: the model's fingerprint comes from its files (`model_fingerprint`) and the tokens from its
tokenizer, which collection has loaded anyway.

What is stored. One entry per (model fingerprint, sentence text, dtype, format version) — that is
the key, hashed with SHA-256 into the file name — holding the exact float32 attention matrices
``[query, key]`` of a set of heads, and the list of those heads. A lookup asks for a set of heads and
hits only when the entry holds all of them; a write after a miss keeps the heads the entry already
had (so running claim A, then claim B, then both, ends with every head cached). Values are the
forward pass's own bytes: a cached result equals the fresh run that wrote it bit for bit.

A cached `Run` carries tokens, ids, word ids and offsets from the tokenizer and an ``attentions``
array of the usual shape ``[layer, head, query, key]`` up to the deepest head asked for; the heads
that were not asked for are NaN, so using one by mistake cannot pass silently.

Layout. ``cache_root()/forward/packs/*.hpk``: entries are written in packs, many entries a file
(creating a file per sentence was most of what a cold run's cache writes cost). An entry is
``MAGIC``, a 4-byte little-endian header length, a JSON header (the key's fields, the heads, the
token count, a CRC-32 of the data and, from `headprobe check`, the claims' numbers for the
sentence: `headprobe.score_cache`) and the raw float32 data ``[stored head, query, key]``. A pack
is ``PACK_MAGIC``, its entries, a JSON index (each entry's key digest, offset and length) and a
footer saying where the index is. `ForwardCache.put` keeps new entries in memory and writes a pack
once they reach ``pack_bytes`` (and on `ForwardCache.flush`); a pack is written to a temporary
file in the same folder, then `os.replace`d (atomic: readers see a whole pack or none). When a key
is in several packs the newest pack's entry is read (every version of an entry is correct for its
key; a newer one may hold more heads or scores). Packs only grow the cache; when more than
``MAX_PACKS`` packs (and twice as many as the live entries fill) or more superseded bytes than
live ones have piled up, opening the cache rewrites the live entries into new packs and deletes
the old ones. A corrupt, truncated or foreign entry (another key inside, a shape that does not
match the sentence) or pack is counted in `CacheStats.invalid`, ignored, and its entries written
again by the next run that needs them.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.atomic import write_atomic
from headprobe.errors import CacheWarning
from headprobe.heads import Head
from headprobe.runs import Run

FORMAT_VERSION = 1
DTYPE = "float32"
MAGIC = b"HPFWD1\n"
_LENGTH = struct.Struct("<I")
PACK_MAGIC = b"HPPACK1\n"
PACK_SUFFIX = ".hpk"
_FOOTER = struct.Struct("<QQ8s")  # index offset, index length, PACK_MAGIC
PACK_BYTES = 16 << 20  # entries waiting in memory are written as a pack at this size
MAX_PACKS = 64  # opening a cache with more packs than this compacts it
_pack_numbers = itertools.count()


@dataclass(frozen=True)
class EntryKey:
    """What an entry is for; its SHA-256 names the file and its fields are checked on read."""

    fingerprint: str
    text: str
    dtype: str = DTYPE
    version: int = FORMAT_VERSION

    def fields(self) -> dict[str, Any]:
        return {"version": self.version, "dtype": self.dtype, "fingerprint": self.fingerprint,
                "text": self.text}

    @property
    def digest(self) -> str:
        return _key_digest(self)


@functools.lru_cache(maxsize=1 << 16)
def _key_digest(key: EntryKey) -> str:
    """SHA-256 of a key's fields (a check asks for each sentence's several times)."""
    payload = json.dumps(key.fields(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    """Counts for one `ForwardCache` (tests and the benchmark read them)."""

    hits: int = 0
    misses: int = 0
    invalid: int = 0
    writes: int = 0


@dataclass(frozen=True)
class Entry:
    """A decoded entry: 0-based ``(layer, head)`` pairs, float32 ``[stored head, q, k]``, and the
    score cache's numbers for the sentence (`headprobe.score_cache`), or None."""

    heads: tuple[tuple[int, int], ...]
    attentions: np.ndarray
    scores: Any = None


#: What `ForwardCache.put` does with the entry's scores: given the old ones (None if none), the
#: new ones.
ScoresUpdate = Callable[[Any], Any]


def encode_entry(key: EntryKey, heads: Sequence[tuple[int, int]], attentions: np.ndarray,
                 scores: Any = None) -> bytes:
    """The bytes of one entry file. ``attentions``: float32 ``[len(heads), token, token]``;
    ``scores``: a JSON value kept in the header (the score cache's), or None."""
    data = np.ascontiguousarray(attentions, dtype="<f4")
    if data.ndim != 3 or data.shape[0] != len(heads) or data.shape[1] != data.shape[2]:
        raise ValueError(f"attentions must be [head, token, token] for {len(heads)} heads, "
                         f"got shape {data.shape}")
    raw = data.tobytes()
    header = {**key.fields(), "heads": [list(h) for h in heads], "tokens": int(data.shape[1]),
              "crc32": zlib.crc32(raw)}
    if scores is not None:
        header["scores"] = scores
    head_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return MAGIC + _LENGTH.pack(len(head_bytes)) + head_bytes + raw


def decode_header(blob: bytes, key: EntryKey) -> tuple[dict[str, Any], int] | None:
    """The JSON header in ``blob`` and where the data starts, if the header is whole and for
    ``key``; else None. (The data is not checked: see `decode_entry`.)"""
    start = len(MAGIC) + _LENGTH.size
    if len(blob) < start or not blob.startswith(MAGIC):
        return None
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    try:
        header = json.loads(blob[start:start + length].decode("utf-8"))
        if not isinstance(header, dict) or any(header.get(k) != v
                                               for k, v in key.fields().items()):
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    return header, start + length


def decode_entry(blob: bytes, key: EntryKey, tokens: int) -> Entry | None:
    """The entry in ``blob`` if it is whole, for ``key``, and ``tokens`` long; else None."""
    decoded = decode_header(blob, key)
    if decoded is None:
        return None
    header, start = decoded
    try:
        heads = tuple((int(l), int(h)) for l, h in header["heads"])
        if header["tokens"] != tokens:
            return None
        raw = blob[start:]
        if len(raw) != len(heads) * tokens * tokens * 4 or zlib.crc32(raw) != header["crc32"]:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    data = np.frombuffer(raw, dtype="<f4").reshape(len(heads), tokens, tokens)
    return Entry(heads, data, header.get("scores"))


class ForwardCache:
    """Entries under ``root/forward/packs``. ``enabled=False`` (``--no-cache``) reads and writes
    nothing. Entries `put` here are in memory until ``pack_bytes`` of them are waiting or
    `flush` is called; lookups in the same cache see them at once. Packs other processes write after this cache read its index are not
    seen (their keys miss, and are computed and written again)."""

    def __init__(self, root: str | os.PathLike[str], *, enabled: bool = True,
                 pack_bytes: int = PACK_BYTES) -> None:
        self.folder = Path(root) / "forward"
        self.packs = self.folder / "packs"
        self.enabled = enabled
        self.pack_bytes = pack_bytes
        self.stats = CacheStats()
        self._index: dict[str, tuple[str, int, int]] | None = None  # digest -> (pack, offset, length)
        self._pending: dict[str, bytes] = {}  # digest -> entry not yet in a pack
        self._pending_bytes = 0
        self._writable = True  # False once a pack could not be written

    def __len__(self) -> int:
        """How many keys have an entry (in packs or waiting to be written)."""
        if not self.enabled:
            return 0
        return len(self._load().keys() | self._pending.keys())

    # ---- reading -------------------------------------------------------------------------------
    def _load(self) -> dict[str, tuple[str, int, int]]:
        """The index of every pack on disk (read once; compacted first if need be)."""
        if self._index is None:
            self._index, sizes = self._read_packs()
            live = sum(length for _, _, length in self._index.values())
            dead = sum(sizes.values()) - live
            fewest = live // self.pack_bytes + 1  # packs the live entries fill
            if (len(sizes) > MAX_PACKS and len(sizes) > 2 * fewest) or (
                    dead > live and dead > self.pack_bytes):
                try:
                    self._compact(sorted(sizes))
                except OSError:  # e.g. a full disk: the packs stay as they are, all readable
                    pass
        return self._index

    def _read_packs(self) -> tuple[dict[str, tuple[str, int, int]], dict[str, int]]:
        """(index, bytes of entries per pack) over the packs on disk, newest pack winning."""
        index: dict[str, tuple[str, int, int]] = {}
        sizes: dict[str, int] = {}
        try:
            names = sorted(p.name for p in os.scandir(self.packs) if p.name.endswith(PACK_SUFFIX)
                           and not p.name.startswith("."))
        except OSError:  # no packs yet
            return index, sizes
        for name in names:
            try:
                entries = self._pack_index(name)
            except OSError:  # gone (another process compacted it) or unreadable now: skip it
                continue
            if entries is None:
                self.stats.invalid += 1
                self._drop_pack(name)
                continue
            sizes[name] = sum(length for _, _, length in entries)
            for digest, offset, length in entries:
                index[digest] = (name, offset, length)
        return index, sizes

    def _pack_index(self, name: str) -> list[tuple[str, int, int]] | None:
        """A pack's ``(digest, offset, length)`` entries, or None if it is damaged or foreign;
        OSError if it cannot be read."""
        with open(self.packs / name, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < len(PACK_MAGIC) + _FOOTER.size:
                return None
            handle.seek(size - _FOOTER.size)
            footer = handle.read(_FOOTER.size)
            if len(footer) != _FOOTER.size:
                return None
            offset, length, magic = _FOOTER.unpack(footer)
            if magic != PACK_MAGIC or offset + length != size - _FOOTER.size:
                return None
            handle.seek(0)
            if handle.read(len(PACK_MAGIC)) != PACK_MAGIC:
                return None
            handle.seek(offset)
            raw = handle.read(length)
        try:
            entries = json.loads(raw.decode("utf-8"))["entries"]
            parsed = [(str(d), int(o), int(n)) for d, o, n in entries]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        if any(o < len(PACK_MAGIC) or n <= 0 or o + n > offset for _, o, n in parsed):
            return None
        return parsed

    def _drop_pack(self, name: str) -> None:
        """Delete a damaged or compacted pack."""
        try:
            os.unlink(self.packs / name)
        except OSError:
            pass

    def _bytes(self, key: EntryKey) -> bytes | None:
        """The entry's bytes, or None when there is no entry (or its pack went away)."""
        return self._bytes_of(key.digest)

    def _bytes_of(self, digest: str) -> bytes | None:
        pending = self._pending.get(digest)
        if pending is not None:
            return pending
        where = self._load().get(digest)
        if where is None:
            return None
        name, offset, length = where
        try:
            with open(self.packs / name, "rb") as handle:
                handle.seek(offset)
                blob = handle.read(length)
        except OSError:  # deleted by another process's compaction: a miss
            self._index.pop(digest, None)  # type: ignore[union-attr]
            return None
        return blob

    def _read(self, key: EntryKey, tokens: int, *, count: bool = True) -> Entry | None:
        blob = self._bytes(key)
        if blob is None:
            return None
        entry = decode_entry(blob, key, tokens)
        if entry is None and count:
            self.stats.invalid += 1
        return entry

    def get(self, key: EntryKey, heads: Sequence[tuple[int, int]],
            tokens: int) -> np.ndarray | None:
        """float32 ``[len(heads), tokens, tokens]`` if the entry holds every head, else None."""
        if not self.enabled:
            return None
        entry = self._read(key, tokens)
        if entry is None or not set(heads) <= set(entry.heads):
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        where = {h: i for i, h in enumerate(entry.heads)}
        return entry.attentions[[where[h] for h in heads]]

    def header(self, key: EntryKey) -> tuple[bool, dict[str, Any] | None]:
        """``(there is an entry, its header if whole and for key)``, without checking the data:
        what the score cache reads."""
        blob = self._bytes(key) if self.enabled else None
        if blob is None:
            return False, None
        decoded = decode_header(blob, key)
        return True, None if decoded is None else decoded[0]

    # ---- writing -------------------------------------------------------------------------------
    def put(self, key: EntryKey, heads: Sequence[tuple[int, int]], attentions: np.ndarray,
            scores: ScoresUpdate | None = None) -> None:
        """Store ``attentions`` [head, q, k] of ``heads``, keeping other heads a valid entry has;
        ``scores(old scores)`` gives the entry's new scores (by default the old ones are kept)."""
        if not self.enabled:
            return
        heads = [tuple(h) for h in heads]
        old = self._read(key, attentions.shape[-1], count=False)
        if old is not None:
            kept = [i for i, h in enumerate(old.heads) if h not in heads]
            heads = [old.heads[i] for i in kept] + heads
            attentions = np.concatenate([old.attentions[kept], attentions])
        old_scores = None if old is None else old.scores
        new_scores = old_scores if scores is None else scores(old_scores)
        blob = encode_entry(key, heads, attentions, new_scores)
        digest = key.digest
        self._pending_bytes += len(blob) - len(self._pending.get(digest, b""))
        self._pending[digest] = blob
        self.stats.writes += 1
        if self._pending_bytes >= self.pack_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the entries waiting in memory as one pack. If that fails (a full disk, a folder
        that cannot be written) a `CacheWarning` says so once and the cache stops writing: the
        run goes on, uncached."""
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        if not self._writable:
            return
        try:
            placed = self._write_pack(list(pending.items()))
        except OSError as error:
            self._writable = False
            warnings.warn(CacheWarning(
                f"cannot write the forward cache in {self.packs} ({error.strerror or error}); "
                f"this run goes on without caching its results. Free some space, fix the "
                f"folder, or pass --cache-dir DIR (or --no-cache)."), stacklevel=2)
            return
        self._load().update(placed)

    def _write_pack(self, entries: list[tuple[str, bytes]]) -> dict[str, tuple[str, int, int]]:
        """Write ``(digest, entry bytes)`` as a new pack (atomically); return where each entry
        went: digest -> (pack, offset, length)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_pack_numbers)}{PACK_SUFFIX}"
        placed: dict[str, tuple[str, int, int]] = {}
        offset = len(PACK_MAGIC)
        for digest, blob in entries:
            placed[digest] = (name, offset, len(blob))
            offset += len(blob)
        listed = [[digest, at, length] for digest, (_, at, length) in placed.items()]
        index = json.dumps({"entries": listed}, separators=(",", ":")).encode("utf-8")
        write_atomic(self.packs / name, b"".join(
            [PACK_MAGIC, *(blob for _, blob in entries), index,
             _FOOTER.pack(offset, len(index), PACK_MAGIC)]))
        return placed

    def _compact(self, names: list[str]) -> None:
        """Rewrite the live entries of ``names`` into new packs, then delete those packs.

        Packs written meanwhile by other processes are not touched; a process still reading a
        deleted pack sees misses."""
        assert self._index is not None
        old = set(names)
        live = [digest for digest, (name, _, _) in self._index.items() if name in old]
        moved: dict[str, tuple[str, int, int]] = {}
        chunk: list[tuple[str, bytes]] = []
        size = 0
        for digest in live:
            blob = self._bytes_of(digest)
            if blob is not None:
                chunk.append((digest, blob))
                size += len(blob)
            if chunk and (size >= self.pack_bytes or digest == live[-1]):
                moved.update(self._write_pack(chunk))
                chunk, size = [], 0
        for digest in live:
            del self._index[digest]
        self._index.update(moved)
        for name in names:
            self._drop_pack(name)


def head_pairs(heads: Sequence[Head]) -> list[tuple[int, int]]:
    """The 0-based ``(layer, head)`` pairs an entry stores for ``heads``, sorted, each once."""
    return sorted({h.index for h in heads})


def stored_attentions(run: Run, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """float32 ``[pair, query, key]``: a copy of the run's attention of the heads in ``pairs``."""
    layers, indices = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    return run.attentions[layers, indices]


def cached_run(encoding: Any, stored: np.ndarray, heads: Sequence[tuple[int, int]], *,
               num_layers: int, num_heads: int) -> Run:
    """A `Run` from a tokenizer encoding and the stored ``[head, q, k]`` of ``heads`` (0-based):
    attentions ``[num_layers, num_heads, q, k]``, NaN where no head was stored."""
    n = len(encoding)
    attentions = np.full((num_layers, num_heads, n, n), np.nan, dtype=np.float32)
    layers, indices = zip(*heads) if heads else ((), ())
    attentions[list(layers), list(indices)] = stored
    return Run(text=encoding.text, tokens=encoding.tokens, input_ids=encoding.input_ids,
               word_ids=encoding.word_ids, offsets=encoding.offsets, attentions=attentions)


def forward_runs(texts: Sequence[str], heads: Sequence[Head], *, fingerprint: str,
                 encode: Callable[[Sequence[str]], Sequence[Any]], num_heads: int,
                 load_model: Callable[[], Any], cache: ForwardCache,
                 write: bool = True) -> Iterator[tuple[int, Run]]:
    """``(index into texts, Run)`` for every text: cached runs first, then the model (loaded only
    if some text misses) over the rest, whose needed heads are written to the cache (unless
    ``write=False``: `headprobe check` writes each entry itself, once, with its scores); what
    it wrote is flushed to a pack when the iteration ends.

    Runs cover layers 1..deepest head. ``encode`` is the model's tokenizer (``Tokenizer.encode``).
    """
    if not texts:
        return
    pairs = head_pairs(heads)
    depth = max(layer for layer, _ in pairs) + 1
    missed: list[int] = []
    encodings = encode(texts)
    if cache.enabled:
        for index, encoding in enumerate(encodings):
            stored = cache.get(EntryKey(fingerprint, encoding.text), pairs, len(encoding))
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
                                             encodings=[encodings[i] for i in missed]):
            if write:
                cache.put(EntryKey(fingerprint, run.text), pairs, stored_attentions(run, pairs))
            yield missed[position], run
    finally:
        if write:
            cache.flush()


# ---- fingerprints without reading the weights twice ----------------------------------------------

def model_fingerprint(folder: str | os.PathLike[str], *, memo_root: str | os.PathLike[str] | None
                      = None) -> str:
    """The model's ``sha256:...`` fingerprint (as `Model.fingerprint`) from its files alone.

    With ``memo_root`` the digest is remembered in ``memo_root/forward/fingerprints/`` under the
    files' (path, size, modification time), so a re-run hashes nothing; any change to a weight
    file or config.json (size or mtime) hashes again.
    """
    from headprobe.model.checkpoint import find_weights, fingerprint

    folder = Path(folder)
    weights = find_weights(folder)
    config = folder / "config.json"
    if memo_root is None:
        return fingerprint(weights, config)
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
             for p in (*weights.files, config)]
    name = hashlib.sha256(json.dumps(stamp).encode("utf-8")).hexdigest()
    memo = Path(memo_root) / "forward" / "fingerprints" / name
    try:
        remembered = memo.read_text(encoding="utf-8").strip()
        if remembered.startswith("sha256:") and len(remembered) == 71:
            return remembered
    except OSError:
        pass
    digest = fingerprint(weights, config)
    try:
        write_atomic(memo, digest.encode("utf-8"))
    except OSError:  # only a memo: the next run hashes again
        pass
    return digest


class BackgroundFingerprint:
    """`model_fingerprint` computed in a daemon thread, started when collection first meets the
    model: hashing and reading release the GIL, so a cold run hashes the weights (~0.15 s for
    MiniLM, ~0.7 s for bert-base) while collection goes on. `result` waits for it and returns
    the fingerprint or raises what computing it raised."""

    def __init__(self, folder: str | os.PathLike[str], *,
                 memo_root: str | os.PathLike[str] | None = None) -> None:
        self._done = threading.Event()
        self._value: str | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._work, args=(folder, memo_root), daemon=True,
                         name="headprobe-fingerprint").start()

    def _work(self, folder: str | os.PathLike[str],
              memo_root: str | os.PathLike[str] | None) -> None:
        try:
            self._value = model_fingerprint(folder, memo_root=memo_root)
        except BaseException as error:  # noqa: BLE001 - handed to the caller of result()
            self._error = error
        finally:
            self._done.set()

    def result(self) -> str:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


@dataclass
class DeferredModel:
    """A model whose weights load on first use; ``fingerprint`` and ``tokenize`` need no weights.

    Any other attribute (``run``, ``iter_runs``, ``name`` ...) loads the model through ``load``.
    """

    load: Callable[[], Any]
    folder: Path
    tokenizer: Any
    num_heads: int
    memo_root: Path | None = None
    background: BackgroundFingerprint | None = None  # a fingerprint already being computed
    _model: Any = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = (self.background.result() if self.background is not None
                                 else model_fingerprint(self.folder, memo_root=self.memo_root))
        return self._fingerprint

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        return self.tokenizer.encode(texts)

    def model(self) -> Any:
        if self._model is None:
            self._model = self.load()
        return self._model

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.model(), name)
