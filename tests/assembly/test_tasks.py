"""The losses against direct formulas, and tiny training runs through the engine that must beat
a baseline."""

import math

import numpy as np
import pytest
import torch

from striate.assembly.data import IGNORE, TensorBatches, assembly_datasets, make_episodes
from striate.assembly.networks import DenseNet, MatchingNet
from striate.assembly.sim import make_kit
from striate.assembly.tasks import Heatmap, Matching, contrastive_loss, heatmap_loss
from striate.engine import Trainer


def test_contrastive_loss_against_the_formula():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 5, generator=g), torch.randn(40, 5, generator=g)
    b[:5] = a[:5] + 0.01  # a few close non-matches are pushed, far ones are not
    match = torch.rand(40, generator=g) < 0.4
    margin = 2.5
    pulls, pushes = [], []
    for i in range(40):
        d = math.sqrt(sum((float(a[i, k]) - float(b[i, k])) ** 2 for k in range(5)))
        if match[i]:
            pulls.append(d * d)
        else:
            pushes.append(max(0.0, margin - d) ** 2)
    want = sum(pulls) / len(pulls) + sum(pushes) / len(pushes)
    got = contrastive_loss(a, b, match, margin)
    assert math.isclose(float(got), want, rel_tol=1e-5)
    assert sum(pushes) > 0 and any(p == 0 for p in pushes)


def test_heatmap_loss_against_a_weighted_bce():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 6, 7, generator=g)
    labels = torch.randint(0, 2, (2, 6, 7), generator=g, dtype=torch.uint8)
    labels[0, :2] = IGNORE
    x, y = logits.numpy()[:, 0].astype(np.float64), labels.numpy()
    counted = y != IGNORE
    pos, neg = ((y == 1) & counted).sum(), ((y == 0) & counted).sum()
    total = weights = 0.0
    right = 0
    for v, t in zip(x[counted], y[counted], strict=True):
        p = 1 / (1 + math.exp(-v))
        w = neg / pos if t == 1 else 1.0
        total += w * -(math.log(p) if t == 1 else math.log(1 - p))
        weights += w
        right += int((v > 0) == (t == 1))
    loss, r, n = heatmap_loss(logits, labels)
    assert math.isclose(float(loss), total / weights, rel_tol=1e-5)
    assert int(r) == right and int(n) == counted.sum()


@pytest.fixture(scope="module")
def tiny():
    kits = [make_kit(i, size=32, pieces=2) for i in range(3)]
    return assembly_datasets(make_episodes(kits, 4, 0, rotations=8), crop_size=23)


def test_matching_step_is_finite_and_differentiable(tiny):
    task = Matching(rotations=8, margin=1.0, samples=16)
    net = MatchingNet(dim=4, width=6)
    step = task.training_step(net, tiny["matching"])
    step.loss.backward()
    loss, rot_right, n = step.stats.tolist()
    assert math.isfinite(loss) and 0 <= rot_right <= n == len(tiny["matching"][0])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def _fit(task, model, tensors, steps):
    torch.manual_seed(0)
    trainer = Trainer(steps=steps, task=task, opt="adam", lr=3e-3, device="cpu", progress=False)
    trainer.fit(model, TensorBatches(tensors, 8, seed=0))
    return model.eval()


def test_place_network_beats_chance_after_a_few_steps(tiny):
    """Ranking: the trained place map scores the labelled place pixels above the negatives far
    more often than chance (AUC 0.5) on its training heightmaps."""
    x, y = tiny["place"]
    net = _fit(Heatmap(), DenseNet(1, width=8, dilations=(1, 2, 4, 1)), (x, y), 60)
    with torch.no_grad():
        scores = net(x)[:, 0]
    pos, neg = scores[y == 1], scores[y == 0]
    auc = (pos[:, None] > neg[None, ::7]).float().mean()
    assert auc > 0.8, float(auc)
