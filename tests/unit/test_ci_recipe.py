"""The CI recipe (docs/ci/headprobe.yml, shown again in docs/regression.md) installs headprobe
from its repository at a pinned commit: headprobe is not on PyPI, so ``pip install headprobe``
cannot work."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _install_step() -> str:
    workflow = yaml.safe_load((DOCS / "ci" / "headprobe.yml").read_text("utf-8"))
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("name") == "Install headprobe"]
    return step["run"]


def test_the_ci_recipe_installs_headprobe_from_its_repository_at_a_pinned_commit():
    install = _install_step()
    assert not re.search(r"pip install\s+headprobe\s*$", install, re.M), install
    assert re.search(r'pip install "headprobe @ git\+https://github\.com/[^/]+/headprobe@'
                     r'\$\{?HEADPROBE_COMMIT\}?"', install), install
    workflow = yaml.safe_load((DOCS / "ci" / "headprobe.yml").read_text("utf-8"))
    commit = workflow["env"]["HEADPROBE_COMMIT"]
    assert isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit), commit


def test_regression_md_shows_the_ci_recipe_as_it_is():
    text = (DOCS / "regression.md").read_text("utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    recipe = (DOCS / "ci" / "headprobe.yml").read_text("utf-8")
    assert recipe in blocks


def test_the_ci_recipe_keeps_its_caches_outside_the_checkout():
    """Under the workspace a pull request could commit files straight into the caches (weights
    for the base model, cached results); outside it, only what the job itself writes is there."""
    workflow = yaml.safe_load((DOCS / "ci" / "headprobe.yml").read_text("utf-8"))
    (job,) = workflow["jobs"].values()
    environments = [workflow.get("env", {}), job.get("env", {}),
                    *(step.get("env", {}) for step in job["steps"])]
    for env in environments:
        for name in ("HEADPROBE_CACHE_DIR", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
            value = str(env.get(name, "~"))
            assert value.startswith(("~", "/", "${{ runner.temp }}")), (name, value)
            assert "github.workspace" not in value, (name, value)
    (cache,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    paths = [p.strip() for p in cache["with"]["path"].splitlines() if p.strip()]
    assert paths == ["~/.cache/huggingface", "~/.cache/headprobe"], paths
