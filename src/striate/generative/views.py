"""Pictures of a generative model's latent space: the 2-D manifold of a VAE (Kingma & Welling
2014, Fig. 4), traversals of single latents, interpolations (Radford et al. 2016, section 6.1)
and vector arithmetic on averaged latents (section 6.3), for a VAE and a DCGAN alike.

    images = latent_manifold(vae, side=15)                 # 225 decoder means, row-major
    images = latent_traversals(generator, z, dims=[0, 1])  # 2 rows of 9: one latent varied per row
    images, columns = draw_view("runs/generate/vae", "interpolation", count=40)
    save_grid(images, Path("interpolation-0.png"), columns)     # generative.grids.save_grid

Every function returns images N×C×H×W in [0, 1]: a VAE's decoder mean (pixel probabilities for a
Bernoulli decoder, clamped means for a Gaussian one), a DCGAN's Tanh output mapped from [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import int_sequence, number, one_of, positive_int
from striate.errors import InputError
from striate.generative.gan import GANPair, generate, interpolate_latents, latent_arithmetic
from striate.generative.jobs import check_count, load_generative, sample_generative
from striate.generative.vae import VAE

VIEWS = ("samples", "interpolation", "traversal", "manifold")
LATENT_VIEWS = {"interpolation": ("vae", "dcgan"), "traversal": ("vae", "dcgan")}
INTERPOLATION_STEPS = 10
TRAVERSAL_STEPS = 9
TRAVERSED = 10  # the first latents a traversal shows


def latent_size(model: nn.Module) -> int:
    """The latent size of a VAE, a GANPair or a generator with a `latent_dim` attribute."""
    if isinstance(model, VAE):
        return model.latent
    latent = getattr(model, "latent_dim", None)
    if not isinstance(latent, int):
        raise InputError(
            f"views: a {type(model).__name__} has no latent to decode; give a VAE, a GANPair or "
            "a generator with a latent_dim attribute"
        )
    return latent


@torch.no_grad()
def decode(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] for latents `z` (N×latent), in eval mode (training mode restored): a
    VAE's mean of p(x|z), or a generator's (a GANPair's) output mapped from [-1, 1]."""
    latent_size(model)
    if isinstance(model, VAE):
        was = model.training
        model.eval()
        try:
            return model.mean(model.decode(z)).float().clamp(0, 1)
        finally:
            model.train(was)
    generator = model.generator if isinstance(model, GANPair) else model
    return ((generate(generator, z).float() + 1) / 2).clamp(0, 1)


def manifold_latents(side: int) -> torch.Tensor:
    """side² latents z = Φ⁻¹(u) for u on a side×side grid of quantiles (k + ½)/side, row-major:
    the first latent grows along a row, the second grows upwards (Kingma & Welling 2014, Fig. 4)."""
    side = positive_int("latent_manifold", "side", side, error=InputError)
    u = torch.special.ndtri((torch.arange(side, dtype=torch.float64) + 0.5) / side).float()
    first = u.repeat(side)  # columns
    second = u.flip(0).repeat_interleave(side)  # rows, top row highest
    return torch.stack([first, second], -1)


def latent_manifold(vae: nn.Module, side: int = 15) -> torch.Tensor:
    """The decoder means over `manifold_latents(side)`: side² images, row-major. Only for a VAE
    with a 2-D latent."""
    if not isinstance(vae, VAE) or vae.latent != 2:
        what = f"this VAE has {vae.latent}" if isinstance(vae, VAE) else "this is not a VAE"
        raise InputError(
            f"latent_manifold: the manifold needs a VAE with a 2-D latent, {what}; train one "
            "with --latent 2"
        )
    z = manifold_latents(side).to(next(vae.parameters()).device)
    return decode(vae, z)


def _base(owner: str, z: torch.Tensor, latent: int) -> torch.Tensor:
    if z.shape[-1] != latent or z.numel() != latent:
        raise InputError(
            f"{owner}: the base latent must hold {latent} numbers (1×{latent}), got shape "
            f"{tuple(z.shape)}; draw it with the model's latent size"
        )
    return z.reshape(latent)


def latent_traversals(
    model: nn.Module,
    z: torch.Tensor,
    dims: Sequence[int] | None = None,
    steps: int = TRAVERSAL_STEPS,
    span: float = 3.0,
) -> torch.Tensor:
    """From the base latent `z` (1×latent), each latent in `dims` (default: all) set in turn to
    linspace(−span, span, steps), the others kept: len(dims)·steps images, a row per latent."""
    latent = latent_size(model)
    z = _base("latent_traversals", z, latent)
    dims = range(latent) if dims is None else dims
    dims = int_sequence("latent_traversals", "dims", list(dims), low=0, min_len=1, error=InputError)
    if max(dims) >= latent:
        raise InputError(
            f"latent_traversals: dims must be below the latent size {latent}, got {max(dims)}; "
            f"pick latents 0 … {latent - 1}"
        )
    steps = positive_int("latent_traversals", "steps", steps, error=InputError)
    span = number("latent_traversals", "span", span, low=0, error=InputError)
    values = torch.linspace(-span, span, steps, device=z.device, dtype=z.dtype)
    rows = torch.arange(len(dims), device=z.device)[:, None]
    columns = torch.arange(steps, device=z.device)[None, :]
    zs = z.expand(len(dims), steps, latent).clone()
    zs[rows, columns, torch.tensor(dims, device=z.device)[:, None]] = values
    return decode(model, zs.reshape(-1, latent))


def interpolation(
    model: nn.Module,
    z0: torch.Tensor,
    z1: torch.Tensor,
    steps: int = INTERPOLATION_STEPS,
    method: str = "linear",
) -> torch.Tensor:
    """A row of `steps` images per pair of latents, from z0[i] to z1[i] (both included); z0 and
    z1 are N×latent (or one latent each). `method` "linear" or "spherical"
    (`gan.interpolate_latents`)."""
    latent = latent_size(model)
    if z0.shape[-1:] != (latent,) or z1.shape[-1:] != (latent,):
        raise InputError(
            f"interpolation: latents must hold {latent} numbers each, got shapes "
            f"{tuple(z0.shape)} and {tuple(z1.shape)}; draw them with the model's latent size"
        )
    z0, z1 = z0.reshape(-1, latent), z1.reshape(-1, latent)
    if z0.shape != z1.shape or len(z0) == 0:
        raise InputError(
            f"interpolation: z0 and z1 must hold as many latents (at least one), got {len(z0)} "
            f"and {len(z1)}; give one end per path in each"
        )
    # the latents a path at a time (slerp takes one pair); the model then runs once on them all
    paths = torch.stack(
        [interpolate_latents(a, b, steps, method) for a, b in zip(z0, z1, strict=True)]
    )
    return decode(model, paths.reshape(-1, latent))


@torch.no_grad()
def arithmetic(
    vae: VAE, groups: Sequence[torch.Tensor], coefficients: Sequence[float] = (1.0, -1.0, 1.0)
) -> torch.Tensor:
    """One image: the decoder mean at Σ cᵢ · mean μ(groupᵢ), each group a batch of images
    encoded to their posterior means (Radford et al. 2016, section 6.3, on a VAE's latents)."""
    if not isinstance(vae, VAE):
        raise InputError(
            f"arithmetic: needs a VAE to encode the images, got {type(vae).__name__}; a GAN has "
            "no encoder, so average its latents and use latent_arithmetic"
        )
    was = vae.training
    vae.eval()
    try:
        means = [vae.encode(x)[0] for x in groups]  # one batch per concept
    finally:
        vae.train(was)
    return decode(vae, latent_arithmetic(means, coefficients)[None])


def draw_view(
    run: str | os.PathLike, view: str = "samples", count: int = 64, seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, int | None]:  # fmt: skip
    """The images of `view` for a run of `striate generate train`, and the grid's columns (None:
    a square grid). samples: `count` draws; interpolation (vae, dcgan): count // 10 rows (at
    least 1) of 10 steps between seeded latents, linear for a VAE, spherical for a DCGAN;
    traversal (vae, dcgan): the first ≤ 10 latents of a seeded base latent over −3 … 3 in 9
    steps; manifold (vae with a 2-D latent): a round(√count)-sided grid."""
    view = one_of("generate sample", "show", view, VIEWS, error=InputError)
    if view == "samples":
        return sample_generative(run, count, seed, device=device), None
    check_count(count)
    loaded = load_generative(run, device)
    name, model = loaded.name, loaded.model
    if view == "manifold":
        if name != "vae" or model.latent != 2:
            what = f"a vae with a {model.latent}-D latent" if name == "vae" else f"a {name}"
            raise InputError(
                f"generate sample: show manifold needs a vae run with a 2-D latent, this run is "
                f"{what}; train one with --latent 2"
            )
        side = max(1, round(count**0.5))
        return latent_manifold(model, side), side
    if name not in LATENT_VIEWS[view]:
        raise InputError(
            f"generate sample: show {view} works for vae and dcgan runs (a latent to walk), this "
            f"run is a {name}; use show samples"
        )
    latent = latent_size(model)
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same latents on any device
    param = next(model.parameters())
    if view == "interpolation":
        rows = max(1, count // INTERPOLATION_STEPS)
        z = torch.randn(2, rows, latent, generator=g).to(param.device)
        method = "spherical" if name == "dcgan" else "linear"
        return interpolation(model, z[0], z[1], INTERPOLATION_STEPS, method), INTERPOLATION_STEPS
    z = torch.randn(1, latent, generator=g).to(param.device)
    dims = range(min(latent, TRAVERSED))
    return latent_traversals(model, z, dims, TRAVERSAL_STEPS), TRAVERSAL_STEPS
