"""Ctrl-C for long work: the first press asks the work to stop where it can keep its state (after
the running step, when the checkpoint is saved); a second one interrupts at once. SIGTERM (what
`kill`, systemd and clouds send before preempting a spot machine) counts as a press too, so a
preempted run saves its state as after Ctrl-C.

    with stop_on_ctrl_c(lambda: setattr(job, "stop", True)):
        while not job.stop:
            step()
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_ctrl_c(on_first: Callable[[], None]) -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM calls `on_first` and the next raises
    KeyboardInterrupt; the previous handlers come back after it. Outside the main thread (where
    Python delivers signals) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = False

    def handler(signum, frame):  # noqa: ARG001
        nonlocal pressed
        if pressed:
            raise KeyboardInterrupt
        pressed = True
        on_first()

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
