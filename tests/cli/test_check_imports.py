"""Loading the pytest plugin (done by every pytest run) and ``headprobe --version`` stay cheap:
no JAX, Flax, transformers or matplotlib is imported."""

from __future__ import annotations

import subprocess
import sys

from check_runner import headprobe_command

HEAVY = ("jax", "flax", "transformers", "matplotlib", "torch")

PROBE = f"""
import sys
import headprobe, headprobe.errors, headprobe.pytest_plugin, headprobe.cli
import headprobe.pytest_plugin.session, headprobe.pytest_plugin.options
import headprobe.pytest_plugin.collect, headprobe.pytest_plugin.evaluation
import headprobe.pytest_plugin.recorder, headprobe.pytest_plugin.ending
import headprobe.report.terminal, headprobe.commands.check
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


WARM = """
import sys
from headprobe.cli import main
try:
    rc = main(["check", *sys.argv[1:]])
except SystemExit as exit_:
    rc = exit_.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"jax", "flax", "matplotlib",
                                                          "hypothesis", "transformers", "torch"})
print("RC:", rc, "HEAVY:", ",".join(heavy))
"""

CLAIMS = """
    model: sentence-transformers/all-MiniLM-L6-v2
    sentences:
      s: [The cat sat on the mat., A dog barked at the moon., She read the letter twice.]
    hypotheses:
      - id: next
        claim: "L2H9: token -> next"
        measure: mass
        over: s
        expect: ">= 0.3"
"""

GIVEN_TEST = '''
from hypothesis import given, settings, strategies as st


@settings(max_examples=3, deadline=None, database=None)
@given(st.integers())
def test_integers(value):
    assert isinstance(value, int)
'''


def run_warm(tmp_path, *args: str) -> str:
    from check_runner import _environment

    done = subprocess.run([sys.executable, "-c", WARM, *args, "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=_environment(tmp_path / "cache"),
                          capture_output=True, text=True, timeout=300)
    assert "RC: 0" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    run_warm.output = done.stdout  # type: ignore[attr-defined]
    return done.stdout.split("HEAVY:")[-1].strip()


def test_a_fully_cached_check_imports_no_heavy_library(tmp_path):
    from check_runner import write_project

    write_project(tmp_path, {"claims.yaml": CLAIMS})
    assert "jax" in run_warm(tmp_path, "claims.yaml")  # cold: the model runs
    assert run_warm(tmp_path, "claims.yaml") == ""  # warm: no JAX, Flax, hypothesis ...


def test_hypothesis_tests_still_report_when_hypothesis_runs(tmp_path):
    from check_runner import write_project

    write_project(tmp_path, {"claims.yaml": CLAIMS, "test_given.py": GIVEN_TEST})
    run_warm(tmp_path, "claims.yaml")
    heavy = run_warm(tmp_path, "claims.yaml", "test_given.py",
                     "--hypothesis-show-statistics")
    assert "hypothesis" in heavy and "jax" not in heavy
    assert "Hypothesis Statistics" in run_warm.output  # type: ignore[attr-defined]


PLAIN_TEST = """
from headprobe.pytest_plugin.session import SESSION

PARTS = {"options", "models", "sentence_sets", "forward_cache", "snapshots", "results"}


def test_no_part_of_the_session_was_made(request):
    assert not PARTS & set(vars(request.config.stash[SESSION]))
"""


def test_a_pytest_run_without_hypothesis_files_makes_none_of_the_sessions_parts(tmp_path):
    # pytest before 8.3.3 reads every attribute dir() lists on a registered plugin while it looks
    # for fixtures: the session must not list its parts, or every pytest run would read the
    # settings and open the forward cache.
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_plain.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
