"""headprobe's cache is the user's own: it holds their sentences (the forward cache's entries,
hypothesis's examples). After a real `headprobe check` under the usual umask (022), every folder
headprobe created is 0700 and every file it wrote 0600, SQLite's -wal and -shm included; a cache
folder the user made keeps its mode, and an older headprobe's world-readable files are tightened.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from check_runner import check_subprocess, write_project

CLAIMS = """
sentences:
  plain:
    - The cat sat on the mat.
    - A dog sat.
  drawn:
    template: "The {animal} sat on the {thing}."
    slots:
      animal: [cat, dog, horse, zebra]
      thing: [mat, rug, table, carpet, road]
    generate: 6
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: [plain, drawn]
    expect: ">= 0.0"
"""
DATABASE = "entries-v2.sqlite3"


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _ours(path, cache) -> bool:
    """Not inside hypothesis's folder: hypothesis writes its examples with its own modes, and
    the folder headprobe made for it (0700) keeps them private."""
    parts = path.relative_to(cache).parts
    return not (len(parts) > 1 and parts[0] == "hypothesis")


def _check(tmp_path, planted_model, cache):
    folder = write_project(tmp_path / "project", {"claims.yaml": CLAIMS})
    run = check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                           "-p", "no:cacheprovider", cache_dir=cache)
    assert run.rc == 0, run
    return run


def _companions_of_a_reader(database) -> dict[str, int]:
    """The modes of the -wal and -shm files SQLite makes while a connection reads ``database``
    (it gives them the database file's permissions)."""
    db = sqlite3.connect(database)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("SELECT count(*) FROM entries").fetchall()
        return {name: _mode(database.parent / (DATABASE + name)) for name in ("-wal", "-shm")}
    finally:
        db.close()


def test_a_check_leaves_every_cache_folder_0700_and_file_0600(tmp_path, planted_model,
                                                               usual_umask):
    cache = tmp_path / "cache"  # does not exist: headprobe creates it
    _check(tmp_path, planted_model, cache)
    everything = list(cache.rglob("*"))
    folders = [p for p in [cache, *everything] if p.is_dir() and _ours(p, cache)]
    files = [p for p in everything if p.is_file() and _ours(p, cache)]
    for part in ("forward", "forward/fingerprints", "jax/programs"):
        assert (cache / part).is_dir(), f"the check did not use {part}/"
    assert (cache / "forward" / DATABASE) in files
    assert {str(p): _mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    assert _companions_of_a_reader(cache / "forward" / DATABASE) == {"-wal": 0o600,
                                                                     "-shm": 0o600}


def _older_headprobes_database(database) -> None:
    """A forward cache as an older headprobe left it: 0644, with -wal and -shm (0644) of a
    process that ended without closing it."""
    code = ("import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "db.execute('PRAGMA journal_mode=WAL'); "
            "db.execute('CREATE TABLE entries (key TEXT PRIMARY KEY, header BLOB NOT NULL, "
            "data BLOB NOT NULL, seal BLOB NOT NULL)'); db.commit(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(database)], check=True)
    for name in ("", "-wal", "-shm"):
        os.chmod(str(database) + name, 0o644)


def test_a_users_cache_folder_keeps_its_mode_and_older_files_are_tightened(tmp_path,
                                                                           planted_model,
                                                                           usual_umask):
    cache = tmp_path / "cache"
    (cache / "forward").mkdir(parents=True)
    os.chmod(cache, 0o755)  # the user's own folder, shared on purpose
    os.chmod(cache / "forward", 0o755)
    database = cache / "forward" / DATABASE
    _older_headprobes_database(database)
    assert _mode(database) == 0o644 and (cache / "forward" / (DATABASE + "-wal")).exists()
    _check(tmp_path, planted_model, cache)
    assert _mode(cache) == 0o755 and _mode(cache / "forward") == 0o755  # left as they were
    assert _mode(database) == 0o600
    for name in ("-wal", "-shm"):  # where SQLite kept them
        companion = cache / "forward" / (DATABASE + name)
        assert not companion.exists() or _mode(companion) == 0o600
    for made in (cache / "jax", cache / "jax" / "programs", cache / "forward" / "fingerprints",
                 cache / "hypothesis"):
        assert _mode(made) == 0o700, made
