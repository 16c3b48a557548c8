"""Compilation: at most one compile per shape bucket in a process, and a second process reads
every compiled program from JAX's persistent cache (under headprobe's cache dir) instead of
compiling it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import headprobe
from headprobe.model.api import (NO_COMPILATION_CACHE_ENV, bucket_length, compilation_cache_dir,
                                 compilation_cache_disabled)

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "red", "big", "rug", "table", "and", "it"]

CHILD = textwrap.dedent("""
    import json, sys, jax, headprobe
    events = {"hits": 0, "misses": 0, "backend_s": 0.0}
    def on_event(name, **kw):
        if name == "/jax/compilation_cache/cache_hits": events["hits"] += 1
        if name == "/jax/compilation_cache/cache_misses": events["misses"] += 1
    def on_duration(name, seconds, **kw):
        if name == "/jax/core/compile/backend_compile_duration": events["backend_s"] += seconds
    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    model = headprobe.load(sys.argv[1])
    model.run(sys.argv[2:], batch_size=4)
    print(json.dumps({**events, "compiles": model.compile_count}))
""")


def _texts(count: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 13)) for i in range(count)]


def _child(planted_model, cache_dir, texts) -> dict:
    env = {**os.environ, "HEADPROBE_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu"}
    env.pop(NO_COMPILATION_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(planted_model), *texts], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_process_reads_every_compiled_program_from_the_cache(planted_model, tmp_path):
    texts = _texts(20)
    first = _child(planted_model, tmp_path, texts)
    assert first["misses"] >= first["compiles"] >= 1 and first["hits"] == 0
    assert any((tmp_path / "jax").iterdir())
    second = _child(planted_model, tmp_path, texts)
    assert second["compiles"] == first["compiles"]  # traced again: tracing is not cached
    assert second["misses"] == 0 and second["hits"] >= second["compiles"]


def test_one_compile_per_bucket_however_many_batches(planted_model):
    model = headprobe.load(str(planted_model), compilation_cache=False)
    texts = _texts(60)
    lengths = [len(e) for e in model.tokenize(texts)]
    buckets = {bucket_length(n, model.max_length) for n in lengths}
    model.run(texts, batch_size=4, hidden_states=False, mlm_logits=False)
    assert len(texts) // 4 > len(buckets) and model.compile_count == len(buckets)
    model.run(list(reversed(texts)), batch_size=4, hidden_states=False, mlm_logits=False)
    assert model.compile_count == len(buckets)


@pytest.mark.parametrize("value, disabled", [("1", True), ("yes", True), ("0", False),
                                             ("", False)])
def test_the_compilation_cache_can_be_switched_off_by_environment(monkeypatch, value, disabled):
    monkeypatch.setenv(NO_COMPILATION_CACHE_ENV, value)
    assert compilation_cache_disabled() is disabled


def test_the_compilation_cache_follows_the_cache_dir_option(tmp_path):
    assert compilation_cache_dir(tmp_path / "c") == tmp_path / "c" / "jax"
