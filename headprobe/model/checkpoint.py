"""Reading a model folder's files: where the BERT is, its weights, its fingerprint. No maths.

Weights come from ``model.safetensors`` (also sharded through ``model.safetensors.index.json``) or
``flax_model.msgpack``, each a regular file; JSON files are read within bounds
(`headprobe.model.modelfiles`). ``pytorch_model.bin`` is never unpickled: unpickling can run
arbitrary code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headprobe.errors import ModelFormatError
from headprobe.model.modelfiles import present, read_model_json, require_regular_file, shown

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
FLAX_MSGPACK = "flax_model.msgpack"
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5")


@dataclass(frozen=True)
class WeightFiles:
    """The weight files of one folder, in read order, and their format."""

    format: str  # "safetensors" | "flax"
    files: tuple[Path, ...]


def transformer_folder(folder: Path) -> Path:
    """The folder holding the BERT's config.json: ``folder`` itself, or for a sentence-transformers
    folder the path of its ``sentence_transformers.models.Transformer`` module (``modules.json``,
    a subfolder of ``folder``), e.g. ``0_Transformer/``."""
    folder = Path(folder)
    if present(folder / "config.json"):
        return folder
    modules = folder / "modules.json"
    if present(modules):
        entries = read_model_json(modules)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("type", "")).endswith(".Transformer"):
                candidate = _subfolder(folder, entry.get("path"))
                if candidate is not None and (candidate / "config.json").is_file():
                    return candidate
    if (folder / "0_Transformer" / "config.json").is_file():
        return folder / "0_Transformer"
    return folder


def _subfolder(folder: Path, name: Any) -> Path | None:
    """``folder / name`` when ``name`` is a relative path inside ``folder``, else None."""
    if not isinstance(name, str) or not name or "\0" in name:
        return None
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    return folder / relative


def find_weights(folder: Path) -> WeightFiles:
    """The weight files to read, preferring safetensors; a clear error for pickles only. Each
    is a regular file (`require_regular_file`)."""
    folder = Path(folder)
    index = folder / SAFETENSORS_INDEX
    if require_regular_file(folder / SAFETENSORS):
        return WeightFiles("safetensors", (folder / SAFETENSORS,))
    if present(index):
        shards = tuple(folder / name for name in _shard_names(index))
        absent = [s.name for s in shards if not require_regular_file(s)]
        if absent:
            raise ModelFormatError(f"{index}: shard(s) {', '.join(absent)} listed but not in "
                                   f"{folder}; download the missing shards.")
        return WeightFiles("safetensors", shards)
    if require_regular_file(folder / FLAX_MSGPACK):
        return WeightFiles("flax", (folder / FLAX_MSGPACK,))
    pickles = [name for name in PICKLES if (folder / name).is_file()]
    if pickles:
        raise ModelFormatError(
            f"{folder}: only {', '.join(pickles)} found; headprobe reads {SAFETENSORS} or "
            f"{FLAX_MSGPACK} and never unpickles pytorch_model.bin, because loading a pickle can "
            "run arbitrary code. Convert it once where you trust the file: "
            "`transformers.AutoModel.from_pretrained(dir).save_pretrained(dir, "
            "safe_serialization=True)` (use BertForMaskedLM to keep the masked-LM head).")
    raise ModelFormatError(
        f"{folder}: no weights found; expected {SAFETENSORS}, {SAFETENSORS_INDEX} or "
        f"{FLAX_MSGPACK} beside config.json.")


def _shard_names(index: Path) -> list[str]:
    """The shard file names of a safetensors index: plain names of files beside it."""
    content = read_model_json(index)
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFormatError(f"{index}: weight_map: expected an object of weight name -> "
                               f"shard file, got {shown(weight_map)}; re-save the model.")
    names = sorted(set(map(str, weight_map.values())))
    for name in names:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ModelFormatError(f"{index}: weight_map: shard {shown(name)} is not the name "
                                   f"of a file beside the index; re-save the model.")
    return names


def weight_shapes(weights: WeightFiles) -> dict[str, tuple[int, ...]] | None:
    """Name -> shape of every tensor, from the safetensors headers alone (nothing is read into
    memory); None for a Flax msgpack, whose shapes are known only once it is read."""
    if weights.format != "safetensors":
        return None
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in weights.files:
        try:
            with safe_open(str(path), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    shapes[name] = tuple(handle.get_slice(name).get_shape())
        except Exception as error:  # a damaged header: say which file
            raise ModelFormatError(f"{path}: cannot read the safetensors header: {error}; "
                                   f"re-download or re-save the model.") from None
    return shapes


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one file (bfloat16 arrives as ml_dtypes' bfloat16; `convert` casts)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        # safe_open has keys() but no __iter__, so SIM118's `in handle` would fail
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118


def read_state(weights: WeightFiles) -> dict[str, Any]:
    """Flat name -> array (safetensors), or the nested tree of a Flax msgpack."""
    try:
        if weights.format == "flax":
            from flax import serialization

            return serialization.msgpack_restore(weights.files[0].read_bytes())
        state: dict[str, np.ndarray] = {}
        for path in weights.files:
            state.update(_read_safetensors(path))
        return state
    except ModelFormatError:
        raise
    except Exception as error:  # corrupt or truncated file: say which one
        raise ModelFormatError(f"{weights.files[0].parent}: cannot read {weights.format} "
                               f"weights: {error}; re-download or re-save the model.") from None


_FINGERPRINTS: dict[tuple[tuple[str, int, int], ...], str] = {}


def fingerprint(weights: WeightFiles, config_path: Path) -> str:
    """``"sha256:" + hexdigest`` over the weight files' bytes then config.json's bytes.

    Cached per process by (path, size, mtime) of every file, so it is computed once.
    """
    return files_fingerprint((*weights.files, Path(config_path)))


def hashed_files(location: Path) -> tuple[Path, ...]:
    """What a model's fingerprint hashes: a checkpoint folder's weight files then its
    config.json; an ONNX export's file (SPEC §15), then the external data files it names, if
    any."""
    location = Path(location)
    if location.is_file():
        from headprobe.model.export.graph import graph_files

        return graph_files(location)
    return (*find_weights(location).files, location / "config.json")


def files_fingerprint(paths: tuple[Path, ...]) -> str:
    """``"sha256:" + hexdigest`` over ``paths``' bytes in order (cached per process)."""
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in paths:
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
        _FINGERPRINTS[key] = "sha256:" + digest.hexdigest()
    return _FINGERPRINTS[key]
