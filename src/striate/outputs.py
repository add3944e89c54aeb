"""Output folders: a fresh default per command, and no silent overwrite of earlier results.

    out = out_option or default_folder(Path("runs/train"), "digits-convnet_small")
    check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    ...                                  # load data, build the model: anything that can fail
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)

A default folder is never one that holds files: `runs/train/digits-mlp` is followed by
`…-2`, `…-3`. A folder the user names that already holds files is refused unless they pass
`--overwrite`, in which case its contents are removed only when the new results are about to be
written (`clear_folder`), after every option has been checked.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from striate.errors import ConfigError


class OutputExists(ConfigError):
    """The output folder holds earlier results and --overwrite was not given."""


def slug(text: str) -> str:
    """A name safe for a folder: runs of other characters become '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "out"


def is_empty(folder: Path) -> bool:
    """Whether `folder` is missing or holds nothing."""
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def default_folder(base: Path, name: str) -> Path:
    """base/name, or base/name-2, -3, … : the first that is missing or empty."""
    name = slug(name)
    out, n = base / name, 2
    while not is_empty(out):
        out = base / f"{name}-{n}"
        n += 1
    return out


def check_folder(out: Path, overwrite: bool, *, hint: str = "") -> None:
    """Refuse an output folder that holds files unless `overwrite`; `hint` adds another way out
    (e.g. "or --resume RUN to continue it")."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: choose another --out")
    if not overwrite and not is_empty(out):
        extra = f" {hint}" if hint else ""
        raise OutputExists(
            f"{out} already holds results: pass --overwrite to replace them{extra}, "
            f"or choose another --out"
        )


def clear_folder(out: Path) -> Path:
    """Empty `out` (when it holds files) and make sure it exists; call it after the options are
    checked and just before the new results are written."""
    if out.is_dir():
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
