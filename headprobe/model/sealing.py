"""The user's program key, and compiled executables sealed with it (docs/cache.md, "Trust").

A compiled executable is machine code that JAX loads with pickle, so the program store keeps one
only under a seal that whoever can write the cache folder cannot make: an HMAC-SHA256 computed
with a key that never lives in the cache folder.

Key. 32 random bytes (`secrets.token_bytes`) in `headprobe.paths.program_key_path`
(``~/.config/headprobe/program-key``, or ``$HEADPROBE_PROGRAM_KEY_FILE``). The first process that
needs it writes it whole to a temporary file (``O_CREAT | O_EXCL``, mode 0600, in a folder
created 0700) and links it into place, which fails if another process got there first: then the
winner's key is read. A key file is used only if it is a regular file of this user's, exactly
32 bytes long, that no one else may read or write; and never if it lies inside a cache folder
(a key that the cache's writers could read or replace seals nothing). Where there is no usable
key, executables are neither read nor written (`user_key` says why, once, as a `CacheWarning`,
unless the key merely could not be created: a read-only home).

Seal. ``MAGIC``, a 4-byte little-endian header length, a JSON header (the executable's key,
the id of the program key that sealed it, the payload's size and its tag), then the payload.
The tag is HMAC-SHA256 with the program key over `DOMAIN`, the executable's key (a SHA-256 over
everything the executable depends on: JAX and jaxlib versions, backend, device kind, CPU
features, XLA flags, model code, config and the call's shapes) and the payload's size and bytes.
`unseal` checks it with `hmac.compare_digest` before anything reads the payload. The key id, a
digest of the key, tells a file sealed with another key (another machine's, a former CI
runner's: `Foreign`) from one whose tag is wrong (damaged or forged).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from headprobe.cachefiles import private_folder
from headprobe.errors import CacheWarning
from headprobe.paths import PROGRAM_KEY_ENV, executables_disabled, program_key_path

KEY_BYTES = 32
MAGIC = b"HPE1"
DOMAIN = b"headprobe program store: compiled executable, v1\0"
MAX_HEADER_BYTES = 1 << 12
_KEY_ID_DOMAIN = b"headprobe program key id\0"


class KeyRefused(Exception):
    """The key file cannot be used (why: the message); nothing is sealed or unsealed."""


class Foreign(Exception):
    """An executable sealed with another program key: not read, not damage."""


# ---- the key file ----------------------------------------------------------------------------


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies under it, symbolic links resolved."""
    resolved, top = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return resolved == top or top in resolved.parents


def read_key(path: Path) -> bytes | None:
    """The key in ``path``, or None when there is no such file. Raises `KeyRefused` when the
    file is not a private regular file of this user's holding exactly `KEY_BYTES` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
        getattr(os, "O_BINARY", 0)
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KeyRefused(f"it cannot be opened ({error.strerror}; a symbolic link is not "
                         f"followed)") from error
    try:
        info = os.fstat(handle)
        _check_private(info)
        data = os.read(handle, KEY_BYTES + 1)
    finally:
        os.close(handle)
    if len(data) != KEY_BYTES:
        raise KeyRefused(f"it holds {len(data)} bytes, not {KEY_BYTES}")
    return data


def _check_private(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyRefused("it is not a regular file")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise KeyRefused(f"it belongs to user id {info.st_uid}, not to you")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyRefused(f"others may read or write it (mode {stat.S_IMODE(info.st_mode):o}; "
                         f"it must be 600)")


def create_key(path: Path) -> bytes:
    """``path``'s key, made now (32 random bytes, mode 0600, its folder 0700 if missing) unless
    another process made it first. Raises OSError when it cannot be written, `KeyRefused` as
    `read_key` does."""
    private_folder(path.parent)
    key = secrets.token_bytes(KEY_BYTES)
    temporary = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(8)}-{path.name}")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
    try:
        try:
            os.write(handle, key)
            os.fsync(handle)
        finally:
            os.close(handle)
        _publish(temporary, path)
    finally:
        os.unlink(temporary)
    found = read_key(path)
    if found is None:
        raise FileNotFoundError(2, "the key file went away", str(path))
    return found


def _publish(temporary: Path, path: Path) -> None:
    """Give the whole file ``temporary`` the name ``path`` unless ``path`` exists (then the
    process that made it first wins): a hard link, atomic; where the file system has none, a
    copy through ``O_CREAT | O_EXCL``."""
    try:
        os.link(temporary, path)
        return
    except FileExistsError:
        return
    except OSError:  # no hard links here (some network and FUSE file systems)
        pass
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
    except FileExistsError:
        return
    try:
        os.write(handle, Path(temporary).read_bytes())
        os.fsync(handle)
    finally:
        os.close(handle)


def user_key(cache_folders: Iterable[Path]) -> bytes | None:
    """The user's program key (made if missing), or None when executables are off
    (``$HEADPROBE_NO_EXECUTABLES``), the key file lies inside one of ``cache_folders``, cannot
    be created or is refused. Says why once per process, as a `CacheWarning`, except for off
    and cannot be created."""
    return _user_key(program_key_path(), tuple(Path(folder) for folder in cache_folders),
                     executables_disabled())


@functools.lru_cache(maxsize=8)
def _user_key(path: Path, cache_folders: tuple[Path, ...], disabled: bool) -> bytes | None:
    if disabled:
        return None
    for folder in cache_folders:
        if inside(path, folder):
            _refused(path, f"it lies inside the cache folder {folder}, which others (a "
                           f"restored CI cache) may write")
            return None
    try:
        key = read_key(path)
        return key if key is not None else create_key(path)
    except KeyRefused as why:
        _refused(path, str(why))
        return None
    except OSError:  # a read-only home, no such folder: traced programs only, silently
        return None


def _refused(path: Path, why: str) -> None:
    warnings.warn(CacheWarning(
        f"headprobe's program key {path} is not used: {why}. Compiled executables are neither "
        f"read nor kept, so each process compiles its programs (results are unaffected). Set "
        f"{PROGRAM_KEY_ENV} to a file outside the cache folder, or delete the file to get a "
        f"new key; see docs/cache.md."), stacklevel=4)


# ---- sealed files ----------------------------------------------------------------------------


def key_id(key: bytes) -> str:
    """Names ``key`` without giving it away (an HMAC of a fixed string)."""
    return hmac.new(key, _KEY_ID_DOMAIN, hashlib.sha256).hexdigest()[:16]


def tag(key: bytes, name: str, payload: bytes) -> str:
    """HMAC-SHA256 with ``key`` over `DOMAIN`, ``name`` (the executable's key) and ``payload``."""
    mac = hmac.new(key, DOMAIN, hashlib.sha256)
    mac.update(name.encode() + b"\0" + struct.pack("<Q", len(payload)))
    mac.update(payload)
    return mac.hexdigest()


def seal(key: bytes, name: str, payload: bytes) -> bytes:
    """The file that holds ``payload`` under ``name``, sealed with ``key``."""
    return frame(MAGIC, {"key": name, "key_id": key_id(key), "size": len(payload),
                         "hmac": tag(key, name, payload)}, payload)


def unseal(key: bytes, name: str, blob: bytes) -> bytes | None:
    """The payload of ``blob`` if it is a file `seal` made with ``key`` for ``name``; None when it
    is not (damaged, forged, for another name); raises `Foreign` when another key sealed it."""
    framed = unframe(blob, MAGIC, name, MAX_HEADER_BYTES)
    if framed is None:
        return None
    header, payload = framed
    claimed = header.get("hmac")
    if header.get("key_id") != key_id(key) and isinstance(header.get("key_id"), str):
        raise Foreign(header["key_id"])
    if not isinstance(claimed, str) or header.get("size") != len(payload) or \
            not hmac.compare_digest(claimed.encode(), tag(key, name, payload).encode()):
        return None
    return payload


def frame(magic: bytes, header: dict[str, Any], payload: bytes) -> bytes:
    """A stored file: ``magic`` (4 bytes), the JSON ``header``'s length (uint32 LE), the header,
    the payload."""
    text = json.dumps(header).encode()
    return magic + struct.pack("<I", len(text)) + text + payload


def unframe(blob: bytes, magic: bytes, name: str,
            max_header: int) -> tuple[dict[str, Any], bytes] | None:
    """``(header, payload)`` of a `frame` file whose header is a JSON object of at most
    ``max_header`` bytes naming ``name`` as its ``key``; None for anything else."""
    if len(blob) < 8 or blob[:4] != magic:
        return None
    (size,) = struct.unpack("<I", blob[4:8])
    if size > max_header:
        return None
    try:
        header = json.loads(blob[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("key") != name:
        return None
    return header, blob[8 + size:]
