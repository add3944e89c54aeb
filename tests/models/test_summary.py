"""`summary`: the lectures' worked numbers (AlexNet CONV1, VGG-16's table, the conv-arithmetic
quizzes), torch's own FLOP counter, receptive-field formulas, memory conventions, and errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from striate import models
from striate.errors import ConfigError
from striate.models.summary import Summary, parameter_count, summary


def out_size(w: int, f: int, s: int = 1, p: int = 0) -> int:
    """CS231n lecture 5 / the PyTorch course: (W - F + 2P) / S + 1."""
    return (w - f + 2 * p) // s + 1


def conv_params(k: int, f: int, d_in: int) -> int:
    """The PyTorch course's (K * F*F * D_in) + K."""
    return k * f * f * d_in + k


def torch_flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


# --------------------------------------------------------------------------- VGG-16, lecture 9

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16Reference(nn.Module):
    """torchvision's VGG-16 layout (in-place ReLUs, 7×7 adaptive pool), written out here."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 1000),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def lecture_vgg16_table() -> list[tuple[tuple[int, ...], int]]:
    """Lecture 9's VGG-16 rows after INPUT: (output C,H,W or (F,), weights not counting biases)."""
    rows, c, side = [], 3, 224
    for v in VGG16:
        if v == "M":
            side //= 2
            rows.append(((c, side, side), 0))
        else:
            rows.append(((v, side, side), 3 * 3 * c * v))
            c = v
    rows += [((4096,), 7 * 7 * 512 * 4096), ((4096,), 4096 * 4096), ((1000,), 4096 * 1000)]
    return rows


@pytest.fixture(scope="module")
def vgg16_summary() -> Summary:
    with torch.device("meta"):  # shapes only: no 138M parameters to allocate or initialise
        model = VGG16Reference()
    return summary(model, (3, 224, 224), device="meta")


def _lecture_rows(s: Summary) -> list:
    return [r for r in s.rows if r.type in ("Conv2d", "MaxPool2d", "Linear")]


def test_vgg16_matches_lecture_9_row_by_row(vgg16_summary):
    s = vgg16_summary
    table = lecture_vgg16_table()
    rows = _lecture_rows(s)
    assert [r.output_shape[1:] for r in rows] == [shape for shape, _ in table]
    weights = [r.params - (r.output_shape[1] if r.params else 0) for r in rows]  # minus biases
    assert weights == [w for _, w in table]
    assert weights[0] == 1_728 and weights[-3] == 102_760_448  # the lecture's first and FC6
    # the published total: "TOTAL params: 138M parameters" (torchvision: 138,357,544)
    biases = sum(shape[0] for shape, w in table if w)
    assert s.params == s.trainable_params == sum(w for _, w in table) + biases == 138_357_544


def test_vgg16_forward_memory_follows_the_lectures_convention(vgg16_summary):
    s = vgg16_summary
    lecture = 224 * 224 * 3 + sum(math.prod(shape) for shape, _ in lecture_vgg16_table())
    # The lecture counts INPUT and every CONV/POOL/FC output, not the (in-place) ReLUs; its rows
    # add up to 15.2M values = 61 MB at 4 bytes (its "24M * 4 bytes ~= 96MB" is not their sum).
    assert lecture == 15_237_608
    avgpool = next(r for r in s.rows if r.type == "AdaptiveAvgPool2d")  # not in the lecture
    assert s.activation_bytes == 4 * lecture + avgpool.memory
    assert avgpool.memory == 4 * 512 * 7 * 7
    relus = [r for r in s.rows if r.type in ("ReLU", "Dropout")]
    assert relus and not any(r.new_memory for r in relus)
    assert s.input_bytes == 4 * 224 * 224 * 3
    assert abs(s.activation_bytes / 1e6 - 61.05) < 0.05


def test_vgg16_macs_match_torchs_flop_counter_and_the_formula(vgg16_summary):
    s = vgg16_summary
    pairs = zip(_vgg_convs(), _vgg_inputs(), strict=True)
    expected = sum(side * side * v * 9 * c for (v, side), c in pairs)  # out elements · Cin·3·3
    expected += 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert s.macs == expected and s.flops == 2 * expected
    assert round(s.macs / 1e9, 2) == 15.47  # VGG-16's published 15.5 GMACs
    with torch.device("meta"):
        model = VGG16Reference()
    assert torch_flops(model, torch.empty(1, 3, 224, 224, device="meta")) == s.flops


def _vgg_convs() -> list[tuple[int, int]]:
    out, side = [], 224
    for v in VGG16:
        if v == "M":
            side //= 2
        else:
            out.append((v, side))
    return out


def _vgg_inputs() -> list[int]:
    widths = [v for v in VGG16 if v != "M"]
    return [3, *widths[:-1]]


def test_vgg16_receptive_fields(vgg16_summary):
    rows = [r for r in vgg16_summary.rows if r.type in ("Conv2d", "MaxPool2d")]
    fields = [r.receptive_field[0] for r in rows]
    assert fields[:3] == [3, 5, 6]  # two 3x3 convs, then a 2x2/2 pool
    assert fields[-2:] == [196, 212]  # conv5_3 and pool5 (Araujo et al. 2019: VGG-16, 212)
    assert rows[-1].jump == (32, 32)
    fc = next(r for r in vgg16_summary.rows if r.type == "Linear")
    assert fc.receptive_field == (math.inf, math.inf)  # a Linear on flattened maps sees all


def test_vgg16_table_text_and_dict(vgg16_summary):
    text = str(vgg16_summary)
    assert "138,357,544" in text and "features.0" in text and "Conv2d" in text
    assert "61.1 MB" in text and "15.47G" in text and "30.94G" in text
    assert "all" in text  # the Linear layers' receptive field
    d = vgg16_summary.to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["params"] == 138_357_544 and back["flops"] == 2 * back["macs"]
    assert back["rows"][0]["output_shape"] == [1, 64, 224, 224]
    assert back["rows"][-1]["receptive_field"] is None  # infinite: the whole input
    assert back["input_shape"] == [1, 3, 224, 224] and len(back["rows"]) == 39


# --------------------------------------------------------------------------- lecture 5 and 003


def test_alexnet_conv1_on_227_gives_55x55x96_and_34944_parameters():
    model = nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2))
    s = summary(model, (3, 227, 227))
    conv, relu, pool = s.rows
    assert out_size(227, 11, 4) == 55 and conv.output_shape == (1, 96, 55, 55)
    assert conv.params == (11 * 11 * 3) * 96 + 96 == 34_944  # lecture 9's "35K"
    assert conv.macs == 55 * 55 * 96 * (11 * 11 * 3)
    assert conv.receptive_field == (11, 11) and conv.jump == (4, 4)
    assert relu.new_memory and relu.macs == 0  # out of place: a new tensor
    assert out_size(55, 3, 2) == 27 and pool.output_shape == (1, 96, 27, 27) and pool.params == 0
    assert pool.receptive_field == (11 + (3 - 1) * 4,) * 2 == (19, 19) and pool.jump == (8, 8)


@pytest.mark.parametrize(
    ("size", "k", "f", "stride", "pad", "out"),
    [
        (32, 10, 5, 1, 2, 32),  # lecture 5: 32x32x3, 10 5x5 filters, stride 1, pad 2 -> 32x32x10
        (7, 1, 3, 1, 0, 5),  # 7x7 input, 3x3 filter, stride 1 -> 5x5
        (7, 1, 3, 2, 0, 3),  # stride 2 -> 3x3
        (32, 6, 5, 1, 0, 28),  # 32 -> 28 with 5x5 filters
    ],
)
def test_lecture_5_output_sizes_and_parameters(size, k, f, stride, pad, out):
    s = summary(nn.Conv2d(3, k, f, stride=stride, padding=pad), (3, size, size))
    (row,) = s.rows
    assert out_size(size, f, stride, pad) == out
    assert row.output_shape == (1, k, out, out)
    assert row.params == conv_params(k, f, 3) == s.params
    if (size, k, f) == (32, 10, 5):
        assert row.params == 760  # "each filter has 5*5*3 + 1 = 76 params => 76*10 = 760"


def test_pytorch_course_quiz_130x130():
    model = nn.Sequential(
        nn.Conv2d(3, 10, 3), nn.MaxPool2d(4, 4), nn.Conv2d(10, 20, 5, padding=2), nn.MaxPool2d(2, 2)
    )
    s = summary(model, (3, 130, 130))
    assert [r.output_shape[2] for r in s.rows] == [128, 32, 32, 16]  # the quiz's worked sizes
    assert s.rows[-1].output_shape == (1, 20, 16, 16)  # depth 20, x-y size 16
    assert math.prod(s.rows[-1].output_shape) == 16 * 16 * 20  # "16*16*20" values left
    assert [r.params for r in s.rows] == [conv_params(10, 3, 3), 0, conv_params(20, 5, 10), 0]
    assert s.params == 280 + 5020


def test_pytorch_course_sequential_example():
    model = nn.Sequential(
        nn.Conv2d(1, 16, 2, stride=2),
        nn.MaxPool2d(2, 2),
        nn.ReLU(True),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.MaxPool2d(2, 2),
        nn.ReLU(True),
    )
    s = summary(model, (1, 28, 28))
    assert [r.output_shape for r in s.rows] == [
        (1, 16, 14, 14),
        (1, 16, 7, 7),
        (1, 16, 7, 7),
        (1, 32, 7, 7),
        (1, 32, 3, 3),
        (1, 32, 3, 3),
    ]
    assert s.params == conv_params(16, 2, 1) + conv_params(32, 3, 16)


# --------------------------------------------------------------------------- receptive field


@pytest.mark.parametrize("layers", [1, 2, 3, 5])
def test_stacked_3x3_convs_see_1_plus_2l_pixels(layers):
    model = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(layers)])
    s = summary(model, (4, 16, 16))
    assert [r.receptive_field for r in s.rows] == [(1 + 2 * n,) * 2 for n in range(1, layers + 1)]
    assert all(r.jump == (1, 1) for r in s.rows)


def test_receptive_field_formula_with_stride_dilation_and_rectangles():
    model = nn.Sequential(
        nn.Conv2d(1, 2, (1, 7), stride=(1, 2)),  # r = (1, 7), j = (1, 2)
        nn.Conv2d(2, 2, 3, dilation=2),  # r += 2·2·j = (5, 15)
        nn.MaxPool2d(3, stride=2, dilation=1),  # r += 2·j = (7, 19), j = (2, 4)
        nn.AvgPool2d(2),  # r += 1·j = (9, 23), j = (4, 8)
    )
    s = summary(model, (1, 64, 64))
    r, j = (1, 1), (1, 1)
    expected = []
    layers = [((1, 7), (1, 2), 1), ((3, 3), (1, 1), 2), ((3, 3), (2, 2), 1), ((2, 2), (2, 2), 1)]
    for k, st, d in layers:
        r = tuple(ri + (ki - 1) * d * ji for ri, ki, ji in zip(r, k, j, strict=True))
        j = tuple(ji * si for ji, si in zip(j, st, strict=True))
        expected.append((r, j))
    assert [(row.receptive_field, row.jump) for row in s.rows] == expected
    assert expected[-1] == ((9, 23), (4, 8))
    assert "9x23" in str(s)


class Residual(nn.Module):
    """A basic block: two 3x3 convs and a strided 1x1 shortcut, added outside any module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(4, 8, 1, stride=2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.bn1(self.conv1(x)))) + self.short(x))


def test_branches_take_the_largest_field_and_meta_agrees_with_cpu():
    torch.manual_seed(0)
    model = Residual()
    s = summary(model, (4, 12, 12))
    assert [r.name for r in s.rows] == ["conv1", "bn1", "relu", "conv2", "short", "relu"]
    assert s.rows[3].receptive_field == (3 + 2 * 2,) * 2 == (7, 7)  # main path: 3, then +2·j
    assert s.rows[4].receptive_field == (1, 1) and s.rows[4].jump == (2, 2)  # the shortcut
    assert s.rows[5].receptive_field == (7, 7)  # after the add: the larger branch
    with torch.device("meta"):
        meta = Residual()
    m = summary(meta, (4, 12, 12), device="meta")
    assert [r.output_shape for r in m.rows] == [r.output_shape for r in s.rows]
    assert (m.macs, m.params, m.activation_bytes) == (s.macs, s.params, s.activation_bytes)
    assert [r.receptive_field for r in m.rows] == [r.receptive_field for r in s.rows]


def test_adaptive_pool_and_linear_on_tokens():
    model = nn.Sequential(nn.AdaptiveAvgPool2d((2, 3)))
    (row,) = summary(model, (1, 8, 9)).rows
    assert row.receptive_field == (4, 3) and row.jump == (4, 3)  # windows of 8/2 and 9/3
    odd = summary(nn.AdaptiveMaxPool2d(2), (1, 5, 5)).rows[0]
    assert odd.receptive_field == (3, 3) and odd.jump == (2.5, 2.5)  # windows [0,3) and [2,5)
    resample = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.PixelUnshuffle(2), nn.Upsample(scale_factor=2)
    )
    fields = [(r.receptive_field[0], r.jump[0]) for r in summary(resample, (1, 8, 8)).rows]
    assert fields == [(3, 1), (3 + 1, 2), (4, 1)]  # unshuffle: a 2x2/2 window; upsampling: j/2
    tokens = summary(nn.Linear(6, 5), (7, 6)).rows[0]  # (N, L, D): mixes channels only
    assert tokens.macs == 7 * 6 * 5 and tokens.receptive_field == (1,)


# --------------------------------------------------------------------------- MACs and memory


def test_macs_of_each_layer_kind_against_formulas_and_torch():
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, groups=4, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.ConvTranspose2d(16, 4, 3, stride=2, groups=2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )
    x = torch.randn(3, 8, 10, 10)
    s = summary(model, (8, 10, 10), batch_size=3)
    conv, bn, relu, tconv, pool, flat, fc = s.rows
    assert conv.macs == 3 * 16 * 8 * 8 * (8 // 4) * 9  # out elements · (Cin/groups) · k·k
    assert bn.macs == 3 * 16 * 8 * 8  # one per element
    assert relu.macs == pool.macs == flat.macs == 0
    assert tconv.macs == 3 * 16 * 8 * 8 * (4 // 2) * 9  # in elements · (Cout/groups) · k·k
    assert fc.macs == 3 * 256 * 10  # in · out per sample
    assert s.macs == conv.macs + bn.macs + tconv.macs + fc.macs
    assert 2 * (s.macs - bn.macs) == torch_flops(model.eval(), x)
    assert s.params == parameter_count(model)[0] == sum(p.numel() for p in model.parameters())


def test_memory_counts_new_tensors_only_and_scales_with_batch():
    def net(inplace: bool) -> nn.Module:
        layers = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace), nn.Flatten(), nn.Dropout()]
        return nn.Sequential(*layers, nn.Identity())

    one = summary(net(True), (3, 5, 5))
    conv = 4 * 5 * 5 * 4
    assert [r.memory for r in one.rows] == [conv] * 5  # every output has 100 floats
    assert [r.new_memory for r in one.rows] == [True, False, False, False, False]
    assert one.activation_bytes == 4 * 3 * 5 * 5 + conv
    copy = summary(net(False), (3, 5, 5))  # an out-of-place ReLU is a new tensor
    assert copy.activation_bytes == one.activation_bytes + conv
    four = summary(net(True), (3, 5, 5), batch_size=4)
    assert four.activation_bytes == 4 * one.activation_bytes and four.macs == 4 * one.macs
    assert four.rows[0].output_shape == (4, 4, 5, 5) and four.batch_size == 4


def test_memory_uses_the_dtype_size():
    model = nn.Conv2d(1, 2, 3).double()
    s = summary(model, (1, 6, 6))  # the dtype of the model's parameters
    assert s.rows[0].memory == 8 * 2 * 4 * 4 and s.input_bytes == 8 * 36
    assert s.param_bytes == 8 * parameter_count(model)[0]
    half = summary(nn.Conv2d(1, 2, 3).to(torch.bfloat16), (1, 6, 6))
    assert half.rows[0].memory == 2 * 2 * 4 * 4


def test_unknown_parametrised_layers_are_named_and_shared_ones_counted_once():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # a parameter of a non-leaf module
            self.lin = nn.Linear(4, 4)
            self.rnn = nn.GRU(4, 3, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(self.lin(self.lin(x)) * self.scale)[0]

    model = Net()
    model.lin.bias.requires_grad_(False)
    s = summary(model, (5, 4))
    names = [r.name for r in s.rows]
    assert names == ["lin", "lin", "rnn", ""]  # the root's own row comes last, when it returns
    assert s.rows[0].params == 20 and s.rows[1].params == 0  # the second call adds nothing
    assert s.rows[-1].params == 1 and s.rows[-1].type == "Net"
    assert s.params == sum(r.params for r in s.rows) == parameter_count(model)[0]
    assert s.trainable_params == s.params - 4 == parameter_count(model)[1]
    assert s.uncounted == ("GRU",) and "MACs not counted for: GRU" in str(s)
    assert s.rows[0].macs == s.rows[1].macs == 5 * 4 * 4
    assert s.rows[-1].new_memory is False  # the root returns the GRU's tensor: counted once


def test_modes_are_restored_and_hooks_removed():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout())
    model.train()
    model[2].eval()
    stats = model[1].running_mean.clone()
    summary(model, (1, 8, 8))
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, stats)  # ran in eval mode: no statistics update
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ConfigError):
        summary(model, (3, 8, 8))
    assert model.training and all(not m._forward_hooks for m in model.modules())


def test_the_spec_gives_the_input_size():
    model = models.create("convnet_small", num_classes=10, in_shape=(1, 8, 8))
    s = summary(model)
    assert s.input_shape == (1, 1, 8, 8) and s.params == parameter_count(model)[0]
    assert s.rows[-1].output_shape == (1, 10)


# --------------------------------------------------------------------------- errors


def test_bad_arguments_raise_config_errors_that_say_what_to_do():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        summary("vgg16", (3, 32, 32))
    with pytest.raises(ConfigError, match="pass input_size"):
        summary(conv)
    for bad in ["3,32,32", (3, -1, 32), (), (3, 32.0, 32), (3, True, 4)]:
        with pytest.raises(ConfigError, match="input_size must be"):
            summary(conv, bad)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        summary(conv, (3, 8, 8), batch_size=0)
    with pytest.raises(ConfigError, match="unknown device 'gpu-please'"):
        summary(conv, (3, 8, 8), device="gpu-please")
    with pytest.raises(ConfigError, match="dtype must be a floating"):
        summary(conv, (3, 8, 8), dtype=torch.int64)
    with torch.device("meta"):
        meta = nn.Conv2d(3, 4, 3)
    with pytest.raises(ConfigError, match="the model is on meta but device='cpu'; pass device="):
        summary(meta, (3, 8, 8))


def test_inputs_the_model_cannot_take_are_explained():
    model = nn.Sequential(nn.Conv2d(3, 8, 11, stride=4), nn.MaxPool2d(3, 2))
    with pytest.raises(ConfigError) as e:
        summary(model, (3, 8, 8))
    msg = str(e.value)
    assert "layer '0' (Conv2d)" in msg and "too small" in msg and "stem='cifar'" in msg
    with pytest.raises(ConfigError, match=r"layer '1' \(MaxPool2d\).*too small"):
        summary(model, (3, 11, 11))  # conv gives 1x1, too small for the 3x3 pool
    with pytest.raises(ConfigError, match=r"3x32x32 input failed in layer '0'.*in_shape"):
        summary(nn.Sequential(nn.Conv2d(1, 4, 3)), (3, 32, 32))  # wrong channel count


# --------------------------------------------------------------------------- the model zoo


def _zoo(name: str, **kwargs) -> nn.Module:
    import striate.models.alexnet  # noqa: F401  (registers the families until __init__ does)
    import striate.models.vgg  # noqa: F401

    with torch.device("meta"):
        return models.create(name, **kwargs)


def test_zoo_alexnet_2012_conv1_and_receptive_field():
    model = _zoo("alexnet_2012", num_classes=1000, in_shape=(3, 227, 227))
    s = summary(model, device="meta")
    conv1 = next(r for r in s.rows if r.type == "Conv2d")
    assert conv1.output_shape == (1, 96, 55, 55) and conv1.params == 34_944
    pools = [r for r in s.rows if r.type == "MaxPool2d"]
    assert [p.output_shape[2] for p in pools] == [27, 13, 6]  # lecture 9's AlexNet table
    assert pools[-1].receptive_field == (195, 195)  # Araujo et al. 2019: AlexNet, 195


def test_zoo_vgg16_matches_the_reference(vgg16_summary):
    model = _zoo("vgg16", num_classes=1000, in_shape=(3, 224, 224))
    s = summary(model, device="meta")
    assert s.params == 138_357_544
    assert s.macs == vgg16_summary.macs
    # the zoo's ReLUs may be out of place (torchvision's are in place): leave them out
    relus = sum(r.memory for r in s.rows if r.type == "ReLU" and r.new_memory)
    assert s.activation_bytes - relus == vgg16_summary.activation_bytes
    assert _lecture_rows(s)[-4].receptive_field == (212, 212)
