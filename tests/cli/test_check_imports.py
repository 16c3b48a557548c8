"""Loading the pytest plugin (done by every pytest run) and ``headprobe --version`` stay cheap:
no JAX, Flax, transformers or matplotlib is imported."""

from __future__ import annotations

import subprocess
import sys

from checkrun import headprobe_command

HEAVY = ("jax", "flax", "transformers", "matplotlib", "torch")

PROBE = f"""
import sys
import headprobe, headprobe.errors, headprobe.plugin, headprobe.cli, headprobe.checkrun
import headprobe.collect, headprobe.recorder, headprobe.report.terminal, headprobe.commands.check
import headprobe.claims.files, headprobe.claims.language, headprobe.claims.sentences
try:
    headprobe.cli.main(["--version"])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("HEAVY:", ",".join(heavy))
"""


def test_plugin_and_cli_import_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "headprobe " in done.stdout  # the version line
    assert "HEAVY: \n" in done.stdout, done.stdout


def test_version_command_answers():
    done = subprocess.run([*headprobe_command(), "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("headprobe "), done
