"""`striate export`: a run's model (or pretrained weights) as ONNX, TorchScript or a torch.export
program, checked against eager PyTorch on real images before the file is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.inputs import load_classifier, read_images
from striate.progress import output_console

console = output_console()

FORMAT = typer.Option(
    "--format",
    "-f",
    metavar="FORMAT",
    help="onnx (run by onnxruntime), torchscript (trace or script, see --method) or exported "
    "(torch.export, a .pt2 archive).",
)
METHOD = typer.Option(
    "--method",
    metavar="METHOD",
    help="How TorchScript captures the model: trace (records one run; warns when Python "
    "decisions on tensor values get frozen) or script (compiles the source, keeps control flow).",
)
OUT = typer.Option(
    "--out",
    "-o",
    metavar="FILE",
    show_default=False,
    help="The file to write [default: RUN/model.onnx, RUN/model.pt or RUN/model.pt2; with "
    "--pretrained, exports/NAME.onnx ...]. Its folder must exist.",
)
IMAGES = typer.Option(
    "--images",
    metavar="IMAGE",
    show_default=False,
    help="Image files to check the export on (repeat the option) [default: 16 test images of "
    "the run's data, else of scikit-learn's digits].",
)
PRETRAINED = typer.Option(
    "--pretrained",
    metavar="NAME",
    show_default=False,
    help="Export a network with pretrained weights (efficientnet_lite0: ImageNet), not a run.",
)
OVERWRITE = typer.Option("--overwrite", help="Replace the --out file if it exists.")
TOLERANCE = typer.Option(
    "--tolerance",
    metavar="X",
    help="Largest allowed absolute difference of the logits from eager PyTorch.",
)


def export(
    run: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN",
            show_default=False,
            help="A run folder (or its model/ folder, or a model.json); none with --pretrained.",
        ),
    ] = None,
    export_format: Annotated[str, FORMAT] = "onnx",
    pretrained: Annotated[str | None, PRETRAINED] = None,
    out: Annotated[Path | None, OUT] = None,
    method: Annotated[str, METHOD] = "trace",
    images: Annotated[list[Path] | None, IMAGES] = None,
    tolerance: Annotated[float, TOLERANCE] = 1e-3,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Export a trained model for deployment, with its class names, normalisation and input size
    inside the file; it is written only if its outputs match eager PyTorch's on real images
    (batches of 1, 7 and 64) within --tolerance."""
    from striate.checks import one_of, positive_number
    from striate.errors import ConfigError
    from striate.export import SUFFIXES, export_model, sample_images
    from striate.export.checked import check_destination
    from striate.export.formats import check_format
    from striate.outputs import slug
    from striate.progress import phase

    export_format = check_format(export_format)
    one_of("export", "--method", method, ("trace", "script"))
    positive_number("export", "--tolerance", tolerance)
    if (run is None) == (pretrained is None):
        raise ConfigError(
            "export: give a run folder (striate export RUN) or --pretrained NAME, not both"
            if run is not None
            else "export: give a run folder (striate export RUN) or --pretrained NAME"
        )
    if out is None:
        suffix = SUFFIXES[export_format]
        out = (
            (run / f"model{suffix}")
            if run is not None
            else Path("exports") / (f"{slug(pretrained)}{suffix}")
        )
        if run is not None and run.is_file():
            out = run.parent / f"model{suffix}"  # RUN/model.json given
    classifier = load_classifier(run, pretrained, "cpu")  # a missing or damaged run: said first
    if pretrained and out == Path("exports") / f"{slug(pretrained)}{SUFFIXES[export_format]}":
        out.parent.mkdir(exist_ok=True)
    check_destination(out, overwrite)
    decoded = read_images(images) if images else None
    x, inputs = sample_images(classifier, run, decoded)
    source = f"pretrained {pretrained}" if pretrained else str(run)
    label = f"exporting to {export_format}" + (
        f" ({method})" if export_format == "torchscript" else ""
    )
    with phase(label):
        report = export_model(
            classifier,
            out,
            export_format,
            method=method,
            images=x,
            inputs=inputs,
            source=source,
            tolerance=tolerance,
            overwrite=overwrite,
        )
    console.print(escape(report.parity.line()))
    console.print(f"wrote {escape(str(report.path))} ({report.size_bytes / 1e6:.1f} MB)")
