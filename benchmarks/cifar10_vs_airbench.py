"""CIFAR-10 time-to-accuracy: striate's `--recipe cifar10-fast` against a CPU port of airbench94,
on the same machine, in the same process, with the same threads and the same images.

    python benchmarks/cifar10_vs_airbench.py                      # seeds 0 1 2, both programs
    python benchmarks/cifar10_vs_airbench.py --seeds 0 --threads 1
    python benchmarks/cifar10_vs_airbench.py --skip-recorded  # the seeds this machine lacks
    python benchmarks/cifar10_vs_airbench.py --quick     # smoke test: 512 images, no record
    python benchmarks/cifar10_vs_airbench.py --recipe cifar10-muon --seeds 0 --reuse-port
    python benchmarks/cifar10_vs_airbench.py --recipe cifar10-quick --seeds 2

The peer is a port of Keller Jordan's airbench94 ("94% on CIFAR-10 in 3.29 seconds on a single
GPU", 2024, arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench, `legacy/airbench94.py` at
commit f1c599c4af24aca803e3e65a6a7e52a502e09d0e; line numbers below refer to that file), written
here from its description and code, not copied. What is the same: the hyper-parameters (L38-65:
9.9 epochs, batch 1024, decoupled lr 11.5 / momentum 0.85 / weight decay 0.0153 per 1024 examples
turned into torch SGD's by ``1024·(1 + 1/(1-μ))`` with the decay scaled by the batch size, L359-
362; 64× lr for the batch-norm biases; label smoothing 0.2 on the summed loss, L364, L422;
Nesterov, L379), the network (L160-236: a 2×2 whitening conv of 24 filters with a bias and GELU,
three conv groups of widths 64/256/256, each conv→maxpool 2→BN→GELU→conv→BN→GELU with BN eps 1e-12,
momentum 0.4 in torch's terms, frozen scales; dirac-initialised 3×3 convs without bias; maxpool 3,
a bias-free linear layer and ×1/9; channels-last), the whitening initialisation from 5,000
training images (L242-257, eps 5e-4; its bias trains for 3 epochs only, L410), the lr schedule
(L381-390: linear 0.2→1 over 23 % of the steps, then 1→0.07), Lookahead every 5 steps with decay
``0.95⁵·(t/T)³`` on all float state, batch-norm statistics included, and a final copy at the last
step (L263-271, L392-393, L430-436), the data (L69-70 normalisation; L126-154: one random
left-right flip per image drawn once, reflect padding by 2, a fresh random ±2 translation per
image each epoch, all images mirrored every other epoch, a random order and the last incomplete
batch dropped), and TTA (L307-340: the mean of the logits of the image and its mirror, averaged
with those of the 1-pixel up-left and down-right reflect-padded translations; test batches of
2,000).

What differs on a CPU: where airbench runs the network in fp16 (L231, batch norm in fp32) the port
trains under bf16 autocast when the CPU computes bf16 natively (striate's own check,
`striate.engine.precision.cpu_has_bf16`) and in fp32 otherwise (the run says which; parameters stay
fp32 under autocast); the data are kept in that precision too. Evaluation runs in fp32 (bf16 has
three mantissa bits fewer than airbench's fp16 evaluation; striate evaluates in fp32 as well). The
images are the CIFAR-10 JPEG copy in ../shared/data loaded through `striate.load_dataset` (the same
uint8 images striate trains on), not torchvision's. Both run under the malloc settings striate's
Trainer applies while it trains on a CPU (`striate.engine.allocator`; the port by `port_run`).
Each run is seeded (airbench is not). Times:
training wall time includes the whitening initialisation and each epoch's augmentation, as
airbench's timer does (L400-406, L416-440), but not evaluation (airbench adds its final TTA pass,
L457-461). airbench evaluates without TTA after each epoch (L449): here test accuracy *with* TTA
is measured at the end of every epoch from ``--eval-from`` on (and always after the last), its
time left out of the training time, and the time to ``--target`` (90.5 %, airbench94's accuracy on
the JPEG copy) is the training time up to the end of the first epoch whose accuracy reaches it
(epoch granularity: a run that reaches it inside an epoch is credited at that epoch's end).

striate's side is `recipe_config("cifar10-fast", data=..., seed=...)` trained by `prepare(...)`'s
Trainer, as `benchmarks/cifar10_speed.py` does, with the same evaluation callback. With
`--recipe cifar10-muon` it is airbench94_muon's recipe instead (Muon, batch 2000, 8 epochs; see
`striate.train.recipes`), and with `--recipe cifar10-quick` that recipe with its first 3 epochs on
24×24 crops (progressive resizing), against the same airbench94 port: the table's rows say which
recipe.
`--reuse-port` pairs striate's run with the port's run of the same seed recorded earlier on this
machine instead of running the port again (marked † in the table). The two programs
run one after the other for each seed, alternating which goes first. A real run appends one line
per program as soon as each seed's pair is done to benchmarks/results/cifar10_vs_airbench.jsonl
(with the CPU facts) and rewrites the table in BENCHMARKS.md between the `cifar10_vs_airbench`
markers: per machine (GPU model, or CPU model and its speed flags), thread count and budget,
each seed's latest pair and their means. On a 2-core CPU one pair takes about 1.5 h, so
`--skip-recorded` runs only the seeds this machine has not recorded yet, and the 3-seed table
can be built over several sittings.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import time
import uuid
from functools import partial
from math import ceil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from _airbench_record import PORT, comparable, recorded_pairs
from _common import (
    RESULTS,
    append_record,
    cpu_name,
    machine,
    print_machine,
    read_record,
    same_malloc_as_trainer,
    shared_data,
    write_table,
)
from striate.engine import Callback
from striate.engine.precision import cpu_has_bf16
from striate.train.assembly import RunData, load_run_data, prepare
from striate.train.recipes import RECIPES, recipe_config

RECORD = RESULTS / "cifar10_vs_airbench.jsonl"

# airbench94's hyper-parameters (L38-65)
HYP = {
    "epochs": 9.9,
    "batch_size": 1024,
    "lr": 11.5,  # per 1024 examples
    "momentum": 0.85,
    "weight_decay": 0.0153,  # per 1024 examples, decoupled from the lr
    "bias_scaler": 64.0,  # lr (not decay) multiplier of the batch-norm biases
    "label_smoothing": 0.2,
    "whiten_bias_epochs": 3,
    "translate": 2,
    "widths": (64, 256, 256),
    "bn_momentum": 0.6,  # airbench's convention: torch momentum 1 - 0.6
    "scaling": 1 / 9,
    "whiten_eps": 5e-4,
    "whiten_images": 5000,
}
MEAN = torch.tensor((0.4914, 0.4822, 0.4465))  # L69-70
STD = torch.tensor((0.2470, 0.2435, 0.2616))


# --------------------------------------------------------------------------- the network


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _bn(channels: int) -> nn.BatchNorm2d:
    """Batch norm as airbench sets it (L171-177): eps 1e-12, its momentum 0.6 (torch's 0.4), the
    scale fixed at one, only the shift trained."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - HYP["bn_momentum"])
    bn.weight.requires_grad_(False)
    return bn


def _conv(c_in: int, c_out: int, kernel: int = 3, padding: str | int = "same", bias=False):
    """torch's default init, then a dirac (identity) on the first c_in filters, bias zero
    (L179-188)."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=bias)
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.zero_()
        nn.init.dirac_(conv.weight[:c_in])
    return conv


class _Group(nn.Module):
    """conv → maxpool 2 → BN → GELU → conv → BN → GELU (L190-208)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.pool, self.norm1 = _conv(c_in, c_out), nn.MaxPool2d(2), _bn(c_out)
        self.conv2, self.norm2, self.activ = _conv(c_out, c_out), _bn(c_out), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


def airbench_net(widths=HYP["widths"]) -> nn.Sequential:
    """airbench94's network (L214-236), fp32 parameters, channels-last."""
    whiten_width = 2 * 3 * 2**2
    w1, w2, w3 = widths
    net = nn.Sequential(
        _conv(3, whiten_width, 2, padding=0, bias=True),
        nn.GELU(),
        _Group(whiten_width, w1),
        _Group(w1, w2),
        _Group(w2, w3),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(w3, 10, bias=False),
        _Scale(HYP["scaling"]),
    )
    net[0].weight.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)


def whitening(images: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2×2 patches' (uncentred) covariance eigen-decomposition, largest first (L242-251):
    (eigenvalues, eigenvectors as 12 filters of shape 3×2×2)."""
    c = images.shape[1]
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c * 4).float()
    cov = patches.T @ patches / len(patches)
    values, vectors = torch.linalg.eigh(cov, UPLO="U")
    return values.flip(0), vectors.T.reshape(c * 4, c, 2, 2).flip(0)


def init_whitening(layer: nn.Conv2d, images: torch.Tensor, eps: float) -> None:
    """The first layer's filters: the eigenvectors scaled by 1/sqrt(λ + eps), and their negatives
    (L253-257)."""
    values, vectors = whitening(images, eps)
    scaled = vectors / torch.sqrt(values + eps).view(-1, 1, 1, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.cat((scaled, -scaled)))


# --------------------------------------------------------------------------- data on tensors


def flip_some(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored with probability 1/2 (L72-74)."""
    mask = (torch.rand(len(images), device=images.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(mask, images.flip(-1), images)


def random_crop(padded: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's own random size×size window of a padded batch (shift -r..r on each axis),
    gathered one shift at a time as airbench does for r ≤ 2 (L76-94)."""
    r = (padded.shape[-1] - size) // 2
    shifts = torch.randint(-r, r + 1, (len(padded), 2), device=padded.device)
    out = padded.new_empty((len(padded), padded.shape[1], size, size))
    out = out.contiguous(memory_format=torch.channels_last)  # airbench's is NCHW (L79)
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[mask] = padded[mask, :, r + sy : r + sy + size, r + sx : r + sx + size]
    return out


class Loader:
    """airbench's CifarLoader (L96-154) on striate's uint8 images: normalised once; for training,
    one random flip per image drawn at the first epoch, reflect-padded by `translate`, a random
    crop each epoch, everything mirrored on odd epochs, shuffled, the last partial batch dropped."""

    def __init__(
        self, images, labels, batch_size, train: bool, dtype=torch.float32, device="cpu"
    ) -> None:
        x = images.to(device).float().div_(255)
        x = x.sub_(MEAN.to(device).view(1, 3, 1, 1)).div_(STD.to(device).view(1, 3, 1, 1))
        self.images = x.to(dtype).contiguous(memory_format=torch.channels_last)
        self.labels = labels.to(device)
        self.batch_size, self.train = batch_size, train
        self.epoch = 0
        self.padded: torch.Tensor | None = None

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.train else ceil(n / self.batch_size)

    def epoch_images(self) -> torch.Tensor:
        """This epoch's augmented images in their stored order (advances the epoch)."""
        if self.padded is None:
            pad = HYP["translate"]
            self.padded = F.pad(flip_some(self.images), (pad,) * 4, mode="reflect")
        images = random_crop(self.padded, self.images.shape[-1])
        if self.epoch % 2 == 1:
            images = images.flip(-1)
        self.epoch += 1
        return images

    def __iter__(self):
        if not self.train:
            for i in range(len(self)):
                s = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield self.images[s], self.labels[s]
            return
        images = self.epoch_images()
        order = torch.randperm(len(images), device=images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield images[idx].contiguous(memory_format=torch.channels_last), self.labels[idx]


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def tta_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """airbench's tta_level 2 (L307-334): mirror-averaged logits of the image, averaged with the
    mean of those of its 1-pixel up-left and down-right translations (reflect padding)."""

    def mirror(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * net(v) + 0.5 * net(v.flip(-1))

    padded = F.pad(x, (1,) * 4, mode="reflect")
    h, w = x.shape[-2:]
    shifted = (mirror(padded[:, :, 0:h, 0:w]) + mirror(padded[:, :, 2 : h + 2, 2 : w + 2])) / 2
    return 0.5 * mirror(x) + 0.5 * shifted


def tta_accuracy(net: nn.Module, test: Loader) -> float:
    """Test accuracy with TTA, in fp32, batches of 2,000 (L336-344)."""
    net.eval()
    correct = 0
    for x, y in test:
        correct += int((tta_logits(net, x.float()).argmax(1) == y).sum())  # int(): a sync
    net.train()
    return correct / len(test.images)


# --------------------------------------------------------------------------- the port's training


class Lookahead:
    """airbench's LookaheadState (L263-271): the slow copy of every float tensor of the state."""

    def __init__(self, net: nn.Module) -> None:
        self.slow = {k: v.clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float) -> None:
        for slow, fast in zip(self.slow.values(), net.state_dict().values(), strict=True):
            if fast.is_floating_point():
                slow.lerp_(fast, 1 - decay)
                fast.copy_(slow)


def lr_factor(step: int, total: int) -> float:
    """The triangle (L381-389): 0.2 → 1 over the first 23 % of the steps, then 1 → 0.07."""
    warmup = int(total * 0.23)
    if step < warmup:
        frac = step / warmup
        return 0.2 * (1 - frac) + 1.0 * frac
    frac = (step - warmup) / (total - warmup)
    return 1.0 * (1 - frac) + 0.07 * frac


def port_precision(device: str) -> torch.dtype:
    """The port's training precision: airbench's fp16 on a GPU (L231; autocast here, parameters
    fp32), bf16 on a CPU that computes it natively, fp32 otherwise."""
    if device.startswith("cuda"):
        return torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def train_port(
    data: RunData,
    seed: int,
    *,
    epochs: float,
    batch_size: int,
    eval_from: int,
    target: float,
    device: str = "cpu",
) -> dict:
    """One airbench94 run (main(), L350-466) on `data`; the dict every run reports."""
    torch.manual_seed(seed)
    half = port_precision(device)
    gpu = device.startswith("cuda")
    # on a GPU the data stay fp32 and autocast casts them, as airbench's loader (L121) keeps fp16
    dtype = torch.float32 if gpu else half
    train = Loader(data.train.images, data.train.labels, batch_size, True, dtype, device)
    test = Loader(data.test.images, data.test.labels, 2000, False, device=device)
    total_steps = ceil(len(train) * epochs)

    momentum = HYP["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = HYP["lr"] / kilostep_scale  # for the loss summed over the batch
    wd = HYP["weight_decay"] * batch_size / kilostep_scale
    lr_bias = lr * HYP["bias_scaler"]
    net = airbench_net().to(device)
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for k, p in named if "norm" in k],
            "lr": lr_bias,
            "weight_decay": wd / lr_bias,
        },
        {"params": [p for k, p in named if "norm" not in k], "lr": lr, "weight_decay": wd / lr},
    ]
    optimizer = torch.optim.SGD(groups, momentum=momentum, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["label_smoothing"], reduction="none")
    alphas = 0.95**5 * (torch.arange(total_steps + 1) / total_steps) ** 3
    lookahead = Lookahead(net)  # before the whitening, as in L393 vs L403
    autocast = torch.autocast("cuda" if gpu else "cpu", dtype=half, enabled=half != torch.float32)

    def clock() -> float:
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    start = clock()
    init_whitening(net[0], train.images[: HYP["whiten_images"]].float(), HYP["whiten_eps"])
    step, evals, eval_s, step_gaps = 0, [], 0.0, []
    for epoch in range(ceil(epochs)):
        net[0].bias.requires_grad_(epoch < HYP["whiten_bias_epochs"])
        net.train()
        last = None
        for x, y in train:
            with autocast:
                loss = loss_fn(net(x), y).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 5 == 0:
                lookahead.update(net, decay=alphas[step].item())
            if step >= total_steps:
                lookahead.update(net, decay=1.0)
            if not gpu:  # a GPU's steps are timed by the epoch (no sync per step)
                now = clock()
                if last is not None:
                    step_gaps.append(now - last)
                last = now
            if step >= total_steps:
                break
        trained = clock() - start - eval_s
        if epoch + 1 >= eval_from or step >= total_steps:
            t = clock()
            acc = tta_accuracy(net, test)
            eval_s += clock() - t
            evals.append({"epoch": epoch + 1, "seconds": trained, "acc": acc})
            print(
                f"  airbench94 port  epoch {epoch + 1}: {acc:.2%} after {trained:.1f} s", flush=True
            )
        if step >= total_steps:
            break
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(half, "fp32")
    gaps = step_gaps or [trained / step]
    return summary(PORT, precision, seed, trained, evals, step, gaps, target)


def port_run(*args, **kwargs) -> dict:
    """`train_port` under the malloc setting striate's Trainer trains under on a CPU."""
    with same_malloc_as_trainer():
        return train_port(*args, **kwargs)


# --------------------------------------------------------------------------- striate's side


class _EpochEval(Callback):
    """Step timestamps, and test accuracy with the run's TTA at the end of each epoch from
    `eval_from` on and after the last (its time kept apart)."""

    def __init__(self, eval_from: int, gpu: bool = False) -> None:
        self.eval_from = eval_from
        self.gpu = gpu
        self.test = None
        self.start = 0.0
        self.eval_s = 0.0
        self.evals: list[dict] = []
        self.gaps: list[float] = []
        self._last: float | None = None

    def on_epoch_start(self, trainer) -> None:
        self._last = None

    def clock(self) -> float:
        if self.gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_end(self, trainer, loss) -> None:
        if self.gpu:  # a GPU's steps are timed by the epoch (no sync per step)
            return
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    def on_epoch_end(self, trainer, metrics) -> None:
        trained = self.clock() - self.start - self.eval_s
        if trainer.epoch >= self.eval_from or trainer.step >= trainer.total_steps:
            t = self.clock()
            acc = trainer.evaluate(trainer.eval_model, self.test)["acc"]
            self.eval_s += self.clock() - t
            self.evals.append({"epoch": trainer.epoch, "seconds": trained, "acc": acc})
            print(f"  striate          epoch {trainer.epoch}: {acc:.2%} after {trained:.1f} s")


def train_striate(
    data: RunData,
    seed: int,
    overrides: dict,
    eval_from: int,
    target: float,
    recipe: str,
    label: str | None = None,
):
    """One run of striate's `recipe` with `overrides`, recorded as ``striate <label>`` (the
    recipe's name unless given)."""
    config = recipe_config(recipe, **overrides, seed=seed)
    cb = _EpochEval(eval_from, gpu=str(overrides.get("device", "")).startswith("cuda"))
    run = prepare(config, progress=False, data=data, callbacks=[cb])
    cb.test = run.test
    cb.start = cb.clock()
    run.trainer.fit(run.model, run.train)
    trained = cb.clock() - cb.start - cb.eval_s
    return summary(
        f"striate {label or recipe}",
        run.trainer.precision.name,  # what precision="auto" resolved to
        seed,
        trained,
        cb.evals,
        run.trainer.step,
        cb.gaps or [trained / run.trainer.step],
        target,
    )


# --------------------------------------------------------------------------- reporting


def summary(program, precision, seed, trained, evals, steps, gaps, target) -> dict:
    reached = next((e["seconds"] for e in evals if e["acc"] >= target), None)
    return {
        "program": program,
        "precision": precision,
        "seed": seed,
        "acc": evals[-1]["acc"],
        "seconds": trained,
        "time_to_target": reached,
        "steps": steps,
        "per_step": statistics.median(gaps) if gaps else float("nan"),
        "epochs": evals,
    }


def budget(epochs: float, images: int) -> str:
    """A run's training budget in words; the full one is airbench94's."""
    if epochs == HYP["epochs"] and images == 50_000:
        return ""
    return f"{epochs:g} epoch{'s' if epochs != 1 else ''} of {images:,} images"


def table(entries: list[dict]) -> str:
    """Per machine, thread count, budget and striate recipe, one row per seed (its latest pair)
    and their means (a shortened budget is named beside the machine; a seed whose port run was
    reused from an earlier invocation is marked †)."""
    lines = [
        "| machine | striate | precision | seed | airbench94 port: acc | time | to 90.5 % | "
        "striate: acc | time | to 90.5 % | ratio time | ratio to 90.5 % | date |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def fmt(v):
        return "—" if v is None else f"{v:,.0f} s" if v >= 100 else f"{v:.1f} s"

    def ratio(a, b):
        return "—" if a is None or b is None else f"{a / b:.3f}×"

    reused = False
    for (label, _threads, short, program), seeds in sorted(recorded_pairs(entries).items()):
        device = f"{label} ({short})" if short else label
        recipe = program.removeprefix("striate ")
        pairs = [(seed, a, s) for seed, (a, s) in sorted(seeds.items())]
        for seed, a, s in pairs:
            mark = "†" if "port_invocation" in s else ""
            reused = reused or bool(mark)
            lines.append(
                f"| {device} | {recipe} | {a['precision']}/{s['precision']} | {seed}{mark} | "
                f"{100 * a['acc']:.2f} % "
                f"| {fmt(a['seconds'])} | {fmt(a['time_to_target'])} | {100 * s['acc']:.2f} % | "
                f"{fmt(s['seconds'])} | {fmt(s['time_to_target'])} | "
                f"{ratio(s['seconds'], a['seconds'])} | "
                f"{ratio(s['time_to_target'], a['time_to_target'])} | {s['date']} |"
            )
        if len(pairs) > 1:

            def mean(xs):
                xs = list(xs)
                return None if any(x is None for x in xs) else statistics.mean(xs)

            a_acc = mean(100 * a["acc"] for _, a, _ in pairs)
            s_acc = mean(100 * s["acc"] for _, _, s in pairs)
            a_t, s_t = (
                mean(a["seconds"] for _, a, _ in pairs),
                mean(s["seconds"] for *_, s in pairs),
            )
            a_r = mean(a["time_to_target"] for _, a, _ in pairs)
            s_r = mean(s["time_to_target"] for *_, s in pairs)
            lines.append(
                f"| {device} | {recipe} | | **mean** | **{a_acc:.2f} %** | {fmt(a_t)} | "
                f"{fmt(a_r)} | **{s_acc:.2f} %** | {fmt(s_t)} | {fmt(s_r)} | "
                f"**{ratio(s_t, a_t)}** | **{ratio(s_r, a_r)}** | |"
            )
    if reused:
        lines.append(
            "\n† the port's run of that seed is reused from an earlier invocation on the same "
            "machine (`--reuse-port`), not run beside striate's."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- --quick checks


def check_pieces(data: RunData) -> None:
    """Cheap checks of the port's pieces (asserts; run by --quick)."""
    torch.manual_seed(0)
    train = Loader(data.train.images, data.train.labels, 128, True)
    x = train.images.float()
    # whitening: the whitened patches' covariance is diag(λ/(λ+eps)), i.e. the identity up to eps
    eps = HYP["whiten_eps"]
    values, _ = whitening(x, eps)
    conv = airbench_net()[0]
    init_whitening(conv, x, eps)
    with torch.no_grad():
        out = F.conv2d(x, conv.weight[:12])  # the 12 whitened directions (no bias)
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = (flat.T @ flat / len(flat)).float()
    expect = torch.diag(values / (values + eps))
    # float32 eigh (as airbench) of a covariance whose eigenvalues span 1e-4..10: ~1e-3 off
    assert torch.allclose(cov, expect, atol=5e-3), (cov - expect).abs().max()
    off = (cov - torch.eye(12)).abs().max().item()
    assert off <= (eps / (values.min() + eps)).item() + 5e-3, off
    # the crop: each output is a window of its padded image, shifted by at most 2
    padded = F.pad(x[:16], (2,) * 4, mode="reflect")
    crops = random_crop(padded, 32)
    for img, crop in zip(padded, crops, strict=True):
        assert any(
            torch.equal(crop, img[:, dy : dy + 32, dx : dx + 32])
            for dy in range(5)
            for dx in range(5)
        )
    # alternating flips: with no translation the odd epoch is the mirror of the even one
    keep = HYP["translate"]
    HYP["translate"] = 0
    try:
        e0, e1 = train.epoch_images(), train.epoch_images()
    finally:
        HYP["translate"] = keep
    assert torch.equal(e1, e0.flip(-1))
    # the schedule and the network
    assert math.isclose(lr_factor(0, 476), 0.2) and math.isclose(lr_factor(109, 476), 1.0)
    assert abs(lr_factor(475, 476) - 0.07) < 0.01
    net = airbench_net()
    assert net(x[:2]).shape == (2, 10)
    frozen = [k for k, p in net.named_parameters() if not p.requires_grad]
    assert frozen == ["0.weight"] + [f"{g}.norm{i}.weight" for g in (2, 3, 4) for i in (1, 2)]
    print("port checks passed: whitening ≈ identity up to eps, crops, alternating flips, schedule")


# --------------------------------------------------------------------------- main


def gpu_name(device: str) -> str:
    """The GPU's name, for a record's `device`."""
    return torch.cuda.get_device_name(torch.device(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both")
    parser.add_argument("--target", type=float, default=0.905, help="accuracy to time")
    parser.add_argument(
        "--eval-from", type=int, default=8, help="first epoch whose end is evaluated (TTA)"
    )
    parser.add_argument(
        "--recipe",
        default="cifar10-fast",
        choices=list(RECIPES),
        help="striate's side: airbench94's recipe (default), airbench94_muon's (cifar10-muon) "
        "or that with progressive resizing (cifar10-quick)",
    )
    parser.add_argument(
        "--augment",
        default=None,
        help="an experiment: striate's augmentation spec instead of the recipe's (recorded and "
        "tabled as its own program, '<recipe> --augment SPEC')",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="pair striate's run with the port's run of the same seed recorded on this machine "
        "(same threads and budget) instead of training the port again; the table marks it",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda[:N]: both programs run there (default cpu)"
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="a shorter run for both (default: airbench's 9.9; striate trains its recipe's "
        "epochs in proportion, rounded up: 10 or 8 for 9.9): its per-step ratio, not its "
        "accuracy, is what it measures",
    )
    parser.add_argument("--train-size", type=int, default=None, help="a subset of the 50,000")
    parser.add_argument("--test-size", type=int, default=None, help="a subset of the 10,000")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument(
        "--skip-recorded",
        action="store_true",
        help="leave out the seeds this machine (CPU or GPU model, threads, budget) has recorded: "
        "a table longer than one sitting is built over several",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine()
    threads = torch.get_num_threads()
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)

    path = shared_data() / "cifar10" / "cifar10-jpeg.zip"
    device = args.device
    gpu = device.startswith("cuda")
    if gpu:
        # both programs: cuDNN autotunes its kernels for the fixed shapes, as airbench sets (L24)
        torch.backends.cudnn.benchmark = True
    overrides = {"data": str(path), "threads": args.threads, "device": device}
    label = args.recipe
    if args.augment is not None:
        overrides["augment"] = args.augment
        label = f"{args.recipe} --augment {args.augment}"
    epochs, batch, eval_from, seeds = HYP["epochs"], HYP["batch_size"], args.eval_from, args.seeds
    if args.epochs is not None:
        epochs, eval_from = args.epochs, min(eval_from, ceil(args.epochs))
        overrides["epochs"] = ceil(args.epochs * RECIPES[args.recipe]["epochs"] / 10 - 1e-9)
    for name in ("train_size", "test_size"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.quick:
        # 16 steps of 32 (striate's one-cycle schedule needs at least 9), one epoch
        batch, epochs, eval_from, seeds = 32, 1, 1, [0]
        overrides.update(train_size=512, test_size=128, batch_size=batch, epochs=1)
    # loaded once: the same images for every run and both programs
    data = load_run_data(recipe_config("cifar10-fast", **overrides, seed=0))
    if args.quick:
        check_pieces(data)
    invocation = uuid.uuid4().hex[:12]
    name = gpu_name(device) if gpu else cpu_name(threads)
    run_budget = budget(epochs, len(data.train))
    key = comparable(
        {"device": name, "threads": threads, "budget": run_budget, "machine": machine()}
    )
    ports = {}
    if args.reuse_port:
        recorded = read_record(args.record) if args.record.exists() else []
        ports = {  # the latest run of each seed
            e["seed"]: e for e in recorded if e["program"] == PORT and comparable(e) == key
        }
        missing = [s for s in seeds if s not in ports]
        if missing:
            raise SystemExit(f"--reuse-port: no recorded port run of seed(s) {missing} here")
    if args.skip_recorded and args.record.exists():
        pairs = recorded_pairs(read_record(args.record))
        done = pairs.get((*key, f"striate {label}"), {})
        seeds = [s for s in seeds if s not in done]
        print(f"seeds already recorded on this machine: {sorted(done) or 'none'}; to run: {seeds}")
    if gpu:
        # airbench's warm-up run (L367-369; its call at L473 is commented out there): the CUDA
        # context and cuDNN's autotuning paid before any timed run, for both programs
        print("warm-up: one epoch of each, not recorded", flush=True)
        train_port(data, 0, epochs=1, batch_size=batch, eval_from=1, target=1.0, device=device)
        train_striate(data, 0, {**overrides, "epochs": 1}, 1, 1.0, args.recipe, label)
    results = []
    for i, seed in enumerate(seeds):
        port = partial(
            port_run,
            data,
            seed,
            epochs=epochs,
            batch_size=batch,
            eval_from=eval_from,
            target=args.target,
            device=device,
        )
        ours = partial(
            train_striate, data, seed, overrides, eval_from, args.target, args.recipe, label
        )
        jobs = [ours] if args.reuse_port else [port, ours] if i % 2 == 0 else [ours, port]
        new = []
        for job in jobs:
            r = job()
            print(
                f"{r['program']}, seed {seed} ({r['precision']}): {r['acc']:.2%} with TTA, "
                f"{r['seconds']:.1f} s trained, {r['steps']} steps, {r['per_step']:.3f} s/step, "
                f"to {args.target:.1%}: "
                + (
                    "not reached" if r["time_to_target"] is None else f"{r['time_to_target']:.1f} s"
                ),
                flush=True,
            )
            new.append(r)
        if args.reuse_port:
            new[0]["port_invocation"] = ports[seed]["invocation"]
            new.append(ports[seed])
        results += new
        if not args.quick:  # each pair as soon as it is done: a long run stopped keeps them
            stamp = {
                "date": datetime.date.today().isoformat(),
                "invocation": invocation,
                "device": name,
                "threads": threads,
                "budget": run_budget,
                "target": args.target,
                "load_average": os.getloadavg(),
            }
            ran = [r for r in new if not (args.reuse_port and r["program"] == PORT)]
            append_record(args.record, [{**stamp, **r} for r in ran])
            write_table("cifar10_vs_airbench", table(read_record(args.record)))
    for seed in seeds:
        a, s = (
            next(r for r in results if r["seed"] == seed and r["program"] == p)
            for p in (PORT, f"striate {label}")
        )
        tt = (
            f"{s['time_to_target'] / a['time_to_target']:.3f}"
            if a["time_to_target"] and s["time_to_target"]
            else "—"
        )
        print(
            f"seed {seed}: striate/airbench total time {s['seconds'] / a['seconds']:.3f}, "
            f"time to {args.target:.1%} {tt}"
        )


if __name__ == "__main__":
    main()
