"""Captioned scenes: a caption dataset drawn on the spot, since none can be had here.

    train = make_scenes(8000, seed=0)           # 64×64 RGB, one or two shapes each
    test = make_scenes(1000, seed=1)            # an independent draw (the test split)
    train.texts(0)  # ['a small red circle left of a large blue square',
                    #  'a large blue square right of a small red circle']

A scene holds one shape (a circle, square or triangle; small or large; red, green, blue, yellow
or white) or two, side by side or one above the other, on a dark noisy background. Its captions
follow one grammar, without synonyms: "a SIZE COLOUR SHAPE", and for two shapes
"a … RELATION a …" with RELATION "left of", "right of", "above" or "below". A two-shape scene
has two reference captions (the relation said from either shape), a one-shape scene one. Every
step is a tensor operation over the whole set (coordinate grids for the masks, index tables for
the words), seeded by `seed`.

`CaptionSet` keeps the images as uint8 N×3×H×W, the references as int64 N×R×T (`<start>` …
`<end>`, then `<pad>`), their lengths N×R (0: no such reference), the vocabulary and what was
drawn (`objects`, `geometry`), and is saved to one safetensors file (the vocabulary in its
metadata): nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from striate._atomic import atomic_path
from striate.checks import positive_int, probability
from striate.data.loader import ResumableEpochs
from striate.device import resolve_device
from striate.errors import ConfigError, DataError
from striate.sequence.corpus import Vocabulary

PAD, START, END, UNKNOWN = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END)  # Vocabulary.build adds "<unk>" after them
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "white": (240, 240, 240),
}
SIZES = {"small": (0.08, 0.11), "large": (0.16, 0.20)}  # radius as a fraction of the side
RELATIONS = (("left", "of"), ("right", "of"), ("above",), ("below",))
INVERSE = (1, 0, 3, 2)  # "A left of B" is "B right of A"; "A above B" is "B below A"
WORDS = ("a", *SIZES, *COLOURS, *SHAPES, "left", "right", "of", "above", "below")
REFERENCES = 2  # reference captions per scene
MAX_TOKENS = 2 + 2 * 4 + 2  # <start>, two phrases of four words, a two-word relation, <end>


def scene_vocabulary() -> Vocabulary:
    """The fixed word vocabulary of the scenes: <pad> (id 0), <start>, <end>, <unk>, then the
    grammar's words."""
    return Vocabulary.build(WORDS, "word", specials=SPECIALS)


@dataclass(frozen=True)
class CaptionSet:
    """Images with reference captions; see the module docstring."""

    images: torch.Tensor  # uint8 N×3×H×W
    captions: torch.Tensor  # int64 N×R×T: <start> words <end> <pad>…
    lengths: (
        torch.Tensor
    )  # int64 N×R: tokens of each reference, <start> and <end> included; 0: none
    vocab: Vocabulary
    objects: torch.Tensor  # int64 N×2×4: present, shape, colour, size (indices into the tuples)
    geometry: torch.Tensor  # float32 N×2×3: centre x, centre y, radius in pixels

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"CaptionSet: images must be uint8 N×3×H×W, got {self.images.dtype}")
        shapes = (
            self.captions.shape[:2],
            self.lengths.shape,
            len(self.objects),
            len(self.geometry),
        )
        if shapes != ((n, self.lengths.shape[1]), (n, self.captions.shape[1]), n, n):
            raise DataError(
                f"CaptionSet: {n} images but captions {tuple(self.captions.shape)}, lengths "
                f"{tuple(self.lengths.shape)}, objects {tuple(self.objects.shape)}: the arrays "
                f"must describe the same scenes"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor | slice | int) -> CaptionSet:
        """The scenes at `index` (a tensor of indices, a slice or one index) as a CaptionSet."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return CaptionSet(
            self.images[index],
            self.captions[index],
            self.lengths[index],
            self.vocab,
            self.objects[index],
            self.geometry[index],
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def references(self) -> list[list[list[str]]]:
        """Each scene's reference captions as lists of words (no specials), for BLEU."""
        return [
            [self.vocab.decode(c[1 : n - 1]).split() for c, n in zip(caps, ns, strict=True) if n]
            for caps, ns in zip(self.captions.tolist(), self.lengths.tolist(), strict=True)
        ]

    def texts(self, i: int) -> list[str]:
        """The reference captions of scene `i` as text."""
        return [" ".join(words) for words in self[i].references()[0]]

    def show(self, n: int = 8, seed: int = 0) -> Figure:
        """`n` random scenes with their first reference caption."""
        from striate.sequence.captioning.figures import plot_captions

        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self), generator=g)[: min(n, len(self))]
        sub = self[pick]
        return plot_captions(sub.images, [texts[0] for texts in _joined(sub.references())])

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file: the arrays, and the vocabulary as JSON in its metadata."""
        path = Path(path)
        tensors = {
            "images": self.images,
            "captions": self.captions,
            "lengths": self.lengths,
            "objects": self.objects,
            "geometry": self.geometry,
        }
        meta = {"format": "striate-captions/1", "vocab": json.dumps(self.vocab.to_json())}
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CaptionSet:
        """A CaptionSet saved by `save`; a DataError naming the file when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no caption set at {path}: give a file written by CaptionSet.save")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
            if meta.get("format") != "striate-captions/1":
                raise ValueError(f"format {meta.get('format')!r}")
            vocab = Vocabulary.from_json(json.loads(meta["vocab"]))
            return cls(vocab=vocab, **{k: tensors[k] for k in _ARRAYS})
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
            raise DataError(f"{path} is not a caption set saved by striate ({e})") from e


_ARRAYS = ("images", "captions", "lengths", "objects", "geometry")


def _joined(refs: list[list[list[str]]]) -> list[list[str]]:
    return [[" ".join(words) for words in r] for r in refs]


def make_scenes(
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    two_shapes: float = 0.7,
    noise: int = 16,
    exclude: Sequence[str] = (),
) -> CaptionSet:
    """`n` captioned scenes of `size`×`size` pixels drawn from `seed`; a fraction `two_shapes`
    of them hold two shapes (see the module docstring). `exclude` names "COLOUR SHAPE" pairs
    that are never drawn (a drawn one takes the next colour), to hold them out of training."""
    positive_int("make_scenes", "n", n)
    positive_int("make_scenes", "size", size)
    probability("make_scenes", "two_shapes", two_shapes)
    if size < 24:
        raise ConfigError(f"make_scenes: size must be at least 24 pixels, got {size}")
    pairs = parse_pairs(exclude)
    g = torch.Generator().manual_seed(seed)
    vocab = scene_vocabulary()
    objects, geometry, relation = _draw_objects(n, size, two_shapes, g, pairs)
    images = _render(objects, geometry, size, noise, g)
    captions, lengths = _captions(objects, relation, vocab)
    return CaptionSet(images, captions, lengths, vocab, objects, geometry)


def parse_pairs(pairs: Sequence[str]) -> list[tuple[int, int]]:
    """(colour index, shape index) of "COLOUR SHAPE" texts; a ConfigError for an unknown word or
    for a shape left without any colour."""
    if isinstance(pairs, str):
        pairs = [pairs]
    out = []
    for text in pairs:
        words = str(text).split()
        if len(words) != 2 or words[0] not in COLOURS or words[1] not in SHAPES:
            raise ConfigError(
                f"held-out pairs are 'COLOUR SHAPE' with a colour of {', '.join(COLOURS)} and a "
                f"shape of {', '.join(SHAPES)}, e.g. 'red triangle'; got {text!r}"
            )
        out.append((list(COLOURS).index(words[0]), SHAPES.index(words[1])))
    for k, shape in enumerate(SHAPES):
        if len({c for c, s in out if s == k}) == len(COLOURS):
            raise ConfigError(f"held-out pairs: every colour of the {shape} is held out")
    return sorted(set(out))


def holds_pair(objects: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Which scenes (N,) show one of the (colour, shape) `pairs` (as `parse_pairs` gives)."""
    hit = torch.zeros(objects.shape[:2], dtype=torch.bool)
    for c, k in pairs:  # a few pairs, each over the whole set
        hit |= (objects[..., 2] == c) & (objects[..., 1] == k)
    return (hit & objects[..., 0].bool()).any(1)


def _draw_objects(
    n: int,
    size: int,
    two_shapes: float,
    g: torch.Generator,
    exclude: Sequence[tuple[int, int]] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Who is in each scene and where: objects N×2×4 (present, shape, colour, size), geometry
    N×2×3 (cx, cy, r) and the relation of shape 0 to shape 1 (an index into RELATIONS; -1 with
    one shape). Two shapes are apart along one axis by more than their radii, so the relation
    holds for every pixel of them, not only their centres."""
    two = torch.rand(n, generator=g) < two_shapes
    present = torch.stack([torch.ones(n, dtype=torch.bool), two], 1).long()
    kind = torch.randint(0, len(SHAPES), (n, 2), generator=g)
    colour = torch.randint(0, len(COLOURS), (n, 2), generator=g)
    for _ in range(len(COLOURS)):  # move excluded pairs to the next colour until none is left
        hit = torch.zeros_like(colour, dtype=torch.bool)
        for c, k in exclude:
            hit |= (colour == c) & (kind == k)
        colour = torch.where(hit, (colour + 1) % len(COLOURS), colour)
    big = torch.randint(0, len(SIZES), (n, 2), generator=g)
    low, high = torch.tensor(list(SIZES.values())).T * size  # per size class
    r = low[big] + (high[big] - low[big]) * torch.rand(n, 2, generator=g)
    objects = torch.stack([present, kind, colour, big], 2)
    # along the relation's axis: the first centre at `lo`, the second at `lo + d`
    d_min = r[:, 0] + r[:, 1] + 2
    d_max = size - 2 - r[:, 0] - r[:, 1]
    d = d_min + (d_max - d_min) * torch.rand(n, generator=g)
    lo_min, lo_max = r[:, 0] + 1, size - 1 - r[:, 1] - d
    lo = lo_min + (lo_max - lo_min) * torch.rand(n, generator=g)
    along = torch.stack([lo, lo + d], 1)
    across = (r + 1) + (size - 2 - 2 * r) * torch.rand(n, 2, generator=g)
    alone = (r[:, :1] + 1) + (size - 2 - 2 * r[:, :1]) * torch.rand(n, 2, generator=g)
    vertical = torch.rand(n, generator=g) < 0.5
    along = torch.where(two[:, None], along, alone[:, :1])
    across = torch.where(two[:, None], across, alone[:, 1:])
    cx = torch.where(vertical[:, None], across, along)
    cy = torch.where(vertical[:, None], along, across)
    geometry = torch.stack([cx, cy, r], 2)
    swap = (torch.rand(n, generator=g) < 0.5) & two  # which shape is named first: slot 0
    geometry = torch.where(swap[:, None, None], geometry.flip(1), geometry)
    objects = torch.where(swap[:, None, None], objects.flip(1), objects)
    relation = torch.where(vertical, 2, 0) + swap.long()  # slot 0 was first along the axis
    geometry = torch.where(objects[..., :1].bool(), geometry, torch.zeros_like(geometry))
    return objects, geometry.float(), torch.where(two, relation, -1)


def shape_masks(objects: torch.Tensor, geometry: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean masks N×2×H×W of the shapes (a circle of radius r; a square of half-side 0.85 r;
    a triangle with its apex up, r above the centre, and its base 2r wide, r below)."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    cx, cy, r = (geometry[..., k, None, None] for k in range(3))
    dx, dy = xs - cx, ys - cy
    circle = dx**2 + dy**2 <= r**2
    square = (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r)
    triangle = (dy >= -r) & (dy <= r) & (dx.abs() <= (dy + r) / 2)
    kind = objects[..., 1, None, None]
    masks = torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))
    return masks & objects[..., 0, None, None].bool()


def _render(
    objects: torch.Tensor, geometry: torch.Tensor, size: int, noise: int, g: torch.Generator
) -> torch.Tensor:
    """uint8 N×3×H×W: a dark grey noisy background, the shapes painted in their flat colours."""
    n = len(objects)
    level = torch.randint(10, 50, (n, 1, 1, 1), generator=g)
    grain = torch.randint(0, max(noise, 1), (n, 1, size, size), generator=g)
    images = (level + grain).expand(n, 3, size, size).clone()
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.uint8)
    images = images.to(torch.uint8)
    for part in torch.arange(n).split(1024):  # chunks bound the memory of the masks
        masks = shape_masks(objects[part], geometry[part], size)
        for slot in range(2):  # two slots, each painted over the whole chunk at once
            colour = palette[objects[part, slot, 2]][:, :, None, None]
            images[part] = torch.where(masks[:, slot, None], colour, images[part])
    return images


def _captions(
    objects: torch.Tensor, relation: torch.Tensor, vocab: Vocabulary
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference token ids N×R×T and lengths N×R: "a SIZE COLOUR SHAPE" for each shape, joined by
    the relation both ways round; built from index tables, then packed left (no per-scene loop)."""
    n = len(objects)
    ids = {w: int(i) for w, i in zip(WORDS, vocab.encode(list(WORDS)).tolist(), strict=True)}
    tok = {s: int(vocab.encode([s])[0]) for s in SPECIALS}
    sizes = torch.tensor([ids[w] for w in SIZES])
    colours = torch.tensor([ids[w] for w in COLOURS])
    shapes = torch.tensor([ids[w] for w in SHAPES])
    phrase = torch.stack(
        [
            torch.full((n, 2), ids["a"]),
            sizes[objects[..., 3]],
            colours[objects[..., 2]],
            shapes[objects[..., 1]],
        ],
        2,
    )  # N×2×4
    skip = -1
    rel_words = torch.tensor([[ids[w] for w in r] + [skip] * (2 - len(r)) for r in RELATIONS])
    two = relation >= 0
    rel = relation.clamp(min=0)
    inverse = torch.tensor(INVERSE)[rel]
    start = torch.full((n, 1), tok[START])
    end = torch.full((n, 1), tok[END])
    nothing = torch.full((n, 6), skip)
    first = torch.cat([start, phrase[:, 0], rel_words[rel], phrase[:, 1], end], 1)
    second = torch.cat([start, phrase[:, 1], rel_words[inverse], phrase[:, 0], end], 1)
    alone = torch.cat([start, phrase[:, 0], end, nothing], 1)
    first = torch.where(two[:, None], first, alone)
    second = torch.where(two[:, None], second, torch.full_like(second, skip))
    raw = torch.stack([first, second], 1)  # N×2×12 with `skip` holes
    keep = raw != skip
    lengths = keep.sum(2)
    where = torch.where(keep, keep.cumsum(2) - 1, raw.shape[2] - 1 + torch.zeros_like(raw))
    captions = torch.full_like(raw, tok[PAD])
    # pack: each kept token goes to its rank; the holes all land on the last column, which is
    # then reset to <pad> unless a token of a full-length caption lives there
    captions.scatter_(2, where, torch.where(keep, raw, tok[PAD]))
    full = lengths == raw.shape[2]
    captions[..., -1] = torch.where(full, raw[..., -1], tok[PAD])
    return captions, lengths


class CaptionLoader(ResumableEpochs):
    """Shuffled minibatches of a CaptionSet on the device: (images float N×3×H×W in [0, 1],
    captions int64 N×R×T, lengths N×R). Epoch e's order comes from (seed, e); resumes
    mid-epoch (`state_dict`)."""

    def __init__(
        self,
        data: CaptionSet,
        batch_size: int = 64,
        *,
        shuffle: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        positive_int("CaptionLoader", "batch_size", batch_size)
        if len(data) == 0:
            raise DataError("CaptionLoader: the caption set is empty")
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.device = resolve_device(device)
        self.epoch = 0
        self._images = data.images.to(self.device)
        self._captions = data.captions.to(self.device)
        self._lengths = data.lengths.to(self.device)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        g = self._generator()
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        batches = order.split(self.batch_size)
        done = 0
        if self._resume is not None:
            done, rng = self._resume
            g.set_state(rng)
            self._resume = None
        self.epoch += 1
        for i, index in enumerate(batches[done:], start=done + 1):
            idx = index.to(self.device)
            x = self._images[idx].float().div_(255)
            self._position = (i, g) if i < len(batches) else None
            yield x, self._captions[idx], self._lengths[idx]
        self._position = None
