"""Nothing read from headprobe's cache can run code (docs/cache.md, "Trust").

Whoever can write the cache folder (a poisoned CI cache) can write a file whose digest matches.
A forged compiled program, a pickle that would create a marker file when unpickled, planted with
a valid seal in place of every stored program, is ignored by the real `headprobe check`: the
marker never appears, the program is traced and compiled afresh, and the report is the clean
one. A well-formed program that calls native code by name (a custom call) is refused before XLA
compiles it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import struct

import pytest
from checkrun import check_subprocess, write_project

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


@pytest.fixture(scope="module")
def warm(tmp_path_factory, planted_model):
    """A project, the results of a clean cold run, and the cache it left (programs stored)."""
    folder = write_project(tmp_path_factory.mktemp("project"), {"claims.yaml": CLAIMS})
    cache = tmp_path_factory.mktemp("pristine-cache")
    clean = check_subprocess(folder, "claims.yaml", "--model", str(planted_model),
                             "-p", "no:cacheprovider", cache_dir=cache)
    assert clean.rc == 1, clean  # 'fails' fails on purpose
    assert _program_files(cache), "the cold run stored no program"
    return folder, cache, clean.report()["results"]


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


def test_a_well_formed_program_that_calls_native_code_is_refused_before_compiling(tmp_path):
    """A custom call names native code (a host callback, a library kernel): refused, whatever
    the program's arguments, before XLA sees it."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import export

    from headprobe.cache.safety import Problems
    from headprobe.model.programs import ProgramStore, check_program, encode_program

    def factor(x):
        return (jnp.linalg.cholesky(x),)  # LAPACK's potrf, called by name

    args = (jax.ShapeDtypeStruct((3, 3), np.float32),)
    out_tree = jax.tree.structure((0,))
    exported = export.export(jax.jit(factor))(*args)
    assert check_program(exported, args, out_tree) == \
        "it reaches outside the computation (custom_call)"
    store = ProgramStore(tmp_path / "programs", problems=Problems())
    key = "0" * 64
    store.path_for(key).parent.mkdir(parents=True)
    store.path_for(key).write_bytes(encode_program(key, bytes(exported.serialize())))
    with pytest.warns(Warning, match=r"reaches outside the computation \(custom_call\)"):
        assert store.load(key, args, out_tree) is None
    assert store.invalid == 1 and store.loaded == 0
    assert not store.save(key, exported, args, out_tree)  # nor is one stored
