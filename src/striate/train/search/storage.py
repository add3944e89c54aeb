"""Where a study lives, and Optuna itself: a journal file (one machine or a shared file system), a
database URL (sqlite:///s.db, postgresql://user:pass@host/db for a cluster) or memory; the
samplers and pruners; and the one-line error when the optional Optuna is not installed."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from striate.checks import one_of
from striate.errors import ConfigError, StriateError

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "percentile", "halving", "hyperband")
JOURNAL = "study.journal"
# the database driver's module -> the package that provides it
_DRIVERS = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
}


class MissingExtra(StriateError):
    """An optional dependency of striate is not installed."""


def require_optuna() -> Any:
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise MissingExtra("striate search needs optuna: pip install 'striate[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def is_url(storage: str | None) -> bool:
    return bool(storage) and "://" in str(storage)


def journal_path(storage: str | None, out: Path | None) -> Path | None:
    """The journal file a search uses (None for a database URL, or for memory)."""
    if is_url(storage):
        return None
    if storage:
        return Path(storage)
    return out / JOURNAL if out is not None else None


def describe_storage(storage: str | None, out: Path | None) -> str:
    """The storage for messages and search.json: the journal's path, or the URL with its password
    hidden, or "memory"."""
    if is_url(storage):
        from sqlalchemy.engine import make_url

        try:
            return make_url(storage).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a malformed URL is reported when it is opened
            return str(storage).split("@")[-1]
    path = journal_path(storage, out)
    return str(path) if path is not None else "memory"


def storage_key(storage: str | None, out: Path | None) -> str:
    """The storage as search.json records it: the folder's own journal as "study.journal" (the
    folder may move), another journal by its absolute path, a URL without its password."""
    path = journal_path(storage, out)
    if path is None:
        return describe_storage(storage, out)
    if out is not None and path.resolve() == (out / JOURNAL).resolve():
        return JOURNAL
    return str(path.resolve())


def open_storage(storage: str | None, out: Path | None) -> Any:
    """The Optuna storage: a database URL (sqlite:///x.db, postgresql://...) as an RDBStorage
    (sqlite waits up to 30 s for a lock held by another process); a path (or None: OUT/
    study.journal) is a journal file that processes on one machine (or a shared file system)
    share; with neither, memory."""
    require_optuna()
    from optuna.storages import InMemoryStorage, JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if is_url(storage):
        return _database(str(storage))
    path = journal_path(storage, out)
    if path is None:
        return InMemoryStorage()
    if path.is_dir():
        raise ConfigError(f"--storage {path} is a folder: give a journal file or a database URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _database(url: str) -> Any:
    """An RDBStorage for `url`. Processes that open a new database at the same moment race to
    create its tables ("table ... already exists"): the loser tries again."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage

    shown = describe_storage(url, None)
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    for attempt in range(10):
        try:
            return RDBStorage(url, engine_kwargs=kwargs)
        except ImportError as e:
            missing = getattr(e.__cause__, "name", None) or "the database driver"
            package = _DRIVERS.get(str(missing), "the driver named in the URL")
            raise ConfigError(
                f"--storage {shown}: the database driver {missing} is not installed: "
                f"pip install {package}"
            ) from None
        except sqlalchemy.exc.ArgumentError as e:
            raise ConfigError(
                f"--storage {shown}: not a database URL Optuna can use ({_first_line(e)}); write "
                f"sqlite:///FILE.db or postgresql://USER:PASSWORD@HOST/DATABASE"
            ) from None
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as e:
            text = _first_line(e)
            if attempt < 9 and ("already exists" in text or "UNIQUE" in text or "locked" in text):
                time.sleep(random.uniform(0.05, 0.5))
                continue
            hint = (
                "check that the file's folder exists and is writable"
                if url.startswith("sqlite")
                else "check the URL, that the server is running and that the database exists "
                "(createdb DATABASE)"
            )
            raise ConfigError(
                f"--storage {shown}: cannot open the database ({text}); {hint}"
            ) from None
    raise AssertionError("unreachable")


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def study_exists(storage: Any, name: str) -> bool:
    optuna = require_optuna()
    return name in optuna.get_all_study_names(storage)


def delete_studies(storage: Any, names: list[str]) -> None:
    """Delete the studies `names` that exist in `storage` (--overwrite)."""
    optuna = require_optuna()
    existing = set(optuna.get_all_study_names(storage))
    for name in names:
        if name in existing:
            optuna.delete_study(study_name=name, storage=storage)


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler `kind` (random or tpe) seeded with `seed`."""
    one_of("search", "sampler", kind, SAMPLERS)
    optuna = require_optuna()
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, constant_liar=True)


def make_pruner(kind: str | None) -> optuna.pruners.BasePruner:
    """The Optuna pruner `kind` (None: none)."""
    kind = one_of("search", "pruner", kind or "none", PRUNERS)
    p = require_optuna().pruners
    makers = {
        "none": p.NopPruner,
        "median": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "percentile": lambda: p.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1),
        "halving": p.SuccessiveHalvingPruner,
        "hyperband": p.HyperbandPruner,
    }
    return makers[kind]()


def trial_sampler_seed(seed: int, stage: int, number: int) -> int:
    """Each trial's sampler seed follows from the search seed, the stage and the trial number,
    so trials sample the same values whichever process runs them."""
    return (seed * 1_000_003 + stage * 10_007 + number) % (2**31 - 1)
