"""What a search is, so that two searches never mix: its default name, its definition (the space,
the fixed training settings and the stages) recorded in its Optuna study, and the folder's
search.json that says which study its results belong to.

The definition lives in the study named after the search (user attribute "definition"), so the
comparison works for a journal file and a database alike: the same command run again (or in a
second terminal, or on another machine with the same --storage) continues the search, any other
is refused with what differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from striate._atomic import jsonable, write_json
from striate.errors import ConfigError
from striate.outputs import OutputExists, slug
from striate.train.config import TrainConfig
from striate.train.search.space import Param, parse_spec, space_as_dict
from striate.train.search.stages import Stage, describe_stage, stage_study
from striate.train.search.storage import require_optuna, study_exists

FORMAT = "striate-search/1"
FOLDER_FILE = "search.json"
# settings that say where things are or run, not what is searched: other machines differ there
_NOT_DEFINING = ("out", "device", "root")
# the results a search writes in its folder, beside search.json and the journal
_RESULTS = ("results.csv", "results.json", "val_acc.png", "best.toml")
_AFRESH = "give another --study or --out, or --overwrite to start afresh"


class SearchMismatch(ConfigError):
    """A study or folder holds another search than the one asked for."""


def default_study_name(config: TrainConfig, space: Mapping[str, Any] | Sequence[str]) -> str:
    """DATA-MODEL-PARAMS, e.g. `digits-convnet_small-lr-wd` (searched names sorted; a dotted
    name by its last part): unrelated searches get their own study and folder."""
    names = space.keys() if isinstance(space, Mapping) else [str(s).split("=")[0] for s in space]
    params = sorted({str(n).strip().replace("-", "_").rsplit(".", 1)[-1] for n in names})
    data = Path(config.data).stem or "data"
    return slug("-".join([data, config.model, *params]))


def make_definition(
    config: TrainConfig, space: Mapping[str, Param], stages: Sequence[Stage]
) -> dict[str, Any]:
    """The search's definition as JSON values: the (checked) space, the training settings every
    trial starts from, and the stages (their settings, not their numbers of trials)."""
    fixed = {k: v for k, v in config.to_dict().items() if k not in _NOT_DEFINING}
    value = {
        "space": space_as_dict(dict(sorted(space.items()))),
        "config": fixed,
        "stages": [s.as_dict() for s in stages],
    }
    return json.loads(json.dumps(value, default=jsonable))


def differences(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two definitions, each "what: before, now"; empty when the new one
    continues the saved one (its stages may be a prefix or an extension of the saved ones)."""
    out: list[str] = []
    old_space, new_space = saved.get("space", {}), new.get("space", {})
    for name in sorted(set(old_space) | set(new_space)):
        before, now = old_space.get(name), new_space.get(name)
        if before == now:
            continue
        if now is None:
            out.append(f"{name}={_spec(name, before)} searched before, not now")
        elif before is None:
            out.append(f"{name}={_spec(name, now)} searched now, not before")
        else:
            out.append(f"{name} range {_spec(name, before)} before, {_spec(name, now)} now")
    # a search recorded before an option was renamed (wd) continues under the new name
    aliases = getattr(TrainConfig, "ALIASES", {})
    old_cfg = {aliases.get(k, k): v for k, v in saved.get("config", {}).items()}
    new_cfg = new.get("config", {})
    for key in [k for k in new_cfg if k in old_cfg] + [k for k in old_cfg if k not in new_cfg]:
        if old_cfg.get(key) != new_cfg.get(key):
            out.append(f"{key} {old_cfg.get(key)!r} before, {new_cfg.get(key)!r} now")
    old_st, new_st = saved.get("stages", []), new.get("stages", [])
    common = min(len(old_st), len(new_st))
    if old_st[:common] != new_st[:common]:
        out.append(f"stages {_stages(old_st)} before, {_stages(new_st)} now")
    return out


def _spec(name: str, value: Any) -> str:
    try:
        return parse_spec(name, value).spec()
    except ConfigError:
        return str(value)


def _stages(stages: Sequence[Mapping[str, Any]]) -> str:
    return " then ".join(f"{s['name']} ({describe_stage(s)})" for s in stages) or "none"


def mismatch(what: str, diffs: Sequence[str]) -> SearchMismatch:
    shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
    return SearchMismatch(
        f"{what} holds another search ({shown}): run the same command to continue it, or {_AFRESH}"
    )


def check_definition(storage: Any, study: str, definition: Mapping[str, Any], where: str) -> None:
    """Refuse when the study `study` in `storage` was defined otherwise (nothing is created)."""
    if not study_exists(storage, study):
        return
    saved = require_optuna().load_study(study_name=study, storage=storage).user_attrs
    if "definition" in saved:
        diffs = differences(saved["definition"], definition)
        if diffs:
            raise mismatch(f"study {study!r} in {where}", diffs)


def record_definition(study: Any, definition: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Record `definition` in the search's study (the first process to come writes it; a later
    command whose stages extend the saved ones extends it) and return the saved one. Checked
    again here: two different commands may have started at the same moment."""
    attrs = study.user_attrs
    if "definition" not in attrs:
        study.set_user_attr("definition", dict(definition))
        attrs = study.user_attrs
    saved = attrs["definition"]
    diffs = differences(saved, definition)
    if diffs:
        raise mismatch(f"study {study.study_name!r} in {where}", diffs)
    if len(definition["stages"]) > len(saved["stages"]):
        study.set_user_attr("definition", dict(definition))
        saved = dict(definition)
    return saved


def study_names(study: str, *stage_lists: Sequence[Mapping[str, Any] | Stage]) -> list[str]:
    """The search's own study and those of its stages."""
    names = [study]
    for stages in stage_lists:
        for s in stages:
            name = stage_study(study, s["name"] if isinstance(s, Mapping) else s.name)
            if name not in names:
                names.append(name)
    return names


# --------------------------------------------------------------------------- the folder


def check_search_folder(out: Path, study: str, storage: str, overwrite: bool) -> None:
    """Refuse a folder that holds another study's results (its search.json names another study or
    storage), or results of a search that recorded no study, unless `overwrite`. Other files (a
    log the shell redirects there, notes) are left alone: a search writes only its own."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: choose another --out")
    if overwrite or not out.is_dir():
        return
    claim = read_claim(out)
    if claim is not None:
        if claim.get("study") != study or claim.get("storage") != storage:
            raise SearchMismatch(
                f"{out} holds the results of study {claim.get('study')!r} in "
                f"{claim.get('storage')}, not of {study!r} in {storage}: choose another --out, "
                f"or --overwrite to replace them"
            )
        return
    unclaimed = [name for name in _RESULTS if (out / name).exists()]
    if unclaimed:
        raise OutputExists(
            f"{out} already holds search results ({', '.join(unclaimed)}) with no {FOLDER_FILE} "
            f"to say which search made them: choose another --out, or --overwrite to replace them"
        )


def read_claim(out: Path) -> dict[str, Any] | None:
    path = out / FOLDER_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"study": "?", "storage": f"an unreadable {path}"}
    return value if isinstance(value, dict) else {"study": "?", "storage": f"an unreadable {path}"}


def write_claim(out: Path, study: str, storage: str, definition: Mapping[str, Any]) -> None:
    """search.json: which study (in which storage) the folder's results belong to, and its
    definition (written atomically; every process writes the same)."""
    value = {"format": FORMAT, "study": study, "storage": storage, "definition": definition}
    write_json(out / FOLDER_FILE, value)
