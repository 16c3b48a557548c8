"""The forward cache: the attention of the heads that claims need, per (model, sentence), in SQLite.

An unchanged re-run of ``headprobe check`` reads every run from here and never loads the weights
or JAX: the model's fingerprint comes from its files (`headprobe.cache.fingerprints`) and the
tokens from its tokenizer, which collection has loaded anyway.

What is stored. One entry per `EntryKey` (model fingerprint, sentence text, digest of the
sentence's tokenization, dtype, format version), holding the exact float32 attention matrices
``[query, key]`` of a set of heads, the list of those heads and, from `headprobe check`, the
claims' numbers for the sentence (``scores``: `headprobe.engine.scores`). A lookup asks for a set
of heads and hits only when the entry holds all of them; a write after a miss keeps the heads the
entry already had (claim A, then claim B, then both: every head cached). Values are the forward
pass's own bytes: a cached result equals the fresh run that wrote it bit for bit.

Layout. ``CACHE/forward/entries-v2.sqlite3`` (WAL mode; many processes may read and write it at
once), one table ``entries(key, header, data, seal)``: ``key`` is the SHA-256 of the key's
fields, ``header`` a JSON object (the key's fields, the heads, the token count, the SHA-256 of
``data``, the scores), ``data`` the raw little-endian float32 ``[stored head, query, key]`` and
``seal`` the SHA-256 of the key and the header; and a table ``claims`` of the same columns
holding a whole claim's numbers per row (`headprobe.engine.scores`), sealed the same way and
read by `claim_data`. SQLite does not checksum its pages, so every
read is verified: the seal before the header is used (the scores), the data's digest before the
attention is used, the key's fields, the heads and the token count against what was asked. Reads
are bounded by the size the caller expects. An entry that fails is ignored (a miss), reported
once as a `CacheWarning`, recomputed and written again. A database SQLite itself finds damaged
("malformed", "not a database"), or a cache path that is not a regular file, is deleted and
started afresh, also with one warning. `put` keeps entries in memory; `flush` (also called once
`PENDING_BYTES` wait) writes them in one transaction. A cache that cannot be written (a full
disk, a read-only folder) warns once and the run goes on without it. The database and its
companions are the owner's only (0600, in a 0700 folder when headprobe creates it): they hold
the sentences.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.cachefiles import (
    PROBLEMS,
    Problems,
    private_file,
    private_folder,
    remove_special,
)
from headprobe.errors import CacheWarning

FORMAT_VERSION = 2  # 1: pack files (CACHE/forward/packs/, no longer read)
DTYPE = "float32"
DATABASE = f"entries-v{FORMAT_VERSION}.sqlite3"
PENDING_BYTES = 16 << 20  # entries waiting in memory are written at this size
MAX_HEADER_BYTES = 16 << 20
DEFAULT_MAX_HEADS = 1024  # the most heads an entry may store when the caller does not say
_KIND = "forward cache"
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_TABLES = ("entries", "claims")
_SCHEMA = tuple(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, header BLOB NOT NULL, "
                f"data BLOB NOT NULL, seal BLOB NOT NULL)" for table in _TABLES)


@dataclass(frozen=True)
class EntryKey:
    """What an entry is for: the model, the sentence and its tokenization (``tokens``: the
    digest of its tokens, ids, word ids and offsets, `encoding_digest`)."""

    fingerprint: str
    text: str
    tokens: str = ""
    dtype: str = DTYPE
    version: int = FORMAT_VERSION

    def fields(self) -> dict[str, Any]:
        return {"version": self.version, "dtype": self.dtype, "fingerprint": self.fingerprint,
                "text": self.text, "tokens": self.tokens}

    @property
    def digest(self) -> str:
        return _key_digest(self)


@functools.lru_cache(maxsize=1 << 16)
def _key_digest(key: EntryKey) -> str:
    """SHA-256 of a key's fields (a check asks for each sentence's several times)."""
    payload = json.dumps(key.fields(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def encoding_digest(encoding: Any) -> str:
    """SHA-256 of a tokenizer encoding's tokens, ids, word ids and offsets (what a run is
    built on besides the weights): the tokens as JSON, then the counts and the raw int64
    arrays (word id -1 for none)."""
    ids = np.asarray(encoding.input_ids, dtype="<i8").ravel()
    words = np.array([-1 if w is None else w for w in encoding.word_ids], dtype="<i8")
    offsets = np.asarray(encoding.offsets, dtype="<i8").reshape(-1)
    digest = hashlib.sha256(json.dumps(list(encoding.tokens), separators=(",", ":"),
                                       ensure_ascii=False).encode("utf-8", "surrogatepass"))
    digest.update(np.array([ids.size, words.size, offsets.size], dtype="<i8").tobytes())
    for part in (ids, words, offsets):
        digest.update(part.tobytes())
    return digest.hexdigest()


@dataclass
class CacheStats:
    """Counts for one `ForwardCache` (tests and the benchmark read them)."""

    hits: int = 0
    misses: int = 0
    invalid: int = 0
    writes: int = 0


@dataclass(frozen=True)
class Entry:
    """A verified entry: 0-based ``(layer, head)`` pairs, float32 ``[stored head, q, k]``, and
    the score cache's numbers for the sentence, or None."""

    heads: tuple[tuple[int, int], ...]
    attentions: np.ndarray
    scores: Any = None


#: What `ForwardCache.put` does with the entry's scores: given the old ones (None if none), the
#: new ones.
ScoresUpdate = Callable[[Any], Any]


def encode_entry(key: EntryKey, heads: Sequence[tuple[int, int]], attentions: np.ndarray,
                 scores: Any = None) -> tuple[bytes, bytes]:
    """``(header, data)`` of one entry. ``attentions``: float32 ``[len(heads), token, token]``;
    ``scores``: a JSON value kept in the header (the score cache's), or None."""
    data = np.ascontiguousarray(attentions, dtype="<f4")
    if data.ndim != 3 or data.shape[0] != len(heads) or data.shape[1] != data.shape[2]:
        raise ValueError(f"attentions must be [head, token, token] for {len(heads)} heads, "
                         f"got shape {data.shape}")
    raw = data.tobytes()
    header = {**key.fields(), "heads": [list(h) for h in heads], "tokens_count": int(data.shape[1]),
              "data_sha256": hashlib.sha256(raw).hexdigest()}
    if scores is not None:
        header["scores"] = scores
    return json.dumps(header, ensure_ascii=False).encode("utf-8"), raw


def seal(key: EntryKey, header: bytes) -> bytes:
    """The SHA-256 that binds a header to its key."""
    return hashlib.sha256(key.digest.encode("ascii") + b"\0" + header).digest()


def decode_header(header: bytes, stored_seal: bytes | None,
                  key: EntryKey) -> dict[str, Any] | None:
    """The header's JSON if it is sealed for ``key`` and names ``key``'s fields; else None."""
    if not isinstance(stored_seal, bytes) or seal(key, header) != stored_seal:
        return None
    try:
        decoded = json.loads(header.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(decoded, dict) or any(decoded.get(k) != v for k, v in key.fields().items()):
        return None
    return decoded


def decode_entry(header: dict[str, Any], data: bytes, tokens: int) -> Entry | None:
    """The entry of a verified ``header`` and its ``data`` if the data is whole (its digest)
    and ``tokens`` long; else None."""
    try:
        heads = tuple((int(l), int(h)) for l, h in header["heads"])
        if header["tokens_count"] != tokens or len(heads) != len(set(heads)):
            return None
        if len(data) != len(heads) * tokens * tokens * 4 or \
                hashlib.sha256(data).hexdigest() != header["data_sha256"]:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    attentions = np.frombuffer(data, dtype="<f4").reshape(len(heads), tokens, tokens)
    return Entry(heads, attentions, header.get("scores"))


class _Database:
    """The SQLite file of a forward cache: opened on first use, started afresh (once per run)
    when SQLite finds it damaged, and given up on, with one warning, when it cannot be opened
    or written."""

    def __init__(self, folder: Path, problems: Problems) -> None:
        self.folder = folder
        self.path = folder / DATABASE
        self.problems = problems
        self.readable = True  # False once the database could not be opened at all
        self.writable = True  # False once a write failed
        self._db: sqlite3.Connection | None = None
        self._recovered = False  # a damaged database was started afresh once this run

    def connect(self) -> sqlite3.Connection | None:
        if self._db is not None or not self.readable:
            return self._db
        try:
            db = self._open()
        except sqlite3.DatabaseError as error:
            if _is_damage(error) and self._recover(error):
                return self.connect()
            self._cannot_use(error)
            return None
        except OSError as error:
            self._cannot_use(error)
            return None
        self._db = db
        return db

    def _open(self) -> sqlite3.Connection:
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(20, "not a folder", str(self.folder))
        private_folder(self.folder)
        for name in (DATABASE, DATABASE + "-wal", DATABASE + "-shm"):
            if remove_special(self.folder / name):
                self.problems.damaged(_KIND, self.folder / name, "not a regular file")
        if self.path.is_dir() and not self.path.is_symlink():
            raise OSError(f"{self.path} is a folder")
        # Owner-only: SQLite gives its -wal and -shm files the database file's permissions.
        private_file(self.path)
        for name in (DATABASE + "-wal", DATABASE + "-shm"):
            private_file(self.folder / name, create=False)
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for schema in _SCHEMA:
                db.execute(schema)
        except BaseException:
            db.close()
            raise
        return db

    def query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """Rows of a read, or None when the database cannot be read (damage is recovered)."""
        db = self.connect()
        if db is None:
            return None
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as error:
            if _is_damage(error) and self._recover(error):
                return self.query(sql, args)
            return None

    def write(self, rows: list[tuple[str, bytes, bytes, bytes]],
              claims: Sequence[tuple[str, bytes, bytes, bytes]] = ()) -> None:
        """Insert or replace ``rows`` (entries) and ``claims`` in one transaction; a failure
        warns once and stops writing."""
        if self._db is not None and not self.path.exists():  # the folder was deleted meanwhile
            self.close()
        db = self.connect() if self.writable else None
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", rows)
                db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", claims)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as error:
            if _is_damage(error) and self._recover(error):
                self.write(rows, claims)
                return
            self._cannot_write(error)

    def _recover(self, error: sqlite3.DatabaseError) -> bool:
        """Delete a database SQLite found damaged and start afresh (once per run)."""
        self.problems.damaged(_KIND, self.path, f"SQLite: {error}")
        self.close()
        if self._recovered:
            self.readable = False
            return False
        self._recovered = True
        for name in (DATABASE, DATABASE + "-wal", DATABASE + "-shm"):
            try:
                os.unlink(self.folder / name)
            except OSError:
                pass
        return True

    def _cannot_use(self, error: BaseException) -> None:
        self.readable = False
        self._cannot_write(error)

    def _cannot_write(self, error: BaseException) -> None:
        if not self.writable:
            return
        self.writable = False
        reason = getattr(error, "strerror", None) or error
        warnings.warn(CacheWarning(
            f"cannot write the forward cache in {self.folder} ({reason}); this run goes on "
            f"without caching its results. Free some space, fix the folder, or pass "
            f"--cache-dir DIR (or --no-cache)."), stacklevel=5)

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


class ForwardCache:
    """Entries in ``root/forward/entries-v2.sqlite3``. ``enabled=False`` (``--no-cache``)
    reads and writes nothing. Entries `put` here wait in memory until `PENDING_BYTES` of them
    are waiting or `flush` is called; lookups see them at once. Entries other processes
    commit are seen by the next lookup."""

    def __init__(self, root: str | os.PathLike[str], *, enabled: bool = True,
                 pending_bytes: int = PENDING_BYTES, problems: Problems = PROBLEMS) -> None:
        self.folder = Path(root) / "forward"
        self.enabled = enabled
        self.pending_bytes = pending_bytes
        self.problems = problems
        self.stats = CacheStats()
        self._database = _Database(self.folder, problems)
        self._pending: dict[str, tuple[bytes, bytes, bytes]] = {}  # key digest -> row
        self._pending_claims: dict[str, tuple[bytes, bytes, bytes]] = {}  # claim key -> row
        self._pending_size = 0

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._database.path

    def __len__(self) -> int:
        """How many keys have an entry (in the database or waiting to be written)."""
        if not self.enabled:
            return 0
        stored = self._database.query("SELECT key FROM entries", ()) or []
        return len({row[0] for row in stored} | self._pending.keys())

    def close(self) -> None:
        """Close the database (what was not flushed stays in memory)."""
        self._database.close()

    # ---- reading -------------------------------------------------------------------------------
    def _row(self, key: EntryKey, max_data: int) -> tuple[bool, bytes | None, bytes | None,
                                                          bytes | None]:
        """``(exists, header, data, seal)``; header or data is None when larger than the
        bounds (``max_data`` < 0: the data is not read)."""
        digest = key.digest
        pending = self._pending.get(digest)
        if pending is not None:
            return True, *pending
        rows = self._database.query(
            "SELECT CASE WHEN length(header) <= ?2 THEN header END, "
            "CASE WHEN ?3 >= 0 AND length(data) <= ?3 THEN data END, seal "
            "FROM entries WHERE key = ?1", (digest, MAX_HEADER_BYTES, max_data))
        if not rows:
            return False, None, None, None
        header, data, stored_seal = rows[0]
        return True, header, data, stored_seal

    def _invalid(self, why: str) -> None:
        self.stats.invalid += 1
        self.problems.damaged(_KIND, self.path, why)

    def read(self, key: EntryKey, tokens: int, *,
             max_heads: int = DEFAULT_MAX_HEADS) -> Entry | None:
        """The verified entry of ``key`` if there is one, ``tokens`` long; a damaged one counts
        in ``stats.invalid`` and is reported once."""
        if not self.enabled:
            return None
        exists, header, data, stored_seal = self._row(key, max_heads * tokens * tokens * 4)
        if not exists:
            return None
        if header is None or data is None:
            self._invalid("an entry larger than expected")
            return None
        decoded = decode_header(bytes(header), stored_seal, key)
        entry = None if decoded is None else decode_entry(decoded, bytes(data), tokens)
        if entry is None:
            self._invalid("an entry whose digest or contents do not match its key")
        return entry

    def get(self, key: EntryKey, heads: Sequence[tuple[int, int]], tokens: int, *,
            max_heads: int = DEFAULT_MAX_HEADS) -> np.ndarray | None:
        """float32 ``[len(heads), tokens, tokens]`` if the entry holds every head, else None."""
        if not self.enabled:
            return None
        entry = self.read(key, tokens, max_heads=max_heads)
        if entry is None or not set(heads) <= set(entry.heads):
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        where = {h: i for i, h in enumerate(entry.heads)}
        return entry.attentions[[where[h] for h in heads]]

    def header(self, key: EntryKey) -> dict[str, Any] | None:
        """The verified header of ``key``'s entry (the score cache reads its ``scores``), or
        None when there is none or it is damaged (then counted and reported). The attention is
        not read."""
        if not self.enabled:
            return None
        exists, header, _, stored_seal = self._row(key, -1)
        if not exists:
            return None
        decoded = None if header is None else decode_header(bytes(header), stored_seal, key)
        if decoded is None:
            self._invalid("an entry whose digest or contents do not match its key")
        return decoded

    # ---- writing -------------------------------------------------------------------------------
    def put(self, key: EntryKey, heads: Sequence[tuple[int, int]], attentions: np.ndarray,
            scores: ScoresUpdate | None = None, *, max_heads: int = DEFAULT_MAX_HEADS) -> None:
        """Store ``attentions`` [head, q, k] of ``heads``, keeping other heads a valid entry has;
        ``scores(old scores)`` gives the entry's new scores (by default the old ones are kept)."""
        if not self.enabled or not self._database.writable:
            return
        pairs = [(int(layer), int(head)) for layer, head in heads]
        old = self.read(key, attentions.shape[-1], max_heads=max_heads)
        if old is not None:
            kept = [i for i, h in enumerate(old.heads) if h not in pairs]
            pairs = [old.heads[i] for i in kept] + pairs
            attentions = np.concatenate([old.attentions[kept], attentions])
        old_scores = None if old is None else old.scores
        new_scores = old_scores if scores is None else scores(old_scores)
        header, data = encode_entry(key, pairs, attentions, new_scores)
        digest = key.digest
        previous = self._pending.get(digest)
        self._pending_size += len(header) + len(data) - (
            0 if previous is None else len(previous[0]) + len(previous[1]))
        self._pending[digest] = (header, data, seal(key, header))
        self.stats.writes += 1
        if self._pending_size >= self.pending_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the entries waiting in memory in one transaction. If that fails (a full disk,
        a folder that cannot be written) a `CacheWarning` says so once and the cache stops
        writing: the run goes on, uncached."""
        if not self._pending and not self._pending_claims:
            return
        pending, self._pending, self._pending_size = self._pending, {}, 0
        claims, self._pending_claims = self._pending_claims, {}
        self._database.write([(digest, header, data, sealed)
                              for digest, (header, data, sealed) in pending.items()],
                             [(key, header, data, sealed)
                              for key, (header, data, sealed) in claims.items()])

    # ---- whole claims --------------------------------------------------------------------------
    def claim_data(self, key: str, fields: dict[str, Any], max_bytes: int) -> bytes | None:
        """The data stored under the claim key ``key`` (a SHA-256 hex digest) if its header is
        sealed for ``key``, names exactly ``fields`` and the data is whole and at most
        ``max_bytes``; else None (damage counted and reported once, like an entry's)."""
        if not self.enabled:
            return None
        pending = self._pending_claims.get(key)
        if pending is not None:
            header, data, stored_seal = pending
        else:
            rows = self._database.query(
                "SELECT CASE WHEN length(header) <= ?2 THEN header END, "
                "CASE WHEN length(data) <= ?3 THEN data END, seal FROM claims WHERE key = ?1",
                (key, MAX_HEADER_BYTES, max_bytes))
            if not rows:
                return None
            header, data, stored_seal = rows[0]
        decoded = None
        if header is not None and data is not None and stored_seal == _claim_seal(key, header):
            try:
                decoded = json.loads(bytes(header).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                decoded = None
        if (not isinstance(decoded, dict) or decoded.get("fields") != fields
                or decoded.get("data_sha256") != hashlib.sha256(bytes(data)).hexdigest()):
            self._invalid("a claim's numbers whose digest or contents do not match its key")
            return None
        return bytes(data)

    def put_claim_data(self, key: str, fields: dict[str, Any], data: bytes) -> None:
        """Keep ``data`` under the claim key ``key`` with ``fields`` (written by `flush`)."""
        if not self.enabled or not self._database.writable:
            return
        header = json.dumps({"fields": fields, "data_sha256": hashlib.sha256(data).hexdigest()},
                            ensure_ascii=True, sort_keys=True).encode("ascii")
        self._pending_claims[key] = (header, data, _claim_seal(key, header))


def _claim_seal(key: str, header: bytes) -> bytes:
    """The SHA-256 that binds a claim row's header to its key."""
    return hashlib.sha256(b"claim\0" + key.encode("ascii") + b"\0" + bytes(header)).digest()


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT
    text = str(error).lower()
    return "malformed" in text or "not a database" in text
