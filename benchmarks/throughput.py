"""headprobe vs Hugging Face PyTorch: forward throughput, compile time, memory, `headprobe check`.

    python benchmarks/throughput.py            # the full run (1,000 sentences; ~10 min on 2 cores)
    python benchmarks/throughput.py --quick    # a smaller run to try things (~2-3 min)
    python benchmarks/throughput.py --only minilm --markdown out.md

What is measured, all on the same deterministic sentences (benchmarks/sentences.py, 8-40 words):

* the fp32 matmul ceiling of this machine: ``jax.jit(jnp.dot)`` on 2048 x 2048 float32;
* for (a) the bundled MiniLM and (b) a bert-base-uncased-shaped random checkpoint (12 layers,
  12 heads, hidden 768; weights from ``transformers.BertModel`` with a fixed seed, saved as
  safetensors, with MiniLM's vocabulary and tokenizer, which are bert-base-uncased's):
  - Hugging Face PyTorch ``BertModel`` eager, ``output_attentions=True``, ``torch.no_grad()``:
    batch 32 sorted by length (its best configuration), and batch 1 in input order (as bertviz's
    mask.py runs it; over a subset, it is slow);
  - headprobe's forward (``Model.iter_runs``, every layer, attentions only): the first pass
    (which compiles each shape bucket) and a second, steady-state pass;
  - achieved GFLOP/s on the real (unpadded) tokens, and the share of padded tokens computed;
* compile time of two fresh processes sharing an empty temporary JAX cache dir (MiniLM);
* peak RSS (``ru_maxrss``) of fresh processes streaming N and 10 x N sentences (MiniLM);
* ``headprobe check`` of a few MiniLM claims over the sentences: cold (empty forward cache; the JAX
  compile cache warmed first) and warm (unchanged re-run); evaluation time is the sum of the
  items' times in the JUnit XML, next to a bare forward to the same depth.

Everything runs in this process except what must start fresh (compile, memory, check).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sentences import make_sentences

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt")
CHECK_CLAIMS = """\
model: {model}
sentences:
  bench: sentences.txt
hypotheses:
  - id: previous
    claim: "L1H3: token -> previous"
    over: bench
    expect: ">= 0.5"
  - id: next
    claim: "L2H9: token -> next"
    over: bench
    expect: ">= 0.5"
  - id: cls-sink
    claim: "L4H5: token -> cls"
    over: bench
    per: sentence
    expect: ">= 0.9"
  - id: cls-mass-words
    claim: "L3H*: token -> cls"
    level: word
    measure: mass
    quantifier: any
    over: bench
    expect: ">= 0.5"
"""


# ---- small helpers ---------------------------------------------------------------------------

def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")


def minilm_folder() -> Path:
    from headprobe.model.checkpoint import transformer_folder
    from headprobe.model.resolve import resolve

    return transformer_folder(resolve(MINILM).folder)


def write_bert_base(folder: Path, seed: int = 0) -> Path:
    """A random bert-base-uncased-shaped BertModel (safetensors) with MiniLM's tokenizer files."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = transformers.BertConfig(**BERT_BASE)
    transformers.BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (minilm_folder() / name).is_file():
            shutil.copy(minilm_folder() / name, folder / name)
    return folder


def matmul_ceiling(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of ``jax.jit(jnp.dot)`` on ``size`` x ``size`` matrices."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = jnp.asarray(np.random.default_rng(0).random((size, size), dtype=np.float32))
    dot = jax.jit(lambda x, y: jnp.dot(x, y, precision="highest"))
    dot(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def forward_flops(lengths, layers: int, hidden: int, inner: int) -> float:
    """Matmul FLOPs of an encoder over sequences of these lengths (per sequence, summed):
    Q/K/V/output projections and the feed-forward per token, scores and context per token pair."""
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    return float(sum(layers * (n * per_token + 4 * n * n * hidden) for n in lengths))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- Hugging Face PyTorch ----------------------------------------------------------------------

class TorchBaseline:
    """Hugging Face ``BertModel`` (eager attention, ``output_attentions=True``, ``no_grad``) over
    ``texts``, sorted by length when ``batch_size`` > 1 (its best configuration), in input order
    at batch 1 (as bertviz and mask.py run it). `run_pass` returns one pass's seconds."""

    def __init__(self, folder: Path, texts: list[str], batch_size: int) -> None:
        import torch
        import transformers

        self.torch = torch
        self.model = transformers.BertModel.from_pretrained(
            str(folder), attn_implementation="eager", add_pooling_layer=False).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        self.texts, self.batch_size = texts, batch_size
        self.lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
        self.order = (sorted(range(len(texts)), key=lambda i: self.lengths[i])
                      if batch_size > 1 else list(range(len(texts))))
        self.padded = 0

    def run_pass(self) -> float:
        padded = 0
        start = time.perf_counter()
        with self.torch.no_grad():
            for s in range(0, len(self.order), self.batch_size):
                chunk = [self.texts[i] for i in self.order[s:s + self.batch_size]]
                batch = self.tokenizer(chunk, return_tensors="pt", padding=True)
                padded += batch["input_ids"].numel()
                out = self.model(**batch, output_attentions=True)
                for attention in out.attentions:
                    attention.numpy()
        self.padded = padded
        return time.perf_counter() - start

    def summary(self, seconds: float) -> dict:
        return {"seconds": seconds, "sent_s": len(self.texts) / seconds,
                "tokens": sum(self.lengths), "padded": self.padded, "lengths": self.lengths,
                "threads": self.torch.get_num_threads()}


# ---- headprobe ----------------------------------------------------------------------------------

def headprobe_forward(model, texts: list[str], num_layers: int | None = None) -> float:
    start = time.perf_counter()
    for _, run in model.iter_runs(texts, hidden_states=False, mlm_logits=False,
                                  num_layers=num_layers):
        run.attentions  # noqa: B018 - already on the host (numpy)
    return time.perf_counter() - start


def padded_tokens(model, texts: list[str]) -> int:
    from headprobe.model.loaded import plan_batches

    lengths = [len(e) for e in model.tokenize(texts)]
    heads = model.num_layers * model.num_heads
    return sum(b.rows * b.row_length for b in plan_batches(lengths, 32, model.max_length, heads,
                                                            multiple=model.num_devices))


def bench_model(label: str, folder: Path, texts: list[str], batch1: int, ceiling: float) -> dict:
    import headprobe

    print(f"[{label}] Hugging Face PyTorch, batch 1 ({batch1} sentences) ...", flush=True)
    single = TorchBaseline(folder, texts[:batch1], 1)
    hf1 = single.summary(single.run_pass())
    del single
    print(f"[{label}] headprobe, first pass (compiling) ...", flush=True)
    model = headprobe.load(str(folder), compilation_cache=False)
    first = headprobe_forward(model, texts)
    compiles, program_s = model.compile_count, model.program_seconds
    # Steady passes alternate with PyTorch's, so that both see the same state of a shared
    # machine; the best of two passes each.
    baseline = TorchBaseline(folder, texts, 32)
    hf_seconds, second = float("inf"), float("inf")
    for attempt in range(2):
        print(f"[{label}] Hugging Face PyTorch batch 32 sorted, then headprobe steady "
              f"({attempt + 1}/2) ...", flush=True)
        hf_seconds = min(hf_seconds, baseline.run_pass())
        second = min(second, headprobe_forward(model, texts))
    hf32 = baseline.summary(hf_seconds)
    c = model.config
    useful = forward_flops(hf32["lengths"], c.num_hidden_layers, c.hidden_size,
                           c.intermediate_size)
    ours_padded = padded_tokens(model, texts)
    return {
        "label": label, "sentences": len(texts), "tokens": hf32["tokens"],
        "hf32": hf32["sent_s"], "hf32_gflops": useful / hf32["seconds"] / 1e9,
        "hf32_pad": hf32["padded"] / hf32["tokens"] - 1, "hf1": hf1["sent_s"],
        "hf_threads": hf32["threads"],
        "hp_first": len(texts) / first, "hp": len(texts) / second,
        "hp_gflops": useful / second / 1e9, "hp_pad": ours_padded / hf32["tokens"] - 1,
        "hp_compile_s": program_s, "hp_compiles": compiles,
        "ratio": (len(texts) / second) / hf32["sent_s"], "ceiling": ceiling,
    }


# ---- fresh processes -----------------------------------------------------------------------------

def child_compile(folder: str, cache: str, count: int) -> None:
    """(in a fresh process) what getting the forward programs cost: wall time in
    `Model.program_seconds` (trace + lower + compile, or loading from the program store), and
    JAX's own trace / lower / XLA-compile seconds, with `cache` as the compiled-program cache."""
    import jax

    import headprobe

    seconds = {"trace": 0.0, "lower": 0.0, "backend": 0.0}
    names = {"/jax/core/compile/jaxpr_trace_duration": "trace",
             "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
             "/jax/core/compile/backend_compile_duration": "backend"}

    def on_duration(name, value, **_):
        if name in names:
            seconds[names[name]] += value

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    model = headprobe.load(folder, compilation_cache=cache)
    texts = make_sentences(count)
    start = time.perf_counter()
    headprobe_forward(model, texts)
    first = time.perf_counter() - start
    start = time.perf_counter()
    headprobe_forward(model, texts)
    second = time.perf_counter() - start
    print(json.dumps({**seconds, "compiles": model.compile_count,
                      "loaded": model.loaded_count, "program_s": model.program_seconds,
                      "first_minus_second": first - second}))


def child_bare(folder: str, sentences: str, depth: int) -> None:
    """(in a fresh process) what a user's script would do instead of `headprobe check`: load the
    model and stream the forward over the sentences to ``depth``. The parent times the process;
    this prints how many programs it compiled and loaded."""
    import headprobe

    texts = [line for line in Path(sentences).read_text(encoding="utf-8").splitlines()
             if line.strip()]
    model = headprobe.load(folder)
    headprobe_forward(model, texts, num_layers=depth)
    print(json.dumps({"compiles": model.compile_count, "loaded": model.loaded_count}))


def child_memory(folder: str, count: int) -> None:
    """(in a fresh process) peak RSS after streaming `count` sentences through the model."""
    import headprobe

    model = headprobe.load(folder)
    texts = make_sentences(count, seed=1)
    before = peak_rss_mib()
    headprobe_forward(model, texts)
    print(json.dumps({"count": count, "after_load_mib": before, "peak_mib": peak_rss_mib()}))


def run_child(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_compile(folder: Path, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hp-jax-") as cache:
        first = run_child("compile", str(folder), cache, str(count))
        second = run_child("compile", str(folder), cache, str(count))
    return {"first": first, "second": second}


def bench_memory(folder: Path, count: int) -> dict:
    small = run_child("memory", str(folder), str(count))
    large = run_child("memory", str(folder), str(10 * count))
    return {"small": small, "large": large, "ratio": large["peak_mib"] / small["peak_mib"]}


def _junit_seconds(path: Path) -> float:
    return sum(float(case.get("time", 0)) for case in ET.parse(path).iter("testcase"))


def _headprobe_script() -> str:
    """The `headprobe` script of this Python (a virtual environment's bin/), not a wrapper
    earlier on PATH: a pyenv shim alone adds ~0.1 s of bash to every process."""
    beside = Path(sys.executable).with_name("headprobe")
    return str(beside) if beside.exists() else shutil.which("headprobe") or "headprobe"


def bench_check(folder: Path, texts: list[str]) -> dict:
    """`headprobe check` of CHECK_CLAIMS: cold (empty forward cache) then warm."""
    import headprobe
    from headprobe.cache.entries import ForwardCache

    work = Path(tempfile.mkdtemp(prefix="hp-check-"))
    try:
        (work / "pyproject.toml").write_text("[tool.headprobe]\n", encoding="utf-8")
        (work / "sentences.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (work / "claims.yaml").write_text(CHECK_CLAIMS.format(model=MINILM), encoding="utf-8")
        env = {**os.environ, "HEADPROBE_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
        command = [_headprobe_script(), "check", "claims.yaml", "-q", "-p", "no:cacheprovider"]

        def timed_check(name: str, *extra: str) -> dict:
            """One `headprobe check` process: its wall time, evaluation time and exit code."""
            start = time.perf_counter()
            done = subprocess.run([*command, *extra, "--junitxml", f"{name}.xml"], cwd=work,
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode not in (0, 1):
                raise RuntimeError(f"headprobe check failed ({done.returncode}):\n"
                                   f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            return {"wall_s": wall, "eval_s": _junit_seconds(work / f"{name}.xml"),
                    "rc": done.returncode}

        out: dict = {name: timed_check(name, *extra) for name, extra
                     in (("prime", ["--no-cache"]), ("cold", []), ("warm", []))}
        out["entries"] = len(ForwardCache(work / "cache"))
        reports = sorted(p for p in (work / "reports").iterdir() if p.is_dir()
                         and not p.is_symlink())
        cold_results = json.loads((reports[-2] / "report.json").read_text())["results"]
        warm_results = json.loads((reports[-1] / "report.json").read_text())["results"]
        out["identical"] = cold_results == warm_results
        # The same work as a plain script, end to end in a fresh process (imports, weights,
        # programs from the same warm cache, the forward to layer 4), against the cold check
        # process (forward cache empty): best of two each.
        bare, check = [], [out["cold"]["wall_s"]]
        for attempt in range(2):
            start = time.perf_counter()
            run_child("bare", str(folder), str(work / "sentences.txt"), "4", env=env)
            bare.append(time.perf_counter() - start)
            if attempt == 0:
                shutil.rmtree(work / "cache" / "forward")  # entries and their scores
                check.append(timed_check("cold2")["wall_s"])
        out["bare_process_s"], out["check_process_s"] = min(bare), min(check)
        model = headprobe.load(str(folder), compilation_cache=False)
        headprobe_forward(model, texts, num_layers=4)  # compile
        out["bare_forward_depth4_s"] = min(headprobe_forward(model, texts, num_layers=4)
                                           for _ in range(2))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the table -----------------------------------------------------------------------------------

def render(results: dict) -> str:
    lines = [f"Machine: {results['machine']}", f"Date: {results['date']}",
             f"Sentences: {results['sentences']} (8-40 words); fp32 matmul ceiling "
             f"(jax.jit(jnp.dot), 2048^2, best before and after the models): "
             f"{results['ceiling']:.0f} GFLOP/s", ""]
    lines += ["| model | HF batch 1 | HF batch 32 sorted | headprobe (1st pass, compiling) | "
              "headprobe (steady) | headprobe / HF best | GFLOP/s HF / headprobe (% of ceiling) "
              "| padded tokens HF / headprobe | programs compiled (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        c = m["ceiling"]
        lines.append(
            f"| {m['label']} | {m['hf1']:.1f} sent/s | {m['hf32']:.1f} sent/s | "
            f"{m['hp_first']:.1f} sent/s | {m['hp']:.1f} sent/s | **{m['ratio']:.2f}x** | "
            f"{m['hf32_gflops']:.0f} ({100 * m['hf32_gflops'] / c:.0f}%) / {m['hp_gflops']:.0f} "
            f"({100 * m['hp_gflops'] / c:.0f}%) | +{100 * m['hf32_pad']:.0f}% / "
            f"+{100 * m['hp_pad']:.0f}% | {m['hp_compiles']} ({m['hp_compile_s']:.1f}) |")
    if "compile" in results:
        f, s = results["compile"]["first"], results["compile"]["second"]
        lines += ["", "Compile (MiniLM, two fresh processes, one empty cache dir): first "
                  f"{f['program_s']:.2f} s getting {f['compiles']} programs (trace "
                  f"{f['trace']:.2f} s, lower {f['lower']:.2f} s, XLA {f['backend']:.2f} s), "
                  f"second {s['program_s']:.2f} s ({s['loaded']} loaded from the program store, "
                  f"{s['compiles']} compiled; trace {s['trace']:.2f} s, XLA {s['backend']:.2f} s): "
                  f"second/first = {s['program_s'] / f['program_s']:.0%}."]
    if "memory" in results:
        mem = results["memory"]
        lines += ["", f"Peak RSS (MiniLM, fresh processes): {mem['small']['count']} sentences "
                  f"{mem['small']['peak_mib']:.0f} MiB, {mem['large']['count']} sentences "
                  f"{mem['large']['peak_mib']:.0f} MiB: ratio {mem['ratio']:.2f}."]
    if "check" in results:
        ch = results["check"]
        bare = ch["bare_forward_depth4_s"]
        lines += ["", f"headprobe check (MiniLM, 4 claims, deepest layer 4, {results['sentences']} "
                  f"sentences): cold evaluation {ch['cold']['eval_s']:.2f} s "
                  f"(process {ch['cold']['wall_s']:.1f} s), warm evaluation "
                  f"{ch['warm']['eval_s']:.2f} s (process {ch['warm']['wall_s']:.1f} s) = "
                  f"{ch['warm']['eval_s'] / ch['cold']['eval_s']:.1%} of cold; bare forward to "
                  f"layer 4 (steady, compiled): {bare:.2f} s, so cold check evaluation / bare "
                  f"forward = {ch['cold']['eval_s'] / bare:.2f}x; {ch['entries']} cache entries; "
                  f"warm report identical: {ch['identical']}.",
                  "", f"End to end in fresh processes (best of two, compiled programs cached): "
                  f"`headprobe check` (cold forward cache) {ch['check_process_s']:.1f} s, a "
                  f"script that loads the model and runs the forward to layer 4 "
                  f"{ch['bare_process_s']:.1f} s: check / bare = "
                  f"**{ch['check_process_s'] / ch['bare_process_s']:.2f}x**."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences, to try things")
    parser.add_argument("--sentences", type=int, help="how many sentences (default 1000)")
    parser.add_argument("--only", choices=["minilm", "bert-base"], help="one model only")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["compile", "memory", "check"], help="parts to leave out")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "compile":
            child_compile(rest[0], rest[1], int(rest[2]))
        elif kind == "bare":
            child_bare(rest[0], rest[1], int(rest[2]))
        else:
            child_memory(rest[0], int(rest[1]))
        return 0
    count = args.sentences or (200 if args.quick else 1000)
    texts = make_sentences(count)
    results = {"machine": machine(), "sentences": count,
               "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    results["ceiling"] = matmul_ceiling()
    print(f"fp32 matmul ceiling: {results['ceiling']:.0f} GFLOP/s", flush=True)
    models = []
    if args.only in (None, "minilm"):
        models.append(bench_model("all-MiniLM-L6-v2", minilm_folder(), texts,
                                  50 if args.quick else 200, results["ceiling"]))
    if args.only in (None, "bert-base"):
        with tempfile.TemporaryDirectory(prefix="hp-bert-base-") as folder:
            base = write_bert_base(Path(folder))
            models.append(bench_model("bert-base-shaped (random)", base,
                                      texts[:count // 2] if args.quick else texts,
                                      20 if args.quick else 100, results["ceiling"]))
    # The ceiling again after the models (best of both): a shared machine has busy moments.
    results["ceiling"] = max(results["ceiling"], matmul_ceiling())
    for m in models:
        m["ceiling"] = results["ceiling"]
    results["models"] = models
    if "compile" not in args.skip:
        print("compile: two fresh processes ...", flush=True)
        results["compile"] = bench_compile(minilm_folder(), 100 if args.quick else count)
    if "memory" not in args.skip:
        print("memory: fresh processes ...", flush=True)
        results["memory"] = bench_memory(minilm_folder(), 50 if args.quick else 200)
    if "check" not in args.skip:
        print("headprobe check: cold, then warm ...", flush=True)
        results["check"] = bench_check(minilm_folder(), texts)
    table = render(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
