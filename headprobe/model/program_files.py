"""The files of the program store (`headprobe.model.programs`): where each program lives, its
bytes read back within bounds and verified, written atomically and privately. Bytes only: no JAX.

Layout. ``FOLDER/ab/cdef….stablehlo``: ``MAGIC``, a 4-byte little-endian header length, a JSON
header holding the key and the SHA-256 and size of the payload, then the serialized program
(`encode_program`). ``FOLDER/ab/cdef….executable``: `headprobe.model.sealing.seal`'s file, under
`executable_key`. Writes are atomic (temporary file + rename), owner-only (0600, folders 0700). A
file is read only if it is a regular file of at most `MAX_PROGRAM_BYTES`, and its payload is
checked against its digest (traced programs) or its seal (executables) before anyone sees a byte
of it. A file that fails is counted in ``invalid`` and reported once as a `CacheWarning`; an
executable sealed with another key is counted in ``foreign``. Temporaries a killed run left and
the pickled executables that earlier versions stored unsealed (``*.hpx``) are removed from the
folders visited.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from pathlib import Path

from headprobe.atomic import write_atomic
from headprobe.cachefiles import (
    PROBLEMS,
    TEMPORARY_PREFIX,
    NotARegularFile,
    Problems,
    private_folder,
    read_cache_file,
    remove_special,
    remove_stale_temporaries,
)
from headprobe.model import sealing

MAGIC = b"HPX3"
FORMAT_VERSION = 3  # 1: pickled executable, no digest; 2: pickled executable (*.hpx)
SUFFIX = ".stablehlo"
EXECUTABLE_SUFFIX = ".executable"  # sealed with the user's key (`headprobe.model.sealing`)
EXECUTABLE_FORMAT = 1
LEGACY_SUFFIX = ".hpx"  # pickled executables of format 1 and 2: never read, removed
MAX_PROGRAM_BYTES = 256 << 20
MAX_HEADER_BYTES = 1 << 16
_KIND = "compiled-program store"


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


def executable_key(key: str) -> str:
    """The key of the executable compiled from the program under ``key``: SHA-256 of that key,
    what XLA compiles for (the CPU's features on CPU, ``XLA_FLAGS``) and the format."""
    blob = json.dumps({"program": key, "format": EXECUTABLE_FORMAT, "cpu": _cpu_features(),
                       "xla_flags": os.environ.get("XLA_FLAGS", "")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_program(key: str, payload: bytes) -> bytes:
    return sealing.frame(MAGIC, {"key": key, "size": len(payload),
                                 "sha256": hashlib.sha256(payload).hexdigest()}, payload)


def decode_program(blob: bytes, key: str) -> bytes | None:
    """The payload if ``blob`` is a whole, undamaged entry for ``key``, else None."""
    framed = sealing.unframe(blob, MAGIC, key, MAX_HEADER_BYTES)
    if framed is None:
        return None
    header, payload = framed
    if not payload or header.get("size") != len(payload) or \
            header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None
    return payload



class ProgramFiles:
    """The store's files in ``folder`` (see the module docstring); ``problems`` hears of every
    damaged one."""

    def __init__(self, folder: Path, problems: Problems = PROBLEMS) -> None:
        self.folder = Path(folder)
        self.problems = problems
        self.invalid = 0
        self.foreign = 0  # executables sealed with another key: replaced
        self._swept: set[Path] = set()  # folders whose stale temporaries are gone

    def path_for(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key[2:]}{SUFFIX}"

    def executable_path_for(self, key: str) -> Path:
        """Where the executable compiled from the program under ``key`` is kept."""
        name = executable_key(key)
        return self.folder / name[:2] / f"{name[2:]}{EXECUTABLE_SUFFIX}"

    def _read(self, path: Path) -> bytes | None:
        """The bytes of the cache file ``path``, or None (missing, or not a file to read:
        reported)."""
        self.sweep(path.parent)
        try:
            return read_cache_file(path, MAX_PROGRAM_BYTES)
        except NotARegularFile:
            remove_special(path)
            self.damaged(path, "not a regular file")
        except ValueError:
            self.damaged(path, "larger than a program can be")
        except OSError:
            pass
        return None

    def read(self, key: str) -> bytes | None:
        """The verified payload of the traced program stored under ``key``, or None (missing
        or damaged)."""
        path = self.path_for(key)
        blob = self._read(path)
        if blob is None:
            return None
        payload = decode_program(blob, key)
        if payload is None:
            self.damaged(path, "its digest or key does not match")
        return payload

    def read_executable(self, key: str, sealing_key: bytes) -> bytes | None:
        """The payload of the executable for ``key`` if its seal verifies with ``sealing_key``,
        else None (missing, damaged, forged: reported; sealed with another key: counted in
        ``foreign``)."""
        path = self.executable_path_for(key)
        blob = self._read(path)
        if blob is None:
            return None
        try:
            payload = sealing.unseal(sealing_key, executable_key(key), blob)
        except sealing.Foreign:
            self.foreign += 1
            return None
        if payload is None:
            self.damaged(path, "its seal does not verify with your program key")
        return payload

    def write(self, key: str, payload: bytes) -> bool:
        """Store the traced program ``payload`` under ``key``; False when it cannot be
        written."""
        path = self.path_for(key)
        try:
            private_folder(path.parent)
            write_atomic(path, encode_program(key, payload))
        except OSError:
            return False
        return True

    def write_executable(self, key: str, sealing_key: bytes, payload: bytes) -> bool:
        """Seal the executable ``payload`` with ``sealing_key`` and store it for ``key``; False
        when it cannot be written."""
        path = self.executable_path_for(key)
        try:
            private_folder(path.parent)
            write_atomic(path, sealing.seal(sealing_key, executable_key(key), payload))
        except OSError:
            return False
        return True

    def remove(self, key: str) -> None:
        """Remove the traced program and the executable of ``key``, where they are."""
        for path in (self.path_for(key), self.executable_path_for(key)):
            try:
                path.unlink()
            except OSError:
                pass

    def damaged(self, path: Path, why: str) -> None:
        self.invalid += 1
        self.problems.damaged(_KIND, path, why)

    def sweep(self, folder: Path) -> None:
        """Once per folder and process: remove stale temporaries and legacy executables."""
        if folder in self._swept:
            return
        self._swept.add(folder)
        remove_stale_temporaries(folder)
        try:
            legacy = [entry.path for entry in os.scandir(folder)
                      if entry.name.endswith(LEGACY_SUFFIX)
                      and not entry.name.startswith(TEMPORARY_PREFIX)]
        except OSError:
            return
        for path in legacy:
            try:
                os.unlink(path)
            except OSError:
                pass
