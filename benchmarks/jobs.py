"""Whole jobs as users feel them: `headprobe check` against the Hugging Face script a user would
write, each a fresh process, side by side in one run (SPEC-free; issue 19's targets).

    python benchmarks/jobs.py                 # both jobs (~5 min on 2 cores)
    python benchmarks/jobs.py --only claim    # the one-claim job only
    python benchmarks/jobs.py --markdown out.md --json out.json

The jobs:

* **one claim** — the bundled MiniLM, 1,860 sentences (benchmarks/sentences.py, 8-40 words), one
  claim: ``L2H9: token -> next`` with ``measure: mass``;
* **whole model** — a bert-base-shaped random checkpoint (12 layers x 12 heads, hidden 768, with
  MiniLM's tokenizer), 1,000 sentences, two claims on every head at full depth
  (``L*H*: token -> previous`` argmax, ``L*H*: token -> cls`` mass);
* **removal effects** (SPEC §14.2) — the bundled MiniLM, 100 sentences, ``L*H*: token`` with
  ``measure: effect`` (mean ablation, ``effect: hidden``): every head removed; against the
  script a user writes with forward hooks (``hf_effects_script``: one hooked forward per head,
  batches of 32); then the check again on 200 sentences, for its peak memory.

For each: the Hugging Face script (``hf_script``, run as ``python benchmarks/jobs.py --script``):
import torch and transformers, load the model with eager attention, tokenize, sort by length,
batches of 32 with ``output_attentions=True`` under ``no_grad``, the claims' values in numpy per
batch, the values printed; `headprobe check` of the same claims with a **fresh cache** (forward
cache and compiled programs empty, as a CI runner has it), then **warm** (an unchanged re-run).
Wall time and peak RSS (``wait4``'s ``ru_maxrss``) of each whole process; best of ``--repeat``
runs (default 2), alternating, so both see the same state of the machine. Then, in this process,
the forward pass alone: GFLOP/s on the real (unpadded) tokens against the fp32 matmul ceiling
(``jax.jit(jnp.dot)`` on 2048² float32), for headprobe and for PyTorch, and the share of padded
tokens each computes; and which heavy modules a warm check imports (``-X importtime``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sentences import make_sentences  # noqa: E402
from throughput import (  # noqa: E402
    _headprobe_script,
    forward_flops,
    machine,
    matmul_ceiling,
    minilm_folder,
    write_bert_base,
)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HEAVY = ("jax", "flax", "matplotlib", "tokenizers", "hypothesis", "torch", "transformers")
JOBS = {
    "claim": {"label": "one claim (MiniLM, L2H9 mass on next)", "count": 1860,
              "claims": [("next-mass", "L2H9: token -> next", "mass", ">= 0.3")]},
    "model": {"label": "whole model (bert-base shape, L*H* at full depth)", "count": 1000,
              "claims": [("previous", "L*H*: token -> previous", "argmax", ">= 0.0"),
                         ("cls-mass", "L*H*: token -> cls", "mass", ">= 0.0")]},
    "effects": {"label": "removal effects (MiniLM, all 72 heads, mean ablation)", "count": 100,
                "claims": [("matters", "L*H*: token", "effect", ">= 0.0")]},
}


# ---- the Hugging Face script a user would write ----------------------------------------------

def hf_script(folder: str, sentences: str, claims: str) -> None:
    """What a user writes without headprobe: every claim's value per head, printed."""
    import numpy as np
    import torch
    import transformers

    texts = [line for line in Path(sentences).read_text("utf-8").splitlines() if line.strip()]
    wanted = json.loads(claims)  # [[name, layer|None, head|None, target, measure], ...]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    totals: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with torch.no_grad():
        for start in range(0, len(order), 32):
            chunk = [texts[i] for i in order[start:start + 32]]
            batch = tokenizer(chunk, return_tensors="pt", padding=True)
            out = model(**batch, output_attentions=True)
            attentions = torch.stack(out.attentions, dim=1).numpy()  # [b, layer, head, q, k]
            real = batch["attention_mask"].numpy().sum(axis=1)
            for name, layer, head, target, measure in wanted:
                grid = attentions if layer is None else attentions[:, [layer], [head]][:, None]
                for row, n in enumerate(real):
                    rows = grid[row, ..., 1:n - 1, :n]  # tokens, without [CLS] and [SEP]
                    if target == "next":
                        hits = rows[..., np.arange(n - 2), np.arange(2, n)]
                    elif target == "previous":
                        hits = rows[..., np.arange(n - 2), np.arange(0, n - 2)]
                    else:  # cls
                        hits = rows[..., :, 0]
                    if measure == "argmax":
                        chosen = rows.argmax(axis=-1)
                        position = np.arange(1, n - 1)
                        goal = {"next": position + 1, "previous": position - 1,
                                "cls": np.zeros_like(position)}[target]
                        hits = (chosen == goal).astype(np.float64)
                    totals[name] = totals.get(name, 0) + hits.sum(axis=-1)
                    counts[name] = counts.get(name, 0) + n - 2
    for name, total in totals.items():
        values = np.asarray(total) / counts[name]
        print(name, np.round(values.ravel()[:5], 4).tolist(), f"(of {values.size} heads)")


def hf_effects_script(folder: str, sentences: str) -> None:
    """What a user writes without headprobe to measure every head's removal effect (SPEC
    §14.2, mean ablation, ``effect: hidden`` at the tokens): one pass collecting each head's
    mean context, the clean last hidden states, then one hooked forward per head, batches of
    32 sorted by length, the head's slice of the attention output's input replaced by its
    mean."""
    import numpy as np
    import torch
    import transformers

    texts = [line for line in Path(sentences).read_text("utf-8").splitlines() if line.strip()]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    config = model.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    d = config.hidden_size // heads
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    batches = [tokenizer([texts[i] for i in order[s:s + 32]], return_tensors="pt", padding=True)
               for s in range(0, len(order), 32)]
    denses = [layer.attention.output.dense for layer in model.encoder.layer]
    sums = torch.zeros(layers, config.hidden_size, dtype=torch.float64)
    count = 0
    clean = []
    with torch.no_grad():
        for batch in batches:  # the means, and the clean hidden states
            mask = batch["attention_mask"].bool()
            def collect(module, args, i, mask=mask):
                sums[i].add_(args[0][mask].double().sum(0))  # returns None: input unchanged

            hooks = [dense.register_forward_pre_hook(
                lambda module, args, i=i: collect(module, args, i))
                for i, dense in enumerate(denses)]
            clean.append(model(**batch).last_hidden_state)
            for hook in hooks:
                hook.remove()
            count += int(mask.sum())
        means = (sums / count).float()
        effects = np.zeros((layers, heads))
        tokens = 0
        for layer in range(layers):
            for head in range(heads):
                columns = slice(head * d, (head + 1) * d)

                def replace(module, args, value=means[layer, columns], columns=columns):
                    context = args[0].clone()
                    context[..., columns] = value
                    return (context,)

                hook = denses[layer].register_forward_pre_hook(replace)
                total, tokens = 0.0, 0
                for batch, h in zip(batches, clean):
                    changed = model(**batch).last_hidden_state
                    moved = (changed - h).norm(dim=-1) / h.norm(dim=-1)  # [b, t]
                    ids = batch["input_ids"]
                    keep = batch["attention_mask"].bool() & (ids != tokenizer.cls_token_id) \
                        & (ids != tokenizer.sep_token_id)
                    total += float(moved[keep].sum())
                    tokens += int(keep.sum())
                hook.remove()
                effects[layer, head] = total / tokens
    print("effects", np.round(effects.ravel()[:5], 4).tolist(), f"(of {effects.size} heads, "
          f"{tokens} tokens)")


# ---- processes -------------------------------------------------------------------------------

def peak_of(command: list[str], *, cwd: Path, env: dict[str, str]) -> dict:
    """`timed`, with the peak RSS of this child alone (a helper process measures it)."""
    helper = [sys.executable, str(Path(__file__)), "--measure", json.dumps(command)]
    done = subprocess.run(helper, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(command: list[str]) -> None:
    """(in a helper process) run ``command``; print its wall time, peak RSS and exit code."""
    import resource

    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        sys.exit(2)
    print(json.dumps({"wall_s": wall, "peak_mib": peak, "rc": done.returncode,
                      "out": done.stdout[-300:]}))


def claims_yaml(model: str, claims: list[tuple[str, str, str, str]]) -> str:
    lines = [f"model: {json.dumps(model)}", "sentences:", "  bench: sentences.txt", "hypotheses:"]
    for name, claim, measure_, expect in claims:
        lines += [f"  - id: {name}", f"    claim: {json.dumps(claim)}", "    over: bench",
                  f"    measure: {measure_}", f"    expect: {json.dumps(expect)}"]
    return "\n".join(lines) + "\n"


def script_claims(claims: list[tuple[str, str, str, str]]) -> str:
    out = []
    for name, claim, measure_, _ in claims:
        if measure_ == "effect":
            return "effects"
        heads, _, rest = claim.partition(":")
        target = rest.split("->")[1].strip()
        if heads.strip() == "L*H*":
            out.append([name, None, None, target, measure_])
        else:
            layer, head = heads.strip()[1:].split("H")
            out.append([name, int(layer) - 1, int(head) - 1, target, measure_])
    return json.dumps(out)


def imports_of_warm_check(work: Path, env: dict[str, str]) -> list[str]:
    """The heavy top-level packages a warm check imports (``-X importtime``)."""
    command = [sys.executable, "-X", "importtime", _headprobe_script(), "check", "claims.yaml",
               "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    found = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            top = name.split(".")[0]
            if top in HEAVY:
                found.add(top)
    return sorted(found)


def run_job(key: str, folder: Path, repeat: int) -> dict:
    job = JOBS[key]
    texts = make_sentences(job["count"])
    work = Path(tempfile.mkdtemp(prefix=f"hp-job-{key}-"))
    try:
        (work / "pyproject.toml").write_text("[tool.headprobe]\n", encoding="utf-8")
        (work / "sentences.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (work / "claims.yaml").write_text(claims_yaml(str(folder), job["claims"]), "utf-8")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HEADPROBE_CACHE_DIR": str(work / "cache")}
        check = [_headprobe_script(), "check", "claims.yaml", "-q", "-p", "no:cacheprovider"]
        script = [sys.executable, str(Path(__file__)), "--script", str(folder), "sentences.txt",
                  script_claims(job["claims"])]
        hf, cold, warm = [], [], []
        for attempt in range(repeat):
            print(f"[{key}] Hugging Face script ({attempt + 1}/{repeat}) ...", flush=True)
            hf.append(peak_of(script, cwd=work, env=env))
            shutil.rmtree(work / "cache", ignore_errors=True)  # fresh: no programs, no entries
            print(f"[{key}] headprobe check, fresh cache ({attempt + 1}/{repeat}) ...",
                  flush=True)
            cold.append(peak_of(check, cwd=work, env=env))
            print(f"[{key}] headprobe check, warm ({attempt + 1}/{repeat}) ...", flush=True)
            warm.append(peak_of(check, cwd=work, env=env))
        best = {name: min(runs, key=lambda r: r["wall_s"])
                for name, runs in (("hf", hf), ("cold", cold), ("warm", warm))}
        best["hf_peak_mib"] = min(r["peak_mib"] for r in hf)
        best["cold_peak_mib"] = min(r["peak_mib"] for r in cold)
        best["warm_imports"] = imports_of_warm_check(work, env)
        if key == "effects":  # memory flat in the number of sentences: twice as many
            more = make_sentences(2 * job["count"])
            (work / "sentences.txt").write_text("\n".join(more) + "\n", encoding="utf-8")
            shutil.rmtree(work / "cache", ignore_errors=True)
            print(f"[{key}] headprobe check, {len(more)} sentences, fresh cache ...",
                  flush=True)
            best["double"] = peak_of(check, cwd=work, env=env)
        return {"label": job["label"], "sentences": len(texts), **best}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def matmul_bound(tokens: int, hidden: int, inner: int) -> float:
    """GFLOP/s XLA reaches on one layer's four dense matmuls alone (query/key/value, output,
    feed-forward in and out) for ``tokens`` rows: what the forward's dense part can reach."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((tokens, hidden), dtype=np.float32))
    weights = [jnp.asarray(rng.random(shape, dtype=np.float32) / shape[0])
               for shape in ((hidden, 3 * hidden), (hidden, hidden), (hidden, inner),
                             (inner, hidden))]

    @jax.jit
    def layer(x, qkv, out, up, down):
        dot = lambda a, b: jnp.dot(a, b, precision="highest")  # noqa: E731
        y = dot(x, qkv)[:, :hidden] + dot(x, out)
        return dot(dot(y, up), down)

    layer(x, *weights).block_until_ready()
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        layer(x, *weights).block_until_ready()
        best = min(best, time.perf_counter() - start)
    flops = 2 * tokens * (3 * hidden * hidden + hidden * hidden + 2 * hidden * inner)
    return flops / best / 1e9


def forward_efficiency(folder: Path, count: int, depth: int | None,
                       heads: list[tuple[int, int]] | None, ceiling: float) -> dict:
    """The forward alone, steady (compiled), on real tokens: headprobe as the job runs it (its
    depth, its heads) and PyTorch (every layer, every head), the padding each computes, and
    XLA's dense matmul bound on the job's batch shape."""
    from throughput import TorchBaseline

    import headprobe
    from headprobe.model.loaded import plan_batches

    texts = make_sentences(count)
    model = headprobe.load(str(folder), compilation_cache=False)
    encodings = model.tokenize(texts)

    def ours() -> float:
        start = time.perf_counter()
        for _ in model.iter_runs(texts, hidden_states=False, mlm_logits=False,
                                 num_layers=depth, heads=heads, encodings=encodings):
            pass
        return time.perf_counter() - start

    ours()
    before = model.padded_tokens
    seconds = min(ours() for _ in range(2))
    computed = (model.padded_tokens - before) / 2
    baseline = TorchBaseline(folder, texts, 32)
    theirs = min(baseline.run_pass() for _ in range(2))
    c = model.config
    layers = depth or c.num_hidden_layers
    lengths = [len(e) for e in encodings]
    useful = forward_flops(lengths, layers, c.hidden_size, c.intermediate_size)
    torch_useful = forward_flops(lengths, c.num_hidden_layers, c.hidden_size,
                                 c.intermediate_size)  # PyTorch runs every layer
    heads_out = len(heads) if heads else layers * c.num_attention_heads
    batch = plan_batches(lengths, 32, model.max_length, heads_out)[0]
    bound = matmul_bound(batch.rows * batch.row_length, c.hidden_size, c.intermediate_size)
    return {"headprobe_gflops": useful / seconds / 1e9, "torch_gflops": torch_useful / theirs / 1e9,
            "headprobe_pct": 100 * useful / seconds / 1e9 / ceiling,
            "torch_pct": 100 * torch_useful / theirs / 1e9 / ceiling,
            "tokens": sum(lengths), "torch_padded_pct": 100 * (baseline.padded / sum(lengths) - 1),
            "headprobe_padded_pct": 100 * (computed / sum(lengths) - 1),
            "compiles": model.compile_count, "depth": layers,
            "heads": "all" if not heads else len(heads),
            "rows": f"{batch.rows} x {batch.row_length}", "matmul_bound": bound,
            "matmul_bound_pct": 100 * bound / ceiling}


def render(results: dict) -> str:
    lines = [f"Machine: {results['machine']}", f"Date: {results['date']}",
             f"fp32 matmul ceiling (jax.jit(jnp.dot), 2048^2): {results['ceiling']:.0f} GFLOP/s",
             "", "| job | HF script | headprobe check, fresh cache | HF / check | check warm | "
             "warm / cold | peak RSS HF / check | heavy imports when warm |",
             "|---|---|---|---|---|---|---|---|"]
    for job in results["jobs"]:
        hf, cold, warm = job["hf"]["wall_s"], job["cold"]["wall_s"], job["warm"]["wall_s"]
        lines.append(f"| {job['label']}, {job['sentences']} sentences | {hf:.2f} s | "
                     f"{cold:.2f} s | **{hf / cold:.2f}x** | {warm:.2f} s | {warm / cold:.0%} | "
                     f"{job['hf_peak_mib']:.0f} / {job['cold_peak_mib']:.0f} MiB | "
                     f"{', '.join(job['warm_imports']) or 'none'} |")
    for job in results["jobs"]:
        if "double" in job:
            lines.append(f"| the same, {2 * job['sentences']} sentences | | "
                         f"{job['double']['wall_s']:.2f} s | | | | "
                         f"- / {job['double']['peak_mib']:.0f} MiB | |")
    if results.get("forward"):
        lines += ["", "| forward (steady, compiled), GFLOP/s on real tokens | headprobe "
                  "(% of ceiling) | PyTorch, all layers (% of ceiling) | XLA's dense matmuls "
                  "alone on the batch shape (% of ceiling) | padded tokens headprobe / PyTorch "
                  "| batch rows x length | programs |",
                  "|---|---|---|---|---|---|---|"]
        for label, f in results["forward"].items():
            lines.append(f"| {label} (depth {f['depth']}, heads out: {f['heads']}) | "
                         f"{f['headprobe_gflops']:.0f} ({f['headprobe_pct']:.0f}%) | "
                         f"{f['torch_gflops']:.0f} ({f['torch_pct']:.0f}%) | "
                         f"{f['matmul_bound']:.0f} ({f['matmul_bound_pct']:.0f}%) | "
                         f"+{f['headprobe_padded_pct']:.1f}% / +{f['torch_padded_pct']:.1f}% | "
                         f"{f['rows']} | {f['compiles']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=list(JOBS))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-forward", action="store_true", help="skip the forward efficiency")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--script", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.script:
        if args.script[2] == "effects":
            hf_effects_script(*args.script[:2])
        else:
            hf_script(*args.script)
        return 0
    if args.measure:
        measure(json.loads(args.measure))
        return 0
    results: dict = {"machine": machine(),
                     "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    results["ceiling"] = matmul_ceiling()
    jobs, forward = [], {}
    with tempfile.TemporaryDirectory(prefix="hp-bert-base-") as scratch:
        folders = {"claim": minilm_folder(), "effects": minilm_folder()}
        if args.only in (None, "model"):
            folders["model"] = write_bert_base(Path(scratch) / "bert-base")
        for key in JOBS:
            if args.only in (None, key):
                jobs.append(run_job(key, folders[key], args.repeat))
        if not args.no_forward:
            if args.only in (None, "claim"):
                forward["MiniLM, 1,860 sentences"] = forward_efficiency(
                    folders["claim"], JOBS["claim"]["count"], 2, [(1, 8)], results["ceiling"])
            if args.only in (None, "model"):
                forward["bert-base shape, 1,000 sentences"] = forward_efficiency(
                    folders["model"], JOBS["model"]["count"], None, None, results["ceiling"])
    results["ceiling"] = max(results["ceiling"], matmul_ceiling())
    results["jobs"], results["forward"] = jobs, forward
    table = render(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
