"""headprobe's pytest plugin (entry point ``pytest11``): options and hypothesis-file collection.

Registered for every pytest run, so importing it must cost nothing: no JAX, no matplotlib, no
transformers. The work happens in `headprobe.collect` (YAML files → items) and `headprobe.session`
(one model load and one forward pass per distinct sentence, then evaluation and reports).

Under plain ``pytest`` a YAML file is collected only when it looks like a hypothesis file (a top-level
``hypotheses:`` key); ``headprobe check`` collects every ``*.yaml``/``*.yml`` under its paths, so that
a malformed file is reported instead of silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("headprobe", "headprobe: claims about attention heads")
    group.addoption("--headprobe-model", dest="headprobe_model", default=None, metavar="SPEC",
                    help="model for every claim: a local folder or a hub id[@revision] "
                         "(`headprobe check --model`)")
    group.addoption("--headprobe-report-dir", dest="headprobe_report_dir", default=None,
                    metavar="DIR", help="where reports go (default: reports/)")
    group.addoption("--headprobe-seed", dest="headprobe_seed", default=None, type=int,
                    help="seed for sentences generated from templates (`generate: N`)")
    group.addoption("--headprobe-no-cache", dest="headprobe_no_cache", action="store_true",
                    default=False, help="do not read or write the forward cache")
    group.addoption("--headprobe-cache-dir", dest="headprobe_cache_dir", default=None,
                    metavar="DIR", help="cache folder (default: the user cache dir)")
    group.addoption("--headprobe-all-yaml", dest="headprobe_all_yaml", action="store_true",
                    default=False, help="collect every *.yaml/*.yml file as a hypothesis file "
                                        "(what `headprobe check` does)")
    group.addoption("--headprobe-no-report", dest="headprobe_no_report", action="store_true",
                    default=False, help="write no report.json / index.html")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "headprobe: a claim about attention heads")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from headprobe.claims.files import looks_like_hypothesis_file

    if parent.config.getoption("headprobe_all_yaml") or looks_like_hypothesis_file(file_path):
        from headprobe.collect import HypothesisFile

        return HypothesisFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    from headprobe.session import context_if_any

    context = context_if_any(config)
    if context is not None:
        context.raise_model_errors()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from headprobe.session import context_if_any

    context = context_if_any(session.config)
    if context is not None:
        context.finish(session, exitstatus)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from headprobe.session import context_if_any

    context = context_if_any(config)
    if context is not None:
        context.terminal_summary(terminalreporter)


@pytest.fixture(scope="session")
def headprobe_load(request: pytest.FixtureRequest):
    """``headprobe_load(spec)`` → a loaded model with the claim builder, once per spec per session."""
    from headprobe.session import get_context

    context = get_context(request.config)
    return context.probe_model


@pytest.fixture(scope="session")
def headprobe_model(headprobe_load):
    """The model named by ``--model`` (``headprobe check``) / ``--headprobe-model`` (pytest), else
    ``[tool.headprobe] model`` in pyproject.toml, else bert-base-uncased; loaded once per session."""
    return headprobe_load(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    from headprobe.session import context_if_any

    context = context_if_any(item.config)
    if context is not None:
        context.current_nodeid = item.nodeid
        # A @given test runs its body once per example: only its last example (for a failure,
        # the shrunk one, which hypothesis replays last) goes into the report.
        context.current_is_property = bool(getattr(getattr(item, "obj", None),
                                                   "is_hypothesis_test", False))
        if item.get_closest_marker("xfail") is not None:
            context.expected_failures.add(item.nodeid)
    try:
        return (yield)
    finally:
        if context is not None:
            context.current_nodeid = None
            context.current_is_property = False


def pytest_assertrepr_compare(config: pytest.Config, op: str, left, right):
    from headprobe.pyapi import Measured

    if not isinstance(left, Measured) or left.decided is None:
        return None
    from headprobe.session import get_context

    return get_context(config).explain_python_failure(left)
