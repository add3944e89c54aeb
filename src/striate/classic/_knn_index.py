"""The exact nearest-neighbour search behind `KNNClassifier` and `select_k` (`classic/knn.py`):
chunked, deterministic, in torch; its answer is the float64 brute force's.

How the search stays exact while the hot path is a float32 GEMM
---------------------------------------------------------------
1. **Candidates.** The query and reference sets are both cut into chunks (`batch_size` queries ×
   `ref_batch_size` references); each chunk pair gives one float32 block of fast distances, whose
   ``k + max(16, k)`` smallest per query are merged into a running list. Working memory is one
   block and the two chunks (plus the running lists, queries × candidates), whatever the size of
   the reference set.

   - l2: ``‖a‖² + ‖b‖² − 2a·b`` (one GEMM per chunk pair). Both sets are first **centred on the
     reference mean**: distances do not change, but the norms shrink to the spread of the data,
     so the cancellation of two large, nearly equal terms (data like 10⁴ + noise) no longer eats
     float32's 24 bits. Fast distances are clamped at 0.
   - l1: ``torch.cdist(p=1)`` on centred chunks (no cancellation, just smaller magnitudes).
   - cosine: rows normalised (in float64) to unit length, then ``1 − â·b̂`` by GEMM; a zero row has
     similarity 0, so distance 1, as in scikit-learn.
   - On a CPU the GEMM runs in whichever of torch's MKL and numpy's OpenBLAS is faster on this
     machine (`classic/_gemm.py`, measured once per process); the bound below holds for both.
   - l2 in many dimensions (≥ 512) first searches the references' principal subspace
     (`classic/_knn_projection.py`, built on the first search big enough to pay for it): the
     ``k + max(32, k)`` references nearest in it are the candidates, their fast distances are
     taken in all dimensions, and a rigorous lower bound of the distance of everything left out
     replaces T − tol in the certificate below. Queries it cannot certify are searched again
     with four times as many candidates, then by the full pass. On CIFAR-10's 3,072 pixels the
     256-dimensional subspace certifies about nine queries in ten at a twelfth of the product.

2. **Exact re-ranking.** The candidates whose fast distance is within ``2·tol`` of the k-th smallest
   get their distance recomputed **directly in float64** from the stored float32 data
   (``Σ(aᵢ−bᵢ)²``, ``Σ|aᵢ−bᵢ|``, ``1 − Σaᵢbᵢ/(‖a‖‖b‖)``) and are sorted by (exact distance,
   training index). Typically that is about k of them per query, so re-ranking costs nothing.

3. **Certificate.** ``tol`` bounds |fast − exact| rigorously: the standard γ_D = D·u bound for a
   float32 dot product or sum, plus the roundings of centring, normalising and the norms, scaled
   by (‖q‖ + max‖r‖)² for l2, ‖q‖₁ + max‖r‖₁ for l1, 1 for cosine (centred norms; u = 2⁻²⁴, or 2⁻⁸
   when torch may use a reduced-precision matmul such as TF32). Every reference left out of the
   candidates has a fast distance ≥ T, the largest kept one; when ``T > A_k + 2·tol`` (A_k: the k-th
   smallest fast distance) nothing left out can come within the exact k-th distance, so the answer
   is exactly the k smallest by (float64 distance, index). A query that fails (a near-tie at the
   boundary, many duplicates, a zero vector under cosine) is searched again with four times as
   many candidates, and at worst against every reference in float64; so is a query whose
   magnitudes could overflow float32 (≳ 1e18), where the bound does not hold. The result is
   therefore the same for every chunking, device and thread count: the float64 brute force.
"""

from __future__ import annotations

import math

import torch

from striate.classic._gemm import gemm, gemm_library
from striate.classic._knn_projection import Projection, build_cost

METRICS = ("l2", "l1", "cosine")
_MARGIN = 16  # candidates fetched beyond k: makes the certificate pass for nearly every query
_WIDEN = 4  # a query that fails its certificate is searched again with this many times more
_EXACT_BUDGET = 1 << 22  # float64 elements per block of exact distances (32 MiB)
_ROWS = 1024  # rows per block when normalising in float64 (cosine)
_FLOAT32_SAFE = 1e37  # fast distances of magnitude below this cannot overflow float32
# the principal-subspace first pass (l2): from this many features; its candidates beyond k (then
# _WIDEN times more per round); the full pass must cost this many times its building; below this
# share of queries certified by its first round, it is not used again on that index
_PROJECT_MIN_DIM = 512
_PROJECTED_MARGIN = 32
_PROJECT_PAYS = 4
_PROJECTED_MIN_CERTIFIED = 0.5
_GATHER_BUDGET = 1 << 20  # float32 elements of candidate rows gathered at a time (4 MiB)
_PROJECTED_MAX_SHARE = 64  # candidates per query at most 1/64 of the references
_PROJECTED_MAX_ERROR = 0.01  # D·u above this (reduced-precision products): no first pass


class Index:
    """The stored reference set of one metric, with what the fast pass needs and the exact search.

    `X` is the float32 training data on the device; `center` (l2, l1) is subtracted from both
    sides in the fast pass.
    """

    def __init__(self, X: torch.Tensor, metric: str) -> None:
        self.X, self.metric = X, metric
        self.n, self.dim = X.shape
        # any centre keeps distances; the mean makes the centred norms small
        self.center = X.mean(0) if metric in ("l2", "l1") else None
        # the principal-subspace first pass (l2 in many dimensions): built on the first search
        # large enough to pay for it, dropped if it certifies too few queries on these data
        self._projection: Projection | None = None
        self._projection_helps = metric == "l2" and self.dim >= _PROJECT_MIN_DIM

    # -------------------------------------------------------------- public entry

    def search(
        self,
        Q: torch.Tensor,
        k: int,
        *,
        batch_size: int,
        ref_batch_size: int,
        exclude_self: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest references of each query row, ordered by (exact distance, index).

        Returns float64 distances (squared for l2) and int64 indices, both (len(Q), k), on the
        device. With `exclude_self`, query row i is reference i and never its own neighbour.
        """
        device = self.X.device
        nq = len(Q)
        out_d = torch.empty(nq, k, dtype=torch.float64, device=device)
        out_i = torch.empty(nq, k, dtype=torch.int64, device=device)
        available = self.n - int(exclude_self)
        rows = torch.arange(nq, device=device)
        m = k + max(_PROJECTED_MARGIN, k)
        first = True
        while len(rows) and self._use_projection(len(rows), m, available):
            d, i, ok, safe = self._projected(
                Q, rows, k, m, batch_size, ref_batch_size, exclude_self
            )
            out_d[rows[ok]], out_i[rows[ok]] = d[ok], i[ok]
            unsafe = rows[~safe]
            if len(unsafe):
                out_d[unsafe], out_i[unsafe] = self._exact_all(Q, unsafe, k, exclude_self)
            rows = rows[~ok & safe]
            if float(ok.double().mean()) < _PROJECTED_MIN_CERTIFIED:
                if first:  # these data do not live near a subspace: never again on this index
                    self._projection, self._projection_helps = None, False
                break  # the rest in all D dimensions
            first, m = False, m * _WIDEN
        kp = min(k + max(_MARGIN, k), available)
        while len(rows):
            if kp >= available:  # nothing left to leave out: exact search over everything
                d, i = self._exact_all(Q, rows, k, exclude_self)
                out_d[rows], out_i[rows] = d, i
                break
            d, i, ok, safe = self._candidates(
                Q, rows, k, kp, batch_size, ref_batch_size, exclude_self
            )
            out_d[rows[ok]], out_i[rows[ok]] = d[ok], i[ok]
            unsafe = rows[~safe]  # float32 may overflow: no bound, so float64 straight away
            if len(unsafe):
                out_d[unsafe], out_i[unsafe] = self._exact_all(Q, unsafe, k, exclude_self)
            rows = rows[~ok & safe]
            kp = min(kp * _WIDEN, available)
        return out_d, out_i

    # -------------------------------------------------------------- fast pass

    def _use_projection(self, nq: int, m: int, available: int) -> bool:
        """Whether to search these queries in the principal subspace first (building it if the
        full fast pass would cost `_PROJECT_PAYS` times what the building does)."""
        if not self._projection_helps or m > available or m * _PROJECTED_MAX_SHARE > self.n:
            return False
        if self.dim * self._unit() > _PROJECTED_MAX_ERROR:  # TF32/bf16 products: no useful bound
            return False
        if self._projection is None:
            if nq * self.n * self.dim < _PROJECT_PAYS * build_cost(self.n, self.dim):
                return False
            self._projection = Projection.fit(self.X, self.center)
        return True

    def _projected(
        self,
        Q: torch.Tensor,
        rows: torch.Tensor,
        k: int,
        m: int,
        batch_size: int,
        ref_batch_size: int,
        exclude_self: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first pass in the principal subspace (`classic/_knn_projection.py`): for each
        query, the m references nearest in it, their fast distances in all D dimensions, and the
        certificate against everything left out; then `_settle`.

        Its products stay in torch (no `gemm_library`): between them run gathers and top-k
        selections in torch's threads, and numpy's BLAS threads, still spinning after each
        product, slowed those so much on 2 cores that the pass took 1.6× as long."""
        proj = self._projection
        device = self.X.device
        nr, d = len(rows), proj.dim
        whole = nr == len(Q)
        approx = torch.empty(nr, m, dtype=torch.float64, device=device)
        cand = torch.empty(nr, m, dtype=torch.int64, device=device)
        largest = torch.empty(nr, dtype=torch.float64, device=device)
        q_scale = torch.empty(nr, dtype=torch.float64, device=device)
        p_scale = torch.empty(nr, dtype=torch.float64, device=device)
        bq, br = min(batch_size, nr), min(ref_batch_size, self.n)
        key_buf = torch.empty(bq * br, device=device)
        # the candidates' rows are gathered a few queries at a time into one buffer that stays
        # in cache (a fresh block each time costs page faults), and multiplied by those queries
        # in one GEMM, of whose (query, candidate) products only each query's own are kept:
        # a GEMM doing gather_rows times the work runs far faster than as many matrix-vector ones
        gather_rows = max(1, min(bq, _GATHER_BUDGET // (m * self.dim)))
        gathered = torch.empty(gather_rows * m, self.dim, device=device)
        for qs in range(0, nr, batch_size):
            qe = min(qs + batch_size, nr)
            q = (Q[qs:qe] if whole else Q[rows[qs:qe]]) - self.center
            q_norm = torch.linalg.vector_norm(q, dim=1)
            q_scale[qs:qe] = q_norm.double()
            p = q @ proj.basis
            p_norm = torch.linalg.vector_norm(p, dim=1)
            p_scale[qs:qe] = p_norm.double()
            run_v = torch.full((qe - qs, m), math.inf, device=device)
            run_i = torch.zeros(qe - qs, m, dtype=torch.int64, device=device)
            for rs in range(0, self.n, ref_batch_size):
                ref = proj.refs[rs : rs + ref_batch_size]
                key = key_buf[: (qe - qs) * len(ref)].view(qe - qs, len(ref))
                torch.addmm(proj.refs_sq[rs : rs + len(ref)], p, ref.T, alpha=-2, out=key)
                if exclude_self:
                    _exclude_own(key, rows[qs:qe], rs)
                run_v, run_i = _merge_smallest(run_v, run_i, key, rs)
            largest[qs:qe] = run_v.amax(1).double() + p_norm.double().square()
            cand[qs:qe] = run_i
            # the candidates' fast distances in all dimensions: ‖r‖² − 2q·r (+ ‖q‖² below)
            dots = torch.empty(qe - qs, m, device=device)
            for gs in range(0, qe - qs, gather_rows):
                ge = min(gs + gather_rows, qe - qs)
                picked = run_i[gs:ge].reshape(-1)
                refs = torch.index_select(self.X, 0, picked, out=gathered[: len(picked)])
                every = refs.sub_(self.center) @ q[gs:ge].T  # (g·m, g)
                dots[gs:ge] = every.view(ge - gs, m, ge - gs).diagonal(dim1=0, dim2=2).T
            approx[qs:qe] = (proj.centred_sq[run_i] - 2 * dots).double()
        approx = (approx + q_scale.square().unsqueeze(1)).clamp_(min=0)
        approx, order = approx.sort(1)
        cand = cand.gather(1, order)
        tol, safe = self._tolerance(q_scale, proj.centred_scale)
        tol_d, safe_d = self._tolerance(p_scale, proj.refs_scale, dim=d)
        grow = 1 + 2 * (self.dim + 2) * 2.0**-24
        floor = proj.floor(largest, tol_d, (q_scale + proj.centred_scale) * grow, self._unit())
        return self._settle(Q, rows, k, approx, cand, floor, tol, safe & safe_d)

    def _unit(self) -> float:
        """Unit roundoff of the float32 matmul torch will use (TF32 / bf16 when allowed)."""
        reduced = torch.get_float32_matmul_precision() != "highest"
        if self.X.device.type == "cuda":
            reduced = reduced or torch.backends.cuda.matmul.allow_tf32
        return 2.0**-8 if reduced else 2.0**-24

    def _operand(self, A: torch.Tensor) -> torch.Tensor:
        """A chunk as the fast pass multiplies it: centred (l2, l1) or unit rows (cosine)."""
        if self.metric == "cosine":
            out = torch.empty_like(A)
            for s in range(0, len(A), _ROWS):
                a64 = A[s : s + _ROWS].double()
                norm = a64.norm(dim=1, keepdim=True)
                out[s : s + _ROWS] = torch.where(norm > 0, a64 / norm, 0.0)
            return out
        return A - self.center

    def _tolerance(
        self, q_scale: torch.Tensor, ref_scale: float, dim: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A bound on |fast − exact| for each query row (see the module docstring), and whether
        it holds: the bound assumes that no float32 intermediate overflowed.

        The scales are float32 norms of centred rows, each within a relative (D + 2)·u of the
        truth; the bound takes the largest they can be. `dim` is D (the data's by default; the
        projected pass asks for its subspace's).
        """
        dim = self.dim if dim is None else dim
        grow = 1 + 2 * (dim + 2) * 2.0**-24
        if self.metric == "l2":
            magnitude = ((q_scale + ref_scale) * grow) ** 2
        elif self.metric == "l1":
            magnitude = (q_scale + ref_scale) * grow
        else:
            magnitude = torch.ones_like(q_scale)
        return 2 * (dim + 8) * self._unit() * magnitude, magnitude < _FLOAT32_SAFE

    def _candidates(
        self,
        Q: torch.Tensor,
        rows: torch.Tensor,
        k: int,
        kp: int,
        batch_size: int,
        ref_batch_size: int,
        exclude_self: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fast pass for `Q[rows]`, then exact re-ranking: (d, i, certified, safe) per row."""
        device = self.X.device
        nr = len(rows)
        whole = nr == len(Q)
        run_v = torch.full((nr, kp), math.inf, device=device)
        run_i = torch.zeros(nr, kp, dtype=torch.int64, device=device)
        q_sq = torch.zeros(nr, dtype=torch.float64, device=device)
        q_scale = torch.ones(nr, dtype=torch.float64, device=device)
        ref_scale = 0.0  # the largest centred norm (l2) or l1 norm of a reference
        # reused buffers: a fresh 32 MiB block per chunk pair costs page faults on the CPU
        bq, br = min(batch_size, nr), min(ref_batch_size, self.n)
        q_buf = torch.empty(bq, self.dim, device=device)
        key_buf = torch.empty(bq * br, device=device)
        ref_buf = torch.empty(br, self.dim, device=device) if self.center is not None else None
        library = "torch"
        if device.type == "cpu" and self.metric != "l1":
            library = gemm_library(bq, self.dim, br)
        for rs in range(0, self.n, ref_batch_size):
            part = self.X[rs : rs + ref_batch_size]
            if ref_buf is None:
                ref = self._operand(part)
            else:
                ref = torch.sub(part, self.center, out=ref_buf[: len(part)])
            if self.metric == "l2":
                ref_norm = torch.linalg.vector_norm(ref, dim=1)
                ref_scale = max(ref_scale, float(ref_norm.max()))
                ref_sq = ref_norm.square_().unsqueeze(0)
            elif self.metric == "l1":
                ref_scale = max(ref_scale, float(torch.linalg.vector_norm(ref, 1, dim=1).max()))
            ref_t = ref.T.neg() if self.metric == "cosine" else ref.T
            for qs in range(0, nr, batch_size):
                qe = min(qs + batch_size, nr)
                chunk = Q[qs:qe] if whole else Q[rows[qs:qe]]
                if self.metric == "cosine":
                    q = self._operand(chunk)
                else:
                    q = torch.sub(chunk, self.center, out=q_buf[: qe - qs])
                    if rs == 0:  # the query's centred size, for ‖a‖² and the error bound
                        if self.metric == "l2":
                            sq = torch.linalg.vector_norm(q, dim=1).double().square_()
                            q_sq[qs:qe], q_scale[qs:qe] = sq, sq.sqrt()
                        else:
                            q_scale[qs:qe] = torch.linalg.vector_norm(q, ord=1, dim=1).double()
                key = key_buf[: (qe - qs) * len(ref)].view(qe - qs, len(ref))
                if self.metric == "l2":  # ‖b‖² − 2a·b; ‖a‖² is constant along the row
                    if library == "torch":
                        torch.addmm(ref_sq, q, ref_t, alpha=-2, out=key)
                    else:  # the same roundings: ×(−2) is exact
                        torch.add(ref_sq, gemm(q, ref_t, key, library), alpha=-2, out=key)
                elif self.metric == "l1":
                    key = torch.cdist(q, ref, p=1)
                else:  # −â·b̂
                    gemm(q, ref_t, key, library)
                if exclude_self:
                    _exclude_own(key, rows[qs:qe], rs)
                run_v[qs:qe], run_i[qs:qe] = _merge_smallest(run_v[qs:qe], run_i[qs:qe], key, rs)
        # fast distances of the kept candidates, their error bound, and the certificate
        approx = run_v.double()
        if self.metric == "l2":
            approx = (approx + q_sq.unsqueeze(1)).clamp_(min=0)
        elif self.metric == "cosine":
            approx = (approx + 1).clamp_(0, 2)
        approx, order = approx.sort(1)
        cand = run_i.gather(1, order)
        tol, safe = self._tolerance(q_scale, ref_scale)
        # a reference left out has a fast distance >= the largest kept one
        return self._settle(Q, rows, k, approx, cand, approx[:, -1] - tol, tol, safe)

    def _settle(
        self,
        Q: torch.Tensor,
        rows: torch.Tensor,
        k: int,
        approx: torch.Tensor,
        cand: torch.Tensor,
        floor: torch.Tensor,
        tol: torch.Tensor,
        safe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Certificate and exact re-ranking of sorted candidates: (d, i, certified, safe).

        `approx` are the candidates' fast distances (ascending per row, each within `tol` of the
        exact one), `floor` a lower bound of the exact distance of every reference left out.
        """
        a_k = approx[:, k - 1]
        certified = (floor > a_k + tol) & safe
        # exact distances for the candidates that can still be among the k nearest
        maybe = (approx <= (a_k + 2 * tol).unsqueeze(1)) & certified.unsqueeze(1)
        exact = self._exact_candidates(Q, rows, cand, maybe)
        d, i = _smallest(exact, cand, k)
        return d, i, certified, safe

    # -------------------------------------------------------------- exact distances

    def _exact(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Float64 distances between broadcastable float32 rows `a` and `b` (last dim features).

        The one formula every exact distance goes through, so equal inputs give equal values.
        For l2 and l1, `b` is widened inside the subtraction (float32 to float64 is exact), so
        no float64 copy of it is made.
        """
        if self.metric == "l2":
            return torch.sub(a.double(), b).square_().sum(-1)
        if self.metric == "l1":
            return torch.sub(a.double(), b).abs_().sum(-1)
        a, b = a.double(), b.double()
        na, nb = a.norm(dim=-1), b.norm(dim=-1)
        den = na * nb
        sim = torch.where(den > 0, (a * b).sum(-1) / den, 0.0)
        return (1 - sim).clamp_(0, 2)

    def _exact_candidates(
        self, Q: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor, maybe: torch.Tensor
    ) -> torch.Tensor:
        """Exact distances from each query `Q[rows[r]]` to its candidates `X[cand[r, j]]` where
        `maybe[r, j]`, inf elsewhere; (len(rows), kp) float64.

        The candidates are sorted by fast distance, so `maybe` marks a prefix of each row: each
        query is broadcast against the first columns of its row (no copy of the query per pair),
        in blocks of rows of bounded size. Rows go widest first, and a block is as wide as its
        widest row, so rows needing one exact distance do not pay for another's fifty.
        """
        nr, kp = cand.shape
        device = self.X.device
        exact = torch.full((nr, kp), math.inf, dtype=torch.float64, device=device)
        cols = torch.arange(1, kp + 1, device=device)
        width = torch.where(maybe, cols, 0).amax(1)  # the last marked column of each row, + 1
        todo = torch.nonzero(width).squeeze(1)
        todo = todo[width[todo].argsort(descending=True)]
        widths = width[todo].tolist()
        s = 0
        while s < len(todo):
            m = widths[s]
            step = max(1, _EXACT_BUDGET // (m * max(1, self.dim)))
            r = todo[s : s + step]
            d = self._exact(Q[rows[r]].unsqueeze(1), self.X[cand[r, :m]])
            exact[r, :m] = torch.where(maybe[r, :m], d, math.inf)
            s += step
        return exact

    def _exact_all(
        self, Q: torch.Tensor, rows: torch.Tensor, k: int, exclude_self: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 brute force of `Q[rows]` against every reference, streamed in blocks."""
        device = self.X.device
        per_pair = max(1, self.dim)
        cb = max(1, min(self.n, _EXACT_BUDGET // per_pair))
        rb = max(1, _EXACT_BUDGET // (cb * per_pair))
        out_d, out_i = [], []
        for qs in range(0, len(rows), rb):
            own = rows[qs : qs + rb]
            q = Q[own].unsqueeze(1)
            best_d = torch.full((len(own), 0), math.inf, dtype=torch.float64, device=device)
            best_i = torch.zeros(len(own), 0, dtype=torch.int64, device=device)
            for rs in range(0, self.n, cb):
                ref = self.X[rs : rs + cb]
                d = self._exact(q, ref.unsqueeze(0))
                idx = torch.arange(rs, rs + len(ref), device=device).expand(len(own), -1)
                if exclude_self:
                    d = d.masked_fill(idx == own.unsqueeze(1), math.inf)
                # running entries have lower indices, so a stable sort keeps (distance, index)
                both_d = torch.cat([best_d, d], 1)
                both_i = torch.cat([best_i, idx], 1)
                both_d, pos = both_d.sort(dim=1, stable=True)
                best_d, best_i = both_d[:, :k], both_i.gather(1, pos[:, :k])
            out_d.append(best_d)
            out_i.append(best_i)
        return torch.cat(out_d), torch.cat(out_i)


def _merge_smallest(
    run_v: torch.Tensor, run_i: torch.Tensor, key: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The running lists of each row's smallest values and their indices (as many as they hold,
    unsorted), merged with a block of keys whose column j is reference `start + j`."""
    kept = run_v.shape[1]
    v, i = torch.topk(key, min(kept, key.shape[1]), dim=1, largest=False, sorted=False)
    v, pos = torch.topk(torch.cat([run_v, v], 1), kept, dim=1, largest=False, sorted=False)
    return v, torch.cat([run_i, i + start], 1).gather(1, pos)


def _exclude_own(key: torch.Tensor, own: torch.Tensor, start: int) -> None:
    """Set each query's own entry in a block of references from `start` to inf (in place)."""
    inside = (own >= start) & (own < start + key.shape[1])
    pos = torch.nonzero(inside).squeeze(1)
    key[pos, own[pos] - start] = math.inf


def _smallest(d: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries per row ordered by (d, idx): sort by index, then stably by d."""
    idx, by_index = idx.sort(1)
    d = d.gather(1, by_index)
    d, pos = d.sort(dim=1, stable=True)
    return d[:, :k], idx.gather(1, pos[:, :k])
