"""The program key that seals compiled executables (headprobe.model.sealing, docs/cache.md):
made once, private, outside the cache folder; a seal verifies only with the key that made it."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from headprobe.errors import CacheWarning
from headprobe.model import sealing
from headprobe.paths import PROGRAM_KEY_ENV, program_key_path


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A user config dir of its own and the default key path under it."""
    sealing._user_key.cache_clear()
    monkeypatch.delenv(PROGRAM_KEY_ENV, raising=False)
    monkeypatch.delenv("HEADPROBE_NO_EXECUTABLES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path / "config"
    sealing._user_key.cache_clear()


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_key_is_made_once_0600_in_a_0700_folder_under_the_config_dir(config, tmp_path):
    key = sealing.user_key([tmp_path / "cache"])
    path = config / "headprobe" / "program-key"
    assert program_key_path() == path and path.read_bytes() == key and len(key) == 32
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["program-key"]  # no temporary left
    sealing._user_key.cache_clear()
    assert sealing.user_key([tmp_path / "cache"]) == key  # read back, not made again
    assert not (tmp_path / "cache").exists()


def test_concurrent_creators_all_get_the_first_ones_key(tmp_path):
    path = tmp_path / "config" / "headprobe" / "program-key"
    start, keys = threading.Barrier(8), []

    def create() -> None:
        start.wait()
        keys.append(sealing.create_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and set(keys) == {path.read_bytes()}
    assert sorted(p.name for p in path.parent.iterdir()) == ["program-key"]


@pytest.mark.parametrize("where", ["key file", "config dir"])
def test_a_key_inside_the_cache_folder_is_refused_and_never_made(config, tmp_path,
                                                                 monkeypatch, where):
    cache = tmp_path / "cache"
    if where == "key file":
        monkeypatch.setenv(PROGRAM_KEY_ENV, str(cache / "keys" / "program-key"))
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(cache / "config"))
    with pytest.warns(CacheWarning, match="lies inside the cache folder"):
        assert sealing.user_key([cache / "jax", cache]) is None
    assert not cache.exists()


def test_a_key_folder_that_links_into_the_cache_folder_is_refused(config, tmp_path):
    cache = tmp_path / "cache"
    (cache / "inside").mkdir(parents=True)
    config.mkdir()
    (config / "headprobe").symlink_to(cache / "inside")
    with pytest.warns(CacheWarning, match="lies inside the cache folder"):
        assert sealing.user_key([cache]) is None
    assert list((cache / "inside").iterdir()) == []


@pytest.mark.parametrize("how, why", [("readable by others", "others may read or write it"),
                                      ("short", "it holds 31 bytes"),
                                      ("a link", "cannot be opened")])
def test_a_key_file_that_is_not_private_and_whole_is_refused(config, tmp_path, how, why):
    path = config / "headprobe" / "program-key"
    path.parent.mkdir(parents=True)
    if how == "a link":
        (tmp_path / "elsewhere").write_bytes(b"k" * 32)
        path.symlink_to(tmp_path / "elsewhere")
    else:
        path.write_bytes(b"k" * (31 if how == "short" else 32))
        path.chmod(0o644 if how == "readable by others" else 0o600)
    with pytest.warns(CacheWarning, match=why):
        assert sealing.user_key([tmp_path / "cache"]) is None


def test_no_executables_means_no_key_and_no_file(config, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADPROBE_NO_EXECUTABLES", "1")
    assert sealing.user_key([tmp_path / "cache"]) is None
    assert not config.exists()


def test_a_seal_verifies_only_with_its_key_and_name():
    key, other, name, payload = b"k" * 32, b"o" * 32, "ab" * 32, b"\x80\x04 pickled"
    blob = sealing.seal(key, name, payload)
    assert sealing.unseal(key, name, blob) == payload
    assert sealing.unseal(key, "cd" * 32, blob) is None  # another program's
    flipped = blob[:-3] + bytes([blob[-3] ^ 1]) + blob[-2:]
    assert sealing.unseal(key, name, flipped) is None
    with pytest.raises(sealing.Foreign):  # sealed with another key, named as such
        sealing.unseal(key, name, sealing.seal(other, name, payload))
    # Another key's tag under this key's id: a forgery, not merely foreign.
    forged = sealing.seal(other, name, payload).replace(
        sealing.key_id(other).encode(), sealing.key_id(key).encode())
    assert sealing.unseal(key, name, forged) is None
