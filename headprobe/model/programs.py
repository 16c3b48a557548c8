"""Forward programs kept on disk, so that a second process neither traces nor (with the user's
program key) compiles them.

Before XLA compiles the forward pass, JAX traces the Flax model and lowers it for every
(batch rows, length) shape, then XLA compiles it (docs/performance.md has what each costs). This
store keeps, one file of each per shape:

* the traced program, as `jax.export` serializes it: StableHLO (MLIR bytecode) in a flatbuffer,
  with the argument and result trees as plain data (``*.stablehlo``). Nothing in it is pickled
  or machine code, so it cannot run code when read; what it describes is a computation on the
  call's arrays. A second process reads it back, checks it and compiles it;
* the compiled executable (``*.executable``: `jax.experimental.serialize_executable`, a pickle
  holding XLA's machine code), sealed with an HMAC under the user's program key, which lives
  outside the cache folder (`headprobe.model.sealing`). It is read only when its seal verifies
  (before anything unpickles it), and then neither tracing nor XLA's compile is needed.
  Without a usable key (``$HEADPROBE_NO_EXECUTABLES=1``, a key file refused), executables
  are neither read nor written: the traced programs alone.

Key. SHA-256 over everything the program depends on: the JAX and jaxlib versions, the backend
(platform, version, device kind and count), a digest of the model code (`encoder.py`,
`config.py`, `blocks.py`, `encoders/`), the config, the precision, the parameter tree's shapes
and dtypes, and the call's shape and static arguments (rows, length, depth, which outputs).
The weights' values are arguments, not part of the program, so models of the same shape share
programs. An executable's key adds what XLA compiled it for (`executable_key`): the CPU's
feature flags and ``XLA_FLAGS``.

Layout, bounded reads and verification: `headprobe.model.program_files`.

Checks (`check_program`). Before a traced program is compiled it must be one for this call: one
device, this backend's platform, the call's argument tree with its shapes and dtypes, the
expected result tree of float32 arrays, no effects or disabled safety checks, and nothing that
reaches outside the computation: no custom call (the only way StableHLO names native code: host
callbacks, library kernels), no infeed, outfeed, send or recv. A file that is truncated,
damaged, foreign or fails a check is ignored, counted in ``invalid``, reported once as a
`CacheWarning`, and replaced by a fresh trace (an executable sealed with another key, another
machine's or a former CI runner's, is replaced without a warning). Temporaries a killed run
left and the pickled executables that earlier versions stored unsealed (``*.hpx``) are removed
from the folders the store visits.

Trust. The traced programs' digest guards against damage, not forgery: whoever can write the
folder can write a program with a matching digest. Such a program can make the forward pass
compute other numbers (wrong attention, so wrong results), or fail to compile; it cannot run
code. An executable is machine code, so it is run only when sealed with the user's key, which
the cache's writers do not have; it is what XLA compiled from a traced program that passed the
checks (see docs/cache.md). headprobe does not turn JAX's own persistent compilation cache on:
its entries are machine code under no seal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from headprobe.cachefiles import (
    PROBLEMS,
    Problems,
)
from headprobe.model import sealing
from headprobe.model.program_files import FORMAT_VERSION, ProgramFiles
from headprobe.paths import cache_root

#: The model code a program is traced from (relative to this package): the loop, the options,
#: what bodies share, and every module of `encoders/` (each family's body): a change to any of
#: them makes every stored program stale.
CODE_FILES = ("encoder.py", "config.py", "blocks.py", "encoders/*.py")
# Operations that reach outside the computation: native code by name (custom calls: host
# callbacks, library kernels) and the host's data channels.
_OUTSIDE = re.compile(r"custom_call|infeed|outfeed|\b(?:stablehlo|mhlo)\.(?:send|recv)\b")
# The custom calls that are XLA operations in disguise, as MLIR prints them: older JAX (0.4.31)
# writes erf (the exact GELU's) as this call, which XLA turns into its own erf operation.
_XLA_OPERATIONS = re.compile(r"custom_call @mhlo\.erf\(")


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def code_files() -> list[Path]:
    """The files of `CODE_FILES`, in order."""
    here = Path(__file__).resolve().parent
    return [path for pattern in CODE_FILES for path in sorted(here.glob(pattern))]


def environment() -> dict[str, Any]:
    """What, besides the call itself, a stored program depends on."""
    import jax
    import jaxlib

    devices = jax.local_devices()
    backend = devices[0].client
    return {"format": FORMAT_VERSION, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "platform": backend.platform, "platform_version": backend.platform_version,
            "device_kind": devices[0].device_kind, "devices": len(devices),
            "code": _code_digest()}


def program_key(fields: Mapping[str, Any]) -> str:
    """SHA-256 hex of `environment` plus ``fields`` (JSON-serialisable)."""
    blob = json.dumps({**environment(), **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# ---- jax.export: the program's form on disk ------------------------------------------------


def export_program(jitted: Callable[..., Any], args: Sequence[Any]) -> Any:
    """Trace and lower ``jitted`` (a `jax.jit` function) for ``args``: a `jax.export.Exported`."""
    from jax import export as jax_export

    return jax_export.export(jitted)(*args)  # type: ignore[arg-type]


def serialize_program(exported: Any) -> bytes:
    """The bytes of a `jax.export.Exported` (a flatbuffer: data, no code)."""
    return bytes(exported.serialize())


def deserialize_program(payload: bytes) -> Any:
    """A `jax.export.Exported` from `serialize_program`'s bytes (raises on malformed bytes)."""
    from jax import export as jax_export

    return jax_export.deserialize(bytearray(payload))


def compile_program(exported: Any, args: Sequence[Any]) -> Callable[..., Any]:
    """XLA's executable of ``exported`` for ``args`` (arrays or `jax.ShapeDtypeStruct`s)."""
    import jax

    return jax.jit(exported.call).lower(*args).compile()


_JAX_CACHE_HITS = [0]


def _count_jax_cache_hit(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _JAX_CACHE_HITS[0] += 1


@functools.lru_cache(maxsize=1)
def _listen_for_jax_cache_hits() -> None:
    import jax

    jax.monitoring.register_event_listener(_count_jax_cache_hit)


def jax_cache_hits() -> int:
    """How many programs JAX's persistent compilation cache (if the user turned it on) has
    served in this process. An executable JAX read back from its cache serializes without its
    code (running it fails with "Function ... not found"), so only executables XLA compiled
    afresh are kept: compare this count before and after a compile."""
    _listen_for_jax_cache_hits()
    return _JAX_CACHE_HITS[0]


def serialize_executable(compiled: Any, args: Sequence[Any], out_tree: Any) -> bytes | None:
    """The bytes of ``compiled`` (a `jax.stages.Compiled` of a call with ``args`` returning
    ``out_tree``), or None when this backend cannot serialize it or its trees are not the ones
    `load_executable` rebuilds (the trees are never stored: the reader builds them itself)."""
    import jax
    from jax.experimental.serialize_executable import serialize

    try:
        payload, in_tree, got_out = serialize(compiled)
    except Exception:
        return None
    if in_tree != jax.tree.structure((tuple(args), {})) or got_out != out_tree:
        return None
    return bytes(payload)


def load_executable(payload: bytes, args: Sequence[Any], out_tree: Any) -> Callable[..., Any]:
    """The executable in `serialize_executable`'s ``payload``, loaded on this backend.

    This unpickles ``payload`` and loads machine code: call it only on bytes whose seal
    verified (`headprobe.model.sealing.unseal`). Raises when it is not an executable for
    ``args``."""
    import jax
    from jax.experimental.serialize_executable import deserialize_and_load

    compiled = deserialize_and_load(payload, jax.tree.structure((tuple(args), {})), out_tree)
    got, want = jax.tree.leaves(compiled.args_info), jax.tree.leaves(tuple(args))
    if len(got) != len(want) or any(tuple(g.shape) != tuple(w.shape) or g.dtype != w.dtype
                                    for g, w in zip(got, want)):
        raise ValueError("an executable for other arguments")
    return compiled


def check_program(exported: Any, args: Sequence[Any], out_tree: Any) -> str | None:
    """Why ``exported`` is not a program for a call with ``args`` returning ``out_tree`` (a
    tree of float32 arrays), or None when it is (see the module docstring)."""
    import jax
    import numpy as np
    from jax import export as jax_export

    leaves, in_tree = jax.tree.flatten((tuple(args), {}))
    if exported.nr_devices != 1:
        return f"made for {exported.nr_devices} devices"
    if tuple(exported.platforms) != (jax_export.default_export_platform(),):
        return f"made for {', '.join(exported.platforms)}"
    if exported.in_tree != in_tree or len(exported.in_avals) != len(leaves) or any(
            tuple(aval.shape) != tuple(leaf.shape) or aval.dtype != leaf.dtype
            for aval, leaf in zip(exported.in_avals, leaves)):
        return "its arguments are not the call's"
    if exported.out_tree != out_tree or any(aval.dtype != np.float32
                                            for aval in exported.out_avals):
        return "its results are not the forward pass's"
    if exported.ordered_effects or exported.unordered_effects or \
            exported.disabled_safety_checks:
        return "it has side effects"
    return reaches_outside(exported.mlir_module())


def reaches_outside(module: str) -> str | None:
    """What in the printed StableHLO ``module`` reaches outside the computation, or None:
    every custom call must be one of `_XLA_OPERATIONS`."""
    channels = [found for found in _OUTSIDE.findall(module) if found != "custom_call"]
    if channels:
        return f"it reaches outside the computation ({channels[0]})"
    if module.count("custom_call") > len(_XLA_OPERATIONS.findall(module)):
        return "it reaches outside the computation (custom_call)"
    return None


class ProgramStore:
    """Traced programs and sealed executables in ``folder`` (see the module docstring): found,
    checked and compiled, or traced, stored, compiled and sealed.

    ``key``: the program key that seals executables: True (default) for the user's
    (`headprobe.model.sealing.user_key`, looked up when first needed), None or False for no
    executables."""

    def __init__(self, folder: Path, problems: Problems = PROBLEMS,
                 key: bytes | bool | None = True) -> None:
        self.files = ProgramFiles(folder, problems)
        self.loaded = 0  # programs from the store (traced programs and executables)
        self.executables = 0  # of which executables: neither traced nor compiled
        self.written = 0  # traced programs stored
        self.sealed = 0  # executables stored
        self._key = key
        self._executable_keys: set[str] = set()  # keys of the executables loaded

    @property
    def folder(self) -> Path:
        return self.files.folder

    @property
    def invalid(self) -> int:
        """Stored programs that could not be used (damaged, failed a check, failed to run)."""
        return self.files.invalid

    @property
    def foreign(self) -> int:
        """Executables sealed with another key (replaced without a warning)."""
        return self.files.foreign

    def path_for(self, key: str) -> Path:
        return self.files.path_for(key)

    def sealing_key(self) -> bytes | None:
        """The key executables are sealed with, or None: no executables."""
        if self._key is True:
            self._key = sealing.user_key(self.cache_folders())
        return self._key if isinstance(self._key, bytes) else None

    def cache_folders(self) -> list[Path]:
        """The folders a program key must not lie in: this store's parent (``CACHE/jax``, or the
        folder given to `headprobe.load`), the cache folder above ``jax/``, and the default
        cache root (``$HEADPROBE_CACHE_DIR`` ...)."""
        parent = self.folder.parent
        folders = [parent, cache_root()]
        if parent.name == "jax":
            folders.append(parent.parent)
        return folders

    def load(self, key: str, args: Sequence[Any], out_tree: Any) -> Callable[..., Any] | None:
        """The program stored under ``key`` for ``args``: the sealed executable, else the
        traced program, checked and compiled (then its executable is sealed and stored); None
        when there is none or it cannot be used (then it is reported, and replaced by
        `program`)."""
        self.files.sweep(self.files.path_for(key).parent)  # visited even when the executable loads
        program = self._load_executable(key, args, out_tree)
        if program is None:
            program = self._load_traced(key, args, out_tree)
        if program is not None:
            self.loaded += 1
        return program

    def _load_executable(self, key: str, args: Sequence[Any],
                         out_tree: Any) -> Callable[..., Any] | None:
        sealing_key = self.sealing_key()
        if sealing_key is None:
            return None
        payload = self.files.read_executable(key, sealing_key)
        if payload is None:
            return None
        try:
            program = load_executable(payload, args, out_tree)  # the seal verified
        except Exception:  # sealed by this user, yet not loadable here: compiled afresh
            self.files.damaged(self.files.executable_path_for(key),
                               "an executable this JAX cannot load")
            return None
        self.executables += 1
        self._executable_keys.add(key)
        return program

    def _load_traced(self, key: str, args: Sequence[Any],
                     out_tree: Any) -> Callable[..., Any] | None:
        payload = self.files.read(key)
        if payload is None:
            return None
        path = self.path_for(key)
        try:
            exported = deserialize_program(payload)
        except Exception:  # malformed bytes, or a program this JAX cannot read
            self.files.damaged(path, "it is not a program this JAX can read")
            return None
        try:
            problem = check_program(exported, args, out_tree)
        except Exception:  # e.g. MLIR bytecode that deserialize accepted but cannot be read
            problem = "its StableHLO cannot be read"
        if problem is not None:
            self.files.damaged(path, f"a program that cannot be used: {problem}")
            return None
        try:
            return self.compile(key, exported, args, out_tree)
        except Exception:
            self.files.damaged(path, "XLA cannot compile it")
            return None

    def compile(self, key: str, exported: Any, args: Sequence[Any],
                out_tree: Any) -> Callable[..., Any]:
        """XLA's executable of ``exported`` (a checked program) for ``args``, sealed and stored
        under ``key`` when there is a program key and XLA compiled it afresh."""
        served_before = jax_cache_hits()
        compiled = compile_program(exported, args)
        if jax_cache_hits() == served_before:
            self.save_executable(key, compiled, args, out_tree)
        return compiled

    def save_executable(self, key: str, compiled: Any, args: Sequence[Any],
                        out_tree: Any) -> bool:
        """Seal ``compiled`` with the program key and store it for ``key``; False when there is
        no key, or it cannot be serialized or written."""
        sealing_key = self.sealing_key()
        if sealing_key is None:
            return False
        payload = serialize_executable(compiled, args, out_tree)
        if payload is None:
            return False
        if not self.files.write_executable(key, sealing_key, payload):
            return False
        self.sealed += 1
        return True

    def discard(self, key: str) -> None:
        """Forget a stored program that loaded but failed to run (counted in ``invalid``): its
        traced program and its executable."""
        self.files.invalid += 1
        self.loaded -= 1
        if key in self._executable_keys:
            self._executable_keys.discard(key)
            self.executables -= 1
        self.files.remove(key)

    def program(self, fields: Mapping[str, Any], export_now: Callable[[], Any],
                compile_now: Callable[[], Any], *, args: Sequence[Any],
                out_tree: Any) -> tuple[Callable[..., Any], str | None]:
        """The program for ``fields`` (the call's shape and static arguments, see
        `program_key`): ``(program, its key)`` when it came from the store, else
        ``(program, None)``: traced now by ``export_now()`` (a `jax.export.Exported`), stored,
        compiled and sealed, or, where this JAX cannot export it, ``compile_now()``."""
        key = program_key(fields)
        program = self.load(key, args, out_tree)
        if program is not None:
            return program, key
        try:
            exported = export_now()
        except Exception:  # not exportable here: compile it the ordinary way, unstored
            return compile_now(), None
        self.save(key, exported, args, out_tree)
        return self.compile(key, exported, args, out_tree), None

    def save(self, key: str, exported: Any, args: Sequence[Any], out_tree: Any) -> bool:
        """Store ``exported`` under ``key``; False when it cannot be serialized here (no
        ``flatbuffers``) or would not pass `check_program` when loaded."""
        try:
            payload = serialize_program(exported)
        except Exception:
            return False
        if check_program(exported, args, out_tree) is not None:
            return False
        if not self.files.write(key, payload):
            return False
        self.written += 1
        return True
