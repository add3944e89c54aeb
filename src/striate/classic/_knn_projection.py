"""A cheaper first pass for exact l2 kNN in many dimensions: distances in a principal subspace.

For a matrix P with orthonormal columns, ‖Pᵀv‖ ≤ ‖v‖: two points projected onto a subspace are
never farther apart than the points. This is the lower-bounding lemma of exact similarity search
(Faloutsos, Ranganathan & Manolopoulos, "Fast subsequence matching in time-series databases",
SIGMOD 1994: a contractive projection causes no false dismissals). When the data keep most of their
variance in a few directions (the top 256 principal directions of CIFAR-10's 3,072 pixels hold
96 % of it), the projected distance is also close to the true one, so it rules out nearly every
reference at d/D of the cost of the full product. The subspace is found by a randomized range
finder with power iterations on a sample of the references (Halko, Martinsson & Tropp, "Finding
structure with randomness", SIAM Review 2011, algorithms 4.4 and 5.1); any basis gives a valid
bound, a better one only rules out more.

The k nearest neighbours' search (`striate.classic.knn`) keeps, for each query, the m references
of smallest projected fast distance; every other reference has a projected fast distance of at
least L, the largest kept one. `Projection.floor` turns L into a rigorous lower bound of the exact
‖q − r‖² of every reference left out, with u the unit roundoff of the products, D the data's and
d the subspace's dimension, and q_c, r_c the float32 centred rows:

- P is float32, so not exactly orthonormal: ‖Pᵀv‖² ≤ s·‖v‖² with s = 1 + ‖PᵀP − I‖_F (float64).
- Each float32 projected coordinate is within γ_D·√s·‖x_c‖ of its exact value (γ_D = Du/(1 − Du),
  the dot-product bound; every column of P has norm ≤ √s), and centring in float32 moves each row
  by at most u·‖x_c‖·(1 + u): the projected difference a − b is within √s·e of Pᵀ(q − r), with
  e = (√d·γ_D + 2u)·(‖q_c‖ + ‖r_c‖).
- The fast formula ‖a‖² + ‖b‖² − 2a·b in d dimensions is within tol_d of ‖a − b‖² (the full pass's
  bound with d for D, computed by the caller).

Hence ‖a − b‖ ≤ √s·(‖q − r‖ + e), and every reference left out has
``‖q − r‖ ≥ √(max(L − tol_d, 0)/s) − e``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SAMPLE = 4096  # references the subspace is estimated from
OVERSAMPLE = 16  # extra directions of the range finder (Halko et al. §4.2)
POWER_ITERATIONS = 2
MAX_DIM = 256  # the subspace's dimension: min(MAX_DIM, D // 8)
_ROWS = 8192  # references projected per block


def subspace_dim(dim: int) -> int:
    """The projection's dimension for data of `dim` features."""
    return min(MAX_DIM, dim // 8)


def build_cost(n: int, dim: int) -> float:
    """Multiply-adds of `Projection.fit` on n references of `dim` features."""
    d = subspace_dim(dim)
    sample = min(n, SAMPLE)
    return n * dim * d + 2 * (POWER_ITERATIONS + 1) * sample * dim * (d + OVERSAMPLE)


@dataclass(frozen=True)
class Projection:
    """The references' top principal directions (`basis`, D × d, float32) and what the search
    needs of the references: their centred squared norms, the largest centred norm, their
    projections with squared norms, the largest projected norm, and the stretch s."""

    basis: torch.Tensor
    centred_sq: torch.Tensor
    centred_scale: float
    refs: torch.Tensor
    refs_sq: torch.Tensor
    refs_scale: float
    stretch: float

    @classmethod
    def fit(cls, X: torch.Tensor, center: torch.Tensor) -> Projection:
        """The projection of the float32 references `X` (n × D), centred on `center`."""
        n, dim = X.shape
        d = subspace_dim(dim)
        device = X.device
        gen = torch.Generator().manual_seed(0)
        pick = torch.randperm(n, generator=gen)[: min(n, SAMPLE)].sort().values
        sample = X[pick.to(device)] - center
        omega = torch.randn(dim, d + OVERSAMPLE, generator=gen).to(device)
        Y = sample.T @ (sample @ omega)
        for _ in range(POWER_ITERATIONS):  # orthonormalised between products (Halko alg. 4.4)
            Y = sample.T @ (sample @ torch.linalg.qr(Y).Q)
        range_basis = torch.linalg.qr(Y).Q
        # rotate onto the sample's principal directions within the range, keep the top d
        _, _, vh = torch.linalg.svd(sample @ range_basis, full_matrices=False)
        basis = torch.linalg.qr((range_basis @ vh.T[:, :d]).double()).Q.float().contiguous()
        gram = basis.T.double() @ basis.double()
        gram.diagonal().sub_(1)
        stretch = 1 + float(torch.linalg.matrix_norm(gram)) + 1e-12

        refs = torch.empty(n, d, device=device)
        centred_sq = torch.empty(n, device=device)
        for s in range(0, n, _ROWS):
            block = X[s : s + _ROWS] - center
            centred_sq[s : s + len(block)] = torch.linalg.vector_norm(block, dim=1).square_()
            torch.mm(block, basis, out=refs[s : s + len(block)])
        refs_sq = torch.linalg.vector_norm(refs, dim=1).square_()
        return cls(
            basis=basis,
            centred_sq=centred_sq,
            centred_scale=float(centred_sq.max().sqrt()),
            refs=refs,
            refs_sq=refs_sq,
            refs_scale=float(refs_sq.max().sqrt()),
            stretch=stretch,
        )

    @property
    def dim(self) -> int:
        return self.basis.shape[1]

    def floor(
        self, largest: torch.Tensor, tol_d: torch.Tensor, scale: torch.Tensor, unit: float
    ) -> torch.Tensor:
        """A lower bound of ‖q − r‖² for every reference left out of a query's candidates
        (module docstring): `largest` is L, `tol_d` the error bound of the projected fast
        distances and `scale` ‖q_c‖ + max‖r_c‖, per query (float64)."""
        big_d = self.basis.shape[0]
        if big_d * unit >= 1:  # the dot-product bound says nothing: nothing is ruled out
            return torch.zeros_like(largest)
        gamma = big_d * unit / (1 - big_d * unit)
        e = (math.sqrt(self.dim) * gamma + 2 * 2.0**-24) * scale
        root = ((largest - tol_d).clamp(min=0) / self.stretch).sqrt()
        return (root - e).clamp(min=0).square()
