"""`CheckOptions`: a run's options, resolved once (`HeadprobeSession.options`) from the command
line and ``[tool.headprobe]``.

Command-line options (``headprobe check --model`` ..., i.e. pytest's ``--headprobe-*``) win over
``[tool.headprobe]`` in pyproject.toml, which wins over the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from headprobe.errors import UsageError
from headprobe.paths import cache_root, compilation_cache_disabled
from headprobe.settings import DEFAULT_MODEL, Settings, choose_model, read_settings


@dataclass(frozen=True)
class CheckOptions:
    """What a `headprobe check` (or plain pytest) run was asked to do.

    Attributes:
      root: where the run was started (relative report and file paths are relative to it).
      report_dir: where run folders go.
      seed: the seed of generated sentence sets.
      model_override: ``--model`` (every claim's model), or None.
      settings: ``[tool.headprobe]`` (its ``model`` is the default model).
      cache_dir: headprobe's cache folder.
      cache_enabled: False with ``--no-cache``.
      write_report: False with ``--no-report``.
      verbosity: pytest's (``-q`` negative, ``-v`` positive).
      snapshot_update: ``--snapshot-update``: record ``expect: unchanged`` claims.
      files_under: the folders hypothesis files may read sentence files from (`files_under`).
    """

    root: Path
    report_dir: Path
    seed: int
    model_override: str | None
    settings: Settings
    cache_dir: Path
    cache_enabled: bool
    write_report: bool
    verbosity: int
    snapshot_update: bool = False
    files_under: tuple[Path, ...] = ()
    tokenizer: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> CheckOptions:
        settings = read_settings(_settings_root(config))
        root = Path(config.invocation_params.dir)
        seed = config.getoption("headprobe_seed", None)
        return cls(
            root=root,
            report_dir=root / (config.getoption("headprobe_report_dir", None)
                               or settings.report_dir or "reports"),
            seed=int(seed if seed is not None else (settings.seed or 0)),
            model_override=config.getoption("headprobe_model", None),
            settings=settings,
            cache_dir=cache_root(config.getoption("headprobe_cache_dir", None)
                                 or settings.cache_dir),
            cache_enabled=not config.getoption("headprobe_no_cache", False),
            write_report=not config.getoption("headprobe_no_report", False),
            verbosity=int(config.getoption("verbose", 0)),
            snapshot_update=bool(config.getoption("headprobe_snapshot_update", False)),
            files_under=files_under(config, settings.files_under),
            tokenizer=config.getoption("headprobe_tokenizer", None))

    def model_for(self, declared: str | None) -> str:
        """The model a claim runs on (`headprobe.settings.choose_model`)."""
        return choose_model(self.model_override, declared, self.settings)

    def unnamed_model_hint(self, spec: str) -> str:
        """For a model that cannot be had: how to name another, when ``spec`` is the built-in
        default that nobody chose; else ''."""
        if spec != DEFAULT_MODEL or self.model_override or self.settings.model:
            return ""
        return (f"\n{DEFAULT_MODEL} is the default model, used because nothing names another: "
                f"name yours with --model SPEC (headprobe check), --headprobe-model=SPEC "
                f"(pytest), 'model: SPEC' in the hypothesis file, or model = \"SPEC\" under "
                f"[tool.headprobe] in pyproject.toml.")

    @property
    def memo_root(self) -> Path | None:
        """Where model fingerprints are remembered (None with ``--no-cache``)."""
        return self.cache_dir if self.cache_enabled else None

    @property
    def programs(self) -> Path | bool:
        """Where compiled programs are kept (`headprobe.load`'s ``compilation_cache``)."""
        return False if compilation_cache_disabled() else self.cache_dir / "jax"


def files_under(config: pytest.Config, configured: tuple[str, ...]) -> tuple[Path, ...]:
    """Where hypothesis files may read sentence files, symbolic links resolved: the project
    (pytest's rootdir), each ``--allow-files-under DIR`` (relative to where the run started)
    and each of ``files_under`` in ``[tool.headprobe]`` (relative to pyproject.toml)."""
    started = Path(config.invocation_params.dir)
    folders = [Path(config.rootpath)]
    folders += [started / Path(folder).expanduser()
                for folder in config.getoption("headprobe_allow_files_under", None) or ()]
    folders += [_settings_root(config) / Path(folder).expanduser() for folder in configured]
    return tuple(dict.fromkeys(Path(os.path.realpath(folder)) for folder in folders))


def check_settings(config: pytest.Config) -> None:
    """``[tool.headprobe]`` can be used; else a `pytest.UsageError` (exit 4, one ``ERROR:``
    line), raised at configure time: read later, while a file is collected, it would be that
    file's collection error (exit 2)."""
    try:
        read_settings(_settings_root(config))
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None


def _settings_root(config: pytest.Config) -> Path:
    inipath = getattr(config, "inipath", None)
    if inipath is not None and Path(inipath).name == "pyproject.toml":
        return Path(inipath).parent
    return Path(config.rootpath)
