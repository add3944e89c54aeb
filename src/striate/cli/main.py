"""The `striate` entry point: registers the command groups and turns user errors into one line."""

from __future__ import annotations

import sys

import typer

from striate import __version__
from striate.cli import (
    assembly,
    caption,
    classic,
    datasets,
    detect,
    doctor,
    ensemble,
    env,
    explain,
    export,
    generate,
    geometry,
    grasp,
    harmonize,
    models,
    rl,
    scenes,
    scratch,
    search,
    segment,
    serve,
    sgds,
    spatial,
    synthesis,
    text,
    texture,
    train,
    visualize,
)
from striate.errors import StriateError


def _conventional_usage() -> None:
    """Usage lines name arguments as man pages and click do (`RUN IMAGE...`, `[MEMBERS]...`);
    typer 0.2x writes required ones as `{run} {images}...`."""
    argument = getattr(getattr(typer, "core", None), "TyperArgument", None)
    if argument is None or not hasattr(argument, "get_usage_pieces"):
        return

    def usage(self, ctx) -> list[str]:  # noqa: ARG001
        name = (self.metavar or self.name or "").upper()
        repeated = self.nargs != 1 and not name.endswith("...")
        name = name.removesuffix("...")
        name = name if self.required else f"[{name}]"
        return [name + ("..." if repeated or (self.metavar or "").endswith("...") else "")]

    argument.get_usage_pieces = usage


_conventional_usage()

app = typer.Typer(
    name="striate",
    help="Deep learning for computer vision: datasets, classical baselines, networks, training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: 30]" is text, not markup
)
app.add_typer(datasets.app, name="datasets")
app.add_typer(classic.app, name="classic")
app.add_typer(models.app, name="models")
app.add_typer(visualize.app, name="visualize")
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("predict")(train.predict)
app.command("lr-find")(train.lr_find)
app.command("doctor")(doctor.doctor)
app.command("env")(env.env)
app.command("init-experiment")(doctor.init_experiment)
app.command("search")(search.search)
app.command("ensemble")(ensemble.ensemble)
app.command("explain")(explain.explain)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.add_typer(synthesis.stylize_app, name="stylize")
app.command("texture")(texture.texture)
app.command("harmonize")(harmonize.harmonize)
detect.app.command("scenes")(scenes.scenes)
app.add_typer(detect.app, name="detect")
app.add_typer(segment.app, name="segment")
app.add_typer(spatial.app, name="spatial")
app.add_typer(text.app, name="text")
app.add_typer(caption.app, name="caption")
app.add_typer(generate.app, name="generate")
app.add_typer(rl.app, name="rl")
app.add_typer(geometry.app, name="geometry")
app.add_typer(grasp.app, name="grasp")
app.add_typer(assembly.app, name="assembly")
app.add_typer(scratch.app, name="scratch")
app.add_typer(sgds.app, name="sgds")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"striate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """striate: the image-classification pipeline and the vision tasks built on it."""


def _is_usage_error(e: Exception) -> bool:
    """A bad option or value. Recent typer releases carry their own copy of click (its errors
    derive from typer.TyperException, and click itself may not be installed); older ones raise
    click's ClickException."""
    if hasattr(typer, "TyperException"):
        kinds: tuple[type, ...] = (typer.TyperException,)
    else:
        import click

        kinds = (click.ClickException,)
    return isinstance(e, kinds) and hasattr(e, "show") and hasattr(e, "exit_code")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a StriateError prints `error: <message>` and exits with status 2."""
    from striate.progress import warnings_as_lines

    try:
        with warnings_as_lines():
            code = app(args=argv, prog_name="striate", standalone_mode=False)
        if isinstance(code, int):  # a command's typer.Exit(code) arrives as a return value
            return code
    except StriateError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except Exception as e:  # usage errors arrive here in non-standalone mode
        if _is_usage_error(e):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
