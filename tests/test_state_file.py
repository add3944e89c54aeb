"""Checkpoint state files: nested state round-trips exactly; damaged files are refused."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from striate.errors import StriateError
from striate.state_file import load_state, save_state, save_weights


def test_nested_state_round_trips_with_key_types_and_tuples(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {
        "optimizer": opt.state_dict(),
        "rng": torch.get_rng_state(),
        "misc": {"none": None, "nan": float("nan"), "list": [1, 2.5, "x", (True, 3)]},
        "empty": torch.empty(0),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert set(back["optimizer"]["state"]) == {0, 1, 2, 3}  # int keys stay ints
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.99)
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(back["optimizer"]["state"][0][k], v)
    assert torch.equal(back["rng"], state["rng"])
    assert back["misc"]["list"] == [1, 2.5, "x", (True, 3)] and back["misc"]["none"] is None
    assert back["scalar"].dtype == torch.float64 and back["empty"].numel() == 0
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])  # torch accepts it as its own


def test_a_write_that_fails_leaves_the_old_file(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state(path, {"a": torch.ones(2)})
    with pytest.raises(TypeError, match="cannot store"):
        save_state(path, {"a": torch.zeros(2), "bad": object()})
    assert torch.equal(load_state(path)["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["s.safetensors"]


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"\xff" * 8 + b"{}", json.dumps({"a": 1}).encode()],
)
def test_damaged_files_are_refused_with_advice(tmp_path, content):
    path = tmp_path / "c.safetensors"
    path.write_bytes(content)
    with pytest.raises(StriateError, match="not a striate checkpoint or is damaged"):
        load_state(path)


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(StriateError, match="not a striate checkpoint"):
        load_state(path)
    with pytest.raises(StriateError, match="does not exist"):
        load_state(tmp_path / "missing.safetensors")


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state(path, {"a": torch.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StriateError, match="damaged"):
        load_state(path)


def test_tied_weights_are_saved_and_load_back_tied(tmp_path):
    # an embedding shared with the output layer: safetensors refuses tensors that share memory
    emb = torch.nn.Embedding(7, 4)
    head = torch.nn.Linear(4, 7, bias=False)
    head.weight = emb.weight
    model = torch.nn.ModuleDict({"embedding": emb, "head": head})
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    loaded = load_file(str(tmp_path / "w.safetensors"))
    assert set(loaded) == {"embedding.weight", "head.weight"}
    assert torch.equal(loaded["embedding.weight"], emb.weight.detach())
    with torch.no_grad():
        emb.weight.zero_()
    model.load_state_dict(loaded)
    assert torch.equal(model["head"].weight, loaded["head.weight"])
    assert model["head"].weight is model["embedding"].weight
