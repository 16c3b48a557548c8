"""Errors and results of claims written in Python name the user's file and line, not headprobe's:
``model.claim(...)`` on a loaded model goes through `headprobe.engine.models` and
`headprobe.engine.claim_api`, and the claim is placed at the first frame outside the headprobe
package (as `warnings.warn`'s ``stacklevel`` would)."""

from __future__ import annotations

import json
import runpy
import sys
import textwrap

import pytest
from check_runner import run_command

SCRIPT = '''
import json
import sys

import headprobe

model = headprobe.load(sys.argv[1])
measured = model.claim("L1H1: token").over(["The cat sat on the mat."]).entropy()
assert measured >= 0.9
print(json.dumps({key: measured.decided.to_json()[key] for key in ("file", "id")} |
                 {"line": measured.spec.line}))
model.claim("L7H1: token -> next").over(["The cat sat on the mat."]).argmax()
'''


def test_a_script_s_claim_errors_and_results_name_the_script_and_its_line(tmp_path,
                                                                         planted_model,
                                                                         check_cache):
    script = tmp_path / "my_script.py"
    script.write_text(textwrap.dedent(SCRIPT).lstrip(), encoding="utf-8")
    lines = script.read_text("utf-8").splitlines()
    measured_at, bad_at = (lines.index(next(line for line in lines if text in line)) + 1
                           for text in ('"L1H1: token"', '"L7H1'))
    run = run_command([sys.executable, str(script), str(planted_model)], tmp_path, check_cache)
    assert run.rc == 1, run
    located = f"ClaimFileError: {script}:{bad_at}: claim: layer 7 in L7H1 is out of range"
    assert located in run.output, run
    assert "/headprobe/" not in run.output.splitlines()[-1], run
    recorded = json.loads(run.stdout.splitlines()[-1])
    assert recorded == {"file": str(script), "id": "<module>",
                        "line": measured_at}, recorded


def test_a_claim_that_does_not_parse_names_the_calling_file_and_line(tmp_path):
    from headprobe.engine.models import ModelHandle
    from headprobe.errors import ClaimFileError

    script = tmp_path / "analysis.py"
    script.write_text('import math\n\nmodel.claim("L1H1: token -> nxt")\n', encoding="utf-8")
    with pytest.raises(ClaimFileError) as caught:
        runpy.run_path(str(script), init_globals={"model": ModelHandle(lambda: None, None, None)})
    assert str(caught.value).startswith(
        f"{script}:3: claim: cannot parse the claim at column 16: unknown target 'nxt'")
