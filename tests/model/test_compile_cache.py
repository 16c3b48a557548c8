"""Compilation: at most one compile per shape bucket in a process, and a second process loads
every program from headprobe's program store instead of tracing it again: the executable sealed
with the user's program key (no XLA compile), else the traced program (StableHLO, compiled by
XLA); headprobe never turns JAX's persistent cache (machine code under no seal) on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import headprobe
from headprobe.model.loaded import compilation_cache_dir
from headprobe.model.sealing import key_id
from headprobe.paths import NO_COMPILATION_CACHE_ENV, compilation_cache_disabled

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "red", "big", "rug", "table", "and", "it"]

CHILD = textwrap.dedent("""
    import json, os, sys, jax, headprobe
    events = {"hits": 0, "misses": 0, "backend_s": 0.0, "xla_compiles": 0}
    def on_event(name, **kw):
        if name == "/jax/compilation_cache/cache_hits": events["hits"] += 1
        if name == "/jax/compilation_cache/cache_misses": events["misses"] += 1
    def on_duration(name, seconds, **kw):
        if name == "/jax/core/compile/backend_compile_duration":
            events["backend_s"] += seconds
            events["xla_compiles"] += 1
    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    if os.environ.get("HP_TEST_BROKEN_STORED_PROGRAMS"):  # stored programs fail when run
        import headprobe.model.programs as programs
        class Broken:
            def __array__(self, *args, **kwargs):
                raise RuntimeError("a stored program that fails when it runs")
        load = programs.ProgramStore.load
        def broken(self, *args, **kwargs):
            program = load(self, *args, **kwargs)
            return None if program is None else (lambda *a: (Broken(), None, None))
        programs.ProgramStore.load = broken
    model = headprobe.load(sys.argv[1])
    runs = model.run(sys.argv[2:], batch_size=4)
    data = b"".join(r.attentions.tobytes() + r.hidden_states.tobytes() for r in runs)
    digest = __import__("hashlib").sha256(data).hexdigest()
    print(json.dumps({**events, "compiles": model.compile_count, "loaded": model.loaded_count,
                      "executables": model._programs.loaded_executables, "digest": digest}))
""")


def _texts(count: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 13)) for i in range(count)]


def _child(planted_model, cache_dir, texts, **env_extra) -> dict:
    env = {**os.environ, "HEADPROBE_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu",
           **env_extra}
    env.pop(NO_COMPILATION_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(planted_model), *texts], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]),
            "warnings": done.stderr.count("CacheWarning")}


def _programs(cache_dir) -> list:
    return sorted((cache_dir / "jax" / "programs").glob("??/*.stablehlo"))


def _executables(cache_dir) -> list:
    return sorted((cache_dir / "jax" / "programs").glob("??/*.executable"))


#: Traced programs only: no executable is read or written.
NO_EXECUTABLES = {"HEADPROBE_NO_EXECUTABLES": "1"}


def test_a_second_process_loads_every_program_and_does_not_trace(planted_model, tmp_path):
    texts = _texts(20)
    first = _child(planted_model, tmp_path, texts, **NO_EXECUTABLES)
    assert first["compiles"] >= 1 and first["loaded"] == 0
    assert len(_programs(tmp_path)) == first["compiles"] and _executables(tmp_path) == []
    second = _child(planted_model, tmp_path, texts, **NO_EXECUTABLES)
    assert second["compiles"] == 0 and second["loaded"] == first["compiles"]
    # Stored programs are StableHLO, not machine code: XLA compiles them in each process.
    assert second["backend_s"] > 0.0 and second["executables"] == 0
    assert second["digest"] == first["digest"]  # the loaded programs compute the same bytes
    assert not list(tmp_path.rglob("*-cache"))  # JAX's own cache (machine code) stays off


def test_a_second_process_runs_the_sealed_executables_and_xla_compiles_nothing(planted_model,
                                                                                 tmp_path):
    texts = _texts(20)
    first = _child(planted_model, tmp_path, texts)
    assert first["compiles"] >= 1 and first["xla_compiles"] >= first["compiles"]
    assert len(_executables(tmp_path)) == len(_programs(tmp_path)) == first["compiles"]
    second = _child(planted_model, tmp_path, texts)
    assert second["compiles"] == 0 and second["xla_compiles"] == 0
    assert second["loaded"] == second["executables"] == first["compiles"]
    assert second["digest"] == first["digest"] and second["warnings"] == 0
    assert not list(tmp_path.rglob("*-cache"))  # JAX's own cache stays off


def _damage(path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[:100])
    elif how == "a bit of the payload":  # the executable: its digest no longer matches
        at = len(blob) * 2 // 3
        path.write_bytes(blob[:at] + bytes([blob[at] ^ 0x04]) + blob[at + 1:])
    elif how == "a bit of the header":
        path.write_bytes(blob[:20] + bytes([blob[20] ^ 0x01]) + blob[21:])
    elif how == "garbage":
        path.write_bytes(b"\x80" * len(blob))
    elif how == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif how == "link to /dev/zero":
        path.unlink()
        os.symlink("/dev/zero", path)


@pytest.fixture(scope="module")
def stored_programs(planted_model, tmp_path_factory):
    """A cache folder after one process stored its traced programs (no executables), and what
    that process reported: each damage case starts from a copy of it."""
    folder = tmp_path_factory.mktemp("stored-programs")
    return folder, _child(planted_model, folder, _texts(20), **NO_EXECUTABLES)


@pytest.mark.parametrize("how", ["truncated", "a bit of the payload", "a bit of the header",
                                 "garbage", "fifo", "link to /dev/zero"])
def test_a_damaged_program_file_is_reported_recompiled_and_replaced(planted_model, tmp_path, how,
                                                                    stored_programs):
    texts = _texts(20)
    pristine, first = stored_programs
    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    _damage(_programs(tmp_path)[0], how)
    second = _child(planted_model, tmp_path, texts, **NO_EXECUTABLES)
    assert second["compiles"] == 1 and second["loaded"] == first["compiles"] - 1
    assert second["digest"] == first["digest"]
    assert second["warnings"] == 1  # one CacheWarning, saying what was damaged
    # the rewritten file loads and runs
    third = _child(planted_model, tmp_path, texts, **NO_EXECUTABLES)
    assert third["compiles"] == 0 and third["loaded"] == first["compiles"]
    assert third["digest"] == first["digest"] and third["warnings"] == 0


def test_an_executable_that_fails_its_seal_is_reported_and_compiled_from_the_traced_program(
        planted_model, tmp_path):
    texts = _texts(20)
    first = _child(planted_model, tmp_path, texts)
    _damage(_executables(tmp_path)[0], "a bit of the payload")
    second = _child(planted_model, tmp_path, texts)
    assert second["compiles"] == 0 and second["loaded"] == first["compiles"]
    assert second["executables"] == first["compiles"] - 1 and second["xla_compiles"] == 1
    assert second["digest"] == first["digest"] and second["warnings"] == 1
    third = _child(planted_model, tmp_path, texts)  # sealed again
    assert third["executables"] == first["compiles"] and third["xla_compiles"] == 0
    assert third["digest"] == first["digest"] and third["warnings"] == 0


def test_executables_sealed_with_another_key_are_compiled_and_sealed_again(planted_model,
                                                                           tmp_path):
    """A fresh CI runner has a fresh key: a restored cache's executables do not verify, are
    never loaded, and are replaced without a warning (they are not damage)."""
    texts, cache = _texts(20), tmp_path / "cache"
    first = _child(planted_model, cache, texts)
    before = {path: path.read_bytes() for path in _executables(cache)}
    key_file = tmp_path / "other-runner" / "program-key"
    second = _child(planted_model, cache, texts, HEADPROBE_PROGRAM_KEY_FILE=str(key_file))
    assert second["executables"] == 0 and second["compiles"] == 0
    assert second["loaded"] == first["compiles"] == second["xla_compiles"]
    assert second["digest"] == first["digest"] and second["warnings"] == 0
    new_id = key_id(key_file.read_bytes()).encode()
    assert all(new_id in path.read_bytes() and new_id not in blob
               for path, blob in before.items())  # sealed again, with the runner's key


def test_temporaries_a_killed_run_left_are_removed(planted_model, tmp_path):
    texts = _texts(20)
    _child(planted_model, tmp_path, texts)
    folder = _programs(tmp_path)[0].parent
    left = folder / ".tmp-999999999-1-0.stablehlo"  # no such process
    left.write_bytes(b"half a program")
    old = os.stat(left).st_mtime - 3600
    os.utime(left, (old, old))
    recent = folder / f".tmp-{os.getpid()}-1-0.stablehlo"  # a live writer's: kept
    recent.write_bytes(b"being written")
    pickled = folder / f"{'0' * 62}.hpx"  # an executable an older headprobe pickled: never read
    pickled.write_bytes(b"HPX2 pickled executable")
    _child(planted_model, tmp_path, texts)
    assert not left.exists() and recent.exists() and not pickled.exists()


def _users_jax_cache(tmp_path) -> dict:
    """The environment of a user who turned JAX's persistent cache on themselves."""
    return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "users-jax"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def test_with_the_users_own_jax_cache_programs_are_stored_and_load(planted_model, tmp_path):
    # A user who turned on JAX's persistent cache themselves (their choice, in their folder):
    # the store keeps the traced programs all the same, and JAX's cache skips XLA's compile.
    texts, jax_cache = _texts(20), _users_jax_cache(tmp_path)
    first = _child(planted_model, tmp_path, texts, **jax_cache)
    assert len(_programs(tmp_path)) == len(_executables(tmp_path)) == first["compiles"]
    for path in _executables(tmp_path):  # the traced programs are loaded and compiled
        path.unlink()
    second = _child(planted_model, tmp_path, texts, **jax_cache)
    assert second["compiles"] == 0 and second["loaded"] == first["compiles"]
    assert second["hits"] >= 1 and second["digest"] == first["digest"]
    # An executable JAX's cache served serializes without its code: none is sealed from one.
    assert _executables(tmp_path) == []


def test_a_stored_program_that_fails_to_run_is_discarded_and_compiled_again(planted_model,
                                                                               tmp_path):
    texts = _texts(20)
    first = _child(planted_model, tmp_path, texts)
    assert len(_programs(tmp_path)) == first["compiles"]
    # Every program loaded from the store fails when it runs.
    second = _child(planted_model, tmp_path, texts, HP_TEST_BROKEN_STORED_PROGRAMS="1")
    assert second["compiles"] == first["compiles"] and second["loaded"] == 0
    assert second["executables"] == 0 and second["digest"] == first["digest"]
    third = _child(planted_model, tmp_path, texts)  # the discarded files were written again
    assert third["executables"] == first["compiles"]
    assert third["compiles"] == 0 and third["loaded"] == first["compiles"]
    assert third["digest"] == first["digest"]


def test_on_several_devices_nothing_is_stored_and_jax_cache_stays_off(planted_model, tmp_path):
    texts, devices = _texts(20), {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    first = _child(planted_model, tmp_path, texts, **devices)
    assert first["loaded"] == 0 and _programs(tmp_path) == []  # sharded: not in the store
    second = _child(planted_model, tmp_path, texts, **devices)
    assert second["compiles"] == first["compiles"]  # traced and compiled again
    assert second["hits"] == 0 and not list(tmp_path.rglob("*-cache"))
    assert second["digest"] == first["digest"]


def test_one_compile_for_a_call_however_many_lengths_and_batches(planted_model):
    model = headprobe.load(str(planted_model), compilation_cache=False)
    texts = _texts(60)
    lengths = [len(e) for e in model.tokenize(texts)]
    model.run(texts, batch_size=4, hidden_states=False, mlm_logits=False)
    assert len(set(lengths)) > 3 and model.compile_count == 1
    model.run(list(reversed(texts)), batch_size=4, hidden_states=False, mlm_logits=False)
    assert model.compile_count == 1


@pytest.mark.parametrize("value, disabled", [("1", True), ("yes", True), ("0", False),
                                             ("", False)])
def test_the_compilation_cache_can_be_switched_off_by_environment(monkeypatch, value, disabled):
    monkeypatch.setenv(NO_COMPILATION_CACHE_ENV, value)
    assert compilation_cache_disabled() is disabled


def test_the_compilation_cache_follows_the_cache_dir_option(tmp_path):
    assert compilation_cache_dir(tmp_path / "c") == tmp_path / "c" / "jax"


def test_the_program_key_covers_every_module_the_encoder_is_built_from():
    """A change to any family's body, or to what bodies share, must make stored programs stale:
    every module ``encoder.py`` imports from ``headprobe.model`` to compute is in the digest."""
    import ast
    from pathlib import Path

    from headprobe.model import programs

    package = Path(programs.__file__).resolve().parent
    covered = {path.relative_to(package).as_posix() for path in programs.code_files()}
    expected = {"encoder.py", "config.py", "blocks.py"} | {
        path.relative_to(package).as_posix() for path in (package / "encoders").glob("*.py")}
    assert expected <= covered
    assert {"encoders/bert.py", "encoders/modernbert.py", "encoders/deberta.py"} <= covered
    for path in (package / "encoder.py", *(package / "encoders").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "headprobe.model."):
                name = node.module.removeprefix("headprobe.model.").replace(".", "/")
                if name in ("encoders",) or name.startswith(("encoders", "blocks", "config")):
                    assert (f"{name}.py" in covered or f"{name}/__init__.py" in covered), name
