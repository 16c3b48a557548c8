"""Where an ONNX export and its config and tokenizer are (SPEC §15). Files only, no onnx.

A model location names an export when it is a ``.onnx`` file, or a folder without checkpoint
weights (no safetensors, no Flax msgpack) holding ``model.onnx`` or ``onnx/model*.onnx`` (the
Optimum and sentence-transformers layouts). A folder holding several exports and no
``model.onnx`` is a usage error listing them: the user names the file.

An export's ``config.json`` and tokenizer come from one folder, the first of: the folder
``--tokenizer`` names (a folder, or a model spec resolved as ``--model`` is), the export's own
folder, its parent (sentence-transformers keeps them above ``onnx/``). An export without them
anywhere is a usage error that says to pass ``--tokenizer``.

The file is read whole into memory (a protobuf), so it is refused above
`headprobe.model.export.graph.MAX_EXPORT_MB` (protobuf's own limit is 2 GiB); external data
files are read only from beside it (`headprobe.model.export.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headprobe.errors import UsageError
from headprobe.model.checkpoint import (
    FLAX_MSGPACK,
    SAFETENSORS,
    SAFETENSORS_INDEX,
    transformer_folder,
)
from headprobe.model.export.graph import check_size
from headprobe.model.modelfiles import present
from headprobe.model.resolve import resolve

SUFFIX = ".onnx"
LAYOUTS = ("model.onnx", "onnx/model.onnx")


@dataclass(frozen=True)
class ExportFiles:
    """An export: the graph file and the folder its config.json and tokenizer come from."""

    graph: Path
    companion: Path


def is_export_file(path: Path) -> bool:
    return path.suffix.lower() == SUFFIX and path.is_file()


def _has_checkpoint(folder: Path) -> bool:
    folder = transformer_folder(folder)
    return any(present(folder / name) for name in (SAFETENSORS, SAFETENSORS_INDEX, FLAX_MSGPACK))


def export_graph(location: Path) -> Path | None:
    """The ``.onnx`` file ``location`` names (see the module docstring), or None when it names
    a checkpoint (or nothing headprobe reads as an export)."""
    location = Path(location)
    if location.is_file():
        if location.suffix.lower() == SUFFIX:
            return location
        raise UsageError(f"{location}: a file, not a model; pass a model folder, a hub id, or "
                         f"an ONNX export ({SUFFIX})")
    if not location.is_dir() or _has_checkpoint(location):
        return None
    for name in LAYOUTS:
        if (location / name).is_file():
            return location / name
    candidates = sorted(p for folder in (location, location / "onnx") if folder.is_dir()
                        for p in folder.glob("*.onnx") if p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        listed = ", ".join(str(p.relative_to(location)) for p in candidates[:8])
        raise UsageError(f"{location}: holds {len(candidates)} ONNX exports and no model.onnx "
                         f"({listed}); pass the file you mean, e.g. --model "
                         f"{candidates[0]}")
    return None


def companion_folder(graph: Path, tokenizer: Path | None = None) -> Path:
    """The folder of the export's config.json and tokenizer (see the module docstring)."""
    if tokenizer is not None:
        folder = transformer_folder(Path(tokenizer))
        if not present(folder / "config.json"):
            raise UsageError(f"--tokenizer {tokenizer}: no config.json there; pass the folder "
                             "(or model) the export was made from, holding its config.json "
                             "and tokenizer files")
        return folder
    for folder in (graph.parent, graph.parent.parent):
        folder = transformer_folder(folder)
        if present(folder / "config.json"):
            return folder
    raise UsageError(f"{graph}: no config.json and tokenizer beside it or in its parent "
                     "folder; pass --tokenizer with the folder or model it was exported from "
                     "(e.g. --tokenizer sentence-transformers/all-MiniLM-L6-v2), or "
                     "tokenizer= to headprobe.load")


def locate(location: Path, tokenizer: str | None = None) -> ExportFiles | None:
    """The export at ``location`` with its companion folder (``tokenizer``: the spec
    ``--tokenizer`` gave, resolved as a model spec is), or None for a checkpoint."""
    graph = export_graph(location)
    if graph is None:
        return None
    check_size(graph)
    named = None if tokenizer is None else resolve(str(tokenizer)).folder
    return ExportFiles(graph.resolve(), companion_folder(graph, named))
