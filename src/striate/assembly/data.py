"""Self-supervised data by disassembly (Zakka et al. 2019, "Form2Fit", §III): the robot empties an
assembled kit by trial-and-error suction and drops each piece at a random free pose on the object
half; reversed in time, every step is an assembly step (pick the piece outside, place it into its
hole with the opposite turn), labelled for free.

    episode = disassemble(kit, kit.random_kit_pose(rng), rng, rotations=20)
    steps = reverse(episode)                    # the assembly sequence
    sets = assembly_datasets([episode, ...])    # suction, place and matching tensors

Rotations are discretised: a drop turns the piece by −2πk/R (k uniform in 0..R−1), so the
assembly turn is exactly the bin k. Suction and place labels are per-pixel (1 positive, 0
negative, 255 ignored): positives within `POSITIVE_RADIUS` of a recorded success, a ring up to
`IGNORE_RADIUS` ignored, negatives everywhere else (as the paper's heat maps are trained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from striate.assembly.sim import (
    Kit,
    State,
    heightmap,
    move,
    piece_masks,
    pixel_centres,
    suction_piece,
)
from striate.checks import positive_int
from striate.data.loader import ResumableEpochs

POSITIVE_RADIUS = 1.0
IGNORE_RADIUS = 3.0
IGNORE = 255


@dataclass
class Step:
    """One pick-and-place: `piece` lifted by a cup at `pick` (world x, y) and put down at `place`
    turned by 2π·`turn`/rotations; `before`/`after` are the states around it, `trials` the
    suction points tried first (the last one held)."""

    piece: int
    pick: torch.Tensor
    place: torch.Tensor
    turn: int
    before: State
    after: State
    trials: torch.Tensor


@dataclass
class Episode:
    kit: Kit
    rotations: int
    steps: list[Step]  # disassembly order


def disassemble(
    kit: Kit,
    kit_pose: torch.Tensor,
    rng: np.random.Generator,
    rotations: int = 20,
    margin: float = 1.5,
    max_trials: int = 2000,
) -> Episode:
    """Empty the kit at `kit_pose` by trial and error: suction at random pixels of the kit half
    that stand above the floor (plate or piece) until one holds, then drop the piece at a random
    free pose (inside the object half, clear of the other dropped pieces) with a random turn."""
    rotations = positive_int("disassemble", "rotations", rotations)
    state = kit.assembled(kit_pose)
    size = kit.size
    radii = kit.radii
    steps: list[Step] = []
    outside: list[int] = []
    tried = 0
    while len(outside) < kit.pieces and tried < max_trials:
        hm = heightmap(kit, state)[:, :size]
        rows, cols = torch.nonzero(hm > 0, as_tuple=True)
        pick_idx = torch.from_numpy(rng.integers(0, len(rows), 64))
        points = torch.stack([cols[pick_idx] + 0.5, rows[pick_idx] + 0.5], 1).float()
        lifted = suction_piece(kit, state, points, margin)
        lifted[torch.tensor([p in outside for p in lifted.tolist()], dtype=torch.bool)] = -1
        hits = torch.nonzero(lifted >= 0).flatten()
        if len(hits) == 0:
            tried += 64
            continue
        first = int(hits[0])
        tried += first + 1
        piece, pick = int(lifted[first]), points[first]
        pose = state.poses[piece]
        for _ in range(100):
            place = torch.tensor(rng.integers(0, size, 2) + 0.5, dtype=torch.float32)
            place[0] += size
            turn = int(rng.integers(0, rotations))
            new = move(pose, pick, place, -2 * math.pi * turn / rotations)
            r = float(radii[piece])
            lo, hi = size + r + 1, 2 * size - r - 1
            if not (lo <= new[0] <= hi and r + 1 <= new[1] <= size - r - 1):
                continue
            others = state.poses[outside, :2]
            gaps = (others - new[:2]).norm(dim=1) - radii[outside] - r
            if len(outside) == 0 or bool((gaps > 1.0).all()):
                break
        else:
            continue  # no room for this drop: try another suction
        after = state.clone()
        after.poses[piece] = new
        steps.append(Step(piece, pick, place, turn, state, after, points[: first + 1]))
        outside.append(piece)
        state = after
    if len(outside) < kit.pieces:
        raise RuntimeError(f"disassemble: the kit was not emptied in {max_trials} trials")
    return Episode(kit, rotations, steps)


def reverse(episode: Episode) -> list[Step]:
    """The assembly sequence: the disassembly run backwards, each pick and place swapped and
    each turn k undone by the turn +2πk/R (the turn index stays k)."""
    return [
        Step(s.piece, s.place, s.pick, s.turn, s.after, s.before, s.place[None])
        for s in reversed(episode.steps)
    ]


def replay(kit: Kit, state: State, steps: list[Step], rotations: int) -> State:
    """Carry out assembly `steps` (turns of +2πk/R) from `state` with the simulator."""
    state = state.clone()
    for s in steps:
        state.poses[s.piece] = move(
            state.poses[s.piece], s.pick, s.place, 2 * math.pi * s.turn / rotations
        )
    return state


def label_map(points: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A rows×cols uint8 label map: 1 within POSITIVE_RADIUS of any point (N, 2) (x, y in the
    map's pixels), 255 up to IGNORE_RADIUS, 0 elsewhere."""
    d = torch.cdist(pixel_centres(rows, cols), points.float()).amin(1).reshape(rows, cols)
    labels = torch.zeros(rows, cols, dtype=torch.uint8)
    labels[d <= IGNORE_RADIUS] = IGNORE
    labels[d <= POSITIVE_RADIUS] = 1
    return labels


def crop(images: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """side×side crops (N, C, side, side) of images (N, C, H, W) centred on pixel indices
    (N, 2) as (row, col), zero outside; `side` odd so the centre pixel is index side // 2."""
    h = side // 2
    padded = F.pad(images, (h, h, h, h))
    offsets = torch.arange(side, device=centres.device)
    rows = (centres[:, 0, None] + offsets)[:, :, None]  # N, side, 1 (in padded coordinates)
    cols = (centres[:, 1, None] + offsets)[:, None, :]
    n = torch.arange(len(images), device=centres.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[n, rows, cols].permute(0, 3, 1, 2)


def crop_side(kit: Kit) -> int:
    """The odd object-crop side that holds a piece whatever point of it is the centre."""
    return 2 * math.ceil(2 * float(kit.radii.max()) + 1) + 1


def pixel(point: torch.Tensor, column_offset: int = 0) -> torch.Tensor:
    """The (row, col) index of the pixel holding world point (x, y), columns shifted by
    −column_offset."""
    return torch.stack([point[1].floor(), point[0].floor() - column_offset]).long()


def assembly_datasets(episodes: list[Episode], crop_size: int = 33) -> dict[str, tuple]:
    """Training tensors from disassembly episodes:

    - "suction": (heightmaps N×1×S×S, labels N×S×S): the kit half before each disassembly pick
      and the object half before each assembly pick, positive at the cup's pixel;
    - "place": the kit half before each assembly place, positive at the place pixel;
    - "matching": (kit halves N×1×S×S, object crops N×1×C×C centred on the pick, place pixels
      N×2 (row, col), turn bins N, the piece's mask in the crop N×1×C×C)."""
    suction_x, suction_y, place_x, place_y = [], [], [], []
    kits, crops, places, turns, masks = [], [], [], [], []
    for ep in episodes:
        kit, size = ep.kit, ep.kit.size
        for s in ep.steps:
            hm = heightmap(ep.kit, s.before)
            suction_x.append(hm[:, :size])
            suction_y.append(label_map(s.pick[None], size, size))
        for s in reverse(ep):
            hm = heightmap(kit, s.before)
            obj = hm[:, size:]
            pick = s.pick - torch.tensor([size, 0.0])
            suction_x.append(obj)
            suction_y.append(label_map(pick[None], size, size))
            place_x.append(hm[:, :size])
            place_y.append(label_map(s.place[None], size, size))
            kits.append(hm[:, :size])
            centre = pixel(s.pick, size)
            mask = piece_masks(kit, s.before)[s.piece, :, size:].float()
            both = torch.stack([obj, mask])[None]
            cropped = crop(both, centre[None], crop_size)[0]
            crops.append(cropped[:1])
            masks.append(cropped[1:] > 0.5)
            places.append(pixel(s.place))
            turns.append(s.turn)
    return {
        "suction": (torch.stack(suction_x)[:, None], torch.stack(suction_y)),
        "place": (torch.stack(place_x)[:, None], torch.stack(place_y)),
        "matching": (
            torch.stack(kits)[:, None],
            torch.stack(crops),
            torch.stack(places),
            torch.tensor(turns),
            torch.stack(masks),
        ),
    }


def make_episodes(
    kits: list[Kit], per_kit: int, seed: int, rotations: int = 20, progress=None
) -> list[Episode]:
    """`per_kit` disassembly episodes of each kit, each at a random kit pose (seeded)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for kit in kits:
        for _ in range(per_kit):
            episodes.append(disassemble(kit, kit.random_kit_pose(rng), rng, rotations))
            if progress is not None:
                progress(1)
    return episodes


class TensorBatches(ResumableEpochs):
    """Shuffled minibatches of aligned tensors (all on the CPU, moved to `device` per batch);
    epoch e's order comes from a generator seeded by (seed, e)."""

    def __init__(
        self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int = 0, device="cpu"
    ) -> None:
        self.tensors = tensors
        self.batch_size = positive_int("TensorBatches", "batch_size", batch_size)
        self.seed, self.epoch = int(seed), 0
        self.device = torch.device(device)

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self):
        g = self._generator()
        self.epoch += 1
        order = torch.randperm(len(self.tensors[0]), generator=g)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx].to(self.device) for t in self.tensors)
