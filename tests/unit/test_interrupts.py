"""Ctrl-C is never lost (headprobe/interrupts.py): a SIGINT whose handler runs inside a garbage
collection callback (as JAX's runs at every collection) still ends the work with a
KeyboardInterrupt, where Python's default handler would have it dropped."""

from __future__ import annotations

import gc
import signal
import sys
import time

import pytest

from headprobe import interrupts


@pytest.fixture
def default_handler():
    """Python's own SIGINT handler for each test (headprobe's pytest plugin installs its own for
    the session, which these tests restore afterwards)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_the_pytest_plugin_installs_the_handler_for_the_session():
    assert signal.getsignal(signal.SIGINT) is interrupts._handler


def test_a_pytest_run_inside_this_one_leaves_the_handler_to_this_session(tmp_path):
    (tmp_path / "test_inner.py").write_text("def test_inner():\n    pass\n")
    assert pytest.main([str(tmp_path / "test_inner.py"), "-q", "-p", "no:cacheprovider"]) == 0
    assert signal.getsignal(signal.SIGINT) is interrupts._handler


def _work_with_ctrl_c_inside_a_gc_callback(seconds: float) -> str:
    """Allocate for up to ``seconds`` while one collection callback sends SIGINT to this process
    from inside itself; 'interrupted' or 'finished'."""
    sent = []

    def callback(phase, info):
        if phase == "start" and not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)  # its handler runs in this callback's frame
            sum(range(10))  # a few bytecodes more inside the callback

    gc.callbacks.append(callback)
    finished = False
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            [[] for _ in range(1000)]  # collections, so the callback runs
            gc.collect(0)
            time.sleep(0.001)  # waiting outside Python, as a model run does most of the time
        finished = True
        time.sleep(0.5)  # an interrupt that comes too late lands here, not in pytest
        return "finished"
    except KeyboardInterrupt:
        return "interrupted too late" if finished else "interrupted"
    finally:
        gc.callbacks.remove(callback)


def test_with_the_default_handler_ctrl_c_inside_a_gc_callback_is_dropped(default_handler,
                                                                          monkeypatch):
    # The failure mode itself, so that the next test shows something: Python reports the
    # KeyboardInterrupt as "Exception ignored in ..." and goes on.
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: dropped.append(raised.exc_type))
    assert _work_with_ctrl_c_inside_a_gc_callback(0.5) == "finished"
    assert dropped == [KeyboardInterrupt]


def test_reliable_interrupts_deliver_ctrl_c_once_the_collection_is_over(default_handler):
    with interrupts.reliable_interrupts():
        assert _work_with_ctrl_c_inside_a_gc_callback(5.0) == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_outside_a_collection_is_a_keyboard_interrupt_at_once(default_handler):
    with interrupts.reliable_interrupts(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
        time.sleep(5)


def test_a_handler_someone_else_installed_is_left_alone(default_handler):
    def theirs(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, theirs)
    try:
        with interrupts.reliable_interrupts():
            assert signal.getsignal(signal.SIGINT) is theirs
        assert signal.getsignal(signal.SIGINT) is theirs
    finally:
        signal.signal(signal.SIGINT, previous)
