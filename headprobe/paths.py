"""Where headprobe keeps caches: under the user cache directory, never inside a repository.

``$HEADPROBE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/headprobe``, else ``~/.cache/headprobe``.
Sub-folders: ``jax/programs/`` (traced programs, StableHLO: `headprobe.model.programs`),
``forward/`` (forward results), ``hypothesis/`` (remembered counterexamples); created owner-only
(`headprobe.cachefiles.private_folder`). ``$HEADPROBE_NO_COMPILATION_CACHE=1`` keeps no programs.

The program key (`headprobe.model.sealing`), which seals compiled executables, lives outside the
cache, in the user config directory: ``$HEADPROBE_PROGRAM_KEY_FILE`` if set, else
``$XDG_CONFIG_HOME/headprobe/program-key``, else ``~/.config/headprobe/program-key``.
``$HEADPROBE_NO_EXECUTABLES=1`` keeps no executables (traced programs only).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    base = os.environ.get("HEADPROBE_CACHE_DIR")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "headprobe"


NO_COMPILATION_CACHE_ENV = "HEADPROBE_NO_COMPILATION_CACHE"


def compilation_cache_disabled() -> bool:
    """True when ``$HEADPROBE_NO_COMPILATION_CACHE`` is set to 1/true/yes/on."""
    return _switched_on(NO_COMPILATION_CACHE_ENV)


PROGRAM_KEY_ENV = "HEADPROBE_PROGRAM_KEY_FILE"
NO_EXECUTABLES_ENV = "HEADPROBE_NO_EXECUTABLES"


def config_root() -> Path:
    """headprobe's folder under the user config directory: ``$XDG_CONFIG_HOME/headprobe``, else
    ``~/.config/headprobe``."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg).expanduser() / "headprobe"


def program_key_path() -> Path:
    """The file of the key that seals compiled executables: ``$HEADPROBE_PROGRAM_KEY_FILE``, else
    ``program-key`` in `config_root`."""
    override = os.environ.get(PROGRAM_KEY_ENV, "").strip()
    return Path(override).expanduser() if override else config_root() / "program-key"


def executables_disabled() -> bool:
    """True when ``$HEADPROBE_NO_EXECUTABLES`` is set to 1/true/yes/on."""
    return _switched_on(NO_EXECUTABLES_ENV)


def _switched_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
