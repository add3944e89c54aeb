"""The cifar10-fast and cifar10-muon recipes: airbench94's and airbench94_muon's hyper-parameters in
striate's conventions, checked against airbench's own updates and schedule written out, and short
training runs with the recipes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.data import BatchLoader, ImageSet, Normalizer
from striate.data.augment import AlternatingFlip, Compose, RandomCrop
from striate.data.augment_spec import parse_augment
from striate.engine import Lookahead, make_optimizer, make_schedule
from striate.engine.callbacks import Callback
from striate.engine.muon import Muon
from striate.errors import ConfigError
from striate.models.fastnet import FastNet, whiten_init
from striate.train import TrainConfig
from striate.train.assembly import build_trainer
from striate.train.recipes import (
    RECIPES,
    PatchWhitening,
    decoupled_sgd,
    model_callbacks,
    recipe_config,
)
from tests.engine.test_muon import reference_muon_step


def test_recipe_values_are_airbench94_in_striate_terms():
    c = recipe_config("cifar10-fast")
    assert isinstance(c, TrainConfig)
    assert (c.model, c.batch_size, c.opt, c.momentum) == ("cifar_fast", 1024, "nesterov", 0.85)
    # lr 11.5 per 1024 examples / (1 + 1/(1 - 0.85)), on the batch-mean loss of 1024 examples
    assert c.lr == pytest.approx(11.5 / (1 + 1 / 0.15)) == pytest.approx(1.5)
    assert c.weight_decay == pytest.approx(0.0153 / 11.5)
    assert c.label_smoothing == 0.2 and c.tta and c.val_size == 0
    assert c.augment == "altflip,crop:2" and c.lookahead == 0.95 and c.ema is None
    t = parse_augment(c.augment, (3, 32, 32), 10)
    assert isinstance(t, Compose)
    flip, crop = t.transforms
    assert isinstance(flip, AlternatingFlip) and isinstance(crop, RandomCrop)
    assert (crop.padding, crop.padding_mode) == (2, "reflect")  # airbench's translate=2
    m = models.create(c.model, **c.model_options)
    assert isinstance(m, FastNet)
    assert model_callbacks(m)[0].bias_epochs == 3
    assert model_callbacks(nn.Linear(2, 2)) == []


def test_the_decoupled_lr_and_wd_give_airbenchs_updates():
    """airbench: torch SGD on the batch-summed loss with lr = 11.5/kilostep and per-group decay
    wd/lr; striate: make_optimizer on the batch-mean loss with the recipe's lr and wd."""
    torch.manual_seed(0)
    batch, mom = 32, 0.85
    airbench_net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    striate_net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    striate_net.load_state_dict(airbench_net.state_dict())
    start = airbench_net[0].weight.detach().clone()
    kilostep_scale = 1024 * (1 + 1 / (1 - mom))
    lr = 11.5 / kilostep_scale
    wd = 0.0153 * batch / kilostep_scale
    opt_a = torch.optim.SGD(
        airbench_net.parameters(), lr=lr, weight_decay=wd / lr, momentum=mom, nesterov=True
    )
    s_lr, s_wd = decoupled_sgd(11.5, 0.0153, mom, batch)
    opt_s = make_optimizer(
        "nesterov", striate_net.parameters(), s_lr, weight_decay=s_wd, momentum=mom
    )
    x, y = torch.randn(batch, 6), torch.randint(0, 3, (batch,))
    for _ in range(4):
        opt_a.zero_grad()
        F.cross_entropy(airbench_net(x), y, reduction="sum").backward()
        opt_a.step()
        opt_s.zero_grad()
        F.cross_entropy(striate_net(x), y).backward()
        opt_s.step()
    for a, s in zip(airbench_net.parameters(), striate_net.parameters(), strict=True):
        torch.testing.assert_close(s, a, rtol=1e-5, atol=1e-6)
    assert (striate_net[0].weight - start).abs().max() > 1e-3  # it did move


def test_the_schedule_is_airbenchs_triangle():
    c = recipe_config("cifar10-fast")
    total = math.ceil(48 * 9.9)  # airbench94's 476 steps
    s = make_schedule(c.schedule, total, 48, **c.schedule_options)
    ours = np.array([s.factor(t) for t in range(total)])
    # airbench: np.interp over (0, int(0.23 T), T) -> (0.2, 1, 0.07), step t uses entry t
    theirs = np.interp(np.arange(total), [0, int(0.23 * total), total], [0.2, 1.0, 0.07])
    assert np.abs(ours - theirs).max() < 0.01
    assert ours.argmax() == pytest.approx(0.23 * total, abs=2)
    assert s.momentum(0) is None  # momentum stays at 0.85


def test_unknown_recipe_lists_the_names():
    with pytest.raises(ConfigError, match=r"did you mean 'cifar10-fast'.*recipes are: cifar10"):
        recipe_config("cifar10-fats")
    with pytest.raises(ConfigError, match="recipes are"):
        recipe_config(None)


def test_overrides_and_their_validation():
    c = recipe_config("cifar10-fast", epochs=3, data="x.zip", seed=2, tta=None)
    assert (c.epochs, c.data, c.seed, c.tta) == (3, "x.zip", 2, "flip,translate")
    assert recipe_config("cifar10-fast", batch_size=256).lr == pytest.approx(1.5 / 4)
    assert recipe_config("cifar10-fast", batch_size=256, lr=0.3).lr == 0.3
    assert RECIPES["cifar10-fast"]["batch_size"] == 1024  # the table is not changed
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        recipe_config("cifar10-fast", lr=-1.0)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        recipe_config("cifar10-fast", batch_size=0)
    with pytest.raises(ConfigError, match="unknown option"):
        recipe_config("cifar10-fast", learning_rate=0.1)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.0, 0.01, 0.85, 1024), "lr must be a positive number"),
        ((1.0, -0.01, 0.85, 1024), "weight_decay"),
        ((1.0, 0.01, 1.0, 1024), "momentum"),
        ((1.0, 0.01, 0.85, 0), "batch_size"),
    ],
)
def test_decoupled_sgd_rejects_bad_values(args, match):
    with pytest.raises(ConfigError, match=match):
        decoupled_sgd(*args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"images": 0}, "images"), ({"bias_epochs": -1}, "bias_epochs"), ({"eps": 0}, "eps")],
)
def test_patch_whitening_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PatchWhitening(**kwargs)


def cifar_like(n: int = 512, seed: int = 0) -> ImageSet:
    """Smooth random 32×32 colour images whose mean colour depends on the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    base = torch.rand(n, 3, 8, 8, generator=g)
    x = F.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    tint = torch.rand(10, 3, 1, 1, generator=g)
    x = (0.6 * x + 0.4 * tint[labels]).clamp(0, 1)
    images = (x * 255).round().to(torch.uint8)
    return ImageSet(images, labels, tuple(str(i) for i in range(10)), "cifar-like")


def test_recipe_overrides_merge_into_its_schedule_options():
    base = recipe_config("cifar10-fast").schedule_options
    c = recipe_config("cifar10-fast", schedule_options={"pct_start": 0.3}, lr=None)
    assert c.schedule_options == {**base, "pct_start": 0.3}
    assert c.lr == recipe_config("cifar10-fast").lr  # None: the recipe's value stays


def test_a_short_training_run_with_the_recipe():
    data = cifar_like(128)
    config = recipe_config(
        "cifar10-fast",
        epochs=1,
        batch_size=8,
        model_options={"widths": [16, 32, 32]},
        device="cpu",
        ema=0.9,  # on top of the recipe's Lookahead, to see the whitening in the EMA copy
    )
    torch.manual_seed(config.seed)
    model = models.create(config.model, **config.model_options)
    norm = Normalizer().fit(data)
    train = BatchLoader(
        data,
        config.batch_size,
        augment=parse_augment(config.augment, data.shape, 10),
        normalize=norm,
        device="cpu",
        seed=config.seed,
    )
    trainer = build_trainer(config, None, False, callbacks=model_callbacks(model))
    history = trainer.fit(model, train)
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    assert trainer.step == 16 and trainer.optimizer.param_groups[0]["momentum"] == 0.85
    assert any(isinstance(cb, Lookahead) for cb in trainer.callbacks)

    # the whitening is airbench's on the same 128 normalised images, kept by Lookahead's final
    # copy of the slow weights, and in the EMA copy too
    expected = models.create(config.model, **config.model_options)
    whiten_init(expected, norm(data.images.float() / 255))
    torch.testing.assert_close(model.whiten.weight, expected.whiten.weight, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(trainer.eval_model.whiten.weight, model.whiten.weight)
    assert model.whiten.bias.requires_grad and model.whiten.bias.abs().max() > 0  # trained
    test = BatchLoader(data, 256, shuffle=False, normalize=norm, device="cpu")
    result = trainer.evaluate(trainer.eval_model, test)
    assert 0.0 <= result["acc"] <= 1.0 and math.isfinite(result["loss"])


class BiasRecorder(Callback):
    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_epoch_end(self, trainer, metrics) -> None:
        self.seen.append(trainer.model.whiten.bias.detach().clone())


@pytest.mark.parametrize("bias_epochs", [0, 1])
def test_whitening_bias_trains_for_bias_epochs_then_freezes(bias_epochs):
    data = cifar_like(32)
    config = recipe_config(
        "cifar10-fast", epochs=2, batch_size=2, model_options={"widths": [4, 4, 4]}, device="cpu"
    )
    # without Lookahead, which would go on averaging the frozen bias with its earlier values
    config = TrainConfig.from_dict({**config.to_dict(), "lookahead": None})
    torch.manual_seed(0)
    model = models.create(config.model, **config.model_options)
    loader = BatchLoader(data, 2, normalize=Normalizer().fit(data), device="cpu")
    record = BiasRecorder()
    callbacks = [PatchWhitening(bias_epochs=bias_epochs), record]
    build_trainer(config, None, False, callbacks=callbacks).fit(model, loader)
    after_first, after_second = record.seen
    if bias_epochs == 0:
        assert torch.count_nonzero(after_second) == 0
    else:
        assert torch.count_nonzero(after_first) > 0
        torch.testing.assert_close(after_second, after_first, rtol=0, atol=0)


def test_patch_whitening_needs_a_fastnet():
    data = cifar_like(16)
    config = recipe_config("cifar10-fast", epochs=1, batch_size=1, device="cpu")
    loader = BatchLoader(data, 1, normalize=Normalizer().fit(data), device="cpu")
    with pytest.raises(ConfigError, match="cifar_fast"):
        build_trainer(config, None, False, callbacks=[PatchWhitening()]).fit(
            models.create("convnet-small", in_shape=(3, 32, 32)), loader
        )


# --------------------------------------------------------------------------- cifar10-muon


def test_the_muon_recipe_trains_as_airbench94_muon():
    """airbench94_muon.py's updates written out: a head of std 1 with outputs / 256 at lr 0.67,
    biases at 0.053 and decay 2e-6·B/lr, all on the batch-summed loss, and Muon on the filters.
    The recipe's FastNet and make_optimizer on the batch-mean loss follow the same path."""
    batch = 16
    c = recipe_config("cifar10-muon", batch_size=batch, model_options={"widths": [8, 16, 16]})
    torch.manual_seed(0)
    net = FastNet((3, 32, 32), 10, **c.model_options)
    ref = FastNet((3, 32, 32), 10, widths=(8, 16, 16), bn_bias_scale=1.0, logit_scale=1 / 256)
    ref.load_state_dict(net.state_dict())
    s = math.sqrt(0.67 / 0.053)
    with torch.no_grad():
        ref.head.weight.mul_(s)
    assert ref.head.weight.std().item() == pytest.approx(1.0, rel=1e-5)  # airbench's init

    opt = make_optimizer(c.opt, net, c.lr, c.weight_decay, c.momentum, options=c.opt_options)
    # every SGD group decays, the biases too (too little to show in the outputs below)
    sgd_decay = c.opt_options["aux_weight_decay"]
    decay = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert decay == {"muon": 0.0, "decay": sgd_decay, "no_decay": sgd_decay}
    filters = [m.weight for m in ref.groups.modules() if isinstance(m, nn.Conv2d)]
    biases = [ref.whiten.bias] + [m.bias for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    wd = 2e-6 * batch
    sgd = torch.optim.SGD(
        [
            {"params": biases, "lr": 0.053, "weight_decay": wd / 0.053},
            {"params": [ref.head.weight], "lr": 0.67, "weight_decay": wd / 0.67},
        ],
        momentum=0.85,
        nesterov=True,
    )
    buffers = [torch.zeros_like(w) for w in filters]

    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = (
            torch.randn(batch, 3, 32, 32, generator=g),
            torch.randint(0, 10, (batch,), generator=g),
        )
        opt.zero_grad()
        F.cross_entropy(net(x), y, label_smoothing=0.2).backward()
        opt.step()
        ref.zero_grad()  # the filters too, which the SGD does not hold
        F.cross_entropy(ref(x), y, label_smoothing=0.2, reduction="sum").backward()
        sgd.step()
        with torch.no_grad():
            for i, w in enumerate(filters):
                new, buffers[i] = reference_muon_step(w, buffers[i], w.grad, 0.24, 0.6, 3)
                w.copy_(new)
        ref.eval(), net.eval()
        probe = torch.randn(4, 3, 32, 32, generator=g)
        torch.testing.assert_close(net(probe), ref(probe), rtol=1e-3, atol=1e-4)
        ref.train(), net.train()
    torch.testing.assert_close(net.head.weight * s, ref.head.weight, rtol=1e-4, atol=1e-5)


def test_the_muon_recipes_values_and_batch_scaling():
    c = recipe_config("cifar10-muon")
    assert (c.model, c.batch_size, c.epochs, c.opt, c.lr, c.momentum) == (
        "cifar_fast",
        2000,
        8,
        "muon",
        0.24,
        0.6,
    )
    assert c.opt_options == {"aux_lr": pytest.approx(106.0), "aux_momentum": 0.85,
                             "ns_steps": 3, "ns_precision": "auto", "normalize": True,
                             "aux_weight_decay": pytest.approx(2e-6 * 2000 / 106)}  # fmt: skip
    assert c.weight_decay == 0.0  # none on the filters: Muon renormalises them
    assert (c.schedule, c.schedule_options, c.lookahead) == ("linear", {"end_factor": 0.0}, None)
    # a smaller batch scales the SGD part's lr (per example), not Muon's
    small = recipe_config("cifar10-muon", batch_size=500)
    assert small.lr == 0.24 and small.opt_options["aux_lr"] == pytest.approx(106.0 / 4)
    assert recipe_config("cifar10-muon", opt_options={"ns_steps": 5}).opt_options["aux_lr"] == (
        pytest.approx(106.0)
    )  # a table given is merged key by key


def short_run(recipe, epochs):
    """A recipe's config at batch 16 on 64 CIFAR-like images in fp32, a small model and loader."""
    data = cifar_like(64)
    config = recipe_config(
        recipe,
        epochs=epochs,
        batch_size=16,
        model_options={"widths": [8, 16, 16]},
        device="cpu",
        precision="fp32",
    )
    torch.manual_seed(config.seed)
    model = models.create(config.model, **config.model_options)
    train = BatchLoader(
        data,
        config.batch_size,
        augment=parse_augment(config.augment, data.shape, 10),
        normalize=Normalizer().fit(data),
        device="cpu",
        seed=config.seed,
    )
    return config, model, train


def test_a_short_training_run_with_the_muon_recipe():
    config, model, train = short_run("cifar10-muon", epochs=2)
    before = model.groups[0].conv1.weight.detach().clone()
    trainer = build_trainer(config, None, False, callbacks=model_callbacks(model))
    history = trainer.fit(model, train)
    assert len(history) == 2 and all(math.isfinite(h["train_loss"]) for h in history)
    assert isinstance(trainer.optimizer, Muon) and trainer.step == 8
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0  # the linear decay has ended
    w = model.groups[0].conv1.weight
    assert not torch.equal(w, before)
    assert w.norm().item() == pytest.approx(math.sqrt(8), rel=0.2)  # renormalised before a step


# --------------------------------------------------------------------------- cifar10-quick


def test_the_quick_recipe_is_the_muon_recipe_with_progressive_resizing():
    quick, muon = recipe_config("cifar10-quick").to_dict(), recipe_config("cifar10-muon").to_dict()
    assert quick.pop("augment") == "altflip,crop:2,progressive:2:0.875"
    assert muon.pop("augment") == "altflip,crop:2"
    assert quick == muon


def test_a_short_run_of_the_quick_recipe_trains_small_then_whole_images():
    config, model, train = short_run("cifar10-quick", epochs=4)
    sizes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[2:])))
    history = build_trainer(config, None, False, callbacks=model_callbacks(model)).fit(model, train)
    assert len(history) == 4 and all(math.isfinite(h["train_loss"]) for h in history)
    assert sizes == [(28, 28)] * 8 + [(32, 32)] * 8
