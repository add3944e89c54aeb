"""The `striate` command line: one Typer module per command group."""
