"""`striate visualize VIEW`: the model-level views of lecture 13 — first-layer filters, activation
maps, maximally activating patches, t-SNE/PCA embeddings, class visualisations, DeepDream and
feature inversion — each saved as a PNG in a fresh folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from striate.cli.inputs import PRETRAINED, load_classifier, read_images, split_model_and_images
from striate.cli.options import OVERWRITE
from striate.progress import output_console, phase

if TYPE_CHECKING:
    from matplotlib.figure import Figure

console = output_console()
app = typer.Typer(
    help="Model-level views: filters, activations, patches, neighbours, embedding, classes, "
    "dream, invert.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="[RUN]", help="Run folder (or its model/ folder).")
RUN_AND_IMAGE = typer.Argument(
    metavar="[RUN] IMAGE", help="A run folder then an image; with --pretrained, the image."
)
LAYER = typer.Option("--layer", help="Layer name, as model.named_modules() names it.")
OUT = typer.Option(
    "--out",
    show_default=False,
    help="Folder for the figure [default: runs/visualize/MODEL-VIEW, or -2, -3, ... when taken]; "
    "one that already holds results needs --overwrite.",
)
DEVICE = typer.Option("--device", help="auto, cpu, cuda or cuda:N.")
STEPS = typer.Option("--steps", help="Optimisation steps.")
SEED = typer.Option("--seed", help="Seed of the random start and jitter.")
DATA = typer.Option(
    "--data", help="Dataset name or path [default: the run's own data, as it split it]."
)
ROOT = typer.Option("--root", help="Folder holding the dataset's files.")
SPLIT = typer.Option("--split", help="Split to read [default: test].")
COUNT = typer.Option("--n", help="How many images of the split to use.")


def _model(run: Path | None, pretrained: str | None, device: str) -> Any:
    if run is None and not pretrained:
        from striate.errors import ConfigError

        raise ConfigError("give a run folder or --pretrained NAME")
    return load_classifier(run, pretrained, device)


def _save(figures: dict[str, Figure], view: str, run, pretrained, out, overwrite) -> None:
    """Each figure as NAME.png in a fresh runs/visualize/MODEL-VIEW (or --out)."""
    from striate._atomic import save_figure
    from striate.outputs import check_folder, clear_folder, default_folder

    label = pretrained or Path(run).resolve().name
    out = out or default_folder(Path("runs/visualize"), f"{label}-{view}")
    check_folder(out, overwrite)
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        save_figure(fig, out / f"{name}.png")
        console.print(f"{name}: {escape(str(out / f'{name}.png'))}")


def _image(paths: list[Path], pretrained: str | None, device: str):
    run, images = split_model_and_images(paths, pretrained, "visualize")
    if len(images) != 1:
        from striate.errors import ConfigError

        raise ConfigError(f"give one image, got {len(images)}")
    model = load_classifier(run, pretrained, device)
    return run, model, model.prepare(read_images(images))


def _dataset_images(model, run, pretrained, data, root, split, n):
    """Up to `n` images of the run's own split (or `data`), prepared for the model."""
    from striate.data import load_dataset
    from striate.errors import ConfigError
    from striate.train.evaluation import evaluation_data

    if run is not None:
        ds, _, _ = evaluation_data(run, data, root, split)
    elif data is not None:
        ds = load_dataset(data, split or "test", root)
    else:
        raise ConfigError(
            f"--pretrained {pretrained}: give --data NAME or PATH to read images from"
        )
    return model.prepare(ds.images[:n])


@app.command()
def filters(
    run: Annotated[Path | None, RUN] = None,
    pretrained: Annotated[str | None, PRETRAINED] = None,
    layer: Annotated[str | None, LAYER] = None,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """The first convolution's filters (or --layer's) as image tiles."""
    from striate.interpret.features import filters_figure

    model = _model(run, pretrained, "cpu")
    _save({"filters": filters_figure(model, layer)}, "filters", run, pretrained, out, overwrite)


@app.command()
def activations(
    paths: Annotated[list[Path], RUN_AND_IMAGE],
    layer: Annotated[str, typer.Option("--layer", help="Layer whose maps to show.")],
    pretrained: Annotated[str | None, PRETRAINED] = None,
    channels: int = typer.Option(64, "--channels", help="How many channels to show."),
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """The activation maps of one layer for one image."""
    from striate.interpret.features import activations as maps_of
    from striate.interpret.features import activations_figure

    run, model, x = _image(paths, pretrained, device)
    fig = activations_figure(maps_of(model, x, layer).cpu(), channels=channels, title=layer)
    _save({"activations": fig}, "activations", run, pretrained, out, overwrite)


@app.command()
def patches(
    layer: Annotated[str, typer.Option("--layer", help="Layer of the unit.")],
    channel: Annotated[int, typer.Option("--channel", help="Channel of the unit.")],
    run: Annotated[Path | None, RUN] = None,
    pretrained: Annotated[str | None, PRETRAINED] = None,
    data: Annotated[str | None, DATA] = None,
    root: Annotated[str | None, ROOT] = None,
    split: Annotated[str | None, SPLIT] = None,
    n: Annotated[int, COUNT] = 1000,
    k: int = typer.Option(9, "--k", help="How many patches."),
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """The image patches that activate one unit most, cut to its receptive field."""
    from striate.interpret.features import patches_figure, top_patches

    model = _model(run, pretrained, device)
    x = _dataset_images(model, run, pretrained, data, root, split, n)
    found = top_patches(model, x, layer, channel, k=k)
    fig = patches_figure(found, title=f"{layer} channel {channel}")
    _save({"patches": fig}, "patches", run, pretrained, out, overwrite)


@app.command()
def embedding(
    run: Annotated[Path | None, RUN] = None,
    pretrained: Annotated[str | None, PRETRAINED] = None,
    layer: Annotated[
        str | None,
        typer.Option("--layer", help="Layer to embed [default: the classifier's input]."),
    ] = None,
    method: str = typer.Option("tsne", "--method", help="tsne or pca."),
    data: Annotated[str | None, DATA] = None,
    root: Annotated[str | None, ROOT] = None,
    split: Annotated[str | None, SPLIT] = None,
    n: Annotated[int, COUNT] = 1000,
    grid: int = typer.Option(20, "--grid", help="Cells per side of the image grid."),
    seed: Annotated[int, SEED] = 0,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """A layer's features of a dataset in 2-D (t-SNE or PCA), drawn as a grid of the images."""
    from striate.interpret.embedding import embedding as embed
    from striate.interpret.embedding import embedding_grid
    from striate.interpret.figures import show_grid
    from striate.interpret.layers import features_at

    model = _model(run, pretrained, device)
    x = _dataset_images(model, run, pretrained, data, root, split, n)
    with phase(f"{method} of {len(x)} images"):
        coords = embed(features_at(model, x, layer), method=method, seed=seed)
    cells = embedding_grid(coords, x.cpu(), grid=(grid, grid))
    fig = show_grid(cells.image, title=f"{method} of {layer or 'the penultimate features'}")
    _save({"embedding": fig}, "embedding", run, pretrained, out, overwrite)


@app.command()
def classes(
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="Class to visualise (index or name); repeat for more."),
    ] = None,
    run: Annotated[Path | None, RUN] = None,
    pretrained: Annotated[str | None, PRETRAINED] = None,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Visualise a unit of this layer instead.")
    ] = None,
    channel: int = typer.Option(0, "--channel", help="With --layer: the unit's channel."),
    steps: Annotated[int, STEPS] = 200,
    seed: Annotated[int, SEED] = 0,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Images that maximise a class score, or with --layer a unit's mean activation (gradient
    ascent with Yosinski et al.'s regularisers and jitter)."""
    from striate.errors import ConfigError
    from striate.interpret.ascent import class_visualization, unit_visualization
    from striate.interpret.figures import show_grid

    if bool(target) == bool(layer):
        raise ConfigError("give the classes (--target CLASS ...) or a unit (--layer L --channel C)")
    model = _model(run, pretrained, device)
    if layer:
        images = unit_visualization(model, layer, channel, steps=steps, seed=seed)
        title = f"{layer} channel {channel}"
    else:
        images = class_visualization(model, target, steps=steps, seed=seed)
        title = ", ".join(target)
    fig = show_grid(images.cpu(), nrow=len(images), title=title)
    _save({"classes": fig}, "classes", run, pretrained, out, overwrite)


@app.command()
def neighbours(
    run: Annotated[Path | None, RUN] = None,
    pretrained: Annotated[str | None, PRETRAINED] = None,
    layer: Annotated[
        str | None,
        typer.Option("--layer", help="Layer of the features [default: the classifier's input]."),
    ] = None,
    queries: int = typer.Option(6, "--queries", help="How many query images (the first ones)."),
    k: int = typer.Option(6, "--k", help="Neighbours per query."),
    data: Annotated[str | None, DATA] = None,
    root: Annotated[str | None, ROOT] = None,
    split: Annotated[str | None, SPLIT] = None,
    n: Annotated[int, COUNT] = 1000,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Nearest neighbours of a few images among the others, in pixel space and in feature space
    (pixels.png, features.png): the lecture's comparison."""
    from striate.errors import ConfigError
    from striate.interpret.features import nearest_neighbours, neighbours_figure
    from striate.interpret.layers import features_at

    model = _model(run, pretrained, device)
    x = _dataset_images(model, run, pretrained, data, root, split, n)
    if not 0 < queries < len(x):
        raise ConfigError(f"--queries must be between 1 and {len(x) - 1} (the images read)")
    feats = features_at(model, x, layer)
    q, bank = x[:queries].cpu(), x[queries:].cpu()
    figures = {}
    for name, (fq, fb) in {
        "pixels": (q, bank),
        "features": (feats[:queries], feats[queries:]),
    }.items():
        found = nearest_neighbours(fq, fb, k=k)
        title = f"nearest in {'pixel' if name == 'pixels' else 'feature'} space"
        figures[name] = neighbours_figure(q, bank, found.indices, title=title)
    _save(figures, "neighbours", run, pretrained, out, overwrite)


@app.command()
def dream(
    paths: Annotated[list[Path], RUN_AND_IMAGE],
    layer: Annotated[str, typer.Option("--layer", help="Layer whose activations to amplify.")],
    pretrained: Annotated[str | None, PRETRAINED] = None,
    octaves: int = typer.Option(4, "--octaves", help="Scales processed, coarsest first."),
    steps: int = typer.Option(10, "--steps", help="Steps per octave."),
    seed: Annotated[int, SEED] = 0,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """DeepDream: amplify what a layer sees in an image, over octaves."""
    from striate.interpret.ascent import deep_dream
    from striate.interpret.figures import show_grid

    run, model, x = _image(paths, pretrained, device)
    dreamt = deep_dream(model, x, layer, octaves=octaves, steps=steps, seed=seed)
    fig = show_grid(torch_cat(x, dreamt), nrow=2, title=f"image | DeepDream at {layer}")
    _save({"dream": fig}, "dream", run, pretrained, out, overwrite)


@app.command()
def invert(
    paths: Annotated[list[Path], RUN_AND_IMAGE],
    layer: Annotated[
        list[str], typer.Option("--layer", help="Layer to invert; repeat for several.")
    ],
    pretrained: Annotated[str | None, PRETRAINED] = None,
    steps: Annotated[int, STEPS] = 200,
    seed: Annotated[int, SEED] = 0,
    out: Annotated[Path | None, OUT] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Feature inversion: images whose features at each layer match the image's."""
    from striate.interpret.figures import show_grid
    from striate.interpret.inversion import invert_features

    run, model, x = _image(paths, pretrained, device)
    made = [invert_features(model, x, name, steps=steps, seed=seed) for name in layer]
    fig = show_grid(torch_cat(x, *made), nrow=len(made) + 1, title=" | ".join(["image", *layer]))
    _save({"invert": fig}, "invert", run, pretrained, out, overwrite)


def torch_cat(*images):
    import torch

    return torch.cat([im.detach().cpu() for im in images])
