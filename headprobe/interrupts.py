"""Ctrl-C that is never lost.

Python runs a SIGINT handler at the next bytecode of the main thread. When that bytecode belongs
to a garbage-collection callback (JAX registers one, which runs at every collection), the
`KeyboardInterrupt` the default handler raises is printed as "Exception ignored in ..." and
dropped, and the run goes on as if nobody had pressed Ctrl-C. `reliable_interrupts` installs a
handler that, when the signal lands inside such a callback, has a watcher thread deliver it again
(`_thread.interrupt_main`) as soon as it sees the main thread outside every collection callback
(at once when the main thread waits in native code, as a model run mostly does), and everywhere
else raises `KeyboardInterrupt` as Python's default handler does. (A plain timer
would not do: a callback that releases the GIL, as JAX's does while it collects, is exactly when
another thread gets to run, so a timer's interrupt lands in the callback again.) It changes
nothing where SIGINT already has another handler (a user's, a debugger's) or outside the main
thread.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

REDELIVER_AFTER = 0.005  # seconds between looks at the main thread
_MAX_DEPTH = 200  # frames looked at for a collection callback


def in_gc_callback(frame: FrameType | None) -> bool:
    """Whether ``frame`` (or a frame that called it) runs a function of `gc.callbacks`."""
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    codes.discard(None)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            return False
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _redeliver(main: int) -> None:
    """Interrupt the main thread (``main``: its ident) once it is outside every collection
    callback; give up when it has ended."""
    while True:
        time.sleep(REDELIVER_AFTER)
        frame = sys._current_frames().get(main)
        if frame is None:
            return
        if not in_gc_callback(frame):
            _thread.interrupt_main()
            return


def _handler(signum: int, frame: FrameType | None) -> None:
    if in_gc_callback(frame):  # raised here it would be dropped: deliver it once gc is done
        threading.Thread(target=_redeliver, args=(threading.main_thread().ident,),
                         name="headprobe-ctrl-c", daemon=True).start()
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def reliable_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C is a `KeyboardInterrupt` even when it lands in a collection
    callback (see the module docstring)."""
    installed = install()
    try:
        yield
    finally:
        if installed:
            uninstall()


def install() -> bool:
    """`reliable_interrupts` without a block, for a session with its own end (pytest's
    configure and unconfigure); True when installed. Undo with `uninstall`."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    signal.signal(signal.SIGINT, _handler)
    return True


def uninstall() -> None:
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is _handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
