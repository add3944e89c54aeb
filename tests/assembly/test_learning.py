"""Slow: the whole method on a small budget must beat its baselines on data it did not see."""

import numpy as np
import pytest
import torch

from striate.assembly.data import TensorBatches, assembly_datasets, make_episodes
from striate.assembly.networks import DenseNet, MatchingNet
from striate.assembly.policy import Networks, start_states, success_rates
from striate.assembly.sim import make_kit
from striate.assembly.tasks import Heatmap, Matching
from striate.engine import Trainer

pytestmark = pytest.mark.slow


def _fit(task, model, tensors, steps):
    trainer = Trainer(steps=steps, task=task, opt="adam", lr=2e-3, device="cpu", progress=False)
    trainer.fit(model, TensorBatches(tensors, 16, seed=0))
    return model.eval()


def test_trained_planner_beats_random_placement_and_rotation():
    torch.manual_seed(0)
    kits = [make_kit(i, size=32, pieces=2) for i in range(6)]
    sets = assembly_datasets(make_episodes(kits, 10, 0, rotations=8), crop_size=23)
    held_out = assembly_datasets(make_episodes(kits, 3, 99, rotations=8), crop_size=23)
    nets = Networks(
        _fit(Heatmap(), DenseNet(1, 16), sets["suction"], 300),
        _fit(Heatmap(), DenseNet(1, 16), sets["place"], 300),
        _fit(Matching(8), MatchingNet(8, 16), sets["matching"], 600),
        rotations=8,
        crop_size=23,
    )
    with torch.no_grad():  # the right turn is found far above chance (1/8) on unseen steps
        stats = Matching(8).training_step(nets.matching, held_out["matching"]).stats.tolist()
    assert stats[1] / stats[2] > 0.3, stats
    starts = start_states(kits, 20, 7, 8)
    learned = success_rates(nets, starts, "form2fit", candidates=16)["placement"]
    chance = success_rates(nets, starts, "random")["placement"]
    assert learned > chance + 0.1, (learned, chance)
    assert np.isfinite(learned)
