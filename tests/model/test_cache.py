"""The forward cache (headprobe/cache/): hits, misses, merges, damaged and foreign entries and
databases, special files, writes that fail, --no-cache, several processes, fingerprints from
files, and `headprobe check` re-runs that skip the model.

A damaged cache may cost time, never correctness: every lookup after any damage either misses
or returns exactly the bytes that were written, and the damage is reported once."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import headprobe
from headprobe.cache.cached_runs import forward_runs
from headprobe.cache.entries import (
    CacheStats,
    EntryKey,
    ForwardCache,
    decode_entry,
    decode_header,
    encode_entry,
    seal,
)
from headprobe.cache.fingerprints import fingerprint_result, model_fingerprint, start_fingerprint
from headprobe.cachefiles import Problems
from headprobe.engine.models import ModelHandle
from headprobe.errors import CacheWarning, UsageError
from headprobe.heads import Head
from headprobe.model.checkpoint import find_weights, fingerprint
from headprobe.model.info import inspect_model
from headprobe.model.loaded import Model

# Distinct sizes: 3 stored heads, 7 tokens.
HEADS = [(0, 2), (1, 0), (1, 1)]
TOKENS = 7


def _attentions(seed: int = 0, heads: int = 3, tokens: int = TOKENS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((heads, tokens, tokens), dtype=np.float32)


def _cache(root, **options) -> ForwardCache:
    """A cache with its own warn-once state (each test sees its own first warning)."""
    return ForwardCache(root, problems=Problems(), **options)


@pytest.fixture
def store(tmp_path) -> ForwardCache:
    return _cache(tmp_path / "cache")


KEY = EntryKey("sha256:" + "ab" * 32, "The cat sat on the mat.", "tokens-digest")


def reopened(store: ForwardCache) -> ForwardCache:
    """What the next process sees: ``store`` flushed, and a new cache over the same folder."""
    store.flush()
    store.close()
    return _cache(store.folder.parent)


def _rows(store: ForwardCache) -> int:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT count(*) FROM entries").fetchone()[0]


def test_an_entry_round_trips_bit_for_bit_and_a_lookup_picks_heads_in_the_order_asked(store):
    data = _attentions()
    store.put(KEY, HEADS, data)
    got = store.get(KEY, [(1, 1), (0, 2)], TOKENS)  # from memory, before anything is written
    assert got.dtype == np.float32 and got.shape == (2, TOKENS, TOKENS)
    assert got.tobytes() == data[[2, 0]].tobytes()
    assert store.stats == CacheStats(hits=1, misses=0, invalid=0, writes=1)
    again = reopened(store)
    assert again.get(KEY, [(1, 1), (0, 2)], TOKENS).tobytes() == data[[2, 0]].tobytes()
    assert again.stats == CacheStats(hits=1, misses=0, invalid=0, writes=0)


def test_entries_wait_in_memory_and_are_written_in_one_transaction(store):
    others = [EntryKey(KEY.fingerprint, f"Sentence number {i}.") for i in range(5)]
    for i, key in enumerate(others):
        store.put(key, HEADS, _attentions(i))
    assert _rows(store) == 0 and len(store) == 5
    store.flush()
    assert store.path.name == "entries-v2.sqlite3" and _rows(store) == 5
    again = reopened(store)
    assert len(again) == 5
    for i, key in enumerate(others):
        assert again.get(key, HEADS, TOKENS).tobytes() == _attentions(i).tobytes()


def test_entries_are_written_once_pending_bytes_of_them_wait(tmp_path):
    keys = [EntryKey(KEY.fingerprint, f"Sentence {i}.") for i in range(5)]
    header, data = encode_entry(keys[0], HEADS, _attentions())
    store = _cache(tmp_path, pending_bytes=2 * (len(header) + len(data)))
    for key in keys[:2]:
        store.put(key, HEADS, _attentions())
    assert _rows(store) == 2  # two entries reached pending_bytes
    for key in keys[2:]:
        store.put(key, HEADS, _attentions())
    assert _rows(store) == 4
    store.flush()  # the fifth entry
    assert _rows(store) == 5 and len(_cache(tmp_path)) == 5


def test_a_head_not_stored_is_a_miss_and_a_later_write_keeps_the_old_heads(store):
    first = _attentions(0)
    store.put(KEY, HEADS, first)
    store = reopened(store)
    assert store.get(KEY, [(0, 2), (4, 5)], TOKENS) is None
    extra = _attentions(1, heads=1)
    store.put(KEY, [(4, 5)], extra)
    both = store.get(KEY, [(4, 5), *HEADS], TOKENS)
    assert both.tobytes() == np.concatenate([extra, first]).tobytes()
    assert store.stats.misses == 1 and store.stats.hits == 1 and store.stats.writes == 1
    again = reopened(store)
    assert _rows(again) == 1
    assert again.get(KEY, [(4, 5), *HEADS], TOKENS).tobytes() == both.tobytes()


@pytest.mark.parametrize("other", [
    EntryKey(KEY.fingerprint, KEY.text + " ", KEY.tokens),    # another sentence
    EntryKey("sha256:" + "cd" * 32, KEY.text, KEY.tokens),    # another model
    EntryKey(KEY.fingerprint, KEY.text, "other-tokens"),      # another tokenization
    EntryKey(KEY.fingerprint, KEY.text, KEY.tokens, version=KEY.version + 1),
], ids=["text", "model", "tokens", "version"])
def test_other_keys_miss(store, other):
    store.put(KEY, HEADS, _attentions())
    assert store.get(other, HEADS, TOKENS) is None
    assert reopened(store).get(other, HEADS, TOKENS) is None
    assert store.stats.invalid == 0


def _tamper(store: ForwardCache, sql: str, *args) -> None:
    """Change the stored row of KEY behind the cache's back."""
    store.flush()
    store.close()
    with sqlite3.connect(store.path) as db:
        db.execute(sql, args)


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1:]


DAMAGES = {
    "a bit of the data": ("UPDATE entries SET data = ? WHERE key = ?",
                          lambda h, d, s: _flip(d, len(d) // 2)),
    "a bit of the header": ("UPDATE entries SET header = ? WHERE key = ?",
                            lambda h, d, s: _flip(h, len(h) - 3)),
    "a bit of the seal": ("UPDATE entries SET seal = ? WHERE key = ?",
                          lambda h, d, s: _flip(s, 0)),
    "truncated data": ("UPDATE entries SET data = ? WHERE key = ?", lambda h, d, s: d[:-4]),
    "garbage header": ("UPDATE entries SET header = ? WHERE key = ?",
                       lambda h, d, s: b"{not json"),
    "data of another sentence": ("UPDATE entries SET data = ? WHERE key = ?",
                                 lambda h, d, s: _attentions(5).tobytes()),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_a_miss_reported_once_then_rewritten(store, damage):
    sql, change = DAMAGES[damage]
    data = _attentions()
    store.put(KEY, HEADS, data)
    store.flush()
    with sqlite3.connect(store.path) as db:
        header, raw, sealed = db.execute("SELECT header, data, seal FROM entries").fetchone()
    _tamper(store, sql, change(header, raw, sealed), KEY.digest)
    store = _cache(store.folder.parent)
    with pytest.warns(CacheWarning, match="forward cache .* held damaged data"):
        assert store.get(KEY, HEADS, TOKENS) is None
        assert store.get(KEY, HEADS, TOKENS) is None  # reported once
    assert store.stats.invalid == 2
    store.put(KEY, HEADS, data)  # what the next forward pass does
    assert reopened(store).get(KEY, HEADS, TOKENS).tobytes() == data.tobytes()


def test_an_entry_larger_than_the_model_can_have_is_not_read(store):
    store.put(KEY, HEADS, _attentions())
    store = reopened(store)
    with pytest.warns(CacheWarning, match="larger than expected"):
        assert store.get(KEY, HEADS, TOKENS, max_heads=2) is None  # three heads stored


def test_a_foreign_entry_under_this_keys_digest_is_ignored(store):
    other = EntryKey(KEY.fingerprint, "A dog sat.", KEY.tokens)
    header, data = encode_entry(other, HEADS, _attentions())
    store.put(KEY, HEADS, _attentions())
    _tamper(store, "UPDATE entries SET header = ?, data = ?, seal = ? WHERE key = ?",
            header, data, seal(other, header), KEY.digest)
    store = _cache(store.folder.parent)
    with pytest.warns(CacheWarning):
        assert store.get(KEY, HEADS, TOKENS) is None
    assert store.stats.invalid == 1


def test_an_entry_of_the_wrong_token_count_is_ignored(store):
    store.put(KEY, HEADS, _attentions(tokens=5))
    with pytest.warns(CacheWarning):
        assert store.get(KEY, HEADS, TOKENS) is None
    assert store.stats.invalid == 1


def test_decode_rejects_a_header_that_lies_about_the_heads():
    header, data = encode_entry(KEY, HEADS, _attentions())
    decoded = decode_header(header, seal(KEY, header), KEY)
    assert decode_entry(decoded, data, TOKENS) is not None
    assert decode_entry({**decoded, "heads": decoded["heads"][:2]}, data, TOKENS) is None
    assert decode_entry({**decoded, "heads": decoded["heads"][:1] * 3}, data, TOKENS) is None
    assert decode_header(header, seal(KEY, header + b" "), KEY) is None


def _pristine(tmp_path) -> tuple[ForwardCache, dict]:
    """A closed cache of 20 entries (two heads of 9 tokens each) and what was written."""
    store = _cache(tmp_path / "pristine")
    written = {}
    for i in range(20):
        key = EntryKey(KEY.fingerprint, f"Sentence {i}.", "t")
        written[key] = _attentions(i, heads=2, tokens=9)
        store.put(key, HEADS[:2], written[key])
    store.flush()
    store.close()
    return store, written


def _every_lookup_is_exact_or_a_miss(root, written) -> tuple[int, list]:
    """(how many keys hit, the warnings raised) reading every key of ``written`` afresh."""
    store = _cache(root)
    hits = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for key, data in written.items():
            got = store.get(key, HEADS[:2], 9)
            if got is not None:
                assert got.tobytes() == data.tobytes(), key
                hits += 1
        store.put(KEY, HEADS, _attentions())  # and the cache can still be written
        store.flush()
        assert store.get(KEY, HEADS, TOKENS).tobytes() == _attentions().tobytes()
    store.close()
    return hits, [w for w in caught if issubclass(w.category, CacheWarning)]


@pytest.mark.parametrize("where", [i / 16 for i in range(16)] + [0.999])
def test_a_bit_flip_anywhere_in_the_database_never_gives_a_wrong_attention(tmp_path, where):
    pristine, written = _pristine(tmp_path)
    blob = pristine.path.read_bytes()
    damaged = tmp_path / "damaged"
    (damaged / "forward").mkdir(parents=True)
    at = min(int(len(blob) * where), len(blob) - 1)
    (damaged / "forward" / pristine.path.name).write_bytes(_flip(blob, at))
    hits, told = _every_lookup_is_exact_or_a_miss(damaged, written)
    assert len(told) <= 1, [str(w.message) for w in told]
    assert hits == len(written) or told  # whatever was lost was reported


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "zeros"])
def test_a_damaged_database_file_is_started_afresh_with_one_warning(tmp_path, how):
    pristine, written = _pristine(tmp_path)
    blob = pristine.path.read_bytes()
    damaged = {"truncated": blob[: len(blob) // 2 + 7], "garbage": b"not a database " * 500,
               "empty": b"", "zeros": bytes(len(blob))}[how]
    pristine.path.write_bytes(damaged)
    hits, told = _every_lookup_is_exact_or_a_miss(pristine.folder.parent, written)
    assert hits <= len(written) and len(told) <= 1
    if how in ("garbage", "zeros", "truncated"):
        assert len(told) == 1 and "held damaged data" in str(told[0].message)


@pytest.mark.parametrize("special", ["fifo", "link to /dev/zero", "link to a file"])
def test_a_database_path_that_is_not_a_regular_file_is_replaced(tmp_path, special):
    pristine, written = _pristine(tmp_path)
    pristine.path.unlink()
    if special == "fifo":
        os.mkfifo(pristine.path)
    elif special == "link to /dev/zero":
        os.symlink("/dev/zero", pristine.path)
    else:
        (tmp_path / "elsewhere").write_bytes(b"x")
        os.symlink(tmp_path / "elsewhere", pristine.path)
    hits, told = _every_lookup_is_exact_or_a_miss(pristine.folder.parent, written)
    assert hits == 0 and len(told) == 1 and "not a regular file" in str(told[0].message)
    assert pristine.path.is_file() and not pristine.path.is_symlink()


def test_a_cache_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path):
    (tmp_path / "forward").write_text("a file where the cache's folder should be")
    store = _cache(tmp_path)
    with pytest.warns(CacheWarning, match=r"cannot write the forward cache in .*forward "
                                          r"\(not a folder\).*--no-cache"):
        store.put(KEY, HEADS, _attentions())
        store.flush()
    store.put(KEY, HEADS, _attentions())
    store.flush()  # no second warning (pytest's filterwarnings=error would raise it)
    assert store.get(KEY, HEADS, TOKENS) is None


def test_a_failed_transaction_keeps_what_was_written_before(store, monkeypatch):
    data = _attentions()
    store.put(KEY, HEADS, data)
    store.flush()
    store.put(KEY, [(5, 5)], _attentions(3, heads=1))
    store.close()
    store.path.chmod(0o444)
    store.folder.chmod(0o555)
    try:
        if os.access(store.path, os.W_OK):  # root writes anyway: make SQLite fail instead
            monkeypatch.setattr(store._database, "connect", lambda: _ReadOnly(store.path))
        with pytest.warns(CacheWarning, match="cannot write the forward cache"):
            store.flush()
    finally:
        store.folder.chmod(0o755)
        store.path.chmod(0o644)
    assert _cache(store.folder.parent).get(KEY, HEADS, TOKENS).tobytes() == data.tobytes()


class _ReadOnly:
    """A connection whose writes fail as a full disk's do."""

    def __init__(self, path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self.in_transaction = False

    def execute(self, sql, *args):
        if sql.startswith("BEGIN"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)


def test_writes_after_a_miss_in_the_same_process_still_merge_their_heads(store):
    assert store.get(KEY, HEADS, TOKENS) is None  # no entry yet
    first = _attentions(0)
    store.put(KEY, HEADS, first)
    extra = _attentions(1, heads=1)
    store.put(KEY, [(4, 5)], extra)  # the entry exists now: this put keeps the three heads
    assert store.get(KEY, [*HEADS, (4, 5)], TOKENS).tobytes() == \
        np.concatenate([first, extra]).tobytes()
    again = reopened(store)
    assert _rows(again) == 1
    assert again.get(KEY, [*HEADS, (4, 5)], TOKENS).tobytes() == \
        np.concatenate([first, extra]).tobytes()


def test_a_cache_folder_deleted_while_running_is_made_again_on_the_next_write(store):
    store.put(KEY, HEADS, _attentions())
    store.flush()
    shutil.rmtree(store.folder)
    store.put(KEY, HEADS, _attentions(2))
    again = reopened(store)
    assert again.get(KEY, HEADS, TOKENS).tobytes() == _attentions(2).tobytes()


def test_entries_another_cache_commits_are_seen(tmp_path):
    first, second = _cache(tmp_path), _cache(tmp_path)
    other = EntryKey(KEY.fingerprint, "A dog sat.", KEY.tokens)
    assert len(first) == 0 and len(second) == 0
    first.put(KEY, HEADS, _attentions(0))
    second.put(other, HEADS, _attentions(1))
    first.flush()
    second.flush()
    assert second.get(KEY, HEADS, TOKENS).tobytes() == _attentions(0).tobytes()
    third = _cache(tmp_path)
    assert third.get(other, HEADS, TOKENS).tobytes() == _attentions(1).tobytes()


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from headprobe.cache.entries import EntryKey, ForwardCache
    cache = ForwardCache(sys.argv[1])
    for i in range(200):
        key = EntryKey("sha256:" + "ab" * 32, f"{sys.argv[2]} sentence {i}.", "t")
        cache.put(key, [(0, 0)], np.full((1, 5, 5), i, dtype=np.float32))
        if i % 20 == 19:
            cache.flush()
    cache.flush()
""")


def test_processes_writing_at_once_keep_every_entry(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name])
               for name in ("first", "second", "third")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    store = _cache(tmp_path)
    assert len(store) == 600
    for name in ("first", "second", "third"):
        key = EntryKey("sha256:" + "ab" * 32, f"{name} sentence 123.", "t")
        assert (store.get(key, [(0, 0)], 5) == 123).all()


def test_a_disabled_cache_reads_and_writes_nothing(tmp_path):
    enabled = _cache(tmp_path)
    enabled.put(KEY, HEADS, _attentions())
    enabled.flush()
    disabled = _cache(tmp_path / "other", enabled=False)
    disabled.put(KEY, HEADS, _attentions())
    disabled.flush()
    assert not disabled.folder.exists()
    assert _cache(tmp_path, enabled=False).get(KEY, HEADS, TOKENS) is None


# ---- forward_runs against a real (tiny, random) model -------------------------------------------

TEXTS = ["The cat sat on the mat.", "A big red dog moved slowly across the road",
         "Then I picked up a rug", "The zebra sat, and it was small."]
WANTED = [Head(2, 3), Head(1, 1)]  # 1-based; the planted model has 2 layers of 3 heads


@pytest.fixture(scope="module")
def tiny(planted_model):
    return headprobe.load(str(planted_model))


class CountingLoader:
    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __call__(self):
        self.calls += 1
        return self.model


def _runs(model, store, loader, texts=TEXTS, heads=WANTED):
    return dict(forward_runs(texts, heads, fingerprint=model.fingerprint,
                             encode=model.tokenize, num_layers=model.num_layers,
                             num_heads=model.num_heads, load_model=loader, cache=store))


def test_a_second_pass_reads_every_run_from_the_cache_without_the_model(tiny, store):
    first_loader, second_loader = CountingLoader(tiny), CountingLoader(tiny)
    fresh = _runs(tiny, store, first_loader)
    assert first_loader.calls == 1 and store.stats.writes == len(TEXTS)
    store = _cache(store.folder.parent)  # another process: what forward_runs flushed
    cached = _runs(tiny, store, second_loader)
    assert second_loader.calls == 0 and store.stats.hits == len(TEXTS)
    for index in range(len(TEXTS)):
        a, b = fresh[index], cached[index]
        assert b.tokens == a.tokens and b.word_ids == a.word_ids and b.offsets == a.offsets
        assert b.attentions.shape == a.attentions.shape == (2, 3, len(a.tokens), len(a.tokens))
        for head in WANTED:
            assert b.attentions[head.index].tobytes() == a.attentions[head.index].tobytes()
        assert np.isnan(b.attentions[0, 1]).all()  # a head nobody asked for is not made up


def test_only_the_texts_that_miss_go_through_the_model(tiny, store):
    _runs(tiny, store, CountingLoader(tiny), texts=TEXTS[:2])
    calls = []
    original = tiny.iter_runs

    def spy(texts, **kwargs):
        calls.append(list(texts))
        return original(texts, **kwargs)

    tiny.iter_runs = spy
    try:
        runs = _runs(tiny, store, CountingLoader(tiny))
    finally:
        del tiny.iter_runs
    assert calls == [TEXTS[2:]] and sorted(runs) == [0, 1, 2, 3]


def test_asking_for_a_deeper_head_misses_then_hits(tiny, store):
    _runs(tiny, store, CountingLoader(tiny), heads=[Head(1, 2)])
    loader = CountingLoader(tiny)
    runs = _runs(tiny, store, loader, heads=[Head(1, 2), Head(2, 1)])
    assert loader.calls == 1 and runs[0].attentions.shape[0] == 2
    loader = CountingLoader(tiny)
    _runs(tiny, store, loader, heads=[Head(2, 1)])
    assert loader.calls == 0


def test_fingerprint_from_files_matches_the_model_and_is_remembered(tiny, tmp_path, monkeypatch):
    expected = tiny.fingerprint
    assert model_fingerprint(tiny.path) == expected
    assert model_fingerprint(tiny.path, memo_root=tmp_path) == expected

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed the weights again")

    monkeypatch.setattr("headprobe.model.checkpoint.files_fingerprint", no_hashing)
    assert model_fingerprint(tiny.path, memo_root=tmp_path) == expected
    config = tiny.path / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # "edited"
    with pytest.raises(AssertionError, match="hashed the weights again"):
        model_fingerprint(tiny.path, memo_root=tmp_path)
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint is not no_hashing and find_weights(tiny.path).format == "safetensors"


def test_a_background_fingerprint_equals_the_model_s_and_is_remembered(tiny, tmp_path):
    assert fingerprint_result(start_fingerprint(tiny.path, memo_root=tmp_path)) == \
        tiny.fingerprint
    assert list((tmp_path / "forward" / "fingerprints").iterdir())
    deferred = ModelHandle(CountingLoader(tiny), inspect_model(str(tiny.path)),
                             start_fingerprint(tiny.path))
    assert deferred.fingerprint == tiny.fingerprint


def test_a_background_fingerprint_raises_what_computing_it_raised(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")  # no weight files beside it
    background = start_fingerprint(tmp_path)
    with pytest.raises(headprobe.errors.ModelFormatError):
        model_fingerprint(tmp_path)
    with pytest.raises(headprobe.errors.ModelFormatError):
        fingerprint_result(background)


def _memo(tmp_path):
    (memo,) = (tmp_path / "forward" / "fingerprints").iterdir()
    return memo


@pytest.mark.parametrize("damage", ["one character", "garbage", "empty", "fifo", "huge"])
def test_a_damaged_fingerprint_memo_is_reported_once_and_the_weights_hashed_again(
        tiny, tmp_path, damage):
    assert model_fingerprint(tiny.path, memo_root=tmp_path) == tiny.fingerprint
    memo = _memo(tmp_path)
    text = memo.read_text()
    if damage == "one character":  # another fingerprint, sealed with the old seal
        at = text.index("sha256:") + 10
        memo.write_text(text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:])
    elif damage == "garbage":
        memo.write_bytes(bytes(range(256)) * 4)
    elif damage == "empty":
        memo.write_bytes(b"")
    elif damage == "fifo":
        memo.unlink()
        os.mkfifo(memo)
    else:
        memo.write_bytes(b"{" * (1 << 20))
    problems = Problems()
    with pytest.warns(CacheWarning, match="fingerprint memo"):
        got = model_fingerprint(tiny.path, memo_root=tmp_path, problems=problems)
    assert got == tiny.fingerprint
    assert _memo(tmp_path).is_file()  # rewritten, sound again
    assert model_fingerprint(tiny.path, memo_root=tmp_path, problems=problems) == got


def test_a_memo_from_an_older_headprobe_is_replaced_quietly(tiny, tmp_path):
    model_fingerprint(tiny.path, memo_root=tmp_path)
    _memo(tmp_path).write_text(tiny.fingerprint)  # the bare format of headprobe 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model_fingerprint(tiny.path, memo_root=tmp_path) == tiny.fingerprint
    assert _memo(tmp_path).read_text().startswith("{")


def test_a_deferred_model_loads_only_when_asked_to_run(tiny):
    loader = CountingLoader(tiny)
    deferred = ModelHandle(loader, inspect_model(str(tiny.path)), start_fingerprint(tiny.path))
    assert deferred.fingerprint == tiny.fingerprint
    assert deferred.tokenize(["The cat."])[0].tokens == ["[CLS]", "the", "cat", ".", "[SEP]"]
    assert (deferred.num_layers, deferred.num_heads) == (2, 3)
    assert loader.calls == 0 and not deferred.loaded
    assert len(deferred.run(["The cat."], hidden_states=False)) == 1
    assert loader.calls == 1 and deferred.loaded


# ---- headprobe check: an unchanged re-run never loads the model ---------------------------------

PASSING = """
sentences:
  plain:
    - The cat sat on the mat.
    - A dog sat.
    - Then I picked up a red rug from the table.
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: "<= 0.2"
  - id: layer-two
    claim: "L2H*: token -> cls"
    measure: mass
    over: plain
    expect: ">= 0.0"
  - id: fails-with-figures
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
"""


def _results(run) -> list[dict]:
    return run.report()["results"]


def test_an_unchanged_check_rerun_reads_the_cache_and_never_loads_the_model(
        tmp_path, planted_model, monkeypatch, capfd):
    from check_runner import check_inprocess, write_project

    project = write_project(tmp_path / "project", {"claims.yaml": PASSING})
    cache_dir = tmp_path / "cache"
    loads = []
    real_init = Model.__init__

    def counting_init(model, **fields):  # every model loaded, however it is loaded
        loads.append(fields["name"])
        real_init(model, **fields)

    monkeypatch.setattr(Model, "__init__", counting_init)
    args = ("claims.yaml", "--model", str(planted_model))
    cold = check_inprocess(project, *args, cache_dir=cache_dir, monkeypatch=monkeypatch,
                           capfd=capfd)
    assert cold.rc == 1, cold  # one claim fails on purpose: its figures come from the cache too
    assert len(loads) == 1
    database = cache_dir / "forward" / "entries-v2.sqlite3"
    assert len(ForwardCache(cache_dir)) == 3
    written = database.read_bytes()
    warm = check_inprocess(project, *args, cache_dir=cache_dir, monkeypatch=monkeypatch,
                           capfd=capfd)
    assert warm.rc == 1, warm
    assert len(loads) == 1  # the second run did not load the weights
    assert _results(warm) == _results(cold)  # intervals too: the bootstrap ignores run order
    assert any(r["figures"] for r in _results(warm))
    bypass = check_inprocess(project, *args, "--no-cache", cache_dir=cache_dir,
                             monkeypatch=monkeypatch, capfd=capfd)
    assert bypass.rc == 1, bypass
    assert len(loads) == 2 and _results(bypass) == _results(cold)
    assert database.read_bytes() == written  # nothing written


def test_a_cold_check_tokenizes_each_sentence_once(planted_model, tmp_path, monkeypatch, capfd):
    from check_runner import check_inprocess, write_project

    from headprobe.model.tokenize import Tokenizer

    encoded: list[str] = []
    original = Tokenizer.encode

    def counting(self, texts):
        encoded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(Tokenizer, "encode", counting)
    project = write_project(tmp_path / "project", {"claims.yaml": PASSING})
    cold = check_inprocess(project, "claims.yaml", "--model", str(planted_model),
                           cache_dir=tmp_path / "cache", monkeypatch=monkeypatch, capfd=capfd)
    assert cold.rc == 1, cold
    assert sorted(encoded) == sorted(set(encoded)) and len(encoded) == 3  # the three sentences


def test_check_with_a_cache_folder_it_cannot_write_reports_the_right_results_and_warns(
        planted_model, tmp_path, monkeypatch, capfd):
    from check_runner import check_inprocess, check_subprocess, write_project

    project = write_project(tmp_path / "project", {"claims.yaml": PASSING})
    args = ("claims.yaml", "--model", str(planted_model))
    good = check_inprocess(project, *args, cache_dir=tmp_path / "cache", monkeypatch=monkeypatch,
                           capfd=capfd)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "forward").write_text("not a folder")
    # A process of its own: in this one, the test session's filterwarnings=error would apply.
    bad = check_subprocess(project, *args, cache_dir=broken)
    assert bad.rc == good.rc == 1  # the claim that fails on purpose, and only it
    assert _results(bad) == _results(good)
    assert bad.output.count("CacheWarning: cannot write the forward cache") == 1


def test_cached_runs_in_input_order_score_like_fresh_runs_in_length_order(tiny, store):
    """The model yields runs shortest first, the cache in input order: the claim's value,
    bootstrap interval and worst sentences must not depend on that."""
    from headprobe.claims.files import parse_hypothesis_text
    from headprobe.evaluation import ClaimAccumulator

    text = PASSING.replace("over: plain", "over: more").replace(
        "sentences:\n", "sentences:\n  more:\n" + "".join(f"    - {t}\n" for t in TEXTS))
    hfile = parse_hypothesis_text(text, "claims.yaml")
    spec = next(c for c in hfile.claims if c.id == "layer-two")
    sentences = list(hfile.sets["more"].sentences)
    heads = [Head(2, 1), Head(2, 2), Head(2, 3)]

    def results(pairs):
        accumulator = ClaimAccumulator(spec, heads)
        for index, run in pairs:
            accumulator.add(index, sentences[index], run)
        return [r.to_json() for r in accumulator.results(model="m", fingerprint="f")]

    fresh = list(forward_runs(TEXTS, heads, fingerprint=tiny.fingerprint, encode=tiny.tokenize,
                              num_layers=2, num_heads=3, load_model=lambda: tiny, cache=store))
    cached = list(forward_runs(TEXTS, heads, fingerprint=tiny.fingerprint, encode=tiny.tokenize,
                               num_layers=2, num_heads=3, load_model=lambda: tiny, cache=store))
    assert [i for i, _ in fresh] != [i for i, _ in cached] == [0, 1, 2, 3]
    assert results(cached) == results(fresh)


def test_a_handle_tokenizes_lists_of_texts_and_refuses_a_bare_string(tiny):
    handle = ModelHandle(CountingLoader(tiny), inspect_model(str(tiny.path)), None)
    assert handle.tokenize(("The cat.",))[0].tokens == tiny.tokenize(["The cat."])[0].tokens
    with pytest.raises(UsageError, match="wrap it in a list"):
        handle.tokenize("The cat.")
    with pytest.raises(UsageError, match="expected strings"):
        handle.tokenize(["The cat.", 3])


def test_probing_a_handle_for_display_hooks_does_not_load_its_model(tiny):
    loader = CountingLoader(tiny)
    handle = ModelHandle(loader, inspect_model(str(tiny.path)), start_fingerprint(tiny.path))
    assert not hasattr(handle, "_repr_html_") and not hasattr(handle, "_ipython_display_")
    assert "not loaded" in repr(handle)
    assert loader.calls == 0 and not handle.loaded
    assert handle.config.num_hidden_layers == 2  # the loaded model's own attributes load it
    assert loader.calls == 1 and handle.loaded
