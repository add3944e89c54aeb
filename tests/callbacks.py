"""Callbacks the tests share."""

import os
import signal

from striate.engine import Callback


class CtrlCAt(Callback):
    """Presses Ctrl-C (a real SIGINT; or sends `sig`, e.g. SIGTERM) after step `at`."""

    def __init__(self, at: int, sig: int = signal.SIGINT) -> None:
        self.at, self.sig = at, sig

    def on_step_end(self, trainer, loss):
        if trainer.step == self.at:
            os.kill(os.getpid(), self.sig)
