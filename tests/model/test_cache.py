"""The forward cache (headprobe/cache.py): hits, misses, merges, corrupt and foreign entries,
atomic writes, --no-cache, fingerprints from files, and `headprobe check` re-runs that skip the
model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import headprobe
from headprobe import cache as cache_module
from headprobe.cache import (BackgroundFingerprint, CacheStats, DeferredModel, EntryKey, ForwardCache,
                             decode_entry, encode_entry, forward_runs, model_fingerprint)
from headprobe.heads import Head
from headprobe.model.checkpoint import find_weights, fingerprint

# Distinct sizes: 3 stored heads, 7 tokens.
HEADS = [(0, 2), (1, 0), (1, 1)]
TOKENS = 7


def _attentions(seed: int = 0, heads: int = 3, tokens: int = TOKENS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((heads, tokens, tokens), dtype=np.float32)


@pytest.fixture
def store(tmp_path) -> ForwardCache:
    return ForwardCache(tmp_path / "cache")


KEY = EntryKey("sha256:" + "ab" * 32, "The cat sat on the mat.")


def reopened(store: ForwardCache) -> ForwardCache:
    """What the next process sees: ``store`` flushed, and a new cache over the same folder."""
    store.flush()
    return ForwardCache(store.folder.parent)


def _packs(store: ForwardCache) -> list[str]:
    return sorted(p.name for p in store.packs.iterdir()) if store.packs.exists() else []


def test_an_entry_round_trips_bit_for_bit_and_a_lookup_picks_heads_in_the_order_asked(store):
    data = _attentions()
    store.put(KEY, HEADS, data)
    got = store.get(KEY, [(1, 1), (0, 2)], TOKENS)  # from memory, before any pack is written
    assert got.dtype == np.float32 and got.shape == (2, TOKENS, TOKENS)
    assert got.tobytes() == data[[2, 0]].tobytes()
    assert store.stats == CacheStats(hits=1, misses=0, invalid=0, writes=1)
    again = reopened(store)
    assert again.get(KEY, [(1, 1), (0, 2)], TOKENS).tobytes() == data[[2, 0]].tobytes()
    assert again.stats == CacheStats(hits=1, misses=0, invalid=0, writes=0)


def test_entries_wait_in_memory_and_are_written_many_to_a_pack(store):
    others = [EntryKey(KEY.fingerprint, f"Sentence number {i}.") for i in range(5)]
    for i, key in enumerate(others):
        store.put(key, HEADS, _attentions(i))
    assert _packs(store) == [] and len(store) == 5
    store.flush()
    (name,) = _packs(store)
    assert name.endswith(".hpk") and store.packs == store.folder / "packs"
    blob = (store.packs / name).read_bytes()
    assert blob.startswith(cache_module.PACK_MAGIC) and blob.endswith(cache_module.PACK_MAGIC)
    again = reopened(store)
    assert len(again) == 5
    for i, key in enumerate(others):
        assert again.get(key, HEADS, TOKENS).tobytes() == _attentions(i).tobytes()


def test_a_pack_is_written_once_pack_bytes_of_entries_wait(tmp_path):
    keys = [EntryKey(KEY.fingerprint, f"Sentence {i}.") for i in range(5)]
    entry_bytes = len(encode_entry(keys[0], HEADS, _attentions()))  # the same for each key
    store = ForwardCache(tmp_path, pack_bytes=2 * entry_bytes)
    for key in keys[:2]:
        store.put(key, HEADS, _attentions())
    assert len(_packs(store)) == 1  # two entries reached pack_bytes
    for key in keys[2:]:
        store.put(key, HEADS, _attentions())
    assert len(_packs(store)) == 2
    store.flush()  # the fifth entry
    assert len(_packs(store)) == 3 and len(ForwardCache(tmp_path)) == 5


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
    again = reopened(store)  # two packs hold the key: the newer one is read
    assert len(_packs(again)) == 2
    assert again.get(KEY, [(4, 5), *HEADS], TOKENS).tobytes() == both.tobytes()


@pytest.mark.parametrize("other", [
    EntryKey(KEY.fingerprint, KEY.text + " "),                # another sentence
    EntryKey("sha256:" + "cd" * 32, KEY.text),                # another model
    EntryKey(KEY.fingerprint, KEY.text, version=KEY.version + 1),
])
def test_other_keys_miss(store, other):
    store.put(KEY, HEADS, _attentions())
    assert store.get(other, HEADS, TOKENS) is None
    assert reopened(store).get(other, HEADS, TOKENS) is None
    assert store.stats.invalid == 0


def _damage(path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[:-5])
    elif how == "flipped data":  # a byte of the entry's float32 data: its CRC no longer matches
        at = len(cache_module.PACK_MAGIC) + len(encode_entry(KEY, HEADS, _attentions())) - 9
        path.write_bytes(blob[:at] + bytes([blob[at] ^ 0x40]) + blob[at + 1:])
    elif how == "flipped footer":
        path.write_bytes(blob[:-20] + bytes([blob[-20] ^ 0x40]) + blob[-19:])
    elif how == "garbage":
        path.write_bytes(b"not a pack at all")
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped data", "flipped footer", "garbage",
                                 "empty"])
def test_a_damaged_entry_or_pack_is_ignored_then_rewritten(store, how):
    data = _attentions()
    store.put(KEY, HEADS, data)
    store.flush()
    (name,) = _packs(store)
    _damage(store.packs / name, how)
    store = ForwardCache(store.folder.parent)
    assert store.get(KEY, HEADS, TOKENS) is None
    assert store.stats.invalid == 1
    store.put(KEY, HEADS, data)  # what the next forward pass does
    assert reopened(store).get(KEY, HEADS, TOKENS).tobytes() == data.tobytes()


def test_a_pack_that_cannot_be_read_is_skipped_not_deleted(store):
    store.put(KEY, HEADS, _attentions())
    store.flush()
    unreadable = store.packs / "00000000000000000000-1-0.hpk"
    unreadable.mkdir()  # open() fails on it, as on a pack another process just deleted
    again = ForwardCache(store.folder.parent)
    assert again.get(KEY, HEADS, TOKENS).tobytes() == _attentions().tobytes()
    assert again.stats.invalid == 0 and unreadable.is_dir()


def test_a_foreign_entry_under_this_keys_digest_is_ignored(store):
    other = EntryKey(KEY.fingerprint, "A dog sat.")
    # right format, wrong key inside
    store._write_pack([(KEY.digest, encode_entry(other, HEADS, _attentions()))])
    store = ForwardCache(store.folder.parent)
    assert store.get(KEY, HEADS, TOKENS) is None and store.stats.invalid == 1


def test_a_pack_whose_index_points_outside_its_entries_is_ignored(store):
    store.put(KEY, HEADS, _attentions())
    store.flush()
    (name,) = _packs(store)
    blob = (store.packs / name).read_bytes()
    offset, length, _ = cache_module._FOOTER.unpack(blob[-cache_module._FOOTER.size:])
    index = json.loads(blob[offset:offset + length])
    index["entries"][0][2] += 10_000  # longer than the pack
    forged = json.dumps(index).encode()
    (store.packs / name).write_bytes(
        blob[:offset] + forged + cache_module._FOOTER.pack(offset, len(forged),
                                                           cache_module.PACK_MAGIC))
    store = ForwardCache(store.folder.parent)
    assert store.get(KEY, HEADS, TOKENS) is None and store.stats.invalid == 1


def test_an_entry_of_the_wrong_token_count_is_ignored(store):
    store.put(KEY, HEADS, _attentions(tokens=5))
    assert store.get(KEY, HEADS, TOKENS) is None and store.stats.invalid == 1
    again = reopened(store)
    assert again.get(KEY, HEADS, TOKENS) is None and again.stats.invalid == 1


def test_decode_rejects_a_header_that_lies_about_the_heads():
    blob = encode_entry(KEY, HEADS, _attentions())
    start = len(cache_module.MAGIC) + 4
    length = int.from_bytes(blob[len(cache_module.MAGIC):start], "little")
    header = json.loads(blob[start:start + length])
    header["heads"] = header["heads"][:2]
    new_header = json.dumps(header).encode()
    forged = (cache_module.MAGIC + len(new_header).to_bytes(4, "little") + new_header
              + blob[start + length:])
    assert decode_entry(forged, KEY, TOKENS) is None
    assert decode_entry(blob, KEY, TOKENS) is not None


def test_a_failed_write_leaves_the_old_packs_and_no_temporary_file(store, monkeypatch):
    data = _attentions()
    store.put(KEY, HEADS, data)
    store.flush()
    before = _packs(store)

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    store.put(KEY, [(5, 5)], _attentions(3, heads=1))
    with pytest.warns(headprobe.errors.CacheWarning, match="disk full"):
        store.flush()
    monkeypatch.undo()
    assert _packs(store) == before
    assert ForwardCache(store.folder.parent).get(KEY, HEADS, TOKENS).tobytes() == data.tobytes()


def test_writes_after_a_miss_in_the_same_process_still_merge_their_heads(store):
    assert store.get(KEY, HEADS, TOKENS) is None  # no entry yet
    first = _attentions(0)
    store.put(KEY, HEADS, first)
    extra = _attentions(1, heads=1)
    store.put(KEY, [(4, 5)], extra)  # the entry exists now: this put keeps the three heads
    assert store.get(KEY, [*HEADS, (4, 5)], TOKENS).tobytes() == \
        np.concatenate([first, extra]).tobytes()
    again = reopened(store)
    assert len(_packs(again)) == 1  # one pack: the newer entry replaced the one in memory
    assert again.get(KEY, [*HEADS, (4, 5)], TOKENS).tobytes() == \
        np.concatenate([first, extra]).tobytes()


def test_a_cache_folder_deleted_while_running_is_made_again_on_the_next_write(store):
    import shutil

    store.put(KEY, HEADS, _attentions())
    store.flush()
    shutil.rmtree(store.folder)
    store.put(KEY, HEADS, _attentions(2))
    again = reopened(store)
    assert again.get(KEY, HEADS, TOKENS).tobytes() == _attentions(2).tobytes()
    assert len(_packs(again)) == 1


def test_packs_from_several_processes_are_all_read(tmp_path):
    first, second = ForwardCache(tmp_path), ForwardCache(tmp_path)
    other = EntryKey(KEY.fingerprint, "A dog sat.")
    assert len(first) == 0 and len(second) == 0  # both have read the (empty) index
    first.put(KEY, HEADS, _attentions(0))
    second.put(other, HEADS, _attentions(1))
    first.flush()
    second.flush()
    third = ForwardCache(tmp_path)
    assert third.get(KEY, HEADS, TOKENS).tobytes() == _attentions(0).tobytes()
    assert third.get(other, HEADS, TOKENS).tobytes() == _attentions(1).tobytes()


def test_many_packs_are_compacted_when_the_cache_is_opened(tmp_path, monkeypatch):
    keys = [EntryKey(KEY.fingerprint, f"Sentence {i}.") for i in range(6)]
    for i, key in enumerate(keys):  # six runs, a pack each
        store = ForwardCache(tmp_path)
        store.put(key, HEADS, _attentions(i))
        store.flush()
    assert len(_packs(store)) == 6
    monkeypatch.setattr(cache_module, "MAX_PACKS", 3)
    again = ForwardCache(tmp_path)
    assert len(again) == 6 and len(_packs(again)) == 1  # opening it compacted the six
    for i, key in enumerate(keys):
        assert again.get(key, HEADS, TOKENS).tobytes() == _attentions(i).tobytes()
    assert again.stats.invalid == 0
    assert len(ForwardCache(tmp_path)) == 6


def test_packs_the_live_entries_fill_are_not_compacted_again_and_again(tmp_path, monkeypatch):
    keys = [EntryKey(KEY.fingerprint, f"Sentence {i}.") for i in range(6)]
    store = ForwardCache(tmp_path, pack_bytes=len(encode_entry(keys[0], HEADS, _attentions())))
    for key in keys:  # each entry fills a pack
        store.put(key, HEADS, _attentions())
    store.flush()
    before = _packs(store)
    monkeypatch.setattr(cache_module, "MAX_PACKS", 3)
    again = ForwardCache(tmp_path, pack_bytes=store.pack_bytes)
    assert len(again) == 6 and _packs(again) == before  # compacting would not make fewer packs


def test_superseded_entries_are_dropped_when_they_outweigh_the_live_ones(tmp_path):
    entry_bytes = len(encode_entry(KEY, HEADS, _attentions()))
    for version in range(4):  # the same key written four times: three superseded copies
        store = ForwardCache(tmp_path, pack_bytes=entry_bytes)
        store.get(KEY, HEADS, TOKENS)  # reads (and, once they outweigh it, compacts) the index
        store.put(KEY, HEADS, _attentions(version))
        store.flush()
    assert len(_packs(store)) < 4
    total = sum((store.packs / n).stat().st_size for n in _packs(store))
    assert total < 3 * entry_bytes
    assert ForwardCache(tmp_path).get(KEY, HEADS, TOKENS).tobytes() == _attentions(3).tobytes()


def test_a_cache_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path):
    (tmp_path / "forward").write_text("a file where the cache's folder should be")
    store = ForwardCache(tmp_path)
    store.put(KEY, HEADS, _attentions())
    with pytest.warns(headprobe.errors.CacheWarning, match=r"cannot write the forward cache in "
                      r".*forward.packs \(Not a directory\).*--no-cache"):
        store.flush()
    store.put(KEY, HEADS, _attentions())
    store.flush()  # no second warning (pytest's filterwarnings=error would raise it)
    assert store.get(KEY, HEADS, TOKENS) is None


def test_a_disabled_cache_reads_and_writes_nothing(tmp_path):
    enabled = ForwardCache(tmp_path)
    enabled.put(KEY, HEADS, _attentions())
    enabled.flush()
    disabled = ForwardCache(tmp_path / "other", enabled=False)
    disabled.put(KEY, HEADS, _attentions())
    disabled.flush()
    assert not disabled.folder.exists()
    assert ForwardCache(tmp_path, enabled=False).get(KEY, HEADS, TOKENS) is None


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
                             encode=model.tokenize, num_heads=model.num_heads,
                             load_model=loader, cache=store))


def test_a_second_pass_reads_every_run_from_the_cache_without_the_model(tiny, store):
    first_loader, second_loader = CountingLoader(tiny), CountingLoader(tiny)
    fresh = _runs(tiny, store, first_loader)
    assert first_loader.calls == 1 and store.stats.writes == len(TEXTS)
    store = ForwardCache(store.folder.parent)  # another process: what forward_runs flushed
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
    assert model_fingerprint(tiny.path) == tiny.fingerprint
    assert model_fingerprint(tiny.path, memo_root=tmp_path) == tiny.fingerprint

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed the weights again")

    monkeypatch.setattr("headprobe.model.checkpoint.fingerprint", no_hashing)
    assert model_fingerprint(tiny.path, memo_root=tmp_path) == tiny.fingerprint
    config = tiny.path / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # "edited"
    with pytest.raises(AssertionError, match="hashed the weights again"):
        model_fingerprint(tiny.path, memo_root=tmp_path)
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint is not no_hashing and find_weights(tiny.path).format == "safetensors"


def test_a_background_fingerprint_equals_the_model_s_and_is_remembered(tiny, tmp_path):
    assert BackgroundFingerprint(tiny.path, memo_root=tmp_path).result() == tiny.fingerprint
    assert list((tmp_path / "forward" / "fingerprints").iterdir())
    deferred = DeferredModel(CountingLoader(tiny), folder=tiny.path, tokenizer=tiny.tokenizer,
                             num_heads=3, background=BackgroundFingerprint(tiny.path))
    assert deferred.fingerprint == tiny.fingerprint


def test_a_background_fingerprint_raises_what_computing_it_raised(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")  # no weight files beside it
    background = BackgroundFingerprint(tmp_path)
    with pytest.raises(headprobe.errors.ModelFormatError):
        model_fingerprint(tmp_path)
    with pytest.raises(headprobe.errors.ModelFormatError):
        background.result()


def test_a_deferred_model_loads_only_when_asked_to_run(tiny):
    loader = CountingLoader(tiny)
    deferred = DeferredModel(loader, folder=tiny.path, tokenizer=tiny.tokenizer, num_heads=3)
    assert deferred.fingerprint == tiny.fingerprint
    assert deferred.tokenize(["The cat."])[0].tokens == ["[CLS]", "the", "cat", ".", "[SEP]"]
    assert loader.calls == 0 and not deferred.loaded
    assert deferred.num_layers == 2 and loader.calls == 1 and deferred.loaded


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
    expect: ">= 0.9"
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
    from checkrun import check_inprocess, write_project

    project = write_project(tmp_path / "project", {"claims.yaml": PASSING})
    cache_dir = tmp_path / "cache"
    loads = []
    real_load = headprobe.load

    def counting_load(spec=None, **options):
        loads.append(spec)
        return real_load(spec, **options)

    monkeypatch.setattr(headprobe, "load", counting_load)
    args = ("claims.yaml", "--model", str(planted_model))
    cold = check_inprocess(project, *args, cache_dir=cache_dir, monkeypatch=monkeypatch,
                           capfd=capfd)
    assert cold.rc == 1, cold  # one claim fails on purpose: its figures come from the cache too
    assert len(loads) == 1
    packs = sorted((cache_dir / "forward" / "packs").iterdir())
    assert len(ForwardCache(cache_dir)) == 3 and len(packs) == 1
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
    assert sorted((cache_dir / "forward" / "packs").iterdir()) == packs  # nothing written


def test_a_cold_check_tokenizes_each_sentence_once(planted_model, tmp_path, monkeypatch, capfd):
    from checkrun import check_inprocess, write_project

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
    from checkrun import check_inprocess, check_subprocess, write_project

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
                              num_heads=3, load_model=lambda: tiny, cache=store))
    cached = list(forward_runs(TEXTS, heads, fingerprint=tiny.fingerprint, encode=tiny.tokenize,
                               num_heads=3, load_model=lambda: tiny, cache=store))
    assert [i for i, _ in fresh] != [i for i, _ in cached] == [0, 1, 2, 3]
    assert results(cached) == results(fresh)
