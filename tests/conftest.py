"""Shared test set-up. Warnings are errors in headprobe's own tests (not in users'
`headprobe check`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")
    # Third-party noise that is not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore::FutureWarning")


# ---- headprobe check / Python API tests (tests/cli): a planted tiny checkpoint, made once ----
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory):
    """Folder of the tiny checkpoint of `tests/fixtures_models.py` (L1H1 uniform, or all on
    "zebra" when the sentence has it); 16 positions, 2 layers, 3 heads."""
    from fixtures_models import write_planted_checkpoint

    return write_planted_checkpoint(tmp_path_factory.mktemp("planted-model"))


@pytest.fixture(scope="session", autouse=True)
def program_key_file(tmp_path_factory):
    """The key that seals compiled programs (docs/cache.md) in a temporary folder instead of
    the user's ~/.config; the commands tests run inherit it."""
    name = "HEADPROBE_PROGRAM_KEY_FILE"
    if os.environ.get(name):
        yield os.environ[name]
        return
    os.environ[name] = str(tmp_path_factory.mktemp("program-key") / "program-key")
    yield os.environ[name]
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def check_cache(tmp_path_factory):
    """A headprobe cache dir shared by the check tests (JAX's compiled programs are reused)."""
    return tmp_path_factory.mktemp("headprobe-cache")
