"""A second process's programs: headprobe's program store against `jax.export` + JAX's cache.

    python benchmarks/program_store.py [--repeats 3]      # needs `pip install flatbuffers`

For MiniLM's forward at six batch shapes, a fresh process gets every program (1) from
headprobe's program store (`headprobe.model.programs`: pickled executables, verified by digest),
or (2) by deserializing a `jax.export` file (StableHLO, no pickle) and compiling it with JAX's
persistent compilation cache on. The first process of each fills its cache; the table shows the
seconds later processes spend getting the six programs, side by side on one machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = [(32, 16), (32, 24), (32, 32), (32, 40), (32, 48), (16, 56)]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def child(mode: str, cache: str) -> None:
    """One process: get the six programs, print the seconds it took."""
    import jax
    import numpy as np

    from headprobe.model.api import load

    if mode == "store":
        model = load(MINILM, compilation_cache=cache)
        start = time.perf_counter()
        for rows, length in SHAPES:
            model._programs.get((rows, length, model.num_layers, False, False, None, length))
        print(time.perf_counter() - start)
        return
    from jax import export

    from headprobe.model.encoder import Outputs, forward

    jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    export.register_namedtuple_serialization(Outputs, serialized_name="headprobe.Outputs")
    model = load(MINILM, compilation_cache=False)
    start = time.perf_counter()
    os.makedirs(os.path.join(cache, "exported"), exist_ok=True)
    for rows, length in SHAPES:
        path = os.path.join(cache, "exported", f"{rows}x{length}.bin")
        spec = jax.ShapeDtypeStruct((rows, length), np.int32)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                exported = export.deserialize(bytearray(handle.read()))
        else:
            def run(params, ids, segments, positions, starts, band=length):
                return forward(params, ids, segments, positions, starts, config=model.config,
                               num_layers=model.num_layers, with_hidden=False,
                               with_logits=False, band=band, precision="highest")

            exported = export.export(jax.jit(run))(model._params, spec, spec, spec, spec)
            with open(path, "wb") as handle:
                handle.write(exported.serialize())
        jax.jit(exported.call).lower(model._params, spec, spec, spec, spec).compile()
    print(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| way | first process (s) | later processes (s, each) | median |")
    print("|---|---|---|---|")
    for mode in ("store", "export"):
        cache = tempfile.mkdtemp(prefix=f"hp-{mode}-")
        times = []
        for _ in range(args.repeats + 1):
            done = subprocess.run([sys.executable, __file__, "--child", mode, cache],
                                  capture_output=True, text=True, check=True)
            times.append(float(done.stdout.strip().splitlines()[-1]))
        later = times[1:]
        print(f"| {mode} | {times[0]:.2f} | {', '.join(f'{t:.2f}' for t in later)} | "
              f"{statistics.median(later):.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
