"""The thin-plate-spline grid (Bookstein 1989; Jaderberg et al. 2015, sec. 3.1 and appendix).

K control points ``P_k`` sit on a regular grid over the output, in normalised coordinates. The
parameters are their displacements ``d_k`` (K×2): output point ``P_k`` reads the input at
``P_k + d_k``, and every other point follows the spline of least bending energy,

    T(p) = a₀ + a₁ x + a₂ y + Σ_k w_k U(|p - P_k|),     U(r) = r² log r²,  U(0) = 0,

whose coefficients solve ``[[K, P], [Pᵀ, 0]] [w; a] = [P + d; 0]`` with ``K_ij = U(|P_i - P_j|)``
and ``P`` the rows ``(1, x_k, y_k)``. The system depends only on the control points, so the grid
is a fixed linear map of the displacements (``TPSGrid.matrix``, HW×K) plus the identity grid:
zero displacements give the identity, which is how the STN layer starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import boolean, integer
from striate.errors import ConfigError
from striate.spatial.grid import base_grid, check_size

__all__ = ["TPSGrid", "control_points", "tps_kernel"]


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """``U = r² log r²`` of squared distances, 0 at r = 0."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp_min(1e-30)), torch.zeros_like(r2))


def control_points(per_side: int, *, dtype=torch.float64) -> torch.Tensor:
    """K = per_side² control points on a regular grid spanning [-1, 1]², x fastest: K×2."""
    c = torch.linspace(-1, 1, per_side, dtype=dtype)
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


class TPSGrid(nn.Module):
    """``grid = TPSGrid(size, points_per_side)(displacements)``: N×H×W×2 source coordinates from
    N×K×2 (or N×2K) control-point displacements, K = points_per_side²."""

    def __init__(
        self, size: Sequence[int], points_per_side: int = 4, align_corners: bool = False
    ) -> None:
        super().__init__()
        owner = "TPSGrid"
        self.size = check_size(size, owner)
        self.points_per_side = integer(owner, "points_per_side", points_per_side, low=2)
        self.align_corners = boolean(owner, "align_corners", align_corners)
        h, w = self.size
        points = control_points(self.points_per_side)  # float64 for the solve
        k = len(points)
        ones = torch.ones(k, 1, dtype=torch.float64)
        p = torch.cat([ones, points], dim=1)  # K×3
        system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
        system[:k, :k] = tps_kernel(torch.cdist(points, points) ** 2)
        system[:k, k:] = p
        system[k:, :k] = p.T
        inverse = torch.linalg.inv(system)[:, :k]  # (K+3)×K: targets -> coefficients
        target = base_grid(h, w, self.align_corners, dtype=torch.float64).reshape(-1, 3)
        xy = target[:, :2]
        basis = torch.cat(
            [tps_kernel(torch.cdist(xy, points) ** 2), ones[:1].expand(h * w, 1), xy], 1
        )
        self.register_buffer("matrix", basis @ inverse, persistent=False)  # HW×K, float64
        self.register_buffer("identity", xy.reshape(h, w, 2), persistent=False)
        self.register_buffer("points", points, persistent=False)

    @property
    def num_params(self) -> int:
        return 2 * self.points_per_side**2

    def forward(self, displacements: torch.Tensor) -> torch.Tensor:
        k = self.points_per_side**2
        if displacements.dim() == 2 and displacements.shape[1] == 2 * k:
            displacements = displacements.view(-1, k, 2)
        if displacements.dim() != 3 or tuple(displacements.shape[1:]) != (k, 2):
            raise ConfigError(
                f"TPSGrid: expected N×{k}×2 (or N×{2 * k}) control-point displacements, got "
                f"shape {tuple(displacements.shape)}"
            )
        h, w = self.size
        matrix = self.matrix.to(displacements.dtype)
        moved = torch.einsum("pk,nkj->npj", matrix, displacements).view(-1, h, w, 2)
        return self.identity.to(displacements.dtype) + moved

    def extra_repr(self) -> str:
        return f"size={self.size}, points_per_side={self.points_per_side}"
