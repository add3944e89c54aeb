"""Data-parallel training across processes: the process group that `torchrun` sets up.

    torchrun --standalone --nproc_per_node 2 train.py        # one machine, two processes

    ctx = init_from_env()              # reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT
    loader = BatchLoader(train, 256, device=ctx.device)      # each process: 128 of every 256
    Trainer(..., device=ctx.device).fit(model, loader, val)  # DistributedDataParallel inside
    cleanup()

Every process runs the same script. The loaders split each global batch across the processes,
the Trainer wraps the model in `DistributedDataParallel` (gradients are averaged after each
backward pass), reduces the metrics across processes, and lets process 0 alone print, log and
write checkpoints. Backends: gloo on CPU, NCCL on CUDA (one GPU per process, cuda:LOCAL_RANK).
Outside torchrun (WORLD_SIZE unset or 1) everything here is a no-op, so one script serves both.

Several machines: run the same command on each, naming one of them as the rendezvous point,

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 train.py

(`torchrun --no-python ... striate train ...` for the CLI). Process 0 alone writes the run
folder, so resuming on several machines needs it on a filesystem they share.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from striate.device import resolve_device
from striate.engine.metrics import MetricTracker
from striate.errors import ConfigError

BACKENDS = ("auto", "gloo", "nccl")

__all__ = [
    "BACKENDS",
    "Context",
    "all_gather",
    "all_reduce_max",
    "all_reduce_sum",
    "all_reduce_tracker",
    "barrier",
    "broadcast_buffers",
    "broadcast_object",
    "cleanup",
    "init_from_env",
    "is_distributed",
    "is_main",
    "rank",
    "world_size",
]


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among `world_size` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None when there is no process group (a single process)

    @property
    def is_main(self) -> bool:
        """Process 0: the one that prints, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ConfigError(
                f"the environment variable {name} is not set: launch the script with torchrun "
                f"(e.g. torchrun --standalone --nproc_per_node 2 script.py), which sets it"
            )
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"the environment variable {name} must be an integer, got {value!r}; "
            f"let torchrun set it"
        ) from None


def init_from_env(
    backend: str = "auto",
    device: str | torch.device = "auto",
    timeout: float | None = None,
) -> Context:
    """Join the process group torchrun describes in the environment (a no-op context when
    WORLD_SIZE is unset or 1). `backend="auto"` is NCCL when this process gets a GPU, else gloo;
    on CUDA each process takes cuda:LOCAL_RANK. `timeout` (seconds) bounds a collective."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ConfigError(f"WORLD_SIZE must be at least 1, got {world}")
    if world == 1:
        return Context(0, 1, 0, resolve_device(device), None)
    rank_, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank_ < world:
        raise ConfigError(f"RANK must lie in 0..{world - 1} (WORLD_SIZE {world}), got {rank_}")
    if local < 0:
        raise ConfigError(f"LOCAL_RANK must be non-negative, got {local}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(
                f"the environment variable {name} is not set: launch with torchrun, or set "
                f"MASTER_ADDR/MASTER_PORT to the address and a free port of the rank-0 machine"
            )
    dev = _process_device(device, backend, local)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and (dev.type != "cuda" or not dist.is_nccl_available()):
        raise ConfigError(
            "the nccl backend needs CUDA GPUs (one per process); use backend 'gloo' on CPU"
        )
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        options = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
        dist.init_process_group(backend, rank=rank_, world_size=world, **options)
    elif dist.get_world_size() != world or dist.get_rank() != rank_:
        raise ConfigError(
            f"a process group of {dist.get_world_size()} processes already exists, the "
            f"environment says {world}; call init_from_env once per process"
        )
    return Context(rank_, world, local, dev, dist.get_backend())


def _process_device(device: str | torch.device, backend: str, local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK for a CUDA process (a bare 'cuda' or 'auto'), the CPU for gloo."""
    if backend == "gloo" and device == "auto":
        return torch.device("cpu")
    dev = resolve_device(device)
    if dev.type == "mps":
        return torch.device("cpu")  # no collectives on MPS
    if dev.type != "cuda":
        return dev
    count = torch.cuda.device_count()
    if dev.index is None:
        if local_rank >= count:
            raise ConfigError(
                f"LOCAL_RANK is {local_rank} but this machine has {count} GPU(s): start at "
                f"most {count} processes per machine (--nproc_per_node {count})"
            )
        return torch.device("cuda", local_rank)
    if dev.index != local_rank:
        raise ConfigError(
            f"device {dev} asked for in the process with LOCAL_RANK {local_rank}: under torchrun "
            f"each process uses cuda:LOCAL_RANK; pass device='auto' or 'cuda'"
        )
    return dev


def is_distributed() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True in process 0 and in a single process."""
    return rank() == 0


def _comm_device(tensor: torch.Tensor) -> torch.device:
    """NCCL moves CUDA tensors only; gloo moves CPU tensors (and CUDA ones)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensor.device


def _collective(tensor: torch.Tensor, op) -> torch.Tensor:
    device = _comm_device(tensor)
    if device == tensor.device:
        op(tensor)
        return tensor
    moved = tensor.to(device)
    op(moved)
    tensor.copy_(moved)
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes, in place; returns it (unchanged in a single process)."""
    if is_distributed():
        _collective(tensor, lambda t: dist.all_reduce(t, dist.ReduceOp.SUM))
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum over all processes, in place; returns it."""
    if is_distributed():
        _collective(tensor, lambda t: dist.all_reduce(t, dist.ReduceOp.MAX))
    return tensor


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` (same shape everywhere), stacked in rank order: W×shape."""
    if not is_distributed():
        return tensor[None].clone()
    device = _comm_device(tensor)
    moved = tensor.to(device)
    parts = [torch.empty_like(moved) for _ in range(world_size())]
    dist.all_gather(parts, moved)
    return torch.stack(parts).to(tensor.device)


def batch_share(n: int, loader: Any) -> tuple[float, int]:
    """(weight, global batch size) for this process's `n` samples of a step.

    DDP averages the processes' gradients; weighting each process's mean loss by its share of
    the global batch, n_r·W/n, makes that average the gradient of the global batch's mean loss
    when a short last batch is split unevenly (the weight is 1 for every other batch)."""
    total = getattr(loader, "global_size", 0) or n * world_size()
    return n * world_size() / total, total


def mean_over_processes(value: float, n: int, device: torch.device) -> float:
    """The mean over every process's samples of a quantity whose mean over this process's `n`
    is `value` (so that all processes see the same loss and take the same decisions)."""
    both = torch.tensor([value * n, n], dtype=torch.float64, device=device)
    total, count = all_reduce_sum(both).tolist()
    return total / count


def check_same_length(steps_per_epoch: int, device: torch.device) -> None:
    """Every process must take the same number of steps per epoch, or one waits forever."""
    lengths = torch.tensor([steps_per_epoch, -steps_per_epoch], device=device)
    longest, shortest = all_reduce_max(lengths).tolist()
    if longest != -shortest:
        raise ConfigError(
            f"the processes' training loaders have {-shortest} to {longest} batches per "
            f"epoch: every process must take the same number of steps (give each the same "
            f"data and batch size, and a loader that shares each batch among them)"
        )


def all_reduce_tracker(tracker: MetricTracker) -> MetricTracker:
    """Sum a MetricTracker's counts over all processes, in place (one collective), so that
    `compute()` gives the metrics of everything the processes saw together."""
    if not is_distributed() or not tracker._state:
        return tracker
    s = tracker._state
    keys = ("loss", "correct", "class_correct", "class_total")
    sizes = [s[k].numel() for k in keys]
    counts = torch.tensor([tracker._n, tracker._n_loss], dtype=torch.float64)
    packed = torch.cat(
        [s[k].reshape(-1).to(torch.float64) for k in keys] + [counts.to(s["loss"].device)]
    )
    all_reduce_sum(packed)  # float64 counts are exact up to 2**53
    parts = packed.split([*sizes, 2])
    for k, part in zip(keys, parts, strict=False):
        s[k].copy_(part.reshape(s[k].shape).to(s[k].dtype))
    tracker._n, tracker._n_loss = (int(v) for v in parts[-1].tolist())
    return tracker


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy `src`'s buffers (batch-norm statistics) into every process's `module`."""
    if is_distributed():
        for b in module.buffers():
            _collective(b, lambda t: dist.broadcast(t, src))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`src`'s `obj` (anything picklable, e.g. the run folder it chose) in every process.

    It travels pickled between the processes of this job only; it never touches a file."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def cleanup() -> None:
    """Leave the process group (call at the end of the script; harmless without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
