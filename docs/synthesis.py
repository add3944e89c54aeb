"""The synthesis gallery: style transfer, fast style transfer, harmonization and textures.

    make synthesis-gallery      # or: .venv/bin/python docs/synthesis.py [--quick]

writes docs/synthesis/*.png and docs/synthesis.md. The features are VGG-16's (the HED weights of
../shared/data/weights/vgg16-hed.safetensors), the paintings come from ../shared/data/images and
the photographs from scikit-image and scikit-learn. It also trains a small fast-style network
(runs/synthesis/fast-starry-scream). About 20 minutes on 2 CPU cores at the small sizes and step
counts below, chosen for a CPU (`--quick`: a few minutes, for checking that it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from striate.interpret.figures import to_hwc  # noqa: E402
from striate.synthesis.efros_leung import efros_leung  # noqa: E402
from striate.synthesis.examples import harmonization_examples  # noqa: E402
from striate.synthesis.fast import apply_fast_style, load_fast_style, train_fast_style  # noqa: E402
from striate.synthesis.gatys import stylize, synthesize_texture  # noqa: E402
from striate.synthesis.harmonize import harmonize  # noqa: E402
from striate.synthesis.images import photograph, read_image, resize_to  # noqa: E402

SHARED = Path(os.environ.get("STRIATE_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


def row(images: list[torch.Tensor], titles: list[str], out: Path, name: str) -> str:
    """One row of images with a title over each, saved as `name`."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.4), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles, strict=True):
        ax.imshow(to_hwc(image))
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / name, dpi=90, bbox_inches="tight")
    plt.close(fig)
    print(f"  wrote {out / name}", flush=True)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "synthesis")
    parser.add_argument("--quick", action="store_true", help="few steps: check that it runs")
    args = parser.parse_args()
    out, quick = args.out, args.quick
    out.mkdir(parents=True, exist_ok=True)
    steps = (lambda n: max(3, n // 25)) if quick else (lambda n: n)
    px = (lambda n: n // 2) if quick else (lambda n: n)
    paintings = {
        name: read_image(SHARED / "images" / f"{name}.jpg") for name in ("starry_night", "scream")
    }
    sections: list[tuple[str, str, list[str]]] = []
    start = time.perf_counter()

    print("style transfer", flush=True)
    pairs = [("chelsea", "starry_night"), ("astronaut", "scream"), ("coffee", "starry_night")]
    for content_name, style_name in pairs:
        content = resize_to(photograph(content_name), px(192))
        result = stylize(content, [paintings[style_name]], steps=steps(150), progress=True)
        sections.append(
            (
                f"{content_name} in the style of {style_name}",
                "Gatys et al. (2016): L-BFGS on the pixels, content relu4_2, style "
                "relu1_1–relu5_1.",
                [
                    row(
                        [content, resize_to(paintings[style_name], px(192)), result.image],
                        ["content", "style", "result"],
                        out,
                        f"stylize-{content_name}-{style_name}.png",
                    )
                ],
            )
        )

    content = resize_to(photograph("chelsea"), px(128))
    starry = paintings["starry_night"]

    print("content/style weight sweep", flush=True)
    ratios = [0.3, 1.0, 3.0, 10.0, 30.0]
    swept = [
        stylize(content, [starry], style_weight=r, steps=steps(100), progress=True).image
        for r in ratios
    ]
    sections.append(
        (
            "Content/style weight sweep",
            "The same pair with the style weight raised about threefold at each step (content "
            "weight 1; the default is 3): the lecture's trade-off between content and style.",
            [row(swept, [f"style weight {r:g}" for r in ratios], out, "sweep-weight.png")],
        )
    )

    print("style size sweep", flush=True)
    scales = [0.5, 1.0, 2.0]
    sized = [
        stylize(content, [starry], style_scale=s, steps=steps(100), progress=True).image
        for s in scales
    ]
    sections.append(
        (
            "Style size sweep",
            "The style image resized before its Gram matrices are taken: larger style images "
            "give larger brush strokes.",
            [row(sized, [f"style scale {s:g}" for s in scales], out, "sweep-size.png")],
        )
    )

    print("blended styles and colour preservation", flush=True)
    scream = paintings["scream"]
    blended = stylize(content, [starry, scream], style_weights=[0.5, 0.5], steps=steps(100))
    coloured = stylize(content, [starry], preserve_colour=True, steps=steps(100))
    sections.append(
        (
            "Two styles blended, and colour preserved",
            "Starry Night and The Scream blended half and half on their Gram matrices; then "
            "Starry Night transferred on the luminance only (Gatys et al. 2016b), keeping the "
            "photograph's colours.",
            [
                row(
                    [content, blended.image, coloured.image],
                    ["content", "starry night + scream", "colour preserved"],
                    out,
                    "blend-colour.png",
                )
            ],
        )
    )

    print("fast style transfer", flush=True)
    run = Path("runs/synthesis/fast-starry-scream" + ("-quick" if quick else ""))
    if not (run / "model.safetensors").is_file():
        train_fast_style(
            [SHARED / "images" / "starry_night.jpg", SHARED / "images" / "scream.jpg"], run,
            overwrite=True, size=96, style_size=192, steps=steps(800), every=steps(200),
            batch_size=2, width=16, content_weight=2.0, precision="fp32",
        )  # fmt: skip
    net = load_fast_style(run / "model.safetensors")
    names = ("chelsea", "coffee", "astronaut")
    held_out = [resize_to(photograph(n), px(192)) for n in names]
    fast = [apply_fast_style(net, image, style) for style in (0, [0.5, 0.5], 1)
            for image in held_out]  # fmt: skip
    sections.append(
        (
            "Fast style transfer on held-out photographs",
            "Johnson et al. (2016)'s network with conditional instance normalisation "
            "(Dumoulin et al. 2017): one network for Starry Night and The Scream, trained for "
            f"{steps(800)} steps of 96-px crops of CIFAR-10 and the package photographs (minutes "
            "on a CPU, where Johnson trains 40k steps of 256 px: expect stripes); these three "
            "photographs were never seen in training. Rows: Starry Night, the two styles mixed "
            "half and half on their γ, β, The Scream.",
            [
                row(held_out, list(names), out, "fast-photographs.png"),
                *[
                    row(fast[3 * k : 3 * k + 3], [label] * 3, out, f"fast-{slug}.png")
                    for k, (label, slug) in enumerate(
                        [
                            ("starry night", "starry"),
                            ("blend 0.5/0.5", "blend"),
                            ("scream", "scream"),
                        ]
                    )
                ],
            ],
        )
    )

    print("harmonization", flush=True)
    quality = {}
    images = []
    for example in harmonization_examples(size=px(256)):
        done = harmonize(
            example.painting, example.pasted, example.mask, size=px(256),
            steps_pass1=steps(80), steps_pass2=steps(80), progress=True,
        )  # fmt: skip
        quality[example.name] = done.quality
        images.append(
            row(
                [done.naive, done.pass1, done.final],
                ["naive paste", "pass 1", "pass 2 (final, blended)"],
                out,
                f"harmonize-{example.name}.png",
            )
        )
    sections.append(
        (
            "Painterly harmonization",
            "Luan et al. (2018), both passes. Style (Gram) distance between the pasted region and "
            "the painting around it, lower is better:\n\n" + quality_table(quality),
            images,
        )
    )

    print("textures", flush=True)
    sources = {n: resize_to(photograph(n), px(128)) for n in ("brick", "grass", "gravel")}
    neural = [
        synthesize_texture(s, px(128), steps=steps(150), progress=True).image
        for s in sources.values()
    ]
    efros = [efros_leung(resize_to(s, px(64)), px(96), window=11) for s in sources.values()]
    sections.append(
        (
            "Texture synthesis",
            "Each source, Gatys et al. (2015)'s Gram-matrix texture from noise, and Efros & "
            "Leung (1999)'s pixel-by-pixel non-parametric sampling.",
            [
                row(
                    [source, n, e],
                    [name, "neural (Gatys 2015)", "non-parametric (Efros & Leung)"],
                    out,
                    f"texture-{name}.png",
                )
                for (name, source), n, e in zip(sources.items(), neural, efros, strict=True)
            ],
        )
    )

    seconds = time.perf_counter() - start
    (out / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    page = out.parent / "synthesis.md"
    lines = [
        "# Gallery: images made by optimisation",
        "",
        f"Made by `make synthesis-gallery` (docs/synthesis.py) in {seconds:.0f} s on this "
        "machine's CPU.",
    ]
    for title, text, names in sections:
        lines += ["", f"## {title}", "", text, ""]
        lines += [f"![{title}]({out.name}/{name})" for name in names]
    page.write_text("\n".join(lines) + "\n")
    print(f"wrote {page} in {seconds:.0f} s")


def quality_table(quality: dict[str, dict[str, float]]) -> str:
    stages = list(next(iter(quality.values())))
    head = "| example | " + " | ".join(stages) + " |"
    rule = "| --- |" + " ---: |" * len(stages)
    body = [
        f"| {name} | " + " | ".join(f"{q[s]:.4g}" for s in stages) + " |"
        for name, q in quality.items()
    ]
    return "\n".join([head, rule, *body])


if __name__ == "__main__":
    main()
