"""A second process's programs: headprobe's program store against a fresh trace and compile.

    python benchmarks/program_store.py [--repeats 3]

For MiniLM's forward at six batch shapes, a fresh process gets every program

1. ``fresh``: traced, lowered and compiled (no store: ``compilation_cache=False``);
2. ``traced programs``: from headprobe's program store without executables
   (``HEADPROBE_NO_EXECUTABLES=1``: StableHLO written by `jax.export`, read back, checked and
   compiled by XLA);
3. ``sealed executables``: from the program store as ``headprobe check`` uses it: the compiled
   executables, their seal checked with the user's program key (here a key file in a temporary
   folder beside the cache, `headprobe.model.sealing`), loaded without tracing or compiling;
4. ``traced programs + own JAX cache`` (with ``--own-jax-cache``): 2. with JAX's persistent
   compilation cache turned on by the user (``JAX_COMPILATION_CACHE_DIR``) in a folder of their
   own, which skips XLA's compile. Its entries are machine code under no seal, so headprobe
   never turns it on itself (docs/cache.md).

The first process of each fills its caches; the table shows the seconds later processes spend
getting the six programs (`Model.program_seconds`), side by side on one machine, and how many
came from the store (of which executables).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

SHAPES = [(32, 16), (32, 24), (32, 32), (32, 40), (32, 48), (16, 56)]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MODES = ("fresh", "traced programs", "sealed executables")
OWN_JAX_CACHE = "traced programs + own JAX cache"


def child(mode: str, cache: str) -> None:
    """One process: get the six programs, print the seconds it took, how many it loaded and
    how many of those were executables."""
    from headprobe.model.loaded import load

    model = load(MINILM, compilation_cache=False if mode == "fresh" else cache)
    for rows, length in SHAPES:
        model._programs.get((rows, length, model.num_layers, False, False, None, length))
    print(model.program_seconds, model.loaded_count, model._programs.loaded_executables)


def _environment(mode: str, cache: str, key_folder: str) -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
           "HEADPROBE_PROGRAM_KEY_FILE": os.path.join(key_folder, "program-key")}
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "HEADPROBE_NO_COMPILATION_CACHE",
                 "HEADPROBE_NO_EXECUTABLES"):
        env.pop(name, None)
    if mode.startswith("traced programs"):
        env["HEADPROBE_NO_EXECUTABLES"] = "1"
    if mode == OWN_JAX_CACHE:
        env.update(JAX_COMPILATION_CACHE_DIR=os.path.join(cache, "own-jax-cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--own-jax-cache", action="store_true",
                        help=f"also measure '{OWN_JAX_CACHE}'")
    args = parser.parse_args()
    print("| way | first process (s) | later processes (s, each) | median | "
          "programs loaded (executables) |")
    print("|---|---|---|---|---|")
    for mode in MODES + ((OWN_JAX_CACHE,) if args.own_jax_cache else ()):
        cache, key_folder = (tempfile.mkdtemp(prefix=f"hp-programs-{part}-")
                             for part in ("cache", "key"))
        times, loaded = [], []
        for _ in range(args.repeats + 1):
            done = subprocess.run([sys.executable, __file__, "--child", mode, cache],
                                  env=_environment(mode, cache, key_folder),
                                  capture_output=True, text=True, check=True)
            seconds, count, executables = done.stdout.strip().splitlines()[-1].split()
            times.append(float(seconds))
            loaded.append(f"{count} ({executables})")
        later = times[1:]
        print(f"| {mode} | {times[0]:.2f} | {', '.join(f'{t:.2f}' for t in later)} | "
              f"{statistics.median(later):.2f} | {loaded[-1]} of {len(SHAPES)} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
