"""Compiled forward programs kept on disk, so that a second process neither traces nor compiles.

JAX's persistent compilation cache (``jax/`` in headprobe's cache dir) skips XLA's compile in a
second process, but JAX still traces the Flax model and lowers it for every shape before it can
look a program up: about 0.3 s per (batch rows, length) shape here, most of what a warm start
spends before its first batch. This store keeps the compiled executable itself
(`jax.experimental.serialize_executable`), one file per shape, and loads it back in ~0.05 s.

Key. SHA-256 over everything the executable depends on: the JAX and jaxlib versions, the backend
(platform, version, device kind and count, and on CPU the processor's feature flags, since XLA
compiles for the host's instruction set), a digest of the model code (`encoder.py`, `config.py`),
the config, the precision, the parameter tree's shapes and dtypes, and the call's shape and
static arguments (rows, length, depth, which outputs). The weights' values are arguments, not
part of the program, so models of the same shape share programs.

Layout. ``FOLDER/ab/cdef….hpx``: ``MAGIC``, a 4-byte little-endian header length, a JSON header
holding the key and the SHA-256 and size of the payload, then JAX's serialized executable. Writes
are atomic (temporary file + rename). A file is read only if it is a regular file of at most
`MAX_PROGRAM_BYTES`, and its payload is checked against the digest before JAX sees a byte of it:
a file that is truncated, damaged, foreign (another key inside) or cannot be loaded by this JAX
is ignored, counted in ``invalid``, reported once as a `CacheWarning` (unless it is merely from
another JAX), and replaced by a fresh compile. Temporaries a killed run left are removed.

Trust. Like JAX's own compilation cache, the files are executable code (JAX serializes them with
pickle, and the digest guards against damage, not against someone who can write the folder):
the cache folder must be as trusted as JAX's own, written only by headprobe, and never shared
with people you would not run code from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headprobe.atomic import write_atomic
from headprobe.cache.safety import (
    PROBLEMS,
    NotARegularFile,
    Problems,
    read_cache_file,
    remove_special,
    remove_stale_temporaries,
)

MAGIC = b"HPX2"
FORMAT_VERSION = 2  # 1: no payload digest
SUFFIX = ".hpx"
MAX_PROGRAM_BYTES = 256 << 20
MAX_HEADER_BYTES = 1 << 16
_KIND = "compiled-program store"
CODE_FILES = ("encoder.py", "config.py")


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _cpu_features() -> str:
    """The host's CPU feature flags (XLA:CPU compiles for them), hashed; where /proc/cpuinfo
    has none, the processor or machine name."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return hashlib.sha256(" ".join(sorted(line.split(":", 1)[1].split())).encode()
                                  ).hexdigest()[:16]
    return platform.machine()


def environment() -> dict[str, Any]:
    """What, besides the call itself, a compiled program depends on."""
    import jax
    import jaxlib

    devices = jax.local_devices()
    backend = devices[0].client
    return {"format": FORMAT_VERSION, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "platform": backend.platform, "platform_version": backend.platform_version,
            "device_kind": devices[0].device_kind, "devices": len(devices),
            "cpu": _cpu_features() if backend.platform == "cpu" else "", "code": _code_digest()}


_JAX_CACHE_HITS = [0]


def _count_jax_cache_hit(event: str, **_: str | int) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _JAX_CACHE_HITS[0] += 1


@functools.lru_cache(maxsize=1)
def _listen_for_jax_cache_hits() -> None:
    import jax

    jax.monitoring.register_event_listener(_count_jax_cache_hit)


def jax_cache_hits() -> int:
    """How many programs JAX's persistent compilation cache has served in this process.

    An executable that JAX read back from its cache serializes without its code (running it after
    `deserialize_and_load` fails with "Function ... not found"), so the store keeps only
    programs compiled afresh: compare this count before and after a compile."""
    _listen_for_jax_cache_hits()
    return _JAX_CACHE_HITS[0]


def program_key(fields: Mapping[str, Any]) -> str:
    """SHA-256 hex of `environment` plus ``fields`` (JSON-serialisable)."""
    blob = json.dumps({**environment(), **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_program(key: str, executable: bytes) -> bytes:
    header = json.dumps({"key": key, "size": len(executable),
                         "sha256": hashlib.sha256(executable).hexdigest()}).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + executable


def decode_program(blob: bytes, key: str) -> bytes | None:
    """The executable bytes if ``blob`` is a whole, undamaged entry for ``key``, else None."""
    if len(blob) < 8 or blob[:4] != MAGIC:
        return None
    (size,) = struct.unpack("<I", blob[4:8])
    if size > MAX_HEADER_BYTES:
        return None
    try:
        header = json.loads(blob[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("key") != key:
        return None
    executable = blob[8 + size:]
    if not executable or header.get("size") != len(executable) or \
            header.get("sha256") != hashlib.sha256(executable).hexdigest():
        return None
    return executable


class ProgramStore:
    """Serialized executables in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, problems: Problems = PROBLEMS) -> None:
        self.folder = Path(folder)
        self.problems = problems
        self.loaded = 0
        self.written = 0
        self.invalid = 0
        self._swept: set[Path] = set()  # folders whose stale temporaries are gone

    def path_for(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key[2:]}{SUFFIX}"

    def load(self, key: str, in_tree: Any, out_tree: Any) -> Callable[..., Any] | None:
        """The compiled program stored under ``key``, or None (missing or unusable)."""
        path = self.path_for(key)
        self._sweep(path.parent)
        try:
            blob = read_cache_file(path, MAX_PROGRAM_BYTES)
        except NotARegularFile:
            remove_special(path)
            self._damaged(path, "not a regular file")
            return None
        except ValueError:
            self._damaged(path, "larger than a program can be")
            return None
        except OSError:
            return None
        if blob is None:
            return None
        executable = decode_program(blob, key)
        if executable is None:
            self._damaged(path, "its digest or key does not match")
            return None
        try:
            from jax.experimental.serialize_executable import deserialize_and_load

            program = deserialize_and_load(executable, in_tree, out_tree)
        except Exception:
            self.invalid += 1
            return None
        self.loaded += 1
        return program

    def _damaged(self, path: Path, why: str) -> None:
        self.invalid += 1
        self.problems.damaged(_KIND, path, why)

    def _sweep(self, folder: Path) -> None:
        if folder not in self._swept:
            self._swept.add(folder)
            remove_stale_temporaries(folder)

    def discard(self, key: str) -> None:
        """Forget a stored program that loaded but failed to run (counted in ``invalid``)."""
        self.invalid += 1
        self.loaded -= 1
        try:
            self.path_for(key).unlink()
        except OSError:
            pass

    def program(self, fields: Mapping[str, Any], compile_now: Callable[[], Any], *,
                in_tree: Any, out_tree: Any) -> tuple[Callable[..., Any], str | None]:
        """The program for ``fields`` (the call's shape and static arguments, see
        `program_key`): ``(program, its key)`` when it was loaded from the store, else
        ``(compile_now(), None)``, stored when JAX compiled it afresh."""
        key = program_key(fields)
        program = self.load(key, in_tree, out_tree)
        if program is not None:
            return program, key
        served_before = jax_cache_hits()
        compiled = compile_now()
        if jax_cache_hits() == served_before:  # only a fresh compile serializes whole
            self.save(key, compiled, in_tree, out_tree)
        return compiled, None

    def save(self, key: str, compiled: Any, in_tree: Any, out_tree: Any) -> bool:
        """Store ``compiled`` (a `jax.stages.Compiled`) under ``key``; False when this backend
        cannot serialize it or its trees are not the ones `load` will be given."""
        try:
            from jax.experimental.serialize_executable import serialize

            executable, got_in, got_out = serialize(compiled)
        except Exception:
            return False
        if got_in != in_tree or got_out != out_tree:
            return False
        try:
            write_atomic(self.path_for(key), encode_program(key, executable))
        except OSError:
            return False
        self.written += 1
        return True
