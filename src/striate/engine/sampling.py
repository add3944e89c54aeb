"""Loss-based importance sampling (SGD-S v1) and the statistics that motivate it.

From Kevin Zakka's post "Learning What to Learn and When to Learn It" (reference 000): a sample's
loss predicts its gradient norm (Pearson r ≈ 0.83 on MNIST, `loss_gradnorm_correlation`), loss
ranks persist across epochs (`decile_persistence`), so after a few epochs of plain SGD one can
draw minibatches in proportion to the loss and drop the easiest samples (`SGDSSampler`, reading
per-sample losses from a `LossTable`).

This module is the pure core: it knows nothing of the Trainer or the loaders. Whoever trains
calls ``table.update(indices, losses)`` as losses are seen and ``sampler.end_epoch()`` after
each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from striate.checks import boolean, fail, non_negative_int, positive_int, probability
from striate.errors import InputError

__all__ = ["LossTable", "SGDSSampler", "decile_persistence", "loss_gradnorm_correlation"]

DECILES = 10


class LossTable:
    """The latest recorded loss of each of `size` samples (a CPU tensor), and which were seen.

    `update` takes a batch at a time; samples never updated read 0 in `losses` and False in
    `seen`.
    """

    def __init__(self, size: int, *, dtype: torch.dtype = torch.float64) -> None:
        self.size = positive_int("LossTable", "size", size, error=InputError)
        if dtype not in (torch.float64, torch.float32):
            raise fail("LossTable", "dtype", "torch.float64 or torch.float32", dtype)
        self.losses = torch.zeros(self.size, dtype=dtype)
        self.seen = torch.zeros(self.size, dtype=torch.bool)

    def __len__(self) -> int:
        return self.size

    def update(self, indices: Any, losses: Any) -> None:
        """Record `losses[k]` as the loss of sample `indices[k]` (1-D, same length; tensors on any
        device, arrays or lists). An index repeated within one call keeps its last loss."""
        idx = _indices("LossTable.update", indices, self.size)
        values = _losses("LossTable.update", losses, len(idx), self.losses.dtype)
        # A plain index_put with repeated indices leaves the winner unspecified: keep, per
        # index, the position of its last occurrence and write only those.
        position = torch.arange(len(idx))
        last = torch.full((self.size,), -1, dtype=torch.long)
        last.scatter_reduce_(0, idx, position, reduce="amax")
        keep = last[idx] == position
        self.losses[idx[keep]] = values[keep]
        self.seen[idx[keep]] = True

    def filled(self) -> torch.Tensor:
        """The losses with every unseen sample given the mean loss of the seen ones (float64)."""
        if not bool(self.seen.any()):
            raise InputError(
                "LossTable: no loss recorded yet; call update(indices, losses) before sampling "
                "by loss"
            )
        losses = self.losses.double()
        return torch.where(self.seen, losses, losses[self.seen].mean())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"losses": self.losses.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        losses, seen = torch.as_tensor(state["losses"]), torch.as_tensor(state["seen"])
        if losses.shape != (self.size,) or seen.shape != (self.size,):
            raise InputError(
                f"LossTable: the state holds {tuple(losses.shape)} losses and "
                f"{tuple(seen.shape)} seen flags, this table has {self.size} samples"
            )
        self.losses = losses.to(self.losses.dtype).clone()
        self.seen = seen.to(torch.bool).clone()


class SGDSSampler:
    """SGD-S v1 (the post's "SGD on Steroids"): minibatch resampling by recorded loss.

    - Epochs ``0 … transient_epochs - 1`` are plain SGD: a uniform permutation of the samples.
    - Every later (steady-state) epoch draws `num_samples` indices (default: as many as there are
      active samples, as the post's ``WeightedRandomSampler(weights, len(weights), True)``) with
      replacement, sample i with probability ``p_i = loss_i / sum of the active losses``. A
      sample never seen gets the mean of the seen losses; if none was seen yet, or every active
      loss is 0, the draw is uniform. The probabilities are fixed at the epoch's first
      `__iter__` (so `weights` matches the draw, and iterating the same epoch again yields the
      same order).
    - `end_epoch` after a steady-state epoch removes the ``floor(drop_fraction · n_active)``
      lowest-loss active samples (ties: lower index first) and puts back
      ``floor(reintroduce_fraction · n_active)`` samples drawn at random from all removed ones.
      The count follows the post's code, ``int(.01 * len(sorted_loss_idx))``: a fraction of the
      active set, not of the removed pool. The post's slice ``[-int(...):]`` would remove every
      sample when the count rounds to 0; here nothing is removed then.
    - Recorded losses are whatever the table last holds: refreshed when a sample is seen again,
      stale for samples out of the active set.

    ``reweight=False`` (the default) is the post's estimator: the mean loss of a drawn batch,
    biased toward hard samples. ``reweight=True`` makes `weights` return the importance weights
    ``1 / (n_active · p_i)``, whose mean under the draw is 1, so a weighted mean of per-sample
    losses is an unbiased estimate of their uniform mean over the active set.

    Epoch e draws from generators seeded by ``(seed, e)``: `set_epoch` jumps to any epoch, and
    `state_dict` (epoch, active set, the table, the running epoch's probabilities) resumes a run
    exactly.
    """

    def __init__(
        self,
        table: LossTable,
        *,
        transient_epochs: int = 1,
        drop_fraction: float = 0.1,
        reintroduce_fraction: float = 0.01,
        num_samples: int | None = None,
        reweight: bool = False,
        seed: int = 0,
    ) -> None:
        owner = "SGDSSampler"
        if not isinstance(table, LossTable):
            raise fail(owner, "table", "a LossTable", type(table).__name__, error=InputError)
        self.table = table
        self.transient_epochs = non_negative_int(owner, "transient_epochs", transient_epochs)
        self.drop_fraction = probability(
            owner, "drop_fraction", drop_fraction, high_open=True, hint="some sample must stay"
        )
        self.reintroduce_fraction = probability(owner, "reintroduce_fraction", reintroduce_fraction)
        self.num_samples = positive_int(owner, "num_samples", num_samples, allow_none=True)
        self.reweight = boolean(owner, "reweight", reweight)
        self.seed = non_negative_int(owner, "seed", seed)
        self.epoch = 0
        self.active = torch.ones(len(table), dtype=torch.bool)
        self._drawn: tuple[int, torch.Tensor] | None = None  # (epoch, its probabilities)

    @property
    def steady(self) -> bool:
        """Whether the current epoch samples by loss (past the transient epochs)."""
        return self.epoch >= self.transient_epochs

    def set_epoch(self, epoch: int) -> None:
        """The next iteration yields epoch `epoch`; the active set is left as it is."""
        epoch = non_negative_int("SGDSSampler", "epoch", epoch)
        if epoch != self.epoch:
            self.epoch, self._drawn = epoch, None

    def __len__(self) -> int:
        n_active = int(self.active.sum())
        return (self.num_samples or n_active) if self.steady else n_active

    def __iter__(self) -> Iterator[int]:
        active = self.active.nonzero().squeeze(1)
        g = self._generator(0)
        if not self.steady:
            return iter(active[torch.randperm(len(active), generator=g)].tolist())
        p = self.probabilities()
        self._drawn = (self.epoch, p)
        draws = torch.multinomial(p, len(self), replacement=True, generator=g)
        return iter(draws.tolist())

    def probabilities(self) -> torch.Tensor:
        """Each sample's probability of being drawn in the current epoch (float64, 0 outside
        the active set; uniform over it in the transient epochs)."""
        if self._drawn is not None and self._drawn[0] == self.epoch:
            return self._drawn[1]
        if not self.steady or not bool(self.table.seen.any()):
            weights = self.active.double()
        else:
            weights = torch.where(self.active, self.table.filled(), 0.0)
            if float(weights.sum()) == 0.0:
                weights = self.active.double()
        return weights / weights.sum()

    def weights(self, indices: Any) -> torch.Tensor:
        """The weight of each drawn sample in a batch mean (float64): 1 with ``reweight=False``
        or in a transient epoch, else ``1 / (n_active · p_i)``."""
        idx = _indices("SGDSSampler.weights", indices, len(self.table))
        if not (self.reweight and self.steady):
            return torch.ones(len(idx), dtype=torch.float64)
        p = self.probabilities()[idx]
        if bool((p == 0).any()):
            bad = idx[p == 0][0].item()
            raise InputError(
                f"SGDSSampler.weights: sample {bad} cannot be drawn in epoch {self.epoch} "
                f"(out of the active set, or zero loss); pass indices this epoch yielded"
            )
        return 1.0 / (int(self.active.sum()) * p)

    def end_epoch(self) -> None:
        """Close the current epoch (after a steady-state one: drop and reintroduce) and move to
        the next."""
        if self.steady:
            self._drop_and_reintroduce()
        self.epoch, self._drawn = self.epoch + 1, None

    def _drop_and_reintroduce(self) -> None:
        active = self.active.nonzero().squeeze(1)
        n_active = len(active)
        losses = self.table.filled()[active]
        order = torch.sort(losses, stable=True).indices  # ascending; ties keep index order
        dropped = active[order[: int(self.drop_fraction * n_active)]]
        self.active[dropped] = False
        removed = (~self.active).nonzero().squeeze(1)
        count = min(int(self.reintroduce_fraction * n_active), len(removed))
        back = removed[torch.randperm(len(removed), generator=self._generator(1))[:count]]
        self.active[back] = True

    def _generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 2 + stream)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "seed": self.seed,
            "epoch": self.epoch,
            "active": self.active.clone(),
            "table": self.table.state_dict(),
        }
        if self._drawn is not None:
            state["drawn_epoch"], state["drawn_probabilities"] = (
                self._drawn[0],
                self._drawn[1].clone(),
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        active = torch.as_tensor(state["active"]).to(torch.bool)
        if active.shape != (len(self.table),):
            raise InputError(
                f"SGDSSampler: the state's active set covers {active.numel()} samples, the "
                f"table has {len(self.table)}"
            )
        self.table.load_state_dict(state["table"])
        self.seed, self.epoch, self.active = int(state["seed"]), int(state["epoch"]), active.clone()
        self._drawn = None
        if "drawn_epoch" in state:
            p = torch.as_tensor(state["drawn_probabilities"], dtype=torch.float64).clone()
            self._drawn = (int(state["drawn_epoch"]), p)


def loss_gradnorm_correlation(losses: Any, grad_norms: Any) -> float:
    """Pearson r between per-sample losses and gradient norms (the post reports ≈ 0.83 on MNIST).

    Computed with `np.corrcoef`. The post's ``np.cov(g, l) / (np.std(g) * np.std(l))`` divides a
    covariance with ddof=1 by deviations with ddof=0, so it reports r · N / (N - 1).
    """
    owner = "loss_gradnorm_correlation"
    x = _finite_vector(owner, "losses", losses)
    y = _finite_vector(owner, "grad_norms", grad_norms)
    if len(x) != len(y) or len(x) < 2:
        raise InputError(
            f"{owner}: losses and grad_norms must have the same length, at least 2, "
            f"got {len(x)} and {len(y)}"
        )
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise InputError(f"{owner}: losses and grad_norms must not be constant (r is undefined)")
    return float(np.corrcoef(x, y)[0, 1])


def decile_persistence(loss_history: Any, epochs: slice | None = None) -> dict[int, float]:
    """For each loss decile d (0 = lowest losses … 9 = highest), the share of the samples in d
    at the first selected epoch that are in d at every selected epoch (the post's "percent
    match"; it numbers deciles from the highest loss).

    `loss_history` is (epochs, N) with row e the losses of epoch e in dataset order (a shuffled
    run must be put back in dataset order first, as the post's NB says). Deciles are by rank per
    epoch, ties broken by sample index; decile d holds ranks ``floor(d·N/10) … floor((d+1)·N/10)
    - 1``. Uncorrelated epochs give about ``0.1 ** (epochs - 1)``.
    """
    owner = "decile_persistence"
    history = _as_numpy(owner, "loss_history", loss_history)
    if history.ndim != 2 or history.shape[1] < DECILES:
        raise fail(
            owner,
            "loss_history",
            f"a 2-D (epochs, N) array with N >= {DECILES}",
            f"shape {history.shape}",
            error=InputError,
        )
    if epochs is not None and not isinstance(epochs, slice):
        raise fail(owner, "epochs", "a slice or None", epochs, error=InputError)
    history = history[epochs if epochs is not None else slice(None)]
    if len(history) == 0:
        raise InputError(f"{owner}: epochs {epochs} selects no epoch of {len(loss_history)}")
    if not np.isfinite(history).all():
        raise InputError(f"{owner}: loss_history must be finite, got NaN or inf")
    n = history.shape[1]
    stops = (np.arange(1, DECILES + 1) * n) // DECILES
    ranks = np.empty(history.shape, dtype=np.int64)
    order = np.argsort(history, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(n)[None, :], axis=1)
    deciles = np.searchsorted(stops, ranks, side="right")
    stays = (deciles == deciles[0]).all(axis=0)
    return {
        d: float(stays[deciles[0] == d].sum() / (deciles[0] == d).sum()) for d in range(DECILES)
    }


def _as_numpy(owner: str, name: str, values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise fail(
            owner, name, "an array of numbers", type(values).__name__, error=InputError
        ) from e


def _finite_vector(owner: str, name: str, values: Any) -> np.ndarray:
    v = _as_numpy(owner, name, values)
    if v.ndim != 1 or not np.isfinite(v).all():
        raise fail(
            owner, name, "a 1-D array of finite numbers", f"shape {v.shape}", error=InputError
        )
    return v


def _tensor(owner: str, name: str, values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(values))
    except (TypeError, ValueError, RuntimeError) as e:
        raise fail(
            owner, name, "an array of numbers", type(values).__name__, error=InputError
        ) from e


def _indices(owner: str, indices: Any, size: int) -> torch.Tensor:
    idx = _tensor(owner, "indices", indices)
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise fail(owner, "indices", "integers", f"dtype {idx.dtype}", error=InputError)
    if idx.ndim != 1:
        raise fail(owner, "indices", "1-D", f"shape {tuple(idx.shape)}", error=InputError)
    idx = idx.long()
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= size):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise fail(owner, "indices", f"in [0, {size})", bad, error=InputError)
    return idx


def _losses(owner: str, losses: Any, n: int, dtype: torch.dtype) -> torch.Tensor:
    values = _tensor(owner, "losses", losses).to(dtype)
    if values.shape != (n,):
        raise InputError(
            f"{owner}: losses must be 1-D with one loss per index ({n}), "
            f"got shape {tuple(values.shape)}"
        )
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise InputError(f"{owner}: losses must be finite and >= 0 (per-sample, reduction='none')")
    return values
