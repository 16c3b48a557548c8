"""A damaged cache costs time, never correctness: `headprobe check` over a cache whose files were
damaged (a flipped bit where data is read, truncation, garbage, a special file in place of a
file) reports exactly what a clean run reports, and says once what it found.

Each case copies a warm cache made by one cold run, damages one file of one kind (the forward
cache's database, a compiled program, the fingerprint memo), and runs the real command twice:
the first run reports the damage once, the second finds the cache repaired."""

from __future__ import annotations

import os
import shutil

import pytest
from check_runner import check_subprocess, write_project

CLAIMS = """
sentences:
  plain:
    - The cat sat on the mat.
    - A dog sat.
    - Then I picked up a red rug from the table.
    - The zebra sat on the rug.
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: ">= 0.2"
    baseline: offset
  - id: layer-two
    claim: "L2H*: token -> cls"
    measure: mass
    over: plain
    expect: ">= 0.0"
  - id: fails
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
"""


@pytest.fixture(scope="module")
def warm(tmp_path_factory, planted_model):
    """A project, the report of a clean cold run, and the warm cache it left."""
    folder = write_project(tmp_path_factory.mktemp("project"), {"claims.yaml": CLAIMS})
    cache = tmp_path_factory.mktemp("pristine-cache")
    clean = check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                             "-p", "no:cacheprovider", cache_dir=cache)
    assert clean.rc == 1, clean  # 'fails' fails on purpose
    return folder, cache, _comparable(clean.report())


def _comparable(report: dict) -> list[dict]:
    return report["results"]


def _flip(path, at: int) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[:at] + bytes([blob[at] ^ 0x02]) + blob[at + 1:])


def _database(cache):
    return cache / "forward" / "entries-v2.sqlite3"


def _each_program(damage):
    """``damage`` done to every stored program file: the traced programs and the executables
    sealed beside them (a damaged traced program is not read while its executable loads)."""
    def damage_all(cache) -> None:
        for path in sorted((cache / "jax" / "programs").glob("??/*")):
            if path.suffix in (".stablehlo", ".executable"):
                damage(path)
    return damage_all


def _memo(cache):
    (memo,) = (cache / "forward" / "fingerprints").iterdir()
    return memo


def _special(path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


def _damage_header_digest(cache) -> None:
    """Flip a bit inside an entry's header, in the digest of its data (read on every lookup)."""
    path = _database(cache)
    at = path.read_bytes().index(b'"data_sha256": "') + len(b'"data_sha256": "') + 5
    _flip(path, at)


DAMAGES = {
    "database: a bit in an entry header": lambda c: _damage_header_digest(c),
    "database: truncated": lambda c: _database(c).write_bytes(_database(c).read_bytes()[:5000]),
    "database: garbage": lambda c: _database(c).write_bytes(os.urandom(40_000)),
    "database: fifo": lambda c: _special(_database(c), "fifo"),
    "program: a bit of the payload": _each_program(lambda p: _flip(p, p.stat().st_size // 2)),
    "program: truncated": _each_program(lambda p: p.write_bytes(p.read_bytes()[:64])),
    "program: link to /dev/zero": _each_program(lambda p: _special(p, "zero")),
    "memo: a bit of the fingerprint": lambda c: _flip(
        _memo(c), _memo(c).read_bytes().index(b"sha256:") + 12),
    "memo: garbage": lambda c: _memo(c).write_bytes(os.urandom(300)),
    "memo: fifo": lambda c: _special(_memo(c), "fifo"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_cache_file_gives_the_clean_report_and_one_warning(warm, tmp_path, damage,
                                                                      planted_model):
    folder, pristine, clean = warm
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache, symlinks=True)
    DAMAGES[damage](cache)
    # Compiled programs are used only when the model runs: not on a warm run.
    uncached = ("--no-cache",) if damage.startswith("program") else ()
    run = check_subprocess(folder, "claims.yaml", "--model", str(planted_model), *uncached,
                           "-p", "no:cacheprovider", cache_dir=cache)
    assert run.rc == 1, run
    assert _comparable(run.report()) == clean
    assert run.output.count("CacheWarning") == 1, run
    assert "held damaged data" in run.output and "Traceback" not in run.output
    again = check_subprocess(folder, "claims.yaml", "--model", str(planted_model), *uncached,
                             "-p", "no:cacheprovider", cache_dir=cache)
    assert _comparable(again.report()) == clean
    assert "CacheWarning" not in again.output, again  # repaired by the run before
