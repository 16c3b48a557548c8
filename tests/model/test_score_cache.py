"""The score cache (headprobe/engine/scores.py): `headprobe check` re-runs that neither score nor
run the model, bit-for-bit numbers, keys that change with the claim, damaged entries, --no-cache,
and one cache entry per sentence holding both its attention and its numbers."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from headprobe.cache.entries import EntryKey, ForwardCache
from headprobe.cachefiles import Problems
from headprobe.engine.scores import ScoreCache, decode_numbers, encode_numbers
from headprobe.evaluation.accumulate import ClaimAccumulator, SentenceNumbers
from headprobe.model.loaded import Model

# Distinct sizes: 3 sentences, 2 claims on L1H1 (one with a baseline), 3 heads on layer 2.
CLAIMS = """
sentences:
  plain:
    - The zebra sat on the mat.
    - A zebra sat.
    - Then I picked up a red rug from the zebra.
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> TARGET"
    over: plain
    expect: ">= 0.2"
    baseline: offset
  - id: layer-two
    claim: "L2H*: token -> cls"
    measure: mass
    over: plain
    expect: ">= 0.0"
"""


class Counter:
    """Counts calls of ``ClaimAccumulator.score`` and of the model's forward pass."""

    def __init__(self, monkeypatch) -> None:
        self.scores = self.forwards = 0
        real_score, real_iter = ClaimAccumulator.score, Model.iter_runs

        def score(accumulator, sentence, run):
            self.scores += 1
            return real_score(accumulator, sentence, run)

        def iter_runs(model, texts, **kwargs):  # every forward pass, however the model loaded
            self.forwards += len(texts)
            return real_iter(model, texts, **kwargs)

        monkeypatch.setattr(ClaimAccumulator, "score", score)
        monkeypatch.setattr(Model, "iter_runs", iter_runs)


@pytest.fixture
def check(tmp_path, planted_model, monkeypatch, capfd):
    from check_runner import check_inprocess, write_project

    def run(target: str = "word:zebra", *extra: str):
        project = write_project(tmp_path / "project",
                                {"claims.yaml": CLAIMS.replace("TARGET", target)})
        # `-> next` with `baseline: offset` earns a ClaimWarning (it can never beat the
        # baseline); this process turns warnings into errors, so ignore that one here.
        return check_inprocess(project, "claims.yaml", "--model", str(planted_model), *extra,
                               "-W", "ignore::headprobe.errors.ClaimWarning",
                               cache_dir=tmp_path / "cache", monkeypatch=monkeypatch,
                               capfd=capfd)

    return run


def _entries(tmp_path) -> int:
    """How many sentences have a forward-cache entry."""
    return len(ForwardCache(tmp_path / "cache"))


def _database(tmp_path):
    return tmp_path / "cache" / "forward" / "entries-v2.sqlite3"


def _stored(tmp_path) -> list:
    """Every stored row, sorted."""
    path = _database(tmp_path)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT * FROM entries").fetchall())


def _forget_whole_claims(tmp_path) -> None:
    """Delete the whole-claim rows, so that a re-run reads the entries sentence by sentence."""
    with sqlite3.connect(_database(tmp_path)) as db:
        db.execute("DELETE FROM claims")


def _damage_header(tmp_path, damage: bytes) -> None:
    """Overwrite the JSON header of one entry with ``damage`` (padded with spaces, or NUL
    bytes for an empty damage, to the header's length)."""
    with sqlite3.connect(_database(tmp_path)) as db:
        key, header = sorted(db.execute("SELECT key, header FROM entries").fetchall())[1]
        changed = damage.ljust(len(header), b" " if damage else b"\0")
        db.execute("UPDATE entries SET header = ? WHERE key = ?", (changed, key))


def test_an_unchanged_rerun_neither_scores_nor_runs_the_model_and_reports_the_same(
        check, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    cold = check()
    assert cold.rc == 0, cold
    assert counter.scores == 2 * 3 and counter.forwards == 3
    assert _entries(tmp_path) == 3  # one entry per sentence: its heads and both claims
    assert not (tmp_path / "cache" / "scores").exists()  # no second file per sentence
    warm = check()
    assert warm.rc == 0, warm
    assert counter.scores == 2 * 3 and counter.forwards == 3  # nothing new
    assert warm.report()["results"] == cold.report()["results"]


def test_a_changed_claim_misses_and_is_scored_again_keeping_the_other_entries(
        check, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    assert check("word:zebra").rc == 0
    changed = check("next")  # other target: a new scoring key for to-cls only
    # Every sentence misses on to-cls, so each is run once more (from the forward cache) and
    # scored for to-cls; layer-two is unchanged and read whole from its claim row.
    assert counter.scores == 2 * 3 + 3 and counter.forwards == 3
    fresh = check("next", "--no-cache")
    assert changed.report()["results"] == fresh.report()["results"]
    scored = counter.scores
    assert check("word:zebra").rc == 0 and check("next").rc == changed.rc
    assert counter.scores == scored  # both versions of the claim are cached side by side
    assert _entries(tmp_path) == 3


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"version": 1}'])
def test_a_damaged_entry_is_ignored_and_rewritten(check, tmp_path, monkeypatch, damage):
    from headprobe import cachefiles as safety

    counter = Counter(monkeypatch)
    cold = check()
    _damage_header(tmp_path, damage)
    _forget_whole_claims(tmp_path)
    monkeypatch.setattr(safety, "PROBLEMS", Problems())  # this process's first warning again
    monkeypatch.setattr(safety.Problems, "damaged", lambda self, *args: told.append(args))
    told: list = []
    again = check()
    assert counter.scores == 2 * 3 + 2  # only the damaged sentence, for its 2 claims
    assert again.report()["results"] == cold.report()["results"]
    assert told and "forward cache" in told[0][0]
    check()
    assert counter.scores == 2 * 3 + 2


def test_an_unchanged_rerun_reads_one_row_per_claim_not_one_entry_per_sentence(
        check, tmp_path, monkeypatch):
    from headprobe.cache.entries import ForwardCache as Cache

    cold = check()
    reads: list = []
    real_header = Cache.header
    monkeypatch.setattr(Cache, "header", lambda self, key: reads.append(key)
                        or real_header(self, key))
    warm = check()
    assert reads == []  # both claims came whole from their rows
    assert warm.report()["results"] == cold.report()["results"]
    with sqlite3.connect(_database(tmp_path)) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 2


@pytest.mark.parametrize("damage", ["data", "header", "seal"])
def test_a_damaged_claim_row_is_ignored_and_its_numbers_come_from_the_entries(
        check, tmp_path, monkeypatch, damage):
    from headprobe import cachefiles as safety

    counter = Counter(monkeypatch)
    cold = check()
    with sqlite3.connect(_database(tmp_path)) as db:
        key, value = sorted(db.execute(f"SELECT key, {damage} FROM claims").fetchall())[0]
        flipped = bytes([value[0] ^ 0x01]) + bytes(value[1:])
        db.execute(f"UPDATE claims SET {damage} = ? WHERE key = ?", (flipped, key))
    monkeypatch.setattr(safety, "PROBLEMS", Problems())
    monkeypatch.setattr(safety.Problems, "damaged", lambda self, *args: told.append(args))
    told: list = []
    again = check()
    assert counter.scores == 2 * 3  # the sentences' entries still hold the numbers
    assert again.report()["results"] == cold.report()["results"]
    assert told and "forward cache" in told[0][0]


def test_no_cache_neither_reads_nor_writes_scores(check, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    check("word:zebra", "--no-cache")
    assert not (tmp_path / "cache" / "forward").exists()
    cold = check()
    rows = _stored(tmp_path)
    bypass = check("word:zebra", "--no-cache")
    assert counter.scores == 3 * 2 * 3  # the cached numbers were not read
    assert _stored(tmp_path) == rows
    assert bypass.report()["results"] == cold.report()["results"]


# ---- the store on its own -------------------------------------------------------------------

FINGERPRINT = "sha256:" + "ab" * 32
TEXT = "The cat sat on the mat."


def _numbers(seed: int, heads: int = 4, baseline: bool = True) -> SentenceNumbers:
    rng = np.random.default_rng(seed)
    return SentenceNumbers(5, 2, rng.random(heads) * 3.0,
                           tuple(rng.random(6).tolist()) if baseline else None)


def test_numbers_round_trip_bit_for_bit():
    numbers = _numbers(0)
    back = decode_numbers(encode_numbers(numbers))
    assert back.hits.dtype == np.float64 and back.hits.tobytes() == numbers.hits.tobytes()
    assert back.baseline == numbers.baseline and (back.n, back.left_out) == (5, 2)
    assert decode_numbers(encode_numbers(_numbers(1, baseline=False))).baseline is None
    assert decode_numbers({"n": "5", "left_out": 2, "hits": [], "baseline": None}) is None


def _store(tmp_path, enabled: bool = True) -> ScoreCache:
    return ScoreCache(ForwardCache(tmp_path, enabled=enabled, problems=Problems()))


ATTENTIONS = np.random.default_rng(7).random((1, 9, 9), dtype=np.float32)  # 1 head, 9 tokens


def _key(tokens: str = "tokens-a", text: str = TEXT, fingerprint: str = FINGERPRINT):
    return EntryKey(fingerprint, text, tokens)


def _put(store: ScoreCache, numbers: dict, tokens: str = "tokens-a", text: str = TEXT) -> None:
    store.put(_key(tokens, text), numbers, [(0, 0)], ATTENTIONS, max_heads=8)


def test_a_lookup_hits_only_with_every_key_and_the_same_sentence_tokens_and_model(tmp_path):
    store = _store(tmp_path)
    _put(store, {"k1": _numbers(0), "k2": _numbers(1)})
    _put(store, {"k3": _numbers(2)})  # merges, keeps k1 and k2
    got = store.get(_key(), ["k3", "k1"])
    assert got[1].hits.tobytes() == _numbers(0).hits.tobytes()
    assert store.get(_key(), ["k1", "k4"]) is None
    assert store.get(_key(text=TEXT + " "), ["k1"]) is None
    assert store.get(_key(fingerprint="sha256:" + "cd" * 32), ["k1"]) is None
    assert store.get(_key(tokens="tokens-b"), ["k1"]) is None  # retokenized: another key
    assert store.stats.invalid == 0 and store.stats.hits == 1 and store.stats.writes == 2


def test_writes_after_a_missed_lookup_in_the_same_process_still_merge(tmp_path):
    store = _store(tmp_path)
    assert store.get(_key("t"), ["k1"]) is None  # no entry yet
    _put(store, {"k1": _numbers(0)}, tokens="t")
    _put(store, {"k2": _numbers(1)}, tokens="t")  # the entry exists now: k1 is kept
    got = store.get(_key("t"), ["k1", "k2"])
    assert [g.hits.tobytes() for g in got] == [_numbers(0).hits.tobytes(),
                                               _numbers(1).hits.tobytes()]


def test_numbers_and_attention_share_one_entry_and_each_write_keeps_the_other(tmp_path):
    store = _store(tmp_path)
    _put(store, {"k1": _numbers(0)})
    forward = store.forward
    other = np.random.default_rng(8).random((1, 9, 9), dtype=np.float32)
    forward.put(_key(), [(2, 3)], other)  # a figure's run: another head, scores untouched
    assert store.get(_key(), ["k1"])[0].n == _numbers(0).n
    assert forward.get(_key(), [(0, 0), (2, 3)], 9).tobytes() == \
        np.concatenate([ATTENTIONS, other]).tobytes()
    assert len(forward) == 1


def test_scores_from_other_scoring_code_are_invalid_but_the_attention_stays(tmp_path, monkeypatch):
    from headprobe.engine import scores

    store = _store(tmp_path)
    _put(store, {"k1": _numbers(0)})
    monkeypatch.setattr(scores, "scoring_digest", lambda: "0" * 64)  # the code was edited
    assert store.get(_key(), ["k1"]) is None
    assert store.stats.invalid == 1
    assert store.forward.get(_key(), [(0, 0)], 9).tobytes() == ATTENTIONS.tobytes()
    _put(store, {"k2": _numbers(1)})  # rewritten under the new digest, without the stale k1
    assert store.get(_key(), ["k1"]) is None
    assert store.get(_key(), ["k2"]) is not None


def test_a_disabled_store_reads_and_writes_nothing(tmp_path):
    _put(_store(tmp_path), {"k": _numbers(0)})
    disabled = _store(tmp_path, enabled=False)
    assert disabled.get(_key(), ["k"]) is None
    _put(_store(tmp_path / "other", enabled=False), {"k": _numbers(0)})
    assert not (tmp_path / "other").exists()
