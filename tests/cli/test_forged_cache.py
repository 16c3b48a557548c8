"""Nothing read from headprobe's cache can run code (docs/cache.md, "Trust").

Whoever can write the cache folder (a poisoned CI cache) can write a file whose digest matches.
A forged compiled program, a pickle that would create a marker file when unpickled, planted with
a valid digest in place of every stored program and executable, is ignored by the real
`headprobe check`: the marker never appears, the program is traced and compiled afresh, and the
report is the clean one. So is a forged executable sealed with a key other than the user's
program key (which lives in the user's config dir, 0600, never in the cache folder). A
well-formed program that calls native code by name (a custom call) is refused before XLA
compiles it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
import shutil
import stat
import struct

import pytest
from check_runner import check_subprocess, write_project

from headprobe.model import sealing

CLAIMS = """
sentences:
  plain:
    - The cat sat on the mat.
    - A dog sat.
    - The zebra sat on the rug.
hypotheses:
  - id: to-cls
    claim: "L1H1: token -> cls"
    over: plain
    expect: ">= 0.2"
  - id: fails
    claim: "L1H1: token -> next"
    over: plain
    expect: ">= 0.5"
"""


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: the file appears if a pickle is loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _program_files(cache):
    return sorted(p for p in (cache / "jax" / "programs").glob("??/*")
                  if not p.name.startswith(".tmp-"))


def _forge(path, payload: bytes) -> None:
    """Replace the program in ``path`` by ``payload``, sealed as a genuine one is: the same
    magic and key, the payload's own size and SHA-256."""
    blob = path.read_bytes()
    (size,) = struct.unpack("<I", blob[4:8])
    key = json.loads(blob[8:8 + size])["key"]
    header = json.dumps({"key": key, "size": len(payload),
                         "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    path.write_bytes(blob[:4] + struct.pack("<I", len(header)) + header + payload)


def _executables(cache):
    return [path for path in _program_files(cache) if path.suffix == ".executable"]


@pytest.fixture(scope="module")
def user_config(tmp_path_factory):
    """The user's config dir of this module's runs (the program key's default home)."""
    config = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HEADPROBE_PROGRAM_KEY_FILE", raising=False)
        patch.delenv("HEADPROBE_NO_EXECUTABLES", raising=False)
        patch.setenv("XDG_CONFIG_HOME", str(config))
        yield config


@pytest.fixture(scope="module")
def warm(tmp_path_factory, planted_model, user_config):
    """A project, the results of a clean cold run, and the cache it left (programs stored)."""
    folder = write_project(tmp_path_factory.mktemp("project"), {"claims.yaml": CLAIMS})
    cache = tmp_path_factory.mktemp("pristine-cache")
    clean = check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                             "-p", "no:cacheprovider", cache_dir=cache)
    assert clean.rc == 1, clean  # 'fails' fails on purpose
    assert _program_files(cache), "the cold run stored no program"
    assert _executables(cache), "the cold run sealed no executable"
    return folder, cache, clean.report()["results"]


def test_the_program_key_is_private_and_outside_the_cache(warm, user_config):
    _, cache, _ = warm
    key = user_config / "headprobe" / "program-key"
    assert stat.S_IMODE(os.lstat(key).st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert stat.S_IMODE(os.lstat(key.parent).st_mode) == 0o700
    assert not sealing.inside(key, cache)
    assert not [path for path in cache.rglob("*")
                if path.is_file() and key.read_bytes() in path.read_bytes()]


def test_a_forged_program_in_the_cache_runs_no_code_and_is_compiled_afresh(warm, tmp_path,
                                                                           planted_model):
    folder, pristine, clean = warm
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    marker = tmp_path / "the-forged-program-ran"
    bomb = pickle.dumps(_CreatesMarker(str(marker)))
    forged = _program_files(cache)
    for path in forged:
        _forge(path, bomb)
    # --no-cache: the forward cache would serve every sentence, and the model would not run.
    run = check_subprocess(folder, "claims.yaml", "--model", str(planted_model), "--no-cache",
                           "-p", "no:cacheprovider", cache_dir=cache)
    assert not marker.exists(), "a forged program in the cache ran code"
    assert run.rc == 1, run
    assert run.report()["results"] == clean
    assert run.output.count("CacheWarning") == 1 and "compiled-program store" in run.output, run
    assert all(bomb not in path.read_bytes() for path in forged)  # replaced by fresh programs
    assert not list(cache.rglob("*-cache"))  # JAX's own cache (machine code) was not turned on
    again = check_subprocess(folder, "claims.yaml", "--model", str(planted_model), "--no-cache",
                             "-p", "no:cacheprovider", cache_dir=cache)
    assert again.report()["results"] == clean and "CacheWarning" not in again.output, again
    assert not marker.exists()


@pytest.mark.parametrize("key_id", ["its own", "the user's, copied"])
def test_a_forged_executable_sealed_with_another_key_runs_no_code(warm, tmp_path, planted_model,
                                                                  key_id):
    """The executables are pickles: forged ones sealed with a key that is not the user's, under
    the forger's own key id (as a fresh CI runner's would be: replaced without a warning) or
    under the user's id copied from a genuine file (a forgery: reported), are never unpickled;
    the genuine traced programs are compiled instead."""
    folder, pristine, clean = warm
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    marker = tmp_path / "the-forged-executable-ran"
    bomb = pickle.dumps(_CreatesMarker(str(marker)))
    forger = secrets.token_bytes(32)
    for path in _executables(cache):
        blob = path.read_bytes()
        (size,) = struct.unpack("<I", blob[4:8])
        header = json.loads(blob[8:8 + size])
        forged = sealing.seal(forger, header["key"], bomb)
        if key_id != "its own":
            forged = forged.replace(sealing.key_id(forger).encode(), header["key_id"].encode())
        path.write_bytes(forged)
    run = check_subprocess(folder, "claims.yaml", "--model", str(planted_model), "--no-cache",
                           "-p", "no:cacheprovider", cache_dir=cache)
    assert not marker.exists(), "a forged executable in the cache ran code"
    assert run.rc == 1 and run.report()["results"] == clean, run
    assert run.output.count("CacheWarning") == (0 if key_id == "its own" else 1), run
    assert all(bomb not in path.read_bytes() for path in _executables(cache))  # sealed anew


def test_a_well_formed_program_that_calls_native_code_is_refused_before_compiling(tmp_path):
    """A custom call names native code (a host callback, a library kernel): refused, whatever
    the program's arguments, before XLA sees it."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import export

    from headprobe.cachefiles import Problems
    from headprobe.model.program_files import encode_program
    from headprobe.model.programs import ProgramStore, check_program

    def factor(x):
        return (jnp.linalg.cholesky(x),)  # LAPACK's potrf, called by name

    args = (jax.ShapeDtypeStruct((3, 3), np.float32),)
    out_tree = jax.tree.structure((0,))
    exported = export.export(jax.jit(factor))(*args)
    assert check_program(exported, args, out_tree) == \
        "it reaches outside the computation (custom_call)"
    store = ProgramStore(tmp_path / "programs", problems=Problems(), key=None)
    key = "0" * 64
    store.path_for(key).parent.mkdir(parents=True)
    store.path_for(key).write_bytes(encode_program(key, bytes(exported.serialize())))
    with pytest.warns(Warning, match=r"reaches outside the computation \(custom_call\)"):
        assert store.load(key, args, out_tree) is None
    assert store.invalid == 1 and store.loaded == 0
    assert not store.save(key, exported, args, out_tree)  # nor is one stored


def test_a_program_whose_stablehlo_bytes_are_damaged_is_a_warning_not_a_traceback(tmp_path):
    """jax.export.deserialize accepts a payload whose MLIR bytecode was altered; reading the
    module then raises. The store reports it as damage and compiles afresh."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import export

    from headprobe.cachefiles import Problems
    from headprobe.model.program_files import encode_program
    from headprobe.model.programs import ProgramStore

    args = (jax.ShapeDtypeStruct((3, 3), np.float32),)
    out_tree = jax.tree.structure((0,))
    payload = bytearray(export.export(jax.jit(lambda x: (jnp.tanh(x) * 2.0,)))(*args).serialize())
    at = payload.find(b"ML\xefR")  # MLIR bytecode's magic number, then the module
    assert at >= 0
    for i in range(at + 8, min(at + 200, len(payload))):
        payload[i] ^= 0x5A
    store = ProgramStore(tmp_path / "programs", problems=Problems(), key=None)
    key = "1" * 64
    store.path_for(key).parent.mkdir(parents=True)
    store.path_for(key).write_bytes(encode_program(key, bytes(payload)))
    with pytest.warns(Warning):
        assert store.load(key, args, out_tree) is None
    assert store.invalid == 1 and store.loaded == 0
