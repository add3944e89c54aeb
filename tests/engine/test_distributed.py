"""Data-parallel training: the process group from torchrun's environment, loaders that share
each global batch among processes, and 2 CPU processes under the real torchrun against one
process (same weights, metrics and accuracy; one writer; agreed stops; exact resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from striate.data.augment import AlternatingFlip, Compose, Mixup, RandomCrop
from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader, StreamingLoader
from striate.engine import (
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    ProgressBar,
    TensorBoard,
    Trainer,
    distributed,
)
from striate.errors import ConfigError
from striate.state_file import load_state
from tests.data.folder_fixtures import make_folder
from tests.engine import ddp_worker

TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _set(n=23, c=3, h=6, w=6, k=3, seed=0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % k, tuple("abc"[:k]), "random")


# --------------------------------------------------------------------------- the process group


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_outside_torchrun_everything_is_a_no_op(no_torchrun):
    ctx = distributed.init_from_env(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.backend) == (0, 1, 0, None)
    assert ctx.is_main and not ctx.distributed and ctx.device == torch.device("cpu")
    no_torchrun.setenv("WORLD_SIZE", "1")  # one process under torchrun: no group either
    assert distributed.init_from_env(device="cpu").backend is None
    assert not torch.distributed.is_initialized() and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.tensor([1.0, -2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, -2.0]
    assert distributed.all_reduce_max(t).tolist() == [1.0, -2.0]
    assert torch.equal(distributed.all_gather(t), t[None])
    assert distributed.broadcast_object("runs/x") == "runs/x"
    distributed.barrier()
    distributed.cleanup()
    trainer = Trainer(epochs=1, progress=False, device="cpu")
    assert (trainer.rank, trainer.world_size, trainer.is_main) == (0, 1, True)


@pytest.mark.parametrize(
    "env, kwargs, match",
    [
        ({}, dict(backend="mpi"), "auto, gloo, nccl"),
        ({}, dict(timeout=-1), "timeout"),
        ({"WORLD_SIZE": "two"}, {}, "WORLD_SIZE must be an integer"),
        ({"WORLD_SIZE": "0"}, {}, "at least 1"),
        ({"WORLD_SIZE": "2"}, {}, "RANK is not set.*torchrun"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, {}, r"RANK must lie in 0\.\.1"),
        ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "-1"}, {}, "LOCAL_RANK"),
        ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, {}, "MASTER_ADDR"),
        (
            {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "x"},
            {},
            "MASTER_PORT",
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "x"}
            | {"MASTER_PORT": "1"},
            dict(backend="nccl"),
            "nccl backend needs CUDA",
        ),
    ],
)
def test_a_bad_environment_or_option_says_what_to_do(no_torchrun, env, kwargs, match):
    for name, value in env.items():
        no_torchrun.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        distributed.init_from_env(**{"device": "cpu", **kwargs})
    assert not torch.distributed.is_initialized()


def test_the_writers_run_in_process_0_alone_and_the_deciders_everywhere():
    assert ProgressBar.main_only and CSVLogger.main_only and Checkpoint.main_only
    assert TensorBoard.main_only and not EarlyStopping.main_only


# --------------------------------------------------------------------------- shared batches


def _epoch(loader):
    return [(x, y, loader.global_size) for x, y in loader]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("mix", [False, True])
def test_the_shares_of_a_global_batch_make_up_the_single_process_batch(world, mix):
    """Every process draws the same order and augmentation; its share is its slice of the
    batch one process would see, mixup partners from other shares included."""
    ds = _set()
    augment = Compose([RandomCrop(6, padding=1), Mixup(1.0, num_classes=3)]) if mix else None
    kw = dict(batch_size=6, device="cpu", seed=4, augment=augment, normalize=lambda x: x * 2 - 1)
    single = BatchLoader(ds, **kw)
    shares = [BatchLoader(ds, rank=r, world_size=world, **kw) for r in range(world)]
    assert len(single) == 4 and all(len(s) == 4 for s in shares)
    for _ in range(2):  # two epochs, two orders
        whole = _epoch(single)
        parts = [_epoch(s) for s in shares]
        for i, (x, y, n) in enumerate(whole):
            assert all(p[i][2] == n == len(y) for p in parts)  # global_size: the whole batch
            assert torch.equal(torch.cat([p[i][0] for p in parts]), x)
            assert torch.equal(torch.cat([p[i][1] for p in parts]), y)
        sizes = [[len(y) for _, y, _ in p] for p in parts]
        cuts = [[len(t) for t in torch.arange(n).tensor_split(world)] for n in (6, 6, 6, 5)]
        assert sizes == [list(s) for s in zip(*cuts, strict=True)]
    assert mix == (whole[0][1].dim() == 2)  # mixup made soft targets


def test_a_short_last_batch_smaller_than_the_world_is_left_out_everywhere():
    ds = _set(n=26)  # batches of 8: 8, 8, 8 and 2, too few for 4 processes
    loaders = [BatchLoader(ds, 8, device="cpu", rank=r, world_size=4) for r in range(4)]
    for loader in loaders:
        sizes = [len(y) for _, y in loader]
        assert len(loader) == len(sizes) == 3 and sizes == [2, 2, 2]
    assert len(BatchLoader(ds, 8, device="cpu", rank=1, world_size=2)) == 4  # 2 ≥ 2: kept
    assert len(BatchLoader(ds, 8, device="cpu", drop_last=True, rank=1, world_size=2)) == 3


def test_a_share_resumes_from_process_0s_state_mid_epoch():
    """Process 0 writes the checkpoint; the generator is the same in every process, so process
    1 continues its own share from process 0's loader state."""
    ds = _set(n=40)
    kw = dict(batch_size=8, device="cpu", seed=2, augment=RandomCrop(6, padding=2), world_size=2)
    reference = list(BatchLoader(ds, rank=1, **kw))
    first = BatchLoader(ds, rank=0, **kw)
    it = iter(first)
    for _ in range(2):
        next(it)
    second = BatchLoader(ds, rank=1, **kw)
    second.load_state_dict(first.state_dict())
    rest = list(second)
    assert len(rest) == len(reference) - 2
    for (x, y), (xr, yr) in zip(rest, reference[2:], strict=True):
        assert torch.equal(x, xr) and torch.equal(y, yr)


def test_a_streaming_share_decodes_only_its_part(tmp_path):
    make_folder(tmp_path / "f", per_class=(9, 7, 8), splits=("train",))
    kw = dict(batch_size=6, device="cpu", seed=5, workers=0)
    single = list(StreamingLoader(tmp_path / "f", **kw))
    parts = [list(StreamingLoader(tmp_path / "f", rank=r, world_size=2, **kw)) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(single, *parts, strict=True):
        assert len(y0) == len(y1) == 3
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    # augmented shares: draws of each process's own, reproducible, the epoch generator in step
    aug = dict(kw, augment=RandomCrop(6, padding=2))
    a, b, c = (StreamingLoader(tmp_path / "f", rank=r, world_size=2, **aug) for r in (0, 0, 1))
    ia, ib, ic = iter(a), iter(b), iter(c)
    (xa, _), (xb, _), _ = next(ia), next(ib), next(ic)
    assert torch.equal(xa, xb)
    assert a.state_dict()["rng"].equal(c.state_dict()["rng"])
    # alternating flips depend on the dataset index only: the shares are the single run's halves
    flip = dict(kw, augment=AlternatingFlip())
    single = list(StreamingLoader(tmp_path / "f", **flip))
    parts = [list(StreamingLoader(tmp_path / "f", rank=r, world_size=2, **flip)) for r in (0, 1)]
    for (x, _), (x0, _), (x1, _) in zip(single, *parts, strict=True):
        assert torch.equal(torch.cat([x0, x1]), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=10, world_size=3), "multiple of 3.*9 or 12"),
        (dict(batch_size=2, world_size=3), "multiple of 3.*use e.g. 3"),
        (dict(batch_size=6, rank=3, world_size=3), r"rank must lie in 0\.\.2"),
        (dict(batch_size=6, rank=-1, world_size=3), r"rank must lie in 0\.\.2"),
        (dict(batch_size=6, world_size=0), "world_size"),
        (dict(batch_size=6, rank="0", world_size=2), "rank must be an integer"),
        (dict(batch_size=30, world_size=30), "cannot be shared by 30 processes"),
    ],
)
def test_bad_sharing_says_what_to_do(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BatchLoader(_set(), device="cpu", **kwargs)


def test_a_shared_loader_without_a_process_group_is_refused(no_torchrun):
    loader = BatchLoader(_set(), 6, device="cpu", rank=0, world_size=2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 36, 3))
    with pytest.raises(
        ConfigError, match="among 2 processes but 1 is running.*torchrun.*world_size=1"
    ):
        Trainer(epochs=1, progress=False, device="cpu").fit(model, loader)


# --------------------------------------------------------------------------- under torchrun


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")  # the script users run
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """One torchrun launch of ddp_worker.py with 2 CPU processes; its results per rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path_factory.mktemp("ddp")
    train, test = ddp_worker.save_digits(out / "data.pt")
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    command = [*_torchrun(), "--standalone", "--nproc_per_node", "2"]
    command += [str(Path(ddp_worker.__file__)), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(out.glob("stderr_*.txt")))
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}\n{logs}"
    results = [torch.load(out / f"result_{r}.pt", weights_only=True) for r in (0, 1)]
    return out, results, train, test


def test_two_processes_train_as_one_process_on_the_same_global_batches(ddp):
    """Each process's mean loss over its share, weighted by the share's size (the short last
    batch is split 12 + 11) and averaged by DDP, is the global batch's gradient: the weights
    follow the single-process run to float rounding, and so do the metrics."""
    _, results, train, test = ddp
    r0, r1 = results
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    assert r0["is_main"] and not r1["is_main"] and r0["len"] == r1["len"] == 16
    assert r0["chosen"] == r1["chosen"] == "chosen by 0"  # broadcast_object
    net = ddp_worker.model()
    single = ddp_worker.trainer()  # no run folder, no progress bar
    train_loader, val_loader = ddp_worker.loaders(train, test)
    history = single.fit(net, train_loader, val_loader)
    for name, p in net.state_dict().items():
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name  # one model
        torch.testing.assert_close(r0["weights"][name], p, atol=1e-5, rtol=1e-4, msg=name)
    for r in results:
        assert len(r["history"]) == len(history) == 6
        for mine, one in zip(r["history"], history, strict=True):
            assert mine["val_acc"] == pytest.approx(one["val_acc"], abs=0.01)
            assert mine["train_acc"] == pytest.approx(one["train_acc"], abs=0.01)
            for k in ("train_loss", "val_loss", "val_top5"):
                assert mine[k] == pytest.approx(one[k], rel=1e-4, abs=1e-6), k
        assert r["steps_log"]["step"] == single.steps_log["step"]
        torch.testing.assert_close(
            torch.tensor(r["steps_log"]["loss"]), torch.tensor(single.steps_log["loss"])
        )  # the logged step loss is the global batch's
    assert history[-1]["val_acc"] > 0.85  # it learned something worth comparing
    expected = single.evaluate(net, BatchLoader(test, 100, shuffle=False, device="cpu"))
    for r in results:  # a shared evaluation loader: the metrics of the whole set
        assert r["test"]["acc"] == pytest.approx(expected["acc"], abs=1e-9)
        assert r["test"]["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_only_process_0_prints_and_writes_and_the_weights_keep_their_names(ddp):
    out, results, _, _ = ddp
    published = [json.loads((out / f"published_{r}.json").read_text()) for r in (0, 1)]
    assert published[1] == []
    run = out / "run"
    for name in ("metrics.csv", "steps.csv", "checkpoints/last.safetensors", "best.safetensors"):
        assert any(p.endswith(name) for p in published[0]), name
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 6
    assert len((run / "steps.csv").read_text().splitlines()) == 1 + 6 * 16
    printed = [(out / f"stderr_{r}.txt").read_text() for r in (0, 1)]
    assert "epoch 6/6" in printed[0] and "epoch" not in printed[1]
    state = load_state(run / "checkpoints" / "last.safetensors")
    keys = set(ddp_worker.model().state_dict())
    assert set(state["model"]) == keys  # no "module." prefix from the DDP wrapper
    for k in keys:
        assert torch.equal(state["model"][k], results[0]["weights"][k])
    assert state["rng"]["torch_ranks"].shape[0] == 2  # each process's generator


def test_a_non_finite_loss_or_should_stop_in_one_process_stops_both(ddp):
    _, (r0, r1), _, _ = ddp
    assert r0["diverged"] == r1["diverged"]
    step, message = r0["diverged"]
    assert step == 3 and "the loss became nan at step 4" in message
    assert r0["stopped"] == (5, True, "stopped by another process")
    assert r1["stopped"] == (5, True, "asked by rank 1")


def test_ctrl_c_in_one_process_then_resume_continues_exactly(ddp):
    """Process 1 alone gets Ctrl-C mid-epoch 2 (dropout, EMA and mixup on); both stop after
    step 21, process 0 saves, and resuming gives bit for bit the uninterrupted run."""
    _, results, _, _ = ddp
    for r in results:
        res = r["resume"]
        assert res["cut"] == (21, True, "interrupted") and res["saved_step"] == 21
        assert res["resumed_step"] == 48
        for k, v in res["full"].items():
            assert torch.equal(v, res["resumed"][k]), k
            assert torch.equal(res["full_ema"][k], res["resumed_ema"][k]), k
        for full, resumed in zip(res["full_history"], res["resumed_history"], strict=True):
            for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
                assert full[k] == resumed[k], k
    for k, v in results[0]["resume"]["full"].items():  # the same model in both processes
        assert torch.equal(v, results[1]["resume"]["full"][k])
