"""stop_on_ctrl_c: the first Ctrl-C asks to stop, the second interrupts, the old handler returns."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from striate.interrupt import stop_on_ctrl_c


def press() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread before kill returns


def test_first_press_asks_second_interrupts_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    asked = []
    with pytest.raises(KeyboardInterrupt), stop_on_ctrl_c(lambda: asked.append(1)):
        press()
        assert asked == [1]
        press()
    assert asked == [1]
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_leaves_signals_alone():
    seen = []

    def work():
        with stop_on_ctrl_c(lambda: None):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before]


def test_sigterm_counts_as_a_press_so_a_preempted_run_saves_its_state():
    before = signal.getsignal(signal.SIGTERM)
    asked = []
    with pytest.raises(KeyboardInterrupt), stop_on_ctrl_c(lambda: asked.append(1)):
        os.kill(os.getpid(), signal.SIGTERM)
        assert asked == [1]
        press()  # a Ctrl-C after the SIGTERM: the second request, at once
    assert signal.getsignal(signal.SIGTERM) is before
