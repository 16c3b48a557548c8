"""Running `headprobe check` in tests: the real console command in a subprocess, or
`headprobe.cli.main` in this process (for the many collection-error cases, which load no model).

Both return a `CheckRun` with the exit code and the output; every project lives in ``tmp_path``
with its own ``pyproject.toml`` (so pytest's rootdir is the project, never a parent folder), and the
report goes to ``tmp_path/reports`` unless the test says otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Lines pytest prints that vary from machine to machine.
_NOISE = ("platform ", "rootdir:", "plugins:", "benchmark:", "cachedir:", "hypothesis profile")


@dataclass(frozen=True, repr=False)
class CheckRun:
    rc: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def report_dirs(self, report_dir: str = "reports") -> list[Path]:
        """Run folders (not ``latest``) under the report dir, oldest first."""
        root = self.cwd / report_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())

    def report(self, report_dir: str = "reports") -> dict:
        return json.loads((self.cwd / report_dir / "latest" / "report.json").read_text("utf-8"))

    def results(self, report_dir: str = "reports") -> dict[str, dict]:
        """report.json results by ``id[head]``."""
        return {f"{r['id']}[{r['head']}]": r for r in self.report(report_dir)["results"]}

    def __repr__(self) -> str:  # what a failing `assert ..., run` shows
        shown = "\n".join(line for line in self.output.splitlines()
                          if not line.startswith(_NOISE))
        return f"exit code {self.rc}\n{shown}"


def write_project(folder: Path, files: dict[str, str], *, settings: str = "") -> Path:
    """``files`` (name -> text, dedented) and a pyproject.toml with ``[tool.headprobe]``
    ``settings`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        f"[tool.headprobe]\n{textwrap.dedent(settings)}", encoding="utf-8")
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


def _environment(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HEADPROBE_CACHE_DIR=str(cache_dir), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def headprobe_command() -> list[str]:
    """The installed ``headprobe`` console script (the real command users run)."""
    script = shutil.which("headprobe") or str(Path(sys.executable).parent / "headprobe")
    return [script]


def run_command(args: list[str], cwd: Path, cache_dir: Path, *, timeout: float = 300) -> CheckRun:
    """Any command in a subprocess, with headprobe's cache pointed at ``cache_dir``."""
    done = subprocess.run(args, cwd=cwd, env=_environment(cache_dir), capture_output=True,
                          text=True, timeout=timeout)
    return CheckRun(done.returncode, done.stdout, done.stderr, Path(cwd))


def check_subprocess(cwd: Path, *args: str, cache_dir: Path) -> CheckRun:
    """``headprobe check ARGS`` run as the console command."""
    return run_command([*headprobe_command(), "check", *args], cwd, cache_dir)


def check_inprocess(cwd: Path, *args: str, cache_dir: Path, monkeypatch, capfd) -> CheckRun:
    """``headprobe.cli.main(["check", *ARGS])`` in this process (cheap: no interpreter start)."""
    from headprobe.cli import main

    capfd.readouterr()
    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("HEADPROBE_CACHE_DIR", str(cache_dir))
        patch.delenv("PYTEST_ADDOPTS", raising=False)
        rc = main(["check", *args])
    out, err = capfd.readouterr()
    return CheckRun(int(rc), out, err, Path(cwd))


def main_in_process(monkeypatch, capsys, cwd: Path, *args: str) -> tuple[int, str, str]:
    """``headprobe.cli.main(ARGS)`` in this process, in ``cwd`` with its cache in
    ``cwd/cache``: (exit code, stdout, stderr)."""
    from headprobe.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HEADPROBE_CACHE_DIR", str(cwd / "cache"))
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err
