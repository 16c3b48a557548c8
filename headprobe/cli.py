"""The ``headprobe`` command: ``check``, ``show``, ``mask``, ``profile``, ``diff``, ``discover``.

Each subcommand lives in ``headprobe.commands.<name>`` with two functions:
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int`` (an exit code).
Heavy libraries (JAX, matplotlib, transformers) are imported by the commands when they run, so
``headprobe --version`` and ``--help`` answer at once. Bad input raised as `HeadprobeError` is
caught here, once, and printed as ``ERROR: ...`` on stderr with the error's exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from headprobe._version import __version__
from headprobe.errors import ExitCode, HeadprobeError, printable
from headprobe.interrupts import reliable_interrupts

COMMANDS = ("check", "show", "mask", "profile", "diff", "discover")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headprobe",
        description="pytest for attention heads: check claims about BERT attention heads, "
                    "draw attention diagrams, predict [MASK] words.")
    parser.add_argument("--version", action="version", version=f"headprobe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"headprobe.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check" and not {"-h", "--help"} & set(argv[1:]):
        # pytest's options and paths pass through untouched; `check` renames ours itself (and
        # the other commands' modules are not imported).
        args = argparse.Namespace(command="check", raw_check_args=argv[1:])
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return int(ExitCode.USAGE_ERROR)
    module = importlib.import_module(f"headprobe.commands.{args.command}")
    try:
        with reliable_interrupts():  # Ctrl-C inside JAX's gc callback is not lost
            return int(module.run(args))
    except HeadprobeError as error:
        print(f"ERROR: {printable(str(error))}", file=sys.stderr)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `headprobe ... | head`: the reader left; files are written already
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
