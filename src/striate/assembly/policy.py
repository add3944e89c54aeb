"""Form2Fit's planner and the assembly evaluation (Zakka et al. 2019, §IV-D).

The planner picks at the argmax of the suction map (object half), takes the `candidates`
highest pixels of the place map (kit half) and, with the matching network, chooses the
(candidate, turn) of least mean descriptor distance between the object's pixels in the crop
turned by that turn and the kit pixels they would land on (the cup's pixel on the candidate):
every correspondence of the placement votes, not the cup's pixel alone, which on held-out
kits chose the turn little better than chance. `candidates=1` is "place at the argmax of the
place map, turn by matching". Baselines keep the learned pick and replace the rest with chance:
"random-turn" (learned place, a random turn) and "random" (a random kit-half pixel and turn).

An assembly episode starts from a kit emptied by disassembly at a random kit pose; the policy
then has one pick-and-place per piece. A placement succeeds when the piece ends within the
position and angle tolerances of its hole (`sim.in_hole`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from striate.assembly.data import crop, disassemble
from striate.assembly.networks import rotated_stack
from striate.assembly.sim import Kit, State, heightmap, in_hole, move, suction_piece
from striate.checks import one_of, positive_int

POLICIES = ("form2fit", "random-turn", "random")


@dataclass
class Networks:
    suction: nn.Module
    place: nn.Module
    matching: nn.Module
    rotations: int = 20
    crop_size: int = 33


@torch.no_grad()
def plan(
    nets: Networks,
    hm: torch.Tensor,
    policy: str = "form2fit",
    candidates: int = 16,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(pick, place, turn index) for heightmap `hm` (S×2S): pick and place as world (x, y)."""
    one_of("plan", "policy", policy, POLICIES)
    rng = rng if rng is not None else np.random.default_rng(0)
    device = next(nets.suction.parameters()).device
    size = hm.shape[0]
    kit_half, obj_half = hm[None, None, :, :size].to(device), hm[None, None, :, size:].to(device)
    flat = int(nets.suction(obj_half).flatten().argmax())
    pick_rc = torch.tensor([flat // size, flat % size])
    pick = torch.tensor([pick_rc[1] + size + 0.5, pick_rc[0] + 0.5])
    if policy == "random":
        row, col = rng.integers(0, size, 2)
        return pick, torch.tensor([col + 0.5, row + 0.5]), int(rng.integers(nets.rotations))
    scores = nets.place(kit_half).flatten()
    top = scores.topk(min(candidates, len(scores))).indices.cpu()
    if policy == "random-turn":
        best = int(top[0])
        place = torch.tensor([best % size + 0.5, best // size + 0.5])
        return pick, place, int(rng.integers(nets.rotations))
    obj_crop = crop(obj_half, pick_rc[None].to(device), nets.crop_size)
    turned = rotated_stack(obj_crop, nets.rotations)  # R, 1, C, C
    do = nets.matching.object(turned)  # R, D, C, C
    dk = nets.matching.kit(kit_half)  # 1, D, S, S
    cand = torch.stack([top // size, top % size], 1).to(device)
    windows = crop(dk.expand(len(top), -1, -1, -1), cand, nets.crop_size)  # K, D, C, C
    dist = (windows[:, None] - do[None]).float().norm(dim=2)  # K, R, C, C
    piece = (turned[:, 0] > 0.75).float()[None]  # the object's top surface at each turn
    score = (dist * piece).flatten(2).sum(2) / piece.flatten(2).sum(2).clamp_min(1)  # K, R
    k, turn = divmod(int(score.flatten().argmin()), nets.rotations)
    best = int(top[k])
    return pick, torch.tensor([best % size + 0.5, best // size + 0.5]), turn


def assemble(
    nets: Networks,
    kit: Kit,
    state: State,
    policy: str = "form2fit",
    candidates: int = 16,
    rng: np.random.Generator | None = None,
    position_tolerance: float = 2.0,
) -> tuple[int, State]:
    """Run one pick-and-place per piece from `state`; returns the pieces put in their holes (a
    piece counts once, when its placement lands) and the final state."""
    state = state.clone()
    placed: set[int] = set()
    angle_tolerance = math.pi / nets.rotations
    for _ in range(kit.pieces):
        pick, place, turn = plan(nets, heightmap(kit, state), policy, candidates, rng)
        piece = int(suction_piece(kit, state, pick[None])[0])
        if piece < 0 or piece in placed:
            continue  # the cup found no hold: the step is lost
        state.poses[piece] = move(
            state.poses[piece], pick, place, 2 * math.pi * turn / nets.rotations
        )
        if in_hole(kit, state, piece, position_tolerance, angle_tolerance):
            placed.add(piece)
    return len(placed), state


def start_states(
    kits: list[Kit], episodes: int, seed: int, rotations: int
) -> list[tuple[Kit, State]]:
    """`episodes` starting states (cycling through `kits`): each kit at a new random pose, emptied
    by a seeded disassembly."""
    episodes = positive_int("start_states", "episodes", episodes)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(episodes):
        kit = kits[i % len(kits)]
        ep = disassemble(kit, kit.random_kit_pose(rng), rng, rotations)
        out.append((kit, ep.steps[-1].after))
    return out


def success_rates(
    nets: Networks,
    starts: list[tuple[Kit, State]],
    policy: str = "form2fit",
    candidates: int = 16,
    seed: int = 0,
    progress=None,
) -> dict[str, float]:
    """Placement success (pieces in their holes / pieces) and kit completion (kits fully
    assembled / kits) over the starting states."""
    rng = np.random.default_rng(seed)
    placed = pieces = complete = 0
    for kit, state in starts:
        n, _ = assemble(nets, kit, state, policy, candidates, rng)
        placed, pieces, complete = placed + n, pieces + kit.pieces, complete + (n == kit.pieces)
        if progress is not None:
            progress(1)
    return {
        "placement": placed / max(pieces, 1),
        "completion": complete / max(len(starts), 1),
        "episodes": len(starts),
    }
