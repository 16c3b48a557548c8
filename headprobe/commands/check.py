"""``headprobe check [PATH ...] [pytest options]``: run hypothesis files as pytest items.

headprobe's own options are taken out of the command line; everything else goes to pytest
untouched, so ``-k``, ``-x``, ``--lf``, ``--junitxml``, ``-q``/``-v`` and plugins work as in pytest.
With no PATH, ``hypotheses/`` is collected.
"""

from __future__ import annotations

import argparse
import os

from headprobe.errors import UsageError
from headprobe.settings import add_model_option, add_tokenizer_option

DEFAULT_PATH = "hypotheses"

# headprobe option -> (pytest option, takes a value)
OPTIONS = {
    "--model": ("--headprobe-model", True),
    "--tokenizer": ("--headprobe-tokenizer", True),
    "--report-dir": ("--headprobe-report-dir", True),
    "--seed": ("--headprobe-seed", True),
    "--cache-dir": ("--headprobe-cache-dir", True),
    "--no-cache": ("--headprobe-no-cache", False),
    "--no-report": ("--headprobe-no-report", False),
    "--snapshot-update": ("--headprobe-snapshot-update", False),
    "--allow-files-under": ("--headprobe-allow-files-under", True),
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check", help="evaluate hypothesis files (pytest underneath)",
        description="Collect hypothesis files (*.yaml, *.yml) and test_*.py files that use the "
                    "Python API, and run them as pytest items. Any option not listed here is "
                    "passed to pytest (-k, -x, --lf, --junitxml, -q, -v, ...).",
        epilog="Exit codes are pytest's: 0 passed, 1 failed, 2 interrupted or collection "
               "errors, 3 internal error, 4 usage error, 5 nothing collected.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="hypothesis files, test_*.py files or folders (default: "
                             "hypotheses/); also pytest node ids such as 'h.yaml::id[L2H9]'")
    add_model_option(parser.add_argument)
    add_tokenizer_option(parser.add_argument)
    parser.add_argument("--report-dir", metavar="DIR", help="report folder (default: reports/)")
    parser.add_argument("--seed", type=int, help="seed for generated sentence sets")
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: user cache)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the forward cache")
    parser.add_argument("--no-report", action="store_true", help="write no report")
    parser.add_argument("--allow-files-under", metavar="DIR", action="append",
                        help="let hypothesis files read sentence files under DIR too (besides "
                             "the project); repeatable")
    parser.add_argument("--snapshot-update", action="store_true",
                        help="record the selected 'expect: unchanged' claims in their snapshot "
                             "files (__snapshots__/FILE.json beside each hypothesis file)")
    return parser


def to_pytest_args(argv: list[str]) -> list[str]:
    """Translate ``headprobe check`` arguments to pytest's (ours renamed, the rest kept)."""
    out: list[str] = ["--headprobe-all-yaml"]
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in OPTIONS:
            target, takes_value = OPTIONS[name]
            if takes_value:
                if not eq:
                    i += 1
                    if i >= len(argv):

                        raise UsageError(f"{name} expects a value")
                    value = argv[i]
                # One argument, so that pytest never mistakes the value for a path to collect
                # (a model folder given as a separate argument would move pytest's rootdir).
                out.append(f"{target}={value}")
            else:
                out.append(target)
        else:
            out.append(arg)
        i += 1
    return out


class _DefaultPath:
    """Adds ``hypotheses/`` when the command line names no file or folder.

    It does so before pytest loads its initial conftest.py files, and for them too: pytest looks
    for those along the paths to collect, or with none along its ``testpaths`` setting, so a
    project's ``tests/conftest.py`` (which may set environment variables or turn warnings into
    errors for its own test suite) would otherwise be loaded into a ``headprobe check`` of
    ``hypotheses/``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def pytest_load_initial_conftests(self, early_config, parser, args) -> None:
        known = early_config.known_args_namespace
        if not known.file_or_dir and "--help" not in args:
            args.append(self.path)
            known.file_or_dir = [self.path]


def run(args: argparse.Namespace) -> int:
    import pytest

    argv = list(getattr(args, "raw_check_args", []))
    pytest_args = to_pytest_args(argv)
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args = ["-p", "headprobe.pytest_plugin", *pytest_args]
    return int(pytest.main(pytest_args, plugins=[_DefaultPath(DEFAULT_PATH)]))
