"""headprobe's pytest plugin (entry point ``pytest11``): its options, hooks and fixtures.

Registered for every pytest run, so importing it must cost nothing: no JAX, no numpy, no
matplotlib, no transformers; its hooks import the rest only when a run has hypothesis files or
uses headprobe's fixtures. The package's modules:

- `headprobe.pytest_plugin.session`: `HeadprobeSession`, the run's one state object (options,
  models, caches, snapshots, results, what the run produced), made in ``pytest_configure``,
  registered as a plugin and dropped in ``pytest_unconfigure``;
- `headprobe.pytest_plugin.options`: `CheckOptions`, the options resolved once;
- `headprobe.pytest_plugin.collect`: hypothesis files → pytest collectors and items;
- `headprobe.pytest_plugin.evaluation`: the claims' results, evaluated together;
- `headprobe.pytest_plugin.recorder`: `Recorder`, what the run produced (report.json's content);
- `headprobe.pytest_plugin.ending`: the report and the terminal summary at the end.

Under plain ``pytest`` a YAML file is collected only when it looks like a hypothesis file (a
top-level ``hypotheses:`` key); ``headprobe check`` collects every ``*.yaml``/``*.yml`` under its
paths, so that a malformed file is reported instead of silently ignored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headprobe.settings import add_model_option, add_tokenizer_option

if TYPE_CHECKING:
    from headprobe.pytest_plugin.session import HeadprobeSession


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("headprobe", "headprobe: claims about attention heads")
    add_model_option(group.addoption, "--headprobe-model")
    add_tokenizer_option(group.addoption, "--headprobe-tokenizer")
    group.addoption("--headprobe-report-dir", dest="headprobe_report_dir", default=None,
                    metavar="DIR", help="where reports go (default: reports/)")
    group.addoption("--headprobe-seed", dest="headprobe_seed", default=None, type=int,
                    help="seed for sentences generated from templates (`generate: N`)")
    group.addoption("--headprobe-no-cache", dest="headprobe_no_cache", action="store_true",
                    default=False, help="do not read or write the forward cache")
    group.addoption("--headprobe-cache-dir", dest="headprobe_cache_dir", default=None,
                    metavar="DIR", help="cache folder (default: the user cache dir)")
    group.addoption("--headprobe-allow-files-under", dest="headprobe_allow_files_under",
                    action="append", default=None, metavar="DIR",
                    help="let hypothesis files read sentence files under DIR too (besides the "
                         "project: pytest's rootdir); repeatable")
    group.addoption("--headprobe-all-yaml", dest="headprobe_all_yaml", action="store_true",
                    default=False, help="collect every *.yaml/*.yml file as a hypothesis file "
                                        "(what `headprobe check` does)")
    group.addoption("--headprobe-no-report", dest="headprobe_no_report", action="store_true",
                    default=False, help="write no report.json / index.html")
    group.addoption("--headprobe-snapshot-update", dest="headprobe_snapshot_update",
                    action="store_true", default=False,
                    help="record the values of the selected 'expect: unchanged' claims in their "
                         "snapshot files")


def pytest_configure(config: pytest.Config) -> None:
    from headprobe.pytest_plugin.options import check_settings
    from headprobe.pytest_plugin.session import start  # imports nothing heavy

    config.addinivalue_line("markers", "headprobe: a claim about attention heads")
    check_settings(config)  # a bad [tool.headprobe] is a usage error, before collection
    start(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    from headprobe.pytest_plugin.session import end

    end(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from headprobe.claims.files import looks_like_hypothesis_file

    if parent.config.getoption("headprobe_all_yaml") or looks_like_hypothesis_file(file_path):
        if not _utf8_name(file_path, parent.config.rootpath):  # a usage error, at the end
            _session(parent.config).not_utf8.append(file_path)
            return None
        from headprobe.pytest_plugin.collect import HypothesisFile

        return HypothesisFile.from_parent(parent, path=file_path)
    return None


def _utf8_name(path: Path, rootpath: Path) -> bool:
    """Whether ``path`` below ``rootpath`` (what its test id holds) is UTF-8 text."""
    try:
        str(path.relative_to(rootpath) if path.is_relative_to(rootpath) else path).encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8, decoded as lone surrogates
        return False
    return True


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    """A hypothesis file `_utf8_name` refused ends the collection as a usage error (exit 4),
    also where pytest would say it found nothing for the path named on the command line."""
    try:
        result = yield
    except pytest.UsageError:
        _refuse_names(session.config)
        raise
    _refuse_names(session.config)
    return result


def _refuse_names(config: pytest.Config) -> None:
    paths = _session(config).not_utf8
    if paths:
        shown = ", ".join(os.fsencode(path).decode("utf-8", "backslashreplace")
                          for path in paths)
        raise pytest.UsageError(f"hypothesis file {shown}: its name is not UTF-8 text, so no "
                                f"test id can name it; rename it (letters, digits, '-', '_')")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    run = _session(config)
    if run.outside or run.made("models") is not None:  # else no hypothesis file was collected
        from headprobe.pytest_plugin.collect import raise_collection_errors

        raise_collection_errors(run)


@pytest.fixture(scope="session")
def headprobe_load(request: pytest.FixtureRequest) -> Callable[[str | None], Any]:
    """``headprobe_load(spec)`` → a loaded model with the claim builder, once per spec per
    session."""
    from headprobe.engine.models import ModelHandle
    from headprobe.errors import HeadprobeError

    session = _session(request.config)

    def load(spec: str | None) -> ModelHandle:
        run = session.options
        resolved = run.model_for(spec)
        try:
            model = session.models.handle(resolved, recorder=session.recorder.record_measured)
            model.model()  # loaded now: the test that asks for it is where it fails
        except HeadprobeError as error:
            # A model that cannot be had ends the whole run as a usage error (exit 4), as it
            # does for hypothesis files, instead of failing every test that uses the fixture.
            pytest.exit(f"headprobe_model: {error}{run.unnamed_model_hint(resolved)}",
                        returncode=int(error.exit_code))
        return model

    return load


@pytest.fixture(scope="session")
def headprobe_model(headprobe_load: Callable[[str | None], Any]) -> Any:
    """The model named by ``--model`` (``headprobe check``) / ``--headprobe-model`` (pytest),
    else ``[tool.headprobe] model`` in pyproject.toml, else bert-base-uncased; loaded once per
    session."""
    return headprobe_load(None)


def _session(config: pytest.Config) -> HeadprobeSession:
    from headprobe.pytest_plugin.session import headprobe_session

    return headprobe_session(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Hypothesis's own pytest plugin imports hypothesis in its terminal summary (0.1 s with its
    bytecode cached, up to 0.9 s without) to report statistics, failing examples and
    observations, which only tests that ran hypothesis have. When nothing in this run imported
    hypothesis (no ``@given`` test, no ``generate:`` set), there is nothing for it to report:
    its plugin is unregistered before the summary, so a run of plain claims (a warm
    ``headprobe check``) never imports it. Runs that used hypothesis are left alone."""
    if "hypothesis" in sys.modules:
        return
    manager = session.config.pluginmanager
    plugin = manager.get_plugin("hypothesispytest")
    if plugin is not None:
        manager.unregister(plugin)
