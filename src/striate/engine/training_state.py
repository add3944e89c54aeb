"""The Trainer's whole state as one nested dict (model, optimiser, schedule, scaler, loader
position, generators, history, callbacks, task), and its restoration: what makes resuming after
Ctrl-C continue exactly as the uninterrupted run would. Under torchrun, every process's
generators and running sums are gathered into the checkpoint process 0 writes, and each takes its
own back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from striate.engine import distributed
from striate.errors import ConfigError
from striate.state_file import load_state

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer


def capture(self: Trainer) -> dict[str, Any]:
    """Everything `fit(resume=...)` needs to continue exactly (saved by `Checkpoint`)."""
    rng = {"torch": torch.get_rng_state()}
    if self.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(self.device)
    running, ranks = self._running, {}
    if self._ranks is not None:  # under DDP: every process's generators and running sums
        rng.update({k: v for k, v in self._ranks.items() if k != "running_ranks"})
        ranks = {"running_ranks": self._ranks["running_ranks"]}
        running = ranks["running_ranks"].sum(0)
    return {
        "model": self.model.state_dict(),
        "optimizer": self.optimizer.state_dict(),
        "scheduler": self.scheduler.state_dict(),
        "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        "loader": self.train_loader.state_dict()
        if hasattr(self.train_loader, "state_dict")
        else None,
        "rng": rng,
        "trainer": {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "steps_log": self.steps_log,
            "running": running,
            **ranks,
            "total_steps": self.total_steps,
        },
        "callbacks": {
            f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in enumerate(self.callbacks)
        },
        "task": self.task.state_dict(),
    }


def restore(self: Trainer, resume: str | Path) -> None:
    """Load the state a run folder's (or a file's) last checkpoint holds into `self`."""
    path = Path(resume)
    if path.is_dir():
        path = (
            path / "checkpoints" / "last.safetensors"
            if (path / "checkpoints").is_dir()
            else path / "last.safetensors"
        )
    state = load_state(path)
    t = state["trainer"]
    if t["total_steps"] != self.total_steps:
        raise ConfigError(
            f"{path} belongs to a run of {t['total_steps']} steps, this one has "
            f"{self.total_steps}: resume with the same epochs, batch size and data"
        )
    try:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"{path} does not fit this model or optimiser ({e}); resume with the same "
            f"model and optimiser options as the run that wrote it"
        ) from e
    self.scheduler.load_state_dict(state["scheduler"])
    if self.scaler is not None and state["scaler"] is not None:
        self.scaler.load_state_dict(state["scaler"])
    if state["loader"] is not None and hasattr(self.train_loader, "load_state_dict"):
        self.train_loader.load_state_dict(state["loader"])
        self._skip = int(state["loader"].get("batch", 0))
    _restore_rng(self, state["rng"])
    self.epoch, self.step = int(t["epoch"]), int(t["step"])
    self.history, self.steps_log = list(t["history"]), dict(t["steps_log"])
    self._running = t["running"].to(self.device)
    if distributed.is_distributed():
        mine = t.get("running_ranks")
        if mine is not None and len(mine) == self.world_size:
            self._running = mine[self.rank].to(self.device)
        elif not self.is_main:
            self._running.zero_()  # process 0 carries the sum of all
    self.task.load_state_dict(state.get("task", {}))
    saved = state["callbacks"]
    for i, cb in enumerate(self.callbacks):
        key = f"{i}:{type(cb).__name__}"
        if key in saved:
            cb.load_state_dict(saved[key])


def _restore_rng(self: Trainer, rng: dict[str, torch.Tensor]) -> None:
    rank, parallel = self.rank, distributed.is_distributed()
    mine = parallel and len(rng.get("torch_ranks", ())) == self.world_size
    # a row of a stacked state must be copied out: set_rng_state ignores a view's offset
    torch.set_rng_state(rng["torch_ranks"][rank].clone() if mine else rng["torch"])
    if self.device.type == "cuda":
        if mine and "cuda_ranks" in rng:
            torch.cuda.set_rng_state(rng["cuda_ranks"][rank].clone(), self.device)
        elif "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
    if parallel and not mine and rank > 0:
        # a checkpoint of another number of processes: same data, fresh dropout draws
        torch.manual_seed(int(torch.randint(0, 2**62, (1,))) + rank)


def gather_ranks(self: Trainer) -> None:
    """Every process's generator states and running sums, for the checkpoint process 0
    writes next: resuming gives each process its own back, so it continues exactly."""
    self._ranks = {
        "torch_ranks": distributed.all_gather(torch.get_rng_state()),
        "running_ranks": distributed.all_gather(self._running),
    }
    if self.device.type == "cuda":
        cuda = torch.cuda.get_rng_state(self.device)
        self._ranks["cuda_ranks"] = distributed.all_gather(cuda)
