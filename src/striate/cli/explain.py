"""`striate explain METHOD (RUN | --pretrained NAME) IMAGE...`: what in each image the network's
decision rests on, as figures (image, map, overlay), with the top classes printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.inputs import PRETRAINED, load_classifier, read_images, split_model_and_images
from striate.cli.options import HELP, OVERWRITE, listing
from striate.progress import output_console, progress_bar

console = output_console()

METHODS = listing("striate.interpret.methods:ATTRIBUTIONS")


def explain(
    method: str = typer.Argument(..., metavar="METHOD", help=f"Attribution method: {METHODS}."),
    paths: list[Path] = typer.Argument(
        ...,
        metavar="[RUN] IMAGE...",
        help="A run folder (or its model/ folder), then image files; with --pretrained, images "
        "only.",
    ),
    pretrained: Annotated[str | None, PRETRAINED] = None,
    target: str | None = typer.Option(
        None,
        "--target",
        help="Class to explain, by index or name [default: each image's predicted class].",
    ),
    layer: str | None = typer.Option(
        None, "--layer", help="grad-cam: the convolution to look at [default: the last one]."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="integrated-gradients: points on the path [default: 50]."
    ),
    samples: int | None = typer.Option(
        None, "--samples", help="smooth-grad: noisy copies [default: 50]."
    ),
    noise: float | None = typer.Option(
        None,
        "--noise",
        help="smooth-grad: noise σ, a fraction of the pixel range [default: 0.15].",
    ),
    patch: int | None = typer.Option(
        None,
        "--patch",
        help="occlusion: side of the patch in pixels [default: an eighth of the image's side].",
    ),
    stride: int | None = typer.Option(
        None, "--stride", help="occlusion: step between patch positions [default: half the patch]."
    ),
    fill: float | None = typer.Option(
        None, "--fill", help="occlusion: the patch's value in the model's input [default: 0]."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="integrated-gradients, smooth-grad, occlusion: copies per forward pass "
        "(bounds memory) [default: the method's].",
    ),
    k: int = typer.Option(3, "--k", "--top", help="How many classes to print per image."),
    out: Path | None = typer.Option(
        None,
        "--out",
        show_default=False,
        help="Folder for the figures [default: runs/explain/MODEL-METHOD, or -2, -3, ... when "
        "taken]; one that already holds results needs --overwrite.",
    ),
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """Attribution maps (saliency, guided backprop, Grad-CAM, integrated gradients, SmoothGrad,
    occlusion) of each image, saved as image | map | overlay figures."""
    import torch
    from safetensors.torch import save_file

    from striate._atomic import atomic_path, save_figure
    from striate.errors import ConfigError
    from striate.interpret.figures import attribution_figure
    from striate.interpret.layers import resolve_targets
    from striate.interpret.methods import ATTRIBUTIONS, attribute
    from striate.outputs import check_folder, clear_folder, default_folder, slug

    name = ATTRIBUTIONS.entry(method).name
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    run, images = split_model_and_images(paths, pretrained, "explain")
    model = load_classifier(run, pretrained, device)
    label = pretrained or Path(run).resolve().name
    out = out or default_folder(Path("runs/explain"), f"{label}-{name}")
    check_folder(out, overwrite)
    batch = model.prepare(read_images(images))
    with torch.no_grad():
        probs = model(batch).float().softmax(1).cpu()
    targets = resolve_targets(target and [target] * len(images), probs, model.classes)
    options = dict(layer=layer, steps=steps, samples=samples, noise=noise, patch=patch,
                   stride=stride, fill=fill, internal_batch_size=batch_size)  # fmt: skip
    if name == "occlusion":  # the lecture's map: the drop of the class probability
        options["patch"] = patch = patch or max(1, min(batch.shape[-2:]) // 8)
        options["stride"] = stride or max(1, patch // 2)
        options["probability"] = True
    maps = []
    with progress_bar(name, len(images), "images") as advance:
        for i in range(len(images)):  # one image at a time: the methods batch their copies
            maps.append(attribute(name, model, batch[i : i + 1], targets[i : i + 1], options))
            advance(1)
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    stems = [slug(p.stem) for p in images]
    stems = [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]
    for i, (path, stem) in enumerate(zip(images, stems, strict=True)):
        top = probs[i].topk(min(k, probs.shape[1]))
        ranked = [
            (model.classes[j], float(p)) for p, j in zip(top.values, top.indices, strict=True)
        ]
        explained = model.classes[int(targets[i])]
        fig = attribution_figure(
            batch[i].cpu(), maps[i][0].cpu(), title=f"{name}: {explained}", top_classes=ranked
        )
        save_figure(fig, out / f"{stem}.png")
        shown = "  ".join(f"{escape(str(c))} {p:.1%}" for c, p in ranked)
        console.print(f"{escape(str(path))}: {shown}")
        console.print(f"  {name} of {escape(explained)}: {escape(str(out / f'{stem}.png'))}")
    with atomic_path(out / "attributions.safetensors") as tmp:
        save_file(
            {s: m[0].float().cpu().contiguous() for s, m in zip(stems, maps, strict=True)}, str(tmp)
        )
