"""Headless Chromium for the tests that open pages (the HTML report, interactive views): where it
is, and one way to start it. On CI a missing Chromium fails the test (`.ci/run` installs it);
elsewhere the test is skipped."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is needed for the browser test on CI (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed")


def headless(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Chromium run headless with a profile folder of its own (no sync, no background
    requests, no first-run pages) and ``args`` (the page, ``--dump-dom``, ``--screenshot=``)."""
    command = [chromium_or_skip(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--no-first-run",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)
