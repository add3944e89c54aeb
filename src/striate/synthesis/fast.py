"""Fast feed-forward style transfer: an image-transformation network trained against the
perceptual loss (Johnson, Alahi & Fei-Fei 2016), one network for several styles through
conditional instance norm (Dumoulin, Shlens & Kudlur 2017).

    run = train_fast_style([starry, scream], "runs/fast", size=128, steps=600)
    model = load_fast_style("runs/fast/model.safetensors")
    apply_fast_style(model, photo, style="starry_night")          # or 1, or [0.5, 0.5]

The network (`TransformerNet`) is Johnson's: a reflection-padded 9×9 convolution, two stride-2
convolutions, residual blocks, two ×2 upsamplings, a 9×9 convolution out; instance norm after
every convolution (Ulyanov et al. 2016), conditional when it renders several styles. It upsamples
by nearest neighbour then convolves, not by transposed convolution, to avoid checkerboard
artefacts (Odena et al. 2016, as Dumoulin et al. do), and ends with a plain convolution and a
sigmoid, so the images are in 0–1. (Dumoulin et al. normalise that last convolution too; here that
fixed every output's colour statistics and held the content loss near that of a grey image for
the first hundreds of steps, which a CPU budget cannot wait out.)

The loss (`PerceptualTask`) is Johnson's (§3): content on relu2_2 of VGG-16, style on relu1_2,
relu2_2, relu3_3, relu4_3 (Gram matrices normalised by C·H·W, squared differences averaged, the
layers summed, as in Johnson's code), and total variation. It trains through the engine's
`Trainer` (checkpoints, resume after Ctrl-C, progress, metrics.csv); a batch is (images, style
indices), each image drawn with a random style.

No COCO here: the training images are crops of CIFAR-10 (32 px, upsampled) and of the package
photographs (`TRAIN_PHOTOGRAPHS`); astronaut, chelsea and coffee (`HELD_OUT`) are never seen in
training, and the run reports its losses and samples on them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from striate._atomic import atomic_path, write_json
from striate.checks import did_you_mean, number, positive_int
from striate.data import ImageSet, load_dataset
from striate.data.loader import ResumableEpochs
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.outputs import check_folder, clear_folder
from striate.synthesis.features import FeatureExtractor, vgg_features
from striate.synthesis.images import PHOTOGRAPHS, photograph, read_image, resize_to, save_image
from striate.synthesis.losses import gram_matrix, total_variation
from striate.synthesis.normalization import (
    ConditionalInstanceNorm2d,
    InstanceNorm2d,
    style_weights,
)

__all__ = [
    "CONTENT_LAYER",
    "HELD_OUT",
    "STYLE_LAYERS",
    "TRAIN_PHOTOGRAPHS",
    "CropLoader",
    "FastStyleConfig",
    "FastStyleRun",
    "PerceptualTask",
    "TransformerNet",
    "apply_fast_style",
    "load_fast_style",
    "save_fast_style",
    "style_targets",
    "train_fast_style",
]

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
HELD_OUT = ("astronaut", "chelsea", "coffee")
TRAIN_PHOTOGRAPHS = tuple(p for p in PHOTOGRAPHS if p not in HELD_OUT)
FORMAT = "striate-fast-style/1"

StyleArg = int | str | Sequence[float] | torch.Tensor | None


# --------------------------------------------------------------------------- the network


class _ConvLayer(nn.Module):
    """(×2 nearest upsampling,) reflection padding, convolution, (conditional) instance norm."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        styles: int,
        up: bool = False,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.up = up
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)
        self.norm: nn.Module | None = None
        if norm:
            self.norm = (
                InstanceNorm2d(cout) if styles == 1 else ConditionalInstanceNorm2d(cout, styles)
            )

    def forward(self, x: torch.Tensor, style: torch.Tensor | int) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(self.pad(x))
        if self.norm is None:
            return x
        if isinstance(self.norm, ConditionalInstanceNorm2d):
            return self.norm.normalize(x, style)
        return self.norm(x)


class _Residual(nn.Module):
    def __init__(self, channels: int, styles: int) -> None:
        super().__init__()
        self.a = _ConvLayer(channels, channels, 3, 1, styles)
        self.b = _ConvLayer(channels, channels, 3, 1, styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | int) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x, style)), style)


class TransformerNet(nn.Module):
    """Johnson et al.'s image-transformation network (see the module note) for `styles` styles;
    channels `width`, 2·`width`, 4·`width` (Johnson: 32-64-128).

    ``forward(images, style)``: images N×3×H×W in 0–1, any size (padded to a multiple of 4 by
    repeating the edge, then cropped back); `style` None (one-style network), an index, a
    LongTensor of N indices or N×S (or S) mixing weights. Returns N×3×H×W in 0–1."""

    def __init__(self, styles: int = 1, width: int = 32, residual_blocks: int = 5) -> None:
        super().__init__()
        owner = "TransformerNet"
        self.styles = positive_int(owner, "styles", styles)
        self.width = positive_int(owner, "width", width)
        self.residual_blocks = positive_int(owner, "residual_blocks", residual_blocks)
        w, s = self.width, self.styles
        self.down = nn.ModuleList(
            [
                _ConvLayer(3, w, 9, 1, s),
                _ConvLayer(w, 2 * w, 3, 2, s),
                _ConvLayer(2 * w, 4 * w, 3, 2, s),
            ]
        )
        self.residual = nn.ModuleList(_Residual(4 * w, s) for _ in range(residual_blocks))
        self.up = nn.ModuleList(
            [_ConvLayer(4 * w, 2 * w, 3, 1, s, up=True), _ConvLayer(2 * w, w, 3, 1, s, up=True)]
        )
        self.out = _ConvLayer(w, 3, 9, 1, s, norm=False)
        self.style_names: list[str] = [f"style{i}" for i in range(s)]

    def forward(
        self, images: torch.Tensor, style: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"TransformerNet: images must be N×3×H×W in 0–1, got {got}")
        s = style_weights(style, self.styles, len(images))
        h, w = images.shape[-2:]
        ph, pw = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
        x = F.pad(images, (0, pw, 0, ph), mode="replicate") if ph or pw else images
        for layer in self.down:
            x = F.relu(layer(x, s))
        for block in self.residual:
            x = block(x, s)
        for layer in self.up:
            x = F.relu(layer(x, s))
        return torch.sigmoid(self.out(x, s))[..., :h, :w]

    def architecture(self) -> dict[str, int]:
        return {"styles": self.styles, "width": self.width, "residual_blocks": self.residual_blocks}


# --------------------------------------------------------------------------- the loss


def style_targets(
    extractor: FeatureExtractor,
    styles: Sequence[torch.Tensor],
    layers: Sequence[str] = STYLE_LAYERS,
    normalize: str = "size",
) -> dict[str, torch.Tensor]:
    """{layer: S×C×C}: the Gram matrices of each style image (1×3×H×W, 0–1) at `layers`."""
    grams: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad():
        for image in styles:
            features = extractor(image)
            for layer in layers:
                grams[layer].append(gram_matrix(features[layer], normalize)[0])
    return {layer: torch.stack(g) for layer, g in grams.items()}


class PerceptualTask(Task):
    """Johnson et al.'s perceptual loss as a Task: a batch is (images, style indices); the
    network's output y for content x and style s costs
    content_weight·mse(φ_c(y), φ_c(x)) + style_weight·Σ_l mse(G_l(y), A_l,s) + tv_weight·TV(y),
    averaged over the batch. `extractor` gives the VGG features; `targets` the styles' Gram
    matrices ({layer: S×C×C}, `style_targets`). Evaluation reports the same terms."""

    name = "perceptual"
    running_stats = ("loss", "content", "style", "tv", "n")
    metrics = ("loss", "content", "style", "tv")
    monitor = "val_loss"

    def __init__(
        self,
        extractor: FeatureExtractor,
        targets: dict[str, torch.Tensor],
        *,
        content_layer: str = CONTENT_LAYER,
        content_weight: float = 1.0,
        style_weight: float = 5.0,
        tv_weight: float = 1e-2,
        normalize: str = "size",
    ) -> None:
        owner = "PerceptualTask"
        self.extractor, self.targets = extractor, dict(targets)
        self.content_layer = content_layer
        self.content_weight = number(owner, "content_weight", content_weight, low=0)
        self.style_weight = number(owner, "style_weight", style_weight, low=0)
        self.tv_weight = number(owner, "tv_weight", tv_weight, low=0)
        self.normalize = normalize
        missing = [x for x in [content_layer, *self.targets] if x not in extractor.layers]
        if missing:
            raise ConfigError(f"{owner}: the feature extractor does not give {missing}")
        self.styles = len(next(iter(self.targets.values())))

    def setup(self, model: nn.Module, trainer: Trainer) -> None:
        if getattr(model, "styles", self.styles) != self.styles:
            raise ConfigError(
                f"the network renders {model.styles} styles but {self.styles} style images "
                f"were given"
            )
        self.to(trainer.device)

    def to(self, device: torch.device | str) -> PerceptualTask:
        self.extractor.to(device)
        self.targets = {k: v.to(device) for k, v in self.targets.items()}
        return self

    def terms(
        self, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor | int
    ) -> dict[str, torch.Tensor]:
        """The weighted content, style and TV terms of each image (N each)."""
        n = len(output)
        features = self.extractor(output)
        with torch.no_grad():
            target = self.extractor(content)[self.content_layer]
        c = (features[self.content_layer] - target).square().flatten(1).mean(1)
        index = torch.full((n,), style) if isinstance(style, int) else style
        s = torch.zeros(n, device=output.device)
        for layer, grams in self.targets.items():
            g = gram_matrix(features[layer], self.normalize)
            s = s + (g - grams[index.to(grams.device)]).square().flatten(1).mean(1)
        tv = total_variation(output)
        return {
            "content": self.content_weight * c,
            "style": self.style_weight * s,
            "tv": self.tv_weight * tv,
        }

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x, style = batch[0], batch[1]
        terms = self.terms(model(x, style).float(), x, style)
        per_image = terms["content"] + terms["style"] + terms["tv"]
        loss = per_image.mean()
        parts = (per_image, terms["content"], terms["style"], terms["tv"])
        sums = [t.detach().sum() for t in parts]
        return Step(loss, stack_stats(*sums, len(x)))

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        return model(x, options.get("style")).float()


TASKS.add("perceptual", PerceptualTask)


# --------------------------------------------------------------------------- the data


class CropLoader(ResumableEpochs):
    """Training batches for fast style transfer: (N×3×size×size crops in 0–1, N style indices).

    Each image is, with probability `photo_fraction`, a random crop of a photograph tile (side a
    fraction ≥ size/L of the tile, anywhere in it, flipped half the time), else an image of
    `images` (CIFAR-10) upsampled whole. Crops are cut for the whole batch by one `grid_sample`.
    `steps` batches make an epoch; epoch e draws from a generator seeded by (seed, e), and
    `state_dict` taken mid-epoch resumes after the last batch handed out (as `BatchLoader`)."""

    def __init__(
        self,
        images: torch.Tensor | None,
        tiles: torch.Tensor | None,
        *,
        size: int,
        batch_size: int,
        styles: int,
        steps: int,
        photo_fraction: float = 0.5,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        owner = "CropLoader"
        self.size = positive_int(owner, "size", size)
        self.batch_size = positive_int(owner, "batch_size", batch_size)
        self.styles = positive_int(owner, "styles", styles)
        self.steps = positive_int(owner, "steps", steps)
        fraction = number(owner, "photo_fraction", photo_fraction, low=0, high=1)
        if images is None or len(images) == 0:
            fraction = 1.0
        if tiles is None or len(tiles) == 0:
            fraction = 0.0
            if images is None or len(images) == 0:
                raise ConfigError(f"{owner}: no training images (give a dataset or photographs)")
        self.photo_fraction, self.seed = fraction, int(seed)
        self.images = images.to(device) if images is not None else None
        self.tiles = tiles.to(device) if tiles is not None else None
        self.device = torch.device(device)
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = self._generator()
        done = 0
        if self._resume is not None:
            done, rng = self._resume
            g.set_state(rng)
            self._resume = None
        self.epoch += 1
        for i in range(done, self.steps):
            batch = self._batch(g)
            self._position = (i + 1, g) if i + 1 < self.steps else None
            yield batch
        self._position = None

    def _batch(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, size = self.batch_size, self.size
        photo = torch.rand(n, generator=g) < self.photo_fraction
        styles = torch.randint(self.styles, (n,), generator=g)
        flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        out = torch.empty(n, 3, size, size, device=self.device)
        k = int(photo.sum())
        if k:
            side = self.tiles.shape[-1]
            low = min(1.0, size / side)
            scale = low + (1 - low) * torch.rand(k, generator=g)  # crop side / tile side
            centre = (1 - scale)[:, None] * (2 * torch.rand(k, 2, generator=g) - 1)
            which = torch.randint(len(self.tiles), (k,), generator=g)
            out[photo.to(self.device)] = self._crop(self.tiles, which, scale, centre, flip[photo])
        if k < n:
            which = torch.randint(len(self.images), (n - k,), generator=g)
            ones, zeros = torch.ones(n - k), torch.zeros(n - k, 2)
            crops = self._crop(self.images, which, ones, zeros, flip[~photo])
            out[~photo.to(self.device)] = crops
        return out, styles.to(self.device)

    def _crop(self, source, which, scale, centre, flip) -> torch.Tensor:
        """Bilinear crops of source[which] (uint8) with side `scale` (of the source's) centred at
        `centre` (−1…1 coordinates), mirrored where `flip` is −1, resized to size×size."""
        theta = torch.zeros(len(which), 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
        theta[:, :, 2] = centre
        x = source[which.to(self.device)].float().div_(255)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        grid = F.affine_grid(theta.to(self.device), [len(which), 3, self.size, self.size], False)
        return F.grid_sample(x, grid, "bilinear", "border", align_corners=False).clamp_(0, 1)


def photograph_tiles(names: Sequence[str], side: int) -> torch.Tensor:
    """uint8 T×3×side×side square tiles covering each photograph, its shorter side resized to
    `side` (a wide photograph gives several overlapping tiles)."""
    tiles = []
    for name in names:
        p = photograph(name)
        h, w = p.shape[-2:]
        scale = side / min(h, w)
        p = resize_to(p, (max(side, round(h * scale)), max(side, round(w * scale))))
        h, w = p.shape[-2:]
        along = max(h, w)
        k = math.ceil(along / side)
        for start in torch.linspace(0, along - side, k).round().long().tolist():
            tile = p[..., start : start + side, :] if h > w else p[..., start : start + side]
            tiles.append(tile[..., :side, :side])
    return (torch.cat(tiles) * 255).round().to(torch.uint8)


def held_out_batches(
    names: Sequence[str], size: int, styles: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out photographs, centre squares resized to size×size, once per style: one batch
    per style."""
    squares = []
    for name in names:
        p = photograph(name)
        h, w = p.shape[-2:]
        m = min(h, w)
        top, left = (h - m) // 2, (w - m) // 2
        squares.append(resize_to(p[..., top : top + m, left : left + m], (size, size)))
    x = torch.cat(squares)
    return [(x, torch.full((len(x),), s)) for s in range(styles)]


# --------------------------------------------------------------------------- model files


def save_fast_style(model: TransformerNet, path: str | os.PathLike, **facts: Any) -> Path:
    """The network's weights in one safetensors file (atomic), its architecture, style names and
    `facts` (JSON) in the metadata."""
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "style_names": json.dumps(list(model.style_names)),
        **{k: str(v) for k, v in model.architecture().items()},
        "facts": json.dumps(facts, default=str),
    }
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(weights, str(tmp), metadata=metadata)
    return path


def load_fast_style(path: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerNet:
    """The network saved by `save_fast_style` (or a run folder's model.safetensors), in eval
    mode, with its `style_names` and `facts`."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise DataError(f"no fast-style model at {path}: give the model.safetensors of a run")
    bad = f"{path} is not a striate fast-style model"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise DataError(f"{bad} (unreadable or truncated: {e}); train one with train-fast") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{bad} (format {meta.get('format')!r}, expected {FORMAT})")
    try:
        names = json.loads(meta["style_names"])
        model = TransformerNet(len(names), int(meta["width"]), int(meta["residual_blocks"]))
        model.load_state_dict(state)
        facts = json.loads(meta.get("facts", "{}"))
    except (KeyError, ValueError, TypeError, RuntimeError, StriateError) as e:
        raise DataError(f"{bad} (its metadata or tensors do not fit: {e})") from e
    model.style_names, model.facts = [str(n) for n in names], facts
    return model.to(device).eval()


def resolve_style(model: TransformerNet, style: StyleArg) -> torch.Tensor | int | None:
    """A style as the network takes it: a name or index → index; a list of weights → 1×S."""
    if isinstance(style, str):
        names = list(model.style_names)
        if style in names:
            return names.index(style)
        if style.isdigit():
            return int(style)
        raise InputError(
            f"no style {style!r} in this model{did_you_mean(style, names)}; it renders "
            f"{', '.join(names)} (or an index 0–{len(names) - 1})"
        )
    if isinstance(style, Sequence):
        if len(style) != model.styles:
            raise InputError(
                f"give {model.styles} blending weights (one per style: "
                f"{', '.join(model.style_names)}), got {len(style)}"
            )
        return torch.tensor([float(v) for v in style])
    if style is None and model.styles > 1:
        return 0
    return style


@torch.no_grad()
def apply_fast_style(
    model: TransformerNet,
    images: torch.Tensor,
    style: StyleArg = None,
    *,
    batch_size: int = 8,
) -> torch.Tensor:
    """`images` (N×3×H×W or 3×H×W, 0–1, any size) in `style` — a name, an index, or blending
    weights (one per style, e.g. [0.5, 0.5]); None is the first style. Batches of `batch_size`
    on the model's device; returns the images' shape, on the CPU."""
    single = isinstance(images, torch.Tensor) and images.dim() == 3
    x = images[None] if single else images
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"apply_fast_style: images must be N×3×H×W in 0–1, got {got}")
    s = resolve_style(model, style)
    model.eval()
    device = next(model.parameters()).device
    s = s.to(device) if isinstance(s, torch.Tensor) else s
    out = [
        model(chunk.to(device, torch.float32), s).cpu()
        for chunk in x.split(positive_int("apply_fast_style", "batch_size", batch_size))
    ]
    y = torch.cat(out)
    return y[0] if single else y


# --------------------------------------------------------------------------- training


@dataclass
class FastStyleConfig:
    """The settings of `train_fast_style` (saved in config.json; a resumed run reads them)."""

    styles: list[str] = field(default_factory=list)  # the style images, copied into the run
    names: list[str] = field(default_factory=list)
    size: int = 128
    style_size: int | None = None  # the style images' longer side [default: size]
    steps: int = 1000
    every: int = 100  # steps between checkpoints and held-out evaluations
    batch_size: int = 4
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-2
    content_layer: str = CONTENT_LAYER
    style_layers: list[str] = field(default_factory=lambda: list(STYLE_LAYERS))
    width: int = 32
    residual_blocks: int = 5
    weights: str | None = None  # the VGG file [default: default_vgg_weights()]
    data: str | None = "cifar10"  # CIFAR-10 JPEG copy in the shared data; a dataset; or None
    data_size: int | None = None
    photographs: list[str] = field(default_factory=lambda: list(TRAIN_PHOTOGRAPHS))
    held_out: list[str] = field(default_factory=lambda: list(HELD_OUT))
    photo_fraction: float = 0.5
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class FastStyleRun:
    out: Path | None
    model: TransformerNet
    trainer: Trainer
    held_out: dict[str, float]
    interrupted: bool = False


def train_fast_style(
    styles: Sequence[torch.Tensor | str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> FastStyleRun:
    """Train a `TransformerNet` for `styles` (images 1×3×H×W in 0–1, or files) against the
    perceptual loss (settings: `FastStyleConfig`'s fields; names default to the file stems).

    With `out`, the run folder gets config.json, styles/, metrics.csv, steps.csv, checkpoints/,
    model.safetensors, loss.png, samples.png (the held-out photographs in every style),
    samples/PHOTO-STYLE.png and held_out.json; `resume=True` continues the run stopped there."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_fast_style: resume needs the run folder (out=...)")
        config = saved_settings(out, FastStyleConfig, "striate stylize train-fast")
        images = [read_image(p) for p in config.styles]
    else:
        config, images = _new_config(styles, settings)
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    _check(config)
    style_images = [resize_to(im, config.style_size or config.size) for im in images]
    layers = list(dict.fromkeys([config.content_layer, *config.style_layers]))
    extractor = vgg_features(layers, config.weights)
    targets = style_targets(extractor, style_images, config.style_layers)
    task = PerceptualTask(
        extractor,
        targets,
        content_layer=config.content_layer,
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        tv_weight=config.tv_weight,
    )
    torch.manual_seed(config.seed)
    model = TransformerNet(len(images), config.width, config.residual_blocks)
    model.style_names = list(config.names)
    trainer = Trainer(
        steps=config.steps,
        task=task,
        opt="adam",
        lr=config.lr,
        precision=config.precision,
        device=config.device,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=callbacks,
    )
    train = CropLoader(
        _dataset_images(config),
        photograph_tiles(config.photographs, 2 * config.size) if config.photographs else None,
        size=config.size,
        batch_size=config.batch_size,
        styles=len(images),
        steps=min(config.every, config.steps),
        photo_fraction=config.photo_fraction,
        seed=config.seed,
        device=trainer.device,
    )
    val = held_out_batches(config.held_out, config.size, len(images)) if config.held_out else None
    if out is not None and not resume:
        trainer.check(model, train)
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        config.styles = [
            str(_keep_style(out, n, im)) for n, im in zip(config.names, images, strict=True)
        ]
        sizes = {"train_images": len(train.images) if train.images is not None else 0}
        sizes["train_tiles"] = len(train.tiles) if train.tiles is not None else 0
        write_json(
            out / "config.json",
            {"config": asdict(config), "resolved": resolved_facts(trainer, model, **sizes)},
        )
    trainer.fit(model, train, val, resume=out if resume else None)
    held = _held_out_losses(trainer, model, val)
    if out is not None:
        _write_outputs(out, config, trainer, model, held)
    return FastStyleRun(out, model.eval(), trainer, held, trainer.interrupted)


def _new_config(
    styles: Sequence[torch.Tensor | str | os.PathLike], settings: dict[str, Any]
) -> tuple[FastStyleConfig, list[torch.Tensor]]:
    known_settings("train_fast_style", FastStyleConfig, settings, ("styles",))
    if isinstance(styles, (str, os.PathLike, torch.Tensor)) or not styles:
        raise ConfigError("train_fast_style: give a list of style images (tensors or files)")
    images, names = [], []
    for i, s in enumerate(styles):
        if isinstance(s, torch.Tensor):
            if s.dim() != 4 or s.shape[:2] != (1, 3):
                raise InputError(f"style {i}: give a 1×3×H×W image in 0–1, got {tuple(s.shape)}")
            images.append(s.detach().float().cpu().clamp(0, 1))
            names.append(f"style{i}")
        else:
            images.append(read_image(s))
            names.append(Path(s).stem)
    config = FastStyleConfig(**settings)
    if config.names:
        if len(config.names) != len(images) or len(set(config.names)) != len(images):
            raise ConfigError(
                f"train_fast_style: names must be {len(images)} distinct names, got {config.names}"
            )
    else:
        config.names = _distinct(names)
    return config, images


def _distinct(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _check(config: FastStyleConfig) -> None:
    owner = "train_fast_style"
    for name in ("size", "steps", "every", "batch_size", "width", "residual_blocks"):
        positive_int(owner, name, getattr(config, name))
    positive_int(owner, "style_size", config.style_size, allow_none=True)
    positive_int(owner, "data_size", config.data_size, allow_none=True)
    number(owner, "lr", config.lr, low=0, low_open=True)
    if config.size < 16:
        raise ConfigError(f"{owner}: size must be at least 16 pixels, got {config.size}")
    for name in (*config.photographs, *config.held_out):
        if name not in PHOTOGRAPHS:
            raise ConfigError(
                f"{owner}: no photograph {name!r}{did_you_mean(name, PHOTOGRAPHS)}; choose "
                f"among {', '.join(PHOTOGRAPHS)}"
            )
    seen = set(config.photographs) & set(config.held_out)
    if seen:
        raise ConfigError(
            f"{owner}: {', '.join(sorted(seen))} cannot be both trained on and held out"
        )
    if config.data is None and not config.photographs:
        raise ConfigError(f"{owner}: no training images: give data or photographs")


def _dataset_images(config: FastStyleConfig) -> torch.Tensor | None:
    if config.data is None:
        return None
    data = config.data
    if data == "cifar10":
        root = Path(os.environ.get("STRIATE_SHARED_DATA", Path("..") / "shared" / "data"))
        shared = root / "cifar10" / "cifar10-jpeg.zip"
        data = str(shared) if shared.is_file() else data
    images: ImageSet = load_dataset(data, "train", progress=False)
    if config.data_size is not None and config.data_size < len(images):
        images = images.sample(config.data_size, seed=config.seed)
    return images.images


def _keep_style(out: Path, name: str, image: torch.Tensor) -> Path:
    folder = out / "styles"
    folder.mkdir(exist_ok=True)
    return save_image(image, folder / f"{name}.png").resolve()


def _held_out_losses(trainer: Trainer, model: TransformerNet, val) -> dict[str, float]:
    if not val:
        return {}
    return {f"held_out_{k}": v for k, v in trainer.evaluate(model, val).items()}


def loss_figure(steps_log: dict[str, list[float]], history: list[dict[str, float]]) -> Figure:
    """Training loss per step (and its running mean) with the held-out loss per epoch."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    steps, loss = steps_log["step"], torch.tensor(steps_log["loss"])
    ax.plot(steps, loss.tolist(), color="0.75", lw=0.8, label="training batch")
    k = max(1, len(loss) // 20)
    if len(loss) >= k:
        smooth = loss.unfold(0, k, 1).mean(1)
        ax.plot(steps[k - 1 :], smooth.tolist(), color="C0", label=f"mean of {k} steps")
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", color="C1", label="held-out photographs")
    ax.set_xlabel("step")
    ax.set_ylabel("perceptual loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.96)
    return fig


def samples_figure(
    photos: Sequence[torch.Tensor], rows: Sequence[Sequence[torch.Tensor]], labels: Sequence[str]
) -> Figure:
    """Each held-out photograph (columns) above its stylised versions (one row per style)."""
    n = len(photos)
    fig = Figure(figsize=(2.4 * n, 2.4 * (len(rows) + 1)))
    axes = fig.subplots(len(rows) + 1, n, squeeze=False)
    for r, row in enumerate([photos, *rows]):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(image[0].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(["photograph", *labels][r], fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.01, top=0.99, wspace=0.04, hspace=0.04)
    return fig


def _write_outputs(
    out: Path,
    config: FastStyleConfig,
    trainer: Trainer,
    model: TransformerNet,
    held: dict[str, float],
) -> None:
    facts = {"size": config.size, "steps": trainer.step, "style_layers": config.style_layers}
    save_fast_style(model, out / "model.safetensors", **facts)
    if trainer.steps_log["step"]:
        fig = loss_figure(trainer.steps_log, trainer.history)
        with atomic_path(out / "loss.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    if config.held_out:
        photos = [resize_to(photograph(n), 2 * config.size) for n in config.held_out]
        rows = []
        for s, style in enumerate(model.style_names):
            row = [apply_fast_style(model, p, s) for p in photos]
            for name, image in zip(config.held_out, row, strict=True):
                save_image(image, out / "samples" / f"{name}-{style}.png")
            rows.append(row)
        fig = samples_figure(photos, rows, model.style_names)
        with atomic_path(out / "samples.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    held = {**held, "steps": trainer.step, "photographs": config.held_out}
    write_json(out / "held_out.json", held)
