"""Callbacks the tests share."""

import os
import signal

from striate.engine import Callback


class CtrlCAt(Callback):
    """Presses Ctrl-C (a real SIGINT) after step `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer, loss):
        if trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)
