"""Many devices: each batch is split over `jax.local_devices()` (data parallel) and the results
equal a one-device run. Four CPU devices are forced in a subprocess
(``--xla_force_host_platform_device_count=4``), because JAX fixes its devices at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

import headprobe
from headprobe.model.loaded import batch_rows, plan_batches

# 5 texts of distinct lengths, packed into rows of several sentences.
TEXTS = ["The cat sat on the mat.", "A dog sat.", "Then I picked up a rug from the table.",
         "The zebra moved slowly across the road", "It was red"]

CHILD = textwrap.dedent("""
    import sys, numpy as np, jax, headprobe
    model = headprobe.load(sys.argv[1], compilation_cache=False)
    texts = sys.argv[3:]
    runs = model.run(texts, batch_size=2)
    rows = {b.rows for b in __import__("headprobe.model.loaded", fromlist=["x"]).plan_batches(
        [len(e) for e in model.tokenize(texts)], 2, model.max_length, 1, model.num_devices)}
    np.savez(sys.argv[2], devices=len(jax.local_devices()), num_devices=model.num_devices,
             rows=sorted(rows), compiles=model.compile_count,
             **{f"a{i}": r.attentions for i, r in enumerate(runs)},
             **{f"h{i}": r.hidden_states for i, r in enumerate(runs)})
""")


def test_a_batch_split_over_four_devices_gives_the_one_device_results(planted_model, tmp_path):
    out = tmp_path / "sharded.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(planted_model), str(out), *TEXTS],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded = np.load(out)
    assert int(sharded["devices"]) == 4 and int(sharded["num_devices"]) == 4
    assert all(r % 4 == 0 for r in sharded["rows"])
    model = headprobe.load(str(planted_model))
    assert model.num_devices == 1
    for i, run in enumerate(model.run(TEXTS, batch_size=2)):
        np.testing.assert_allclose(sharded[f"a{i}"], run.attentions, atol=1e-6, rtol=0)
        # Hidden states are O(1) values (attentions are in [0, 1]): the same float32 rounding
        # difference (a device's slice is a smaller matmul) is allowed relative to their size,
        # the vector's (a near-zero element of an O(1) vector keeps the vector's rounding:
        # measured 1.3e-6 on an element of -0.038 with jax 0.10).
        scale = float(np.abs(run.hidden_states).max())
        np.testing.assert_allclose(sharded[f"h{i}"], run.hidden_states,
                                   atol=1e-6 * max(1.0, scale), rtol=2e-6)


def test_rows_are_rounded_up_to_a_multiple_of_the_device_count():
    assert batch_rows(3, 32, 128, heads_out=1, multiple=3) == 3
    assert batch_rows(1, 32, 512, heads_out=1, multiple=4) == 4
    batches = plan_batches([9, 6, 14, 11, 5], 2, 16, heads_out=1, multiple=3)
    assert all(b.rows % 3 == 0 for b in batches)
    assert sorted(i for b in batches for i in b.indices) == [0, 1, 2, 3, 4]
