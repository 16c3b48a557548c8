"""Where headprobe keeps caches: under the user cache directory, never inside a repository.

``$HEADPROBE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/headprobe``, else ``~/.cache/headprobe``.
Sub-folders: ``jax/programs/`` (traced programs, StableHLO: `headprobe.model.programs`),
``forward/`` (forward results), ``hypothesis/`` (remembered counterexamples); created owner-only
(`headprobe.cache.safety.private_folder`). ``$HEADPROBE_NO_COMPILATION_CACHE=1`` keeps no programs.
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
    return os.environ.get(NO_COMPILATION_CACHE_ENV, "").strip().lower() in {"1", "true", "yes",
                                                                            "on"}
