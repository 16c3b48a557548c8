"""`headprobe check` with no PATH collects ``hypotheses/`` and nothing else: in a checkout laid out
as headprobe's own (pytest's ``testpaths = ["tests"]``, a ``tests/conftest.py`` that makes the test
suite offline and its warnings errors), a user's check loads none of the test suite's set-up, so
it never forces offline mode on them. The test suite itself stays offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from check_runner import CheckRun, _environment, headprobe_command, write_project

ROOT = Path(__file__).resolve().parents[2]

SEES = '''
import json
import os
import sys
import warnings
from pathlib import Path


def test_what_the_check_sees():
    suite = Path("tests", "conftest.py").resolve()
    test_setup = [name for name, module in list(sys.modules.items())
                  if getattr(module, "__file__", None) and Path(module.__file__).resolve() == suite]
    Path("seen.json").write_text(json.dumps({
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
        "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE"),
        "test_setup": test_setup}))
    warnings.warn(UserWarning("a user's warning is not an error"))
'''


def test_check_with_no_path_loads_nothing_of_the_test_suite(tmp_path, check_cache):
    write_project(tmp_path, {"hypotheses/test_sees.py": SEES})
    # the checkout's layout: its pytest configuration and its test suite's conftest.py
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    env = _environment(check_cache)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name)  # the user set nothing
    done = subprocess.run([*headprobe_command(), "check", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    run = CheckRun(done.returncode, done.stdout, done.stderr, tmp_path)
    seen = json.loads((tmp_path / "seen.json").read_text("utf-8"))
    assert seen == {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None, "test_setup": []}
    assert run.rc == 0 and "1 passed" in run.output, run  # the warning is not an error
    assert "UserWarning: a user's warning is not an error" in run.output, run


def test_the_test_suite_itself_runs_offline():
    # tests/conftest.py sets both unless the environment already has them
    assert os.environ.get("HF_HUB_OFFLINE") and os.environ.get("TRANSFORMERS_OFFLINE")
