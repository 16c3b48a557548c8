"""Long inputs through ModernBERT (SPEC §7c): wall time and peak RSS of whole processes on one
sentence of 512 to 3,000+ tokens, from a fresh cache.

    python benchmarks/long_input.py [--lengths 512,1024,2048,3000] [--layers 6]

The model is random, ModernBERT-base wide (hidden 768, 12 heads, intermediate 1152, window 128,
global attention every third layer; ``--layers`` of them, 6 by default: 2 global and 4 local),
with a byte-level BPE tokenizer trained on the bundled sentences (tests/families.py). The
sentence is the bundled English sentences joined until it has the length asked for.

Columns, each a fresh process (``ru_maxrss`` of that child alone):

- ``check``: ``headprobe check`` of two claims on that sentence, one on a local head
  (``L2H1: token -> previous``) and one on a global head (``L1H1: token -> cls``);
- ``check, dense local``: the same with the local layers computed as one dense masked product
  (the sliding-window layers' ``[t, t]`` scores, what the query blocks avoid);
- ``check, all local``: the same model with every layer local (``layer_types`` all
  ``sliding_attention``): what grows with length when no layer is global;
- ``HF eager``: Hugging Face's ``ModernBertModel`` forward in eager attention, last hidden
  state only (PyTorch, float32).

What bounds them: the global layers' scores, ``heads x t x t`` float32 per layer (12 x 3000^2
x 4 bytes = 432 MB at 3,000 tokens), and each asked-for head's ``t x t`` attention; the local
layers hold ``heads x t x (2 x window + 1)`` scores in blocks, linear in ``t``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from jobs import peak_of  # noqa: E402  (wall time and peak RSS of one child process)

DENSE = ("import sys; import headprobe.model.encoders.modernbert as m; m.BLOCKED_FROM = 10**9; "
         "from headprobe.cli import main; sys.exit(main(sys.argv[1:]))")
HF = """
import sys, json, torch, transformers
folder, text = sys.argv[1], open(sys.argv[2], encoding="utf-8").read()
tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
ids = tokenizer(text, return_tensors="pt")
with torch.no_grad():
    out = model(**ids).last_hidden_state
print(json.dumps({"tokens": int(ids["input_ids"].shape[1])}))
"""


def build(folder: Path, layers: int, all_local: bool) -> Path:
    import torch
    import transformers
    from families import KINDS, build_tokenizer, save_tokenizer

    kind = KINDS["modernbert"]
    tokenizer = build_tokenizer(kind, vocab_size=2000)
    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(kind, tokenizer, folder)
    pad = tokenizer.token_to_id("[PAD]")
    config = transformers.ModernBertConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=768, num_attention_heads=12,
        intermediate_size=1152, num_hidden_layers=layers, max_position_embeddings=8192,
        local_attention=128, global_attn_every_n_layers=3, pad_token_id=pad,
        cls_token_id=tokenizer.token_to_id("[CLS]"), sep_token_id=tokenizer.token_to_id("[SEP]"),
        bos_token_id=tokenizer.token_to_id("[CLS]"), eos_token_id=tokenizer.token_to_id("[SEP]"),
        layer_types=["sliding_attention"] * layers if all_local else None)
    torch.manual_seed(0)
    transformers.ModernBertModel(config).eval().save_pretrained(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        **json.loads((folder / "tokenizer_config.json").read_text("utf-8")),
        "model_max_length": 8192}), encoding="utf-8")
    return folder


def sentence_of(folder: Path, length: int) -> str:
    """The bundled sentences joined until the text has ``length`` tokens (specials included)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    lines = [line for line in (ROOT / "headprobe" / "data" / "english.txt").read_text(
        "utf-8").splitlines() if line.strip() and not line.startswith("#")]
    words: list[str] = []
    for line in lines * 50:
        words += line.split()
        if len(tokenizer.encode(" ".join(words)).ids) >= length:
            break
    while len(tokenizer.encode(" ".join(words)).ids) > length:
        words.pop()
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="512,1024,2048,3000")
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="headprobe-long-"))
    try:
        mixed = build(work / "modernbert", args.layers, all_local=False)
        local = build(work / "modernbert-local", args.layers, all_local=True)
        headprobe = shutil.which("headprobe") or "headprobe"
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
              f"model: ModernBERT-base wide, {args.layers} layers, random weights")
        print("| tokens | check | check, dense local | check, all local | HF eager |")
        print("|---|---|---|---|---|")
        for length in (int(x) for x in args.lengths.split(",")):
            project = work / f"project-{length}"
            project.mkdir()
            text = sentence_of(mixed, length)
            (project / "sentences.txt").write_text(text + "\n", encoding="utf-8")
            (project / "pyproject.toml").write_text("[tool.headprobe]\n", encoding="utf-8")
            (project / "claims.yaml").write_text(
                "sentences:\n  long: sentences.txt\nhypotheses:\n"
                "  - id: local\n    claim: \"L2H1: token -> previous\"\n    measure: mass\n"
                "    over: long\n    expect: \">= 0\"\n"
                "  - id: global\n    claim: \"L1H1: token -> cls\"\n    measure: mass\n"
                "    over: long\n    expect: \">= 0\"\n", encoding="utf-8")
            cells = []
            for name, command in (
                    ("check", [headprobe, "check", "claims.yaml", "--model", str(mixed), "-q"]),
                    ("dense", [sys.executable, "-c", DENSE, "check", "claims.yaml", "--model",
                               str(mixed), "-q"]),
                    ("local", [headprobe, "check", "claims.yaml", "--model", str(local), "-q"]),
                    ("hf", [sys.executable, "-c", HF, str(mixed),
                            str(project / "sentences.txt")])):
                cache = work / f"cache-{length}-{name}"
                env = {**os.environ, "HEADPROBE_CACHE_DIR": str(cache)}
                shutil.rmtree(project / "reports", ignore_errors=True)
                found = peak_of(command, cwd=project, env=env)
                cells.append(f"{found['wall_s']:.1f} s, {found['peak_mib']:.0f} MiB")
            print(f"| {length} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
