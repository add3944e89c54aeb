"""The spatial tests work on tiny tensors: one torch thread each (on a shared, loaded machine two
threads wait on each other far longer than the work takes), restored afterwards."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
