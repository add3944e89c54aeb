"""Nearest-neighbour matching of feature patches, the correspondence behind painterly harmonization.

Luan et al. 2018 (Deep Painterly Harmonization, arXiv:1804.03189) rearrange the painting's features
so that each position p of the pasted image's features gets the painting's feature whose
neighbourhood looks most like p's: a mapping P from content positions to style positions.

- `match_patches`: P(p) = argmax_q cos(patch_C(p), patch_S(q)) over k×k×C patches (zero-padded at
  the borders), computed as the convolution of the content's patches with the normalised style
  patches (Chen & Schmidt 2016's style swap), as one matrix product per chunk of content positions.
- `consistent_matches`: pass 2's spatial consistency (the paper's Algorithm 1). For each p, the
  candidates are q_o = P(p + o) − o for the offsets o of a window×window neighbourhood (the match of
  a neighbour, shifted back), and the one kept minimises Σ_o' ‖F_S(q) − F_S(P(p + o'))‖², the
  distance to the style features the neighbours are mapped to. The sum equals
  n·‖F_S(q) − m(p)‖² + const(p) with m(p) the mean of those features, so the candidate nearest the
  mean wins. The authors' code (cuda_utils.cu, refineNNF) instead compares each candidate with the
  other candidates, on the painting's colours resized to the layer (pass ``guide=`` and
  ``against="candidates"`` for that variant).
- `used_positions`: duplicate suppression (the paper: each style feature enters the Gram matrix at
  most once): the set of style positions the masked content positions map to.
- `upsample_mapping`: the reference layer's mapping carried to a finer layer, offsets scaled
  (cuda_utils.cu, upsample_corr).

Mappings are LongTensors H×W of flat indices y·W_s + x into the style map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from striate.checks import one_of, positive_int
from striate.errors import ConfigError, InputError

__all__ = ["consistent_matches", "match_patches", "upsample_mapping", "used_positions"]

AGAINST = ("neighbours", "candidates")


def _features(owner: str, name: str, x: torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{owner}: {name} must be float features C×H×W, got {got}")
    return x.detach()


def _positions(owner: str, mask: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor:
    """Flat indices of the positions where `mask` (H×W, or 1×1×H×W) is set; all if None."""
    if mask is None:
        return torch.arange(hw[0] * hw[1])
    m = mask.reshape(mask.shape[-2:]) if mask.dim() > 2 else mask
    if tuple(m.shape) != tuple(hw):
        raise InputError(f"{owner}: mask is {tuple(m.shape)} but the features are {tuple(hw)}")
    return torch.nonzero(m.reshape(-1) > 0).reshape(-1)


def _check_mapping(owner: str, mapping: torch.Tensor, hw: tuple[int, int], n_style: int) -> None:
    if not isinstance(mapping, torch.Tensor) or mapping.dtype != torch.long or mapping.dim() != 2:
        raise InputError(f"{owner}: mapping must be a LongTensor H×W of style indices")
    if tuple(mapping.shape) != tuple(hw):
        raise InputError(
            f"{owner}: mapping is {tuple(mapping.shape)} but the content features are {tuple(hw)}"
        )
    if mapping.numel() and (int(mapping.min()) < 0 or int(mapping.max()) >= n_style):
        raise InputError(f"{owner}: mapping holds indices outside the style map (0…{n_style - 1})")


def match_patches(
    content: torch.Tensor,
    style: torch.Tensor,
    patch: int = 3,
    *,
    mask: torch.Tensor | None = None,
    chunk: int = 1024,
) -> torch.LongTensor:
    """For each position of `content` (C×H×W), the flat index into `style` (C×H'×W') of the
    patch×patch patch of highest cosine similarity (patches zero-padded past the border).

    Only positions where `mask` (H×W) is set are searched; the others map to themselves (their
    own position, clamped to the style map). `chunk` content positions are compared at a time
    (memory chunk × H'W')."""
    owner = "match_patches"
    content, style = _features(owner, "content", content), _features(owner, "style", style)
    patch = positive_int(owner, "patch", patch)
    chunk = positive_int(owner, "chunk", chunk)
    if patch % 2 == 0:
        raise ConfigError(f"{owner}: patch must be odd (a centred window), got {patch}")
    if content.shape[0] != style.shape[0]:
        raise InputError(
            f"{owner}: content has {content.shape[0]} channels and style {style.shape[0]}"
        )
    _, h, w = content.shape
    _, hs, ws = style.shape
    pad = patch // 2
    style_patches = F.unfold(style[None], patch, padding=pad)[0]  # C·k² × H'W'
    style_patches = style_patches / style_patches.norm(dim=0, keepdim=True).clamp_min(1e-8)
    content_patches = F.unfold(content[None], patch, padding=pad)[0]  # C·k² × HW
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    mapping = (ys.clamp(max=hs - 1) * ws + xs.clamp(max=ws - 1)).reshape(-1)
    where = _positions(owner, mask, (h, w))
    for start in range(0, where.numel(), chunk):
        idx = where[start : start + chunk]
        scores = content_patches[:, idx].T @ style_patches  # chunk × H'W'
        mapping[idx] = scores.argmax(dim=1)
    return mapping.reshape(h, w)


def consistent_matches(
    mapping: torch.LongTensor,
    style: torch.Tensor,
    window: int = 5,
    *,
    mask: torch.Tensor | None = None,
    guide: torch.Tensor | None = None,
    against: str = "neighbours",
) -> torch.LongTensor:
    """Pass 2's spatially consistent mapping (Luan et al. 2018, Algorithm 1; see the module's
    note): for each masked content position p, among the candidates P(p+o) − o (o in a
    window×window neighbourhood, p+o inside the content map, the candidate inside the style map)
    the one whose style feature is nearest, in summed squared distance, to the style features the
    neighbours are mapped to (``against="neighbours"``, the paper) or to the other candidates
    (``against="candidates"``, the authors' code). Distances are measured on `guide` (C'×H'×W',
    e.g. the painting resized to the layer) when given, else on `style` (C×H'×W')."""
    owner = "consistent_matches"
    style = _features(owner, "style", style)
    window = positive_int(owner, "window", window)
    against = one_of(owner, "against", against, AGAINST)
    if window % 2 == 0:
        raise ConfigError(f"{owner}: window must be odd (a centred neighbourhood), got {window}")
    feats = style if guide is None else _features(owner, "guide", guide)
    if feats.shape[1:] != style.shape[1:]:
        raise InputError(
            f"{owner}: guide is {tuple(feats.shape[1:])} but the style map {tuple(style.shape[1:])}"
        )
    _, hs, ws = style.shape
    h, w = mapping.shape if isinstance(mapping, torch.Tensor) and mapping.dim() == 2 else (0, 0)
    _check_mapping(owner, mapping, (h, w), hs * ws)
    where = _positions(owner, mask, (h, w))
    if where.numel() == 0:
        return mapping.clone()
    flat = feats.reshape(feats.shape[0], -1).double()  # C' × H'W'
    py, px = where // w, where % w
    my, mx = mapping.reshape(-1) // ws, mapping.reshape(-1) % ws
    r = window // 2
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    cand, cand_ok, neigh, neigh_ok = [], [], [], []
    for dy, dx in offsets:  # window² offsets; every position at once for each
        ny, nx = py + dy, px + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        n = (ny.clamp(0, h - 1) * w + nx.clamp(0, w - 1)).long()
        qy, qx = my[n] - dy, mx[n] - dx
        ok = inside & (qy >= 0) & (qy < hs) & (qx >= 0) & (qx < ws)
        cand.append(qy.clamp(0, hs - 1) * ws + qx.clamp(0, ws - 1))
        cand_ok.append(ok)
        neigh.append(mapping.reshape(-1)[n])
        neigh_ok.append(inside)
    cand_idx, cand_valid = torch.stack(cand), torch.stack(cand_ok)  # K × n
    ref_idx, ref_valid = (
        (torch.stack(neigh), torch.stack(neigh_ok))
        if against == "neighbours"
        else (cand_idx, cand_valid)
    )
    mean = torch.zeros(flat.shape[0], where.numel(), dtype=torch.float64)
    for k in range(len(offsets)):
        mean += flat[:, ref_idx[k]] * ref_valid[k]
    mean /= ref_valid.sum(0).clamp_min(1)  # C' × n: the mean of the features compared with
    best = torch.full((where.numel(),), float("inf"), dtype=torch.float64)
    chosen = mapping.reshape(-1)[where].clone()
    for k in range(len(offsets)):
        d = (flat[:, cand_idx[k]] - mean).square().sum(0)
        d = torch.where(cand_valid[k], d, torch.full_like(d, float("inf")))
        better = d < best
        best = torch.where(better, d, best)
        chosen = torch.where(better, cand_idx[k], chosen)
    out = mapping.clone().reshape(-1)
    out[where] = chosen
    return out.reshape(h, w)


def used_positions(
    mapping: torch.LongTensor,
    style_hw: tuple[int, int],
    *,
    mask: torch.Tensor | None = None,
    ring: int = 0,
) -> torch.Tensor:
    """Duplicate suppression: a bool map style_hw of the style positions that the positions of
    `mask` map to, each marked once however often it is chosen. `ring` > 0 also marks the
    (2·ring+1)² block around each (the authors' code, Ring2, uses ring 1; the paper none)."""
    owner = "used_positions"
    hs, ws = (int(v) for v in style_hw)
    h, w = mapping.shape if isinstance(mapping, torch.Tensor) and mapping.dim() == 2 else (0, 0)
    _check_mapping(owner, mapping, (h, w), hs * ws)
    ring = int(ring)
    if ring < 0:
        raise ConfigError(f"{owner}: ring must be a non-negative integer, got {ring}")
    where = _positions(owner, mask, (h, w))
    used = torch.zeros(hs * ws, dtype=torch.bool)
    used[mapping.reshape(-1)[where]] = True
    used = used.reshape(hs, ws)
    if ring:
        used = F.max_pool2d(used[None, None].float(), 2 * ring + 1, 1, ring)[0, 0] > 0
    return used


def upsample_mapping(
    mapping: torch.LongTensor,
    style_hw: tuple[int, int],
    content_hw: tuple[int, int],
    new_style_hw: tuple[int, int],
) -> torch.LongTensor:
    """`mapping` (content h×w → style `style_hw`) carried to a content map `content_hw` and a
    style map `new_style_hw`: each new position p takes the coarse position c = ⌊(p + ½)/ratio⌋,
    and maps to p + P(c)·ratio_s − c·ratio, rounded and clamped (cuda_utils.cu, upsample_corr,
    where content and style have the same size)."""
    owner = "upsample_mapping"
    hs, ws = (int(v) for v in style_hw)
    h, w = mapping.shape if isinstance(mapping, torch.Tensor) and mapping.dim() == 2 else (0, 0)
    _check_mapping(owner, mapping, (h, w), hs * ws)
    H, W = (int(v) for v in content_hw)
    Hs, Ws = (int(v) for v in new_style_hw)
    ry, rx, rsy, rsx = H / h, W / w, Hs / hs, Ws / ws
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    cy = ((ys + 0.5) / ry).long().clamp(0, h - 1)
    cx = ((xs + 0.5) / rx).long().clamp(0, w - 1)
    m = mapping[cy, cx]
    qy = torch.floor(ys + (m // ws).double() * rsy - cy.double() * ry + 0.5).long()
    qx = torch.floor(xs + (m % ws).double() * rsx - cx.double() * rx + 0.5).long()
    return qy.clamp(0, Hs - 1) * Ws + qx.clamp(0, Ws - 1)
