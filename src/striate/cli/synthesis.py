"""`striate stylize`: Gatys style transfer by default, and the fast network's `train-fast` and
`apply`; `striate texture` and `striate harmonize` are single commands registered in `main`."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from striate.cli import fast_style, stylize


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it names none of its commands, goes to `default`:
    ``striate stylize CONTENT STYLE`` runs ``striate stylize image CONTENT STYLE``."""

    default = "image"

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


stylize_app = typer.Typer(
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    help="Style transfer. `striate stylize CONTENT STYLE [STYLE...]` paints CONTENT in the style "
    "of the paintings by optimising its pixels (Gatys et al.; the `image` command); "
    "`train-fast` trains a feed-forward network for one or more styles (Johnson et al.) and "
    "`apply` runs it on images.",
)
stylize_app.command("image")(stylize.stylize)
stylize_app.command("train-fast")(fast_style.train_fast)
stylize_app.command("apply")(fast_style.apply)
