"""striate.scratch runs without torch: in a subprocess where importing torch fails, it imports,
trains a step and reads MNIST-style IDX files written here."""

import subprocess
import sys
import textwrap

import numpy as np

from striate.data.idx import write_idx

HIDE_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is hidden in this test ({name})")
        return None

sys.meta_path.insert(0, NoTorch())
"""

SCRIPT = """
import sys
import numpy as np
import striate.scratch
from striate.scratch.data import load_mnist_arrays
from striate.scratch.layers import Linear, ReLU
from striate.scratch.model import Model
from striate.scratch.optim import Adam, Nesterov
from striate.scratch.solver import Solver

x, y = load_mnist_arrays(sys.argv[1], "train")
assert x.shape == (20, 36) and x.dtype == np.float32 and y.dtype == np.int64, (x.shape, y)
model = Model([Linear(36, 8, 0), ReLU(), Linear(8, 10, 1)])
before = model.params()["0.W"].copy()
loss = model.loss(x, y)
Adam(1e-2).step(model.params(), model.grads())
assert np.isfinite(loss) and not np.array_equal(before, model.params()["0.W"])
Solver(model, Nesterov(0.01), batch_size=8, epochs=1, verbose=False).fit(x, y, x, y)
assert "torch" not in sys.modules, "torch was imported"
try:
    import torch  # noqa: F401
except ImportError:
    print("ok: torch hidden and never imported")
"""


def test_scratch_runs_with_torch_hidden(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 6, 6), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, 20).astype(np.uint8))
    code = HIDE_TORCH + textwrap.dedent(SCRIPT)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ok: torch hidden and never imported" in result.stdout
