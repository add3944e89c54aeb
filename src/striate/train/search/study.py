"""Running a search: each stage's trials on its Optuna study, shared by every process that runs
the same search (a journal file or a database), resumed where it stopped.

A trial (`trial.py`) trains the configuration with the sampled values and its own seed on the
same train/val split, reports each epoch's validation accuracy to Optuna and is aborted when its
loss exceeds 3x its first. Here: which trials count toward a stage's number, the trial left
running by a process that died (marked failed and queued again), the narrowed space of a later
stage, and `search` itself, which checks its arguments, the folder and the recorded definition
before anything is created.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from striate.checks import number, one_of, positive_int
from striate.data import ImageSet
from striate.errors import ConfigError
from striate.outputs import clear_folder
from striate.train.assembly import RunData, load_run_data
from striate.train.config import TrainConfig
from striate.train.search._values import short
from striate.train.search.definition import (
    check_definition,
    check_search_folder,
    default_study_name,
    make_definition,
    mismatch,
    record_definition,
    study_names,
    write_claim,
)
from striate.train.search.results import SearchResult, choose_best, sort_trials, write_results
from striate.train.search.space import Param, check_space, parse_space, space_as_dict
from striate.train.search.stages import Stage, edge_warnings, narrow, stage_study
from striate.train.search.storage import (
    SAMPLERS,
    delete_studies,
    describe_storage,
    journal_path,
    make_pruner,
    make_sampler,
    open_storage,
    require_optuna,
    storage_key,
    trial_sampler_seed,
)
from striate.train.search.trial import train_trial, trial_config

if TYPE_CHECKING:
    import optuna


class _Searcher:
    """One process's part of a search: the stages it runs, the studies they live in, the
    trials it trains, and the records of every trial of the search so far."""

    def __init__(
        self,
        config: TrainConfig,
        data: RunData,
        space: dict[str, Param],
        stages: list[Stage],
        storage: Any,
        study_name: str,
        sampler: str,
        pruner: str | None,
        seed: int,
        abort_factor: float,
        progress: bool,
        poll: float,
        stale_after: float,
    ) -> None:
        self.config, self.data, self.space, self.stages = config, data, space, stages
        self.storage, self.study_name = storage, study_name
        self.sampler, self.pruner, self.seed = sampler, pruner, seed
        self.abort_factor, self.progress = abort_factor, progress
        self.poll, self.stale_after = poll, stale_after
        self.host, self.token = socket.gethostname(), uuid.uuid4().hex
        self.subsets: dict[int | None, ImageSet] = {}
        self.running: set[int] = set()
        self.spaces: dict[str, dict[str, Param]] = {}
        self.studies: dict[int, optuna.Study] = {}
        self.records: list[dict[str, Any]] = []
        self.interrupted = False
        # every stage of the search as recorded: this call may run fewer (the coarse stage of a
        # coarse-fine search), and its results still show them all
        self.all_stages: list[dict[str, Any]] = [s.as_dict() for s in stages]
        if progress:
            self.console = Console(stderr=True, soft_wrap=True)

    def say(self, text: str) -> None:
        if self.progress:
            self.console.print(escape(text))

    # ---------------------------------------------------------------- studies

    def study(self, index: int) -> optuna.Study:
        if index in self.studies:
            return self.studies[index]
        optuna = require_optuna()
        # a named stage has its own study, whichever stages this call runs
        study = optuna.create_study(
            storage=self.storage,
            study_name=stage_study(self.study_name, self.stages[index].name),
            direction="maximize",
            sampler=make_sampler(self.sampler, self.seed),
            pruner=make_pruner(self.pruner),
            load_if_exists=True,
        )
        self.studies[index] = study
        return study

    def stage_space(self, index: int, study: optuna.Study) -> dict[str, Param]:
        """The first stage searches the given space; a later one the range narrowed around the
        best trials of the one before, fixed in the study once chosen."""
        if index == 0:
            space = self.space
        else:
            previous = self.spaces[self.stages[index - 1].name]
            before = [r for r in self.records if r["stage"] == self.stages[index - 1].name]
            space = narrow(previous, before, keep=self.stages[index].keep)
        if "space" not in study.user_attrs:
            study.set_user_attr("space", space_as_dict(space))
        saved = parse_space(study.user_attrs["space"])
        if index == 0 and saved != space:  # a study from before definitions were recorded
            raise mismatch(
                f"study {study.study_name!r}",
                [", ".join(f"{p.name}={p.spec()}" for p in saved.values()) + " searched before"],
            )
        return check_space(saved, self.config) if index else saved

    # ---------------------------------------------------------------- trials

    def counted(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """The trials that use up the stage's budget: running or finished, neither waiting nor
        discarded (left by a dead process, or over the budget)."""
        from optuna.trial import TrialState

        return [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and "discarded" not in t.user_attrs
        ]

    def fail_stale(self, study: optuna.Study) -> None:
        """Mark failed the trials left RUNNING by a process that is gone (on this machine: its
        pid is not alive; elsewhere: no heartbeat for `stale_after` seconds), and queue their
        parameters to run again (once, whichever process saw it first)."""
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t._trial_id in self.running or not self._stale(t):
                continue
            why = f"left running by process {t.user_attrs.get('pid')} on {t.user_attrs.get('host')}"
            if self._discard(study, t, why):
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
                self.say(f"trial {t.number} was {why}: marked failed, queued again")

    def _stale(self, t: optuna.trial.FrozenTrial) -> bool:
        attrs = t.user_attrs
        if attrs.get("host") == self.host and "pid" in attrs:
            pid = int(attrs["pid"])
            if pid == os.getpid():
                return True  # this process runs one trial at a time: not that one
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        beat = attrs.get("heartbeat")
        if beat is None and t.datetime_start is not None:
            beat = t.datetime_start.timestamp()
        return beat is not None and time.time() - float(beat) > self.stale_after

    def _discard(self, study: optuna.Study, t: optuna.trial.FrozenTrial, why: str) -> bool:
        """Mark a running trial failed and not counted; True for the process whose mark won."""
        from optuna.trial import TrialState

        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, "discarded", f"{why} [{self.token}]")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another process finished or marked it first
            return False
        now = storage.get_trial(t._trial_id)
        return now.user_attrs.get("discarded", "").endswith(f"[{self.token}]")

    def run_stage(self, index: int) -> None:
        stage = self.stages[index]
        study = self.study(index)
        space = self.spaces[stage.name] = self.stage_space(index, study)
        if index:
            self.say(
                f"{stage.name} stage: " + ", ".join(f"{n}={p.spec()}" for n, p in space.items())
            )
        while True:
            self.fail_stale(study)
            counted = self.counted(study)
            if len(counted) < stage.trials:
                self.run_trial(index, study, space)
                if self.interrupted:
                    return
                continue
            from optuna.trial import TrialState

            if any(t.state == TrialState.RUNNING for t in counted):
                time.sleep(self.poll)  # other processes' trials: the next stage needs them
                continue
            break
        self.records = self.collect()

    def run_trial(self, index: int, study: optuna.Study, space: dict[str, Param]) -> None:
        """Ask the study for a trial, train it (`train_trial`) and tell the study how it ended;
        a trial left by an interruption is marked failed and queued again."""
        from optuna.trial import TrialState

        stage = self.stages[index]
        trial = study.ask()
        self.running.add(trial._trial_id)
        try:
            study.sampler = make_sampler(
                self.sampler, trial_sampler_seed(self.seed, index, trial.number)
            )
            for k, v in (("pid", os.getpid()), ("host", self.host), ("heartbeat", time.time())):
                trial.set_user_attr(k, v)
            before = [t for t in self.counted(study) if t.number < trial.number]
            if len(before) >= stage.trials:  # another process took the last place
                frozen = study._storage.get_trial(trial._trial_id)
                self._discard(study, frozen, "over the stage's number of trials")
                return
            params = {name: p.suggest(trial) for name, p in space.items()}
            seed = self.config.seed + trial.number
            trial.set_user_attr("seed", seed)
            cfg = trial_config(self.config, params, stage, seed)
            trial.set_user_attr("config", {k: v for k, v in cfg.to_dict().items() if k != "out"})
            whole = self.data
            data = RunData(self.train_subset(index), whole.val, whole.test, whole.normalizer)
            try:
                outcome = train_trial(cfg, data, trial, self.abort_factor)
            except BaseException:
                self.interrupted = True
                raise
            if outcome.interrupted:
                self.interrupted = True
                return
            attrs = outcome.attrs()
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            state = TrialState[outcome.state.upper()]
            study.tell(trial, attrs["val_acc"] if state == TrialState.COMPLETE else None, state)
            self.running.discard(trial._trial_id)
            shown = "  ".join(f"{k}={short(v)}" for k, v in params.items())
            acc = f"val_acc {attrs['val_acc']:.2%}" if attrs["val_acc"] is not None else ""
            reason = outcome.reason
            self.say(
                f"{stage.name} #{trial.number}: {acc}{'  ' if acc else ''}{shown}  "
                f"({outcome.seconds:.1f} s){'  ' + reason if reason else ''}"
            )
        finally:
            if trial._trial_id in self.running:
                self.running.discard(trial._trial_id)
                frozen = study._storage.get_trial(trial._trial_id)
                if frozen.state == TrialState.RUNNING and self._discard(
                    study, frozen, "interrupted"
                ):
                    study.enqueue_trial(frozen.params, user_attrs={"retry_of": trial.number})

    def train_subset(self, index: int) -> ImageSet:
        """The training part, or the stratified subset of it that stage `index` trains on (the
        same for every trial of the stage)."""
        size = self.stages[index].train_size
        if size not in self.subsets:
            train = self.data.train
            sampled = size is not None and size < len(train)
            self.subsets[size] = train.sample(size, self.config.seed) if sampled else train
        return self.subsets[size]

    def _begun(self, index: int) -> optuna.Study | None:
        """The study of the search's stage `index` when it has begun (its space is fixed), and
        that space in self.spaces; None otherwise (nothing is created)."""
        name = self.all_stages[index]["name"]
        if index < len(self.stages) and index in self.studies:
            study = self.studies[index]
        else:
            optuna = require_optuna()
            try:
                study = optuna.load_study(
                    study_name=stage_study(self.study_name, name), storage=self.storage
                )
            except KeyError:
                return None
        if "space" not in study.user_attrs:
            return None
        if name not in self.spaces:
            self.spaces[name] = parse_space(study.user_attrs["space"])
        return study

    # ---------------------------------------------------------------- results

    def collect(self) -> list[dict[str, Any]]:
        """Every counted trial of every stage of the search begun so far (this call's and those
        recorded by earlier ones), as a record."""
        records = []
        for index, stage in enumerate(self.all_stages):
            study = self._begun(index)
            if study is None:
                continue
            for t in self.counted(study):
                a = t.user_attrs
                status = t.state.name.lower()
                if t.state.name == "PRUNED" and str(a.get("reason", "")).startswith("aborted"):
                    status = "aborted"
                records.append(
                    {
                        "stage": stage["name"],
                        "trial": t.number,
                        "state": status,
                        "val_acc": a.get("val_acc"),
                        "val_loss": a.get("val_loss"),
                        "train_loss": a.get("train_loss"),
                        "epochs": a.get("epochs_run"),
                        "seconds": a.get("seconds"),
                        "seed": a.get("seed"),
                        "params": dict(t.params),
                        "reason": a.get("reason"),
                        "config": a.get("config"),
                    }
                )
        return sort_trials(records)


def search(
    config: TrainConfig,
    space: Mapping[str, Any] | Iterable[str],
    *,
    trials: int | None = None,
    stages: Sequence[Stage] | None = None,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overwrite: bool = False,
    sampler: str = "random",
    pruner: str | None = "none",
    seed: int | None = None,
    abort_factor: float = 3.0,
    progress: bool = True,
    poll: float = 2.0,
    stale_after: float = 600.0,
) -> SearchResult:
    """Search `space` around `config`: `trials` trials, or the `stages` (e.g. `coarse_fine`).

    Each trial trains `config` with the sampled values and its own seed (config.seed + trial
    number) on the same train/val split, reports the validation accuracy of each epoch to
    Optuna (`pruner`: none, median, percentile, halving, hyperband) and stops early when the
    loss exceeds `abort_factor` × the initial loss (state "aborted"). The study (`study_name`,
    default DATA-MODEL-PARAMS, see `default_study_name`) lives in `storage` (default: the journal
    `OUT/study.journal`; a database URL such as sqlite:///s.db or postgresql://user:pass@host/db
    for several machines). The same search run again continues it; a different one (another
    space, settings or stages) under the same name or folder is refused, unless `overwrite`,
    which deletes the old study and the folder's results. With `out` the folder gets
    search.json, results.csv, results.json, val_acc.png and best.toml (the best trial's config).
    """
    start = time.perf_counter()
    require_optuna()
    if (trials is None) == (stages is None):
        raise ConfigError("search: give exactly one of trials (one stage) or stages")
    if stages is None:
        stages = [Stage("search", positive_int("search", "trials", trials))]
    stages = list(stages)
    if len({s.name for s in stages}) != len(stages):
        raise ConfigError(
            f"search: stage names must differ, got {', '.join(s.name for s in stages)}"
        )
    one_of("search", "sampler", sampler, SAMPLERS)
    make_pruner(pruner)
    abort_factor = number("search", "abort_factor", abort_factor, low=1, low_open=True)
    if config.val_size <= 0:
        raise ConfigError("a search chooses on validation accuracy: give val_size > 0")
    space = check_space(parse_space(space), config)
    study_name = study_name or default_study_name(config, space)
    seed = config.seed if seed is None else seed
    out_path = Path(out) if out is not None else None
    definition = make_definition(config, space, stages)
    where, key = describe_storage(storage, out_path), storage_key(storage, out_path)
    if out_path is not None:
        check_search_folder(out_path, study_name, key, overwrite)
    journal = journal_path(storage, out_path)
    in_folder = (
        journal is not None
        and out_path is not None
        and journal.parent.resolve() == out_path.resolve()
    )
    store = None
    if not overwrite and (journal is None or journal.exists()):
        store = open_storage(storage, out_path)
        check_definition(store, study_name, definition, where)

    data = load_run_data(config)  # before anything is created or deleted: it may fail
    if overwrite:
        if not in_folder:  # the studies live elsewhere: a journal outside the folder, a database
            store = open_storage(storage, out_path)
            saved = _saved_stages(store, study_name)
            delete_studies(store, study_names(study_name, saved, stages))
        if out_path is not None:
            clear_folder(out_path)  # with the folder's own journal
    if store is None:
        store = open_storage(storage, out_path)
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    root = require_optuna().create_study(
        storage=store, study_name=study_name, direction="maximize", load_if_exists=True
    )
    saved = record_definition(root, definition, where)
    if out_path is not None:
        write_claim(out_path, study_name, key, saved)

    s = _Searcher(
        config,
        data,
        space,
        stages,
        store,
        study_name,
        sampler,
        pruner,
        seed,
        abort_factor,
        progress,
        poll,
        stale_after,
    )
    s.all_stages = list(saved["stages"])
    try:
        for index in range(len(stages)):
            s.run_stage(index)
            if s.interrupted:
                break
    except KeyboardInterrupt:
        s.interrupted = True
    records = s.collect()
    warnings: list[str] = []
    for stage in s.all_stages:
        done = [r for r in records if r["stage"] == stage["name"] and r["state"] == "complete"]
        if done and stage["name"] in s.spaces:
            warnings += edge_warnings(s.spaces[stage["name"]], done[0]["params"], stage["name"])
    best, overall = choose_best(records, s.all_stages)
    result = SearchResult(
        records,
        best,
        {st["name"]: s.spaces[st["name"]] for st in s.all_stages if st["name"] in s.spaces},
        warnings,
        out_path,
        s.interrupted,
        time.perf_counter() - start,
        stages=list(s.all_stages),
        study=study_name,
        best_overall=overall,
    )
    if out_path is not None:
        write_results(result, out_path)
    return result


def _saved_stages(storage: Any, study: str) -> list[dict[str, Any]]:
    """The stages recorded in the search's study (none when it does not exist)."""
    optuna = require_optuna()
    if study not in optuna.get_all_study_names(storage):
        return []
    return (
        optuna.load_study(study_name=study, storage=storage)
        .user_attrs.get("definition", {})
        .get("stages", [])
    )
