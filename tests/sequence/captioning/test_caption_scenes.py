"""The captioned scenes: what a caption says is what the pixels show (read back from the image
alone, not from the drawing code), seeds reproduce, the set saves without pickle, the loader
resumes."""

import re

import pytest
import torch

from striate.errors import ConfigError, DataError
from striate.sequence.captioning.scenes import (
    COLOURS,
    CaptionLoader,
    CaptionSet,
    holds_pair,
    make_scenes,
    parse_pairs,
)

PHRASE = r"a (small|large) (\w+) (circle|square|triangle)"
CAPTION = re.compile(rf"^{PHRASE}(?: (left of|right of|above|below) {PHRASE})?$")


@pytest.fixture(scope="module")
def scenes() -> CaptionSet:
    return make_scenes(160, seed=5)


def _find(image: torch.Tensor, colour: str, size: str, shape: str, used: torch.Tensor):
    """The pixels of `colour` forming one shape not yet `used`: their box, centre and fill."""
    rgb = torch.tensor(COLOURS[colour], dtype=torch.uint8)[:, None, None]
    mask = (image == rgb).all(0) & ~used
    ys, xs = mask.nonzero(as_tuple=True)
    assert len(ys), f"no {colour} pixels"
    # the shapes are apart along one axis: split at the widest gap of the coloured pixels
    for coords in (xs, ys):
        values = coords.unique()
        gaps = values[1:] - values[:-1]
        if len(gaps) and gaps.max() > 1:
            cut = values[int(gaps.argmax())]
            mine = coords <= cut
            ys_a, xs_a = ys[mine], xs[mine]
            ys_b, xs_b = ys[~mine], xs[~mine]
            return [_describe(ys_a, xs_a), _describe(ys_b, xs_b)]
    return [_describe(ys, xs)]


def _describe(ys, xs):
    h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
    fill = len(ys) / (h * w)
    shape = "square" if fill > 0.92 else "circle" if fill > 0.68 else "triangle"
    size = "large" if max(h, w) > 16 else "small"
    centre = ((xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2)
    return {"shape": shape, "size": size, "centre": centre, "box": (ys, xs)}


def _matching(image, colour, size, shape, used):
    found = [f for f in _find(image, colour, size, shape, used) if f["shape"] == shape]
    found = [f for f in found if f["size"] == size]
    assert found, f"no {size} {colour} {shape} in the image"
    return found


def test_every_caption_describes_its_image(scenes):
    """Colour: the pixels of the caption's colour exist; shape: how full their bounding box is
    (square 1, circle π/4, triangle 1/2); size: the box's side; relation: the box centres."""
    relations = set()
    for i in range(len(scenes)):
        image = scenes.images[i]
        for text in scenes.texts(i):
            m = CAPTION.match(text)
            assert m, text
            size, colour, shape, relation, size2, colour2, shape2 = m.groups()
            used = torch.zeros(image.shape[1:], dtype=torch.bool)
            first = _matching(image, colour, size, shape, used)
            if relation is None:
                continue
            relations.add(relation)
            second = _matching(image, colour2, size2, shape2, used)
            axis = 0 if relation in ("left of", "right of") else 1
            sign = 1 if relation in ("left of", "above") else -1
            # some pairing of the described shapes satisfies the relation on their centres
            assert any(
                sign * (b["centre"][axis] - a["centre"][axis]) > 0
                for a in first
                for b in second
                if a is not b
            ), (i, text)
    assert relations == {"left of", "right of", "above", "below"}


def test_two_shape_scenes_say_the_relation_both_ways(scenes):
    two = scenes.lengths[:, 1] > 0
    assert 0.5 < two.float().mean() < 0.9
    inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    for i in two.nonzero().flatten()[:20].tolist():
        a, b = (CAPTION.match(t).groups() for t in scenes.texts(i))
        assert a[:3] == b[4:] and a[4:] == b[:3] and inverse[a[3]] == b[3]
    assert all(len(scenes.texts(i)) == 1 for i in (~two).nonzero().flatten().tolist())


def test_tokens_are_start_words_end_then_padding(scenes):
    vocab = scenes.vocab
    start, end, pad = (vocab.tokens.index(t) for t in ("<start>", "<end>", "<pad>"))
    for caps, lengths in zip(scenes.captions, scenes.lengths, strict=True):
        for c, n in zip(caps.tolist(), lengths.tolist(), strict=True):
            if n == 0:
                assert set(c) == {pad}
                continue
            assert c[0] == start and c[n - 1] == end and set(c[n:]) <= {pad}
            assert {start, end, pad}.isdisjoint(c[1 : n - 1])


def test_seeds_reproduce_and_differ():
    a, b, c = make_scenes(40, seed=3), make_scenes(40, seed=3), make_scenes(40, seed=4)
    for name in ("images", "captions", "lengths", "objects", "geometry"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.images, c.images)


def test_saved_and_loaded_without_pickle(scenes, tmp_path):
    path = scenes[:10].save(tmp_path / "scenes.safetensors")
    back = CaptionSet.load(path)
    assert back.vocab == scenes.vocab and torch.equal(back.images, scenes.images[:10])
    assert back.texts(3) == scenes.texts(3)
    fig = back.show(4, seed=1)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes]
    assert len(titles) == 4 and all(
        t in sum((back.texts(i) for i in range(10)), []) for t in titles
    )
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    for bad in (tmp_path / "bad.safetensors", tmp_path / "missing.safetensors"):
        with pytest.raises(DataError) as e:
            CaptionSet.load(bad)
        assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_loader_covers_each_scene_once_and_resumes_mid_epoch(scenes):
    loader = CaptionLoader(scenes[:50], 16, seed=2)
    seen = torch.cat([x.flatten(1) for x, _, _ in loader])
    order = [(seen == scenes.images[:50].flatten(1).float().div(255)[i]).all(1).nonzero().item()
             for i in range(50)]  # fmt: skip
    assert sorted(order) == list(range(50))
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    rest = [c for _, c, _ in it]
    again = CaptionLoader(scenes[:50], 16, seed=2)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, (_, b, _) in zip(rest, again, strict=True))


def test_held_out_pairs_are_never_drawn_and_nothing_else_changes():
    plain = make_scenes(300, seed=0)
    held = make_scenes(300, seed=0, exclude=["red triangle", "blue circle"])
    texts = [t for i in range(300) for t in held.texts(i)]
    assert not any("red triangle" in t or "blue circle" in t for t in texts)
    pairs = parse_pairs(["red triangle", "blue circle"])
    moved = holds_pair(plain.objects, pairs)
    assert 40 < int(moved.sum()) < 120 and not holds_pair(held.objects, pairs).any()
    assert torch.equal(held.geometry, plain.geometry)  # the same scenes, recoloured
    assert torch.equal(held.captions[~moved], plain.captions[~moved])
    for bad in (["red"], ["purple circle"], ["red hexagon"], [f"{c} square" for c in COLOURS]):
        with pytest.raises(ConfigError) as e:
            make_scenes(4, exclude=bad)
        assert "\n" not in str(e.value)
