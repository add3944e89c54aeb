"""Hyper-parameter search: random (or TPE) search in stages, coarse to fine, on an Optuna study.

    space = parse_space(["lr=log:1e-4:1", "wd=log:1e-6:1e-2", "dropout=uniform:0:0.5"])
    result = search(TrainConfig(data="digits"), space, stages=coarse_fine(20, 8), out="runs/s")
    result.best["config"]                      # the TrainConfig settings of the best trial

The practice of the reference lectures (cs231n lecture 6, "coarse -> fine cross-validation in
stages"): sample at random, in log space for scale parameters such as the learning rate and
weight decay; a coarse stage of many short trials (few epochs, maybe a subset of the training
images), then a fine stage of fewer, longer trials in a range narrowed around the best coarse
ones (`narrow`); stop a trial early when its loss exceeds 3× its initial loss ("if the cost is
ever > 3 * original cost, break out early"); choose on validation accuracy; and check that the
best value does not lie at the edge of a searched range (`edge_warnings`): the optimum may lie
beyond it.

A search is named after its data, model and searched parameters (`default_study_name`, e.g.
`digits-convnet_small-lr-wd`). Each stage is an Optuna study (`NAME-coarse`, `NAME-fine`; `NAME`
for the one stage of `trials`) stored in a journal file (`OUT/study.journal`) or a database URL,
so several processes (or machines) that point at it share the trials, and a search run again
continues where it stopped: finished trials count toward the requested number, a trial left
running by a process that died is marked failed and queued to run again. The study `NAME` records
the search's definition (space, fixed settings, stages): another search under the same name or in
the same folder is refused (`definition`).

Optuna is an optional dependency (`pip install 'striate[search]'`): nothing here imports it
until a search runs.

Modules: `space` (Param, parsing, the check against TrainConfig), `stages` (Stage, coarse_fine,
narrow, edge_warnings), `trial` (one trial: its config, its assembly by the run's `prepare`,
LossAbort, ReportToTrial), `study` (`search`: the stages' trials on their studies, resumed),
`storage` (journal or database, samplers, pruners, the missing-Optuna error),
`definition` (names, recorded definitions, the folder's search.json), `results` (SearchResult,
the best trial, the files).
"""

from striate._deprecation import callable_package
from striate.train.search.definition import (
    SearchMismatch,
    default_study_name,
    differences,
    make_definition,
)
from striate.train.search.results import (
    SearchResult,
    best_summary,
    choose_best,
    plot_search,
    results_csv,
    sort_trials,
    to_toml,
    write_results,
)
from striate.train.search.space import (
    FIXED_FIELDS,
    KINDS,
    Param,
    apply_params,
    check_space,
    make_param,
    parse_param,
    parse_space,
    parse_spec,
)
from striate.train.search.stages import Stage, coarse_fine, edge_warnings, narrow
from striate.train.search.storage import (
    PRUNERS,
    SAMPLERS,
    MissingExtra,
    make_pruner,
    make_sampler,
    open_storage,
    require_optuna,
)
from striate.train.search.study import search
from striate.train.search.trial import LossAbort, ReportToTrial

__all__ = [
    "FIXED_FIELDS",
    "KINDS",
    "PRUNERS",
    "SAMPLERS",
    "LossAbort",
    "MissingExtra",
    "Param",
    "ReportToTrial",
    "SearchMismatch",
    "SearchResult",
    "Stage",
    "apply_params",
    "best_summary",
    "check_space",
    "choose_best",
    "coarse_fine",
    "default_study_name",
    "differences",
    "edge_warnings",
    "make_definition",
    "make_param",
    "make_pruner",
    "make_sampler",
    "narrow",
    "open_storage",
    "parse_param",
    "parse_space",
    "parse_spec",
    "plot_search",
    "require_optuna",
    "results_csv",
    "search",
    "sort_trials",
    "to_toml",
    "write_results",
]

callable_package(__name__, search, "striate.train.search.search")
