"""The CPU (and CUDA) ports of Keller Jordan's airbench94 and airbench94_muon that
`cifar10_vs_airbench.py` runs beside striate: network, whitening, data, TTA and training loop of
each (its docstring says what is the same and what differs, and which file and lines each piece
follows)."""

from __future__ import annotations

import math
import statistics
import time
from math import ceil

import torch
import torch.nn.functional as F
from torch import nn

from _airbench_record import PORT
from _common import same_malloc_as_trainer
from striate.engine.precision import cpu_has_bf16
from striate.train.assembly import RunData

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


def airbench_net(widths=HYP["widths"], scaling: float = HYP["scaling"]) -> nn.Sequential:
    """airbench94's network (L214-236), fp32 parameters, channels-last; the logits times
    `scaling`."""
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
        _Scale(scaling),
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


def _timed_training(
    program: str,
    net: nn.Module,
    train: Loader,
    test: Loader,
    total_steps: int,
    train_step,
    *,
    seed: int,
    device: str,
    eval_from: int,
    target: float,
) -> dict:
    """The timed loop both ports share: the whitening from the first 5,000 training images
    (airbench94 L403, airbench94_muon L384-386), then `train_step(x, y, step)` on every batch
    until `total_steps`, epoch by epoch, timed as airbench times them; test accuracy with TTA at
    the end of every epoch from `eval_from` on (its time left out)."""
    gpu = device.startswith("cuda")

    def clock() -> float:
        if gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    start = clock()
    init_whitening(net[0], train.images[: HYP["whiten_images"]].float(), HYP["whiten_eps"])
    step, evals, eval_s, step_gaps = 0, [], 0.0, []
    for epoch in range(ceil(total_steps / len(train))):
        net.train()
        last = None
        for x, y in train:
            train_step(x, y, step)
            step += 1
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
            print(f"  {program:<20} epoch {epoch + 1}: {acc:.2%} after {trained:.1f} s", flush=True)
        if step >= total_steps:
            break
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(port_precision(device), "fp32")
    gaps = step_gaps or [trained / step]
    return summary(program, name, seed, trained, evals, step, gaps, target)


def _loaders(data: RunData, batch_size: int, device: str) -> tuple[Loader, Loader]:
    half = port_precision(device)
    # on a GPU the data stay fp32 and autocast casts them, as airbench's loader (L121) keeps fp16
    dtype = torch.float32 if device.startswith("cuda") else half
    train = Loader(data.train.images, data.train.labels, batch_size, True, dtype, device)
    return train, Loader(data.test.images, data.test.labels, 2000, False, device=device)


def _autocast(device: str) -> torch.autocast:
    half = port_precision(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=half, enabled=half != torch.float32)


def train_port(
    data: RunData,
    seed: int,
    *,
    epochs: float,
    eval_from: int,
    target: float,
    device: str = "cpu",
    batch_size: int = HYP["batch_size"],
) -> dict:
    """One airbench94 run (main(), L350-466) on `data`; the dict every run reports."""
    torch.manual_seed(seed)
    train, test = _loaders(data, batch_size, device)
    total_steps = ceil(len(train) * epochs)
    bias_steps = len(train) * HYP["whiten_bias_epochs"]  # its first 3 epochs (L410)

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
    autocast = _autocast(device)

    def train_step(x: torch.Tensor, y: torch.Tensor, step: int) -> None:
        net[0].bias.requires_grad_(step < bias_steps)
        with autocast:
            loss = loss_fn(net(x), y).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % 5 == 0:
            lookahead.update(net, decay=alphas[step + 1].item())
        if step + 1 >= total_steps:
            lookahead.update(net, decay=1.0)

    return _timed_training(
        PORT,
        net,
        train,
        test,
        total_steps,
        train_step,
        seed=seed,
        device=device,
        eval_from=eval_from,
        target=target,
    )


# --------------------------------------------------------------------------- airbench94_muon

# airbench94_muon.py (github.com/KellerJordan/cifar10-airbench at commit
# 096d14d9aa92dcc837ab4f1f288dffea2bbe41b7; the Lnnn below refer to that file): main(), L340-362
MUON_HYP = {
    "epochs": 8,  # L352
    "batch_size": 2000,
    "bias_lr": 0.053,  # per example of the summed loss: the whitening and batch-norm biases
    "head_lr": 0.67,
    "weight_decay": 2e-6,  # per example: ×batch, then ÷lr for torch's coupled decay (L345, L358)
    "momentum": 0.85,  # Nesterov SGD on the biases and the head (L361)
    "muon_lr": 0.24,  # Muon on the 3×3 filters (L362)
    "muon_momentum": 0.6,
    "ns_steps": 3,
    "whiten_bias_epochs": 3,  # L353
}
PORT_MUON = "airbench94_muon port"


def newton_schulz(g: torch.Tensor, steps: int = MUON_HYP["ns_steps"]) -> torch.Tensor:
    """airbench94_muon's orthogonalisation of a 2-D update (L31-54): scaled to norm one, then
    `steps` quintic Newton–Schulz iterations (a, b, c) = (3.4445, -4.7750, 2.0315), in bfloat16,
    on the wide orientation."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    x = x / (x.norm() + 1e-7)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return x.T if tall else x


class PortMuon(torch.optim.Optimizer):
    """airbench94_muon's Muon (L56-85): Nesterov momentum (the buffer accumulates the raw
    gradient), the weight renormalised to norm √(out channels), then a step of `lr` along the
    orthogonalised update."""

    def __init__(self, params, lr: float, momentum: float) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buf.mul_(mu).add_(p.grad)
                g = p.grad.add(buf, alpha=mu)
                p.mul_(len(p) ** 0.5 / p.norm())
                p.add_(newton_schulz(g.reshape(len(g), -1)).view(g.shape), alpha=-group["lr"])


def muon_net() -> nn.Sequential:
    """airbench94_muon's CifarNet (L183-261): airbench94's layers with the logits ÷256 (the
    width) instead of ×1/9, the head's weights scaled to std 1 and the whitening bias at torch's
    default initialisation (`reset`, L240-245)."""
    net = airbench_net(scaling=1 / HYP["widths"][-1])
    with torch.no_grad():
        nn.Conv2d.reset_parameters(net[0])  # its weights are replaced by the whitening
        net[7].weight.div_(net[7].weight.std())
    return net


def train_port_muon(
    data: RunData,
    seed: int,
    *,
    epochs: float,
    eval_from: int,
    target: float,
    device: str = "cpu",
    batch_size: int = MUON_HYP["batch_size"],
) -> dict:
    """One airbench94_muon run (main(), L340-420) on `data`; the dict every run reports."""
    torch.manual_seed(seed)
    train, test = _loaders(data, batch_size, device)
    total_steps = ceil(len(train) * epochs)
    bias_steps = ceil(len(train) * MUON_HYP["whiten_bias_epochs"])
    net = muon_net().to(device)
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    wd, bias_lr, head_lr = (MUON_HYP[k] for k in ("weight_decay", "bias_lr", "head_lr"))
    wd *= batch_size
    head = net[7].weight
    sgd = torch.optim.SGD(  # L355-361
        [
            {"params": [net[0].bias], "lr": bias_lr, "weight_decay": wd / bias_lr},
            {
                "params": [p for k, p in named if "norm" in k],
                "lr": bias_lr,
                "weight_decay": wd / bias_lr,
            },
            {"params": [head], "lr": head_lr, "weight_decay": wd / head_lr},
        ],
        momentum=MUON_HYP["momentum"],
        nesterov=True,
    )
    filters = [p for _, p in named if p.ndim == 4]
    muon = PortMuon(filters, lr=MUON_HYP["muon_lr"], momentum=MUON_HYP["muon_momentum"])
    initial = [g["lr"] for g in (*sgd.param_groups, *muon.param_groups)]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum")
    autocast = _autocast(device)

    def train_step(x: torch.Tensor, y: torch.Tensor, step: int) -> None:  # L397-407
        net[0].bias.requires_grad_(step < bias_steps)  # its gradient is cut after 3 epochs
        with autocast:
            loss = loss_fn(net(x), y)
        loss.backward()
        groups = [*sgd.param_groups, *muon.param_groups]
        groups[0]["lr"] = initial[0] * (1 - step / bias_steps)
        for group, lr in zip(groups[1:], initial[1:], strict=True):
            group["lr"] = lr * (1 - step / total_steps)
        sgd.step()
        muon.step()
        net.zero_grad(set_to_none=True)

    return _timed_training(
        PORT_MUON,
        net,
        train,
        test,
        total_steps,
        train_step,
        seed=seed,
        device=device,
        eval_from=eval_from,
        target=target,
    )


# each peer: its program's name, its training function and its own number of epochs
PEERS = {
    "airbench94": (PORT, train_port, HYP["epochs"]),
    "airbench94_muon": (PORT_MUON, train_port_muon, MUON_HYP["epochs"]),
}


def port_run(train, *args, **kwargs) -> dict:
    """A port's training function under the malloc setting striate's Trainer trains under on a
    CPU."""
    with same_malloc_as_trainer():
        return train(*args, **kwargs)


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
    # airbench94_muon: its Newton-Schulz in bf16 against striate's in fp32 (written apart), the
    # net's head and logits, and a Muon step's renormalised weights
    from striate.engine.muon import orthogonalize

    g = torch.randn(64, 576)
    assert torch.allclose(newton_schulz(g, 3).float(), orthogonalize(g, 3), atol=0.03)
    net = muon_net()
    assert abs(net[7].weight.std().item() - 1) < 1e-5 and net[8].factor == 1 / 256
    assert net(x[:2]).shape == (2, 10)
    w = net[2].conv1.weight
    w.grad = torch.randn_like(w)
    PortMuon([w], lr=0.0, momentum=0.6).step()
    assert math.isclose(w.norm().item(), len(w) ** 0.5, rel_tol=1e-5)
    print(
        "port checks passed: whitening ≈ identity up to eps, crops, alternating flips, schedule, "
        "Newton-Schulz, Muon's renormalisation"
    )
