"""Neural network models: a registry of named architectures and the layers they share.

``models.create("convnet_small", num_classes=10, in_shape=(1, 8, 8))`` builds a model by name;
``models.create("alexnet")`` builds it for the input it is made for (`default_input`: torchvision's
3×224×224 and 1000 classes for an ImageNet architecture, 3×32×32 and 10 for a CIFAR one).
``models.available()`` lists the names (torchvision's spelling, with underscores; a hyphen is
read as an underscore) and ``models.describe(name)`` says what each is. A model built by
`create` carries ``model.spec``, from which `from_spec` rebuilds it.

Each architecture family is one file that registers its variants; importing it here makes the
names available.
"""

from striate.models import (  # noqa: F401  (registers the families)
    alexnet,
    convnet,
    densenet,
    efficientnet,
    fastnet,
    googlenet,
    lenet,
    mlp,
    nin,
    resnet,
    resnet_cifar,
    squeezenet,
    stn,
    vgg,
)
from striate.models.alexnet import AlexNet, AlexNet2012
from striate.models.convnet import ConvNet
from striate.models.densenet import DenseNet
from striate.models.efficientnet import EfficientNetLite
from striate.models.googlenet import GoogLeNet, googlenet_loss
from striate.models.init import INIT_SCHEMES, init_weights
from striate.models.io import ImageClassifier, load_model, pretrained
from striate.models.lenet import LeNet5
from striate.models.mlp import ACTIVATIONS, MLP
from striate.models.nin import NiN
from striate.models.registry import (
    available,
    create,
    default_input,
    describe,
    from_spec,
    register,
)
from striate.models.resnet import ResNet
from striate.models.resnet_cifar import CifarResNet, PreActResNet
from striate.models.squeezenet import SqueezeNet
from striate.models.stn import MnistCNN
from striate.models.summary import Summary, parameter_count, summary
from striate.models.vgg import VGG

__all__ = [
    "ACTIVATIONS",
    "MnistCNN",
    "NiN",
    "VGG",
    "AlexNet",
    "AlexNet2012",
    "CifarResNet",
    "INIT_SCHEMES",
    "ImageClassifier",
    "LeNet5",
    "MLP",
    "PreActResNet",
    "ResNet",
    "SqueezeNet",
    "Summary",
    "ConvNet",
    "DenseNet",
    "EfficientNetLite",
    "GoogLeNet",
    "available",
    "create",
    "default_input",
    "describe",
    "from_spec",
    "googlenet_loss",
    "init_weights",
    "load_model",
    "parameter_count",
    "pretrained",
    "register",
    "summary",
]
