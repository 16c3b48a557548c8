"""What the commands that evaluate heads outside pytest share (`profile`, `diff`, `discover`):
their model, cache and sentence options, and a model registry built from them; and the loaded
model of `show` and `mask`.

The model of a command is decided by `headprobe.settings.choose_model` (``--model``, else
``[tool.headprobe] model`` of ./pyproject.toml, else bert-base-uncased); the cache folder is
``--cache-dir``, else ``cache_dir`` there, else the user cache; ``--no-cache`` neither reads nor
writes the forward cache.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from headprobe.cache.entries import ForwardCache
from headprobe.claims.spec import LEVELS, Sentence
from headprobe.engine.models import ModelHandle, ModelRegistry
from headprobe.errors import ClaimFileError, UsageError
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.progress import ProgressFactory, progress_bars
from headprobe.settings import (
    Settings,
    add_model_option,
    add_tokenizer_option,
    choose_model,
    read_settings,
)


def add_model_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    if model:
        add_model_option(parser.add_argument)
    add_tokenizer_option(parser.add_argument)
    parser.add_argument("--sentences", metavar="FILE",
                        help="one sentence a line ('#' comments); default: the bundled English "
                             "sentence set")
    add_level_option(parser)
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: user cache)")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the forward cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_level_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", choices=LEVELS, default="token",
                        help="token: wordpieces (default); word: the tokenizer's words")


@dataclass(frozen=True)
class CommandContext:
    """A command's models, cache and progress bars."""

    registry: ModelRegistry
    cache: ForwardCache
    progress: ProgressFactory | None
    settings: Settings

    def model(self, option: str | None) -> ModelHandle:
        """The model ``--model`` names (or the default) as a handle: its weights load only when
        a sentence misses the cache; a model that cannot be had is a `UsageError` (exit 4)."""
        return self.registry.handle(choose_model(option, None, self.settings))

    def check_sentences(self, spec: str | None, sentences: Sequence[Sentence], label: str) -> int:
        """The sentences fit the model and keep a token (else a `UsageError` naming the file
        and line); returns how many hold words its vocabulary cannot spell ([UNK])."""
        info = self.registry.info(choose_model(spec, None, self.settings))
        if info is None:
            return 0  # `model` says why
        try:
            return info.check_sentences(sentences, file=label, set_name="--sentences", line=None,
                                        allow_unknown=True)
        except ClaimFileError as error:
            where = f"{error.file}:{error.line}: " if error.file and error.line else ""
            raise UsageError(where + error.message) from None


def command_context(args: argparse.Namespace, *,
                    tokenizer: str | None = None) -> CommandContext:
    """The context of a command's parsed arguments (`add_model_options`); ``tokenizer``: the
    exports' config.json and tokenizer when ``--tokenizer`` names none."""
    settings = read_settings(Path("."))
    root = cache_root(args.cache_dir or settings.cache_dir)
    enabled = not args.no_cache
    registry = ModelRegistry(memo_root=root if enabled else None,
                             programs=False if compilation_cache_disabled() else root / "jax",
                             tokenizer=args.tokenizer or tokenizer)
    return CommandContext(registry=registry, cache=ForwardCache(root, enabled=enabled),
                          progress=progress_bars(-1 if args.quiet else 0),
                          settings=settings)


def loaded_model(option: str | None, tokenizer: str | None = None) -> ModelHandle:
    """For ``show`` and ``mask``: the model ``--model`` names (or the default of
    ./pyproject.toml), loaded now (``tokenizer``: ``--tokenizer``, for an ONNX export); a
    model that cannot be had is a `UsageError` (exit 4)."""
    registry = ModelRegistry(memo_root=None, programs=True, fingerprints=False,
                             tokenizer=tokenizer)
    # pyproject.toml is read only for the default: a named model works in any folder.
    settings = Settings() if option else read_settings(Path("."))
    handle = registry.handle(choose_model(option, None, settings))
    handle.model()
    return handle
