"""The settings of a task's run (a dataclass saved in the run folder's config.json): checked at
the door, read back to resume or evaluate."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from striate.errors import ConfigError

C = TypeVar("C")


def known_settings(
    owner: str, config_type: type, settings: dict[str, Any], given: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`settings` when each names a field of `config_type` (other than the `given` ones, which
    the caller passes itself); else a ConfigError listing the settings there are."""
    names = {f.name for f in fields(config_type)} - set(given)
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(
            f"{owner}: unknown setting(s) {', '.join(unknown)}; the settings are "
            f"{', '.join(sorted(names))}"
        )
    return settings


def saved_settings(run: Path, config_type: type[C], made_by: str) -> C:
    """The settings `run` was made with (config.json's "config"); a ConfigError when `run` is not
    a run folder of this kind, naming the command (`made_by`) that makes one."""
    path = Path(run) / "config.json"
    try:
        return config_type(**json.loads(path.read_text())["config"])
    except FileNotFoundError as e:
        raise ConfigError(
            f"{run} is not a run folder (no config.json): give a folder made by {made_by}"
        ) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{path} is damaged or not the settings of a run made by {made_by} ({e})"
        ) from e
