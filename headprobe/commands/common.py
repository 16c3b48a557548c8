"""What the commands that evaluate heads outside pytest share (`profile`, `diff`, `discover`):
their model, cache and sentence options, and a model registry built from them.

The model of a command that names none is ``[tool.headprobe] model`` of ./pyproject.toml, else
bert-base-uncased; the cache folder is ``--cache-dir``, else ``cache_dir`` there, else the user
cache; ``--no-cache`` neither reads nor writes the forward cache.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from headprobe.cache.entries import ForwardCache
from headprobe.claims.spec import Sentence
from headprobe.engine.evaluate import ProgressFactory
from headprobe.engine.models import ModelLike, ModelRegistry
from headprobe.errors import ClaimFileError, UsageError
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.settings import DEFAULT_MODEL, read_settings


def add_model_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    if model:
        parser.add_argument("--model", metavar="SPEC",
                            help="local folder or hub id[@revision] (default: [tool.headprobe] "
                                 "model in ./pyproject.toml, else bert-base-uncased)")
    parser.add_argument("--sentences", metavar="FILE",
                        help="one sentence a line ('#' comments); default: the bundled English "
                             "sentence set")
    parser.add_argument("--level", choices=("token", "word"), default="token",
                        help="token: wordpieces (default); word: the tokenizer's words")
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: user cache)")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the forward cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class CommandContext:
    """A command's models, cache and progress bars."""

    registry: ModelRegistry
    cache: ForwardCache
    progress: ProgressFactory | None
    default_model: str

    def model(self, spec: str | None) -> ModelLike:
        """``spec`` (or the default) as a deferred model: its weights load only when a
        sentence misses the cache; a model that cannot be had is a `UsageError` (exit 4)."""
        resolved = spec or self.default_model
        self.registry.info(resolved)
        errors = self.registry.errors
        if resolved in errors:
            raise errors[resolved]
        return self.registry.deferred(resolved)

    def check_sentences(self, spec: str | None, sentences: Sequence[Sentence], label: str) -> int:
        """The sentences fit the model and keep a token (else a `UsageError` naming the file
        and line); returns how many hold words its vocabulary cannot spell ([UNK])."""
        info = self.registry.info(spec or self.default_model)
        if info is None:
            return 0  # `model` says why
        try:
            return info.check_sentences(sentences, file=label, set_name="--sentences", line=None,
                                        allow_unknown=True)
        except ClaimFileError as error:
            where = f"{error.file}:{error.line}: " if error.file and error.line else ""
            raise UsageError(where + error.message) from None


def command_context(args: argparse.Namespace) -> CommandContext:
    """The context of a command's parsed arguments (`add_model_options`)."""
    from headprobe.progress import progress_bars

    settings = read_settings(Path("."))
    root = cache_root(args.cache_dir or settings.cache_dir)
    enabled = not args.no_cache
    registry = ModelRegistry(memo_root=root if enabled else None,
                             programs=False if compilation_cache_disabled() else root / "jax")
    return CommandContext(registry=registry, cache=ForwardCache(root, enabled=enabled),
                          progress=progress_bars(-1 if args.quiet else 0),
                          default_model=settings.model or DEFAULT_MODEL)
