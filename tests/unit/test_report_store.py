"""The report folder: one folder per run, report.json + index.html + figures, `latest` moved
last."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import numpy as np
import pytest

from headprobe.errors import UsageError
from headprobe.report import store

NOW = dt.datetime(2026, 11, 23, 10, 0, 0, tzinfo=dt.timezone.utc)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def sample_report(value=0.91, passed=True, figures=()):
    return {"headprobe_version": "0.1.0", "started": store.utc_timestamp(NOW),
            "results": [{"file": "hypotheses/a.yaml", "id": "next-token", "head": "L2H5",
                         "claim": "L2H5: token -> next", "measure": "argmax", "level": "token",
                         "model": "m", "expect": ">= 0.8", "value": value, "ci": [0.88, 0.93],
                         "n": 1234, "left_out": 55, "passed": passed, "figures": list(figures)}],
            "summary": {"passed": int(passed), "failed": int(not passed), "errors": 0}}


def test_started_timestamp_is_utc_with_z():
    local = dt.datetime(2026, 11, 23, 11, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert store.utc_timestamp(local) == "2026-11-23T10:00:00Z"


def test_new_run_dirs_are_named_by_utc_time_and_numbered_within_a_second(tmp_path):
    first = store.new_run_dir(tmp_path / "reports", now=NOW)
    second = store.new_run_dir(tmp_path / "reports", now=NOW)
    third = store.new_run_dir(tmp_path / "reports", now=NOW)
    assert [first.name, second.name, third.name] == [
        "20261123T100000Z", "20261123T100000Z-2", "20261123T100000Z-3"]
    assert (first / "figures").is_dir()


def test_write_report_writes_json_html_figures_and_points_latest(tmp_path):
    report_dir = tmp_path / "reports"
    report = sample_report(passed=False, figures=["figures/next-token_L2H5_1.png"])
    run_dir = store.write_report(report_dir, report,
                                 {"figures/next-token_L2H5_1.png": PNG}, now=NOW)
    assert (run_dir / "figures" / "next-token_L2H5_1.png").read_bytes() == PNG
    assert json.loads((run_dir / "report.json").read_text()) == report
    assert "next-token" in (run_dir / "index.html").read_text()
    latest = report_dir / "latest"
    assert latest.is_symlink() and os.readlink(latest) == run_dir.name   # relative: movable
    assert store.read_report(report_dir) == report
    assert (latest / "figures" / "next-token_L2H5_1.png").read_bytes() == PNG


def test_a_second_run_keeps_the_first_and_moves_latest(tmp_path):
    report_dir = tmp_path / "reports"
    first = store.write_report(report_dir, sample_report(0.5), now=NOW)
    second = store.write_report(report_dir, sample_report(0.7), now=NOW)
    assert json.loads((first / "report.json").read_text())["results"][0]["value"] == 0.5
    assert store.read_report(report_dir)["results"][0]["value"] == 0.7
    assert os.readlink(report_dir / "latest") == second.name
    leftovers = [p.name for p in report_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_figures_may_be_copied_from_files(tmp_path):
    source = tmp_path / "drawn.png"
    source.write_bytes(PNG)
    run_dir = store.write_report(tmp_path / "r", sample_report(), {"figures/x.png": source})
    assert (run_dir / "figures" / "x.png").read_bytes() == PNG


@pytest.mark.parametrize("bad", ["../escape.png", "/abs/x.png", "figures/../../x.png",
                                 "C:/x.png"])
def test_figure_paths_outside_the_run_folder_are_refused(tmp_path, bad):
    with pytest.raises(UsageError, match="relative to the run folder"):
        store.write_report(tmp_path / "r", sample_report(), {bad: PNG})


def test_latest_falls_back_to_a_copy_when_symlinks_fail(tmp_path, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not allowed")

    monkeypatch.setattr(store.os, "symlink", no_symlinks)
    report_dir = tmp_path / "reports"
    store.write_report(report_dir, sample_report(0.5), now=NOW)
    store.write_report(report_dir, sample_report(0.6), now=NOW)
    latest = report_dir / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    assert store.read_report(report_dir)["results"][0]["value"] == 0.6
    assert sorted(p.name for p in report_dir.iterdir()) == [
        "20261123T100000Z", "20261123T100000Z-2", "latest"]


def test_finish_run_converts_numpy_values_and_nan_to_json(tmp_path):
    run_dir = store.new_run_dir(tmp_path, now=NOW)
    report = sample_report(value=np.float32(0.25))
    report["results"][0]["n"] = np.int64(7)
    report["results"][0]["ci"] = np.array([float("nan"), 0.5])
    store.finish_run(run_dir, tmp_path, report)
    result = json.loads((run_dir / "report.json").read_text())["results"][0]
    assert (result["value"], result["n"], result["ci"]) == (0.25, 7, [None, 0.5])


def test_a_lone_surrogate_in_the_report_is_written_as_its_escape(tmp_path):
    """A file name that is not UTF-8 reaches Python as lone surrogates ('\\udcff'); the
    report is still written, as UTF-8 that reads back to the same strings."""
    run_dir = store.new_run_dir(tmp_path, now=NOW)
    report = sample_report()
    report["results"][0].update(id="caf\u00e9-\udcff", file="hypotheses/h\udcff.yaml")
    store.finish_run(run_dir, tmp_path, report)
    result = json.loads((run_dir / "report.json").read_bytes().decode("utf-8"))["results"][0]
    assert (result["id"], result["file"]) == ("caf\u00e9-\udcff", "hypotheses/h\udcff.yaml")
    assert "caf\u00e9" in (run_dir / "report.json").read_text("utf-8")  # non-ASCII as it is
    page = (run_dir / "index.html").read_bytes().decode("utf-8")
    assert "caf\u00e9-\\udcff" in page


@pytest.mark.parametrize("kind", ["fifo", "file"])
def test_latest_that_is_not_a_link_or_a_folder_is_left_alone(tmp_path, kind):
    """A named pipe (or a device, or a file) called latest is not headprobe's: renaming the
    new link over it would replace it."""
    latest = tmp_path / "latest"
    os.mkfifo(latest) if kind == "fifo" else latest.write_text("mine", encoding="utf-8")
    run_dir = store.new_run_dir(tmp_path, now=NOW)
    what = "a named pipe" if kind == "fifo" else "a file"
    with pytest.raises(UsageError, match=rf"latest is {what}.*the report is in {run_dir}"):
        store.finish_run(run_dir, tmp_path, sample_report())
    assert (run_dir / "report.json").is_file() and not latest.is_symlink()
    assert stat.S_ISFIFO(os.stat(latest).st_mode) if kind == "fifo" else \
        latest.read_text(encoding="utf-8") == "mine"


def test_a_report_folder_that_is_a_fifo_says_so(tmp_path):
    os.mkfifo(tmp_path / "reports")
    with pytest.raises(UsageError, match=r"is a named pipe \(FIFO\), not a folder; pass a "
                                         r"writable folder with --report-dir"):
        store.new_run_dir(tmp_path / "reports", now=NOW)


def test_finish_run_leaves_latest_alone_when_asked(tmp_path):
    run_dir = store.new_run_dir(tmp_path, now=NOW)
    store.finish_run(run_dir, tmp_path, sample_report(), point_latest=False)
    assert (run_dir / "report.json").exists() and not (tmp_path / "latest").exists()


def test_figure_names_from_user_ids_become_safe_file_names(tmp_path):
    path = store.figure_path(tmp_path, "../<script>id[L2H5] 1.png")
    assert path.parent == tmp_path / "figures"
    assert path.name == "__script_id_L2H5__1.png"
    assert store.relative_path(tmp_path, path) == "figures/__script_id_L2H5__1.png"


def test_reading_a_missing_report_says_what_to_do(tmp_path):
    with pytest.raises(UsageError, match="run 'headprobe check' first"):
        store.read_report(tmp_path)
