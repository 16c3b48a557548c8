"""What a profile costs (SPEC §11): `headprobe profile` of MiniLM over the bundled sentence set
against a bare forward pass over the same sentences, and a profile served by the forward cache.

    python benchmarks/profile_cost.py [--repeats 3]

Every figure is a fresh process, timed from start to exit, with one cache folder whose compiled
programs are already there (as in CI after the first run), best of ``--repeats``:

- bare forward: a script that loads the model and runs every sentence through all layers
  (attentions out, as a profile needs them), nothing else;
- bare forward with output norms: the same, with each head's output norm (SPEC §14.3) computed
  too: the difference is what ``output-norm`` adds to a profile's forward pass;
- cold profile: ``headprobe profile --no-cache`` (the forward pass, all statistics, the JSON);
- cached profile: ``headprobe profile`` with the forward cache holding every sentence: it must
  not import JAX, load the weights or run the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

BARE = """
import sys, time
start = time.perf_counter()
import headprobe
from headprobe.sentence_sets import load_sentences
sentences, _ = load_sentences(None)
model = headprobe.load(sys.argv[1])
count = 0
for _, run in model.iter_runs([s.text for s in sentences], hidden_states=False,
                              mlm_logits=False, copy=False, output_norms=sys.argv[2] == "1"):
    count += 1
print(count)
"""

PROFILE = """
import sys, time
from headprobe.cli import main
rc = main(sys.argv[1:])
print("JAX imported:", "jax" in sys.modules, "rc:", rc)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hp-profile-"))
    env = {**os.environ, "HEADPROBE_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    profile = [sys.executable, "-c", PROFILE, "profile", "--model", MINILM, "-q", "-o",
               str(work / "p.json")]
    bare = [sys.executable, "-c", BARE, MINILM, "0"]
    normed = [sys.executable, "-c", BARE, MINILM, "1"]
    timed([*profile, "--no-cache"], env)  # compiles and stores the programs once
    timed(bare, env)
    timed(normed, env)  # its programs too
    bare_s = min(timed(bare, env)[0] for _ in range(args.repeats))
    normed_s = min(timed(normed, env)[0] for _ in range(args.repeats))
    cold_s = min(timed([*profile, "--no-cache"], env)[0] for _ in range(args.repeats))
    timed(profile, env)  # fills the forward cache
    cached = [timed(profile, env) for _ in range(args.repeats)]
    cached_s = min(seconds for seconds, _ in cached)
    jax_used = any("JAX imported: True" in out for _, out in cached)
    count = json.loads((work / "p.json").read_text())["sentences"]["count"]
    print(f"MiniLM over the bundled set ({count} sentences), fresh processes, best of "
          f"{args.repeats}:")
    print("| run | seconds | against the bare forward |")
    print("|---|---|---|")
    print(f"| bare forward (load + all layers) | {bare_s:.2f} | 1.00x |")
    print(f"| bare forward with output norms | {normed_s:.2f} | {normed_s / bare_s:.2f}x |")
    print(f"| headprobe profile, cold forward cache | {cold_s:.2f} | {cold_s / bare_s:.2f}x |")
    print(f"| headprobe profile, forward cache full | {cached_s:.2f} | {cached_s / bare_s:.2f}x "
          f"(JAX imported: {jax_used}) |")
    print(f"output norms add {normed_s - bare_s:+.2f} s to the forward pass: "
          f"{(normed_s - bare_s) / cold_s:+.1%} of the cold profile")


if __name__ == "__main__":
    main()
