"""``[tool.headprobe]`` in pyproject.toml: project defaults for `headprobe check`, the other
commands and the fixtures; and the one decision of which model a command or a file uses
(`choose_model`), with the one declaration of its option (`add_model_option`).

Keys: ``model`` (default model spec), ``report_dir`` (default ``reports``), ``cache_dir``, ``seed``,
``files_under`` (folders outside the project that hypothesis files may read sentence files from,
relative to pyproject.toml's folder). Command-line options override them (``files_under`` adds
to ``--allow-files-under``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headprobe.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KEYS = ("model", "report_dir", "cache_dir", "seed", "files_under")
DEFAULT_MODEL = "bert-base-uncased"
"""The model of claims, fixtures and commands that name none and have no ``model`` setting."""


@dataclass(frozen=True)
class Settings:
    model: str | None = None
    report_dir: str | None = None
    cache_dir: str | None = None
    seed: int | None = None
    files_under: tuple[str, ...] = ()


def read_settings(folder: Path) -> Settings:
    """Settings from ``folder/pyproject.toml``; defaults when the file or table is absent.
    A table that cannot be used (not TOML, an unknown key, a value of the wrong type) is a
    `UsageError` naming the file and the key."""
    path = Path(folder) / "pyproject.toml"
    if not path.is_file():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: cannot read [tool.headprobe]: {error}") from None
    table = data.get("tool", {}).get("headprobe", {})
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise UsageError(f"{path}: [tool.headprobe]: unknown key(s) {', '.join(unknown)}; "
                         f"valid keys are {', '.join(KEYS)}")
    for key, example in (("model", "bert-base-uncased"), ("report_dir", "reports"),
                         ("cache_dir", "~/.cache/headprobe")):
        value = table.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise UsageError(f"{path}: [tool.headprobe]: {key}: expected text such as "
                             f"{example!r}, got {value!r}")
    seed = table.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UsageError(f"{path}: [tool.headprobe]: seed: expected an integer, got {seed!r}")
    files_under = table.get("files_under", [])
    if not isinstance(files_under, list) or not all(isinstance(f, str) and f.strip()
                                                    for f in files_under):
        raise UsageError(f"{path}: [tool.headprobe]: files_under: expected a list of folders "
                         f"such as [\"../shared-sentences\"], got {files_under!r}")
    return Settings(model=table.get("model"), report_dir=table.get("report_dir"),
                    cache_dir=table.get("cache_dir"), seed=seed, files_under=tuple(files_under))


MODEL_HELP = ("the model: a local folder in Hugging Face layout, or a hub id[@revision] "
              "(default: the hypothesis file's 'model:', else [tool.headprobe] model in "
              "pyproject.toml, else bert-base-uncased); for check, every claim's model")


def add_model_option(add_option: Callable[..., Any], *names: str) -> None:
    """Declare the model option with ``add_option``: argparse's ``add_argument`` (``--model``,
    every command) or a pytest option group's ``addoption`` (``--headprobe-model``)."""
    extra = {"dest": "headprobe_model", "default": None} if names else {}
    add_option(*(names or ("--model",)), metavar="SPEC", help=MODEL_HELP, **extra)


TOKENIZER_HELP = ("for an ONNX export: the folder or model whose config.json and tokenizer it "
                  "uses (default: beside the .onnx file, or its parent folder)")


def add_tokenizer_option(add_option: Callable[..., Any], *names: str) -> None:
    """Declare ``--tokenizer`` (``--headprobe-tokenizer`` for pytest), as `add_model_option`."""
    extra = {"dest": "headprobe_tokenizer", "default": None} if names else {}
    add_option(*(names or ("--tokenizer",)), metavar="PATH", help=TOKENIZER_HELP, **extra)


def choose_model(option: str | None, declared: str | None, settings: Settings) -> str:
    """The model a command or a hypothesis file uses: the command line's (``--model``), else
    the one the file declares (``model:``), else ``[tool.headprobe] model``, else
    `DEFAULT_MODEL`."""
    return option or declared or settings.model or DEFAULT_MODEL
