"""Where a study lives: a database that cannot be opened is one line saying what to do."""

from __future__ import annotations

import sys

import pytest

from striate.errors import ConfigError
from striate.train.search import open_storage

pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # not installed (whether it is or not)
    with pytest.raises(ConfigError) as e:
        open_storage("postgresql://bob:secret@localhost/studies", None)
    assert str(e.value) == (
        "--storage postgresql://bob:***@localhost/studies: the database driver psycopg is not "
        "installed: pip install 'psycopg[binary]'"
    )
    with pytest.raises(ConfigError, match="cannot open the database .*folder exists"):
        open_storage(f"sqlite:///{tmp_path / 'missing' / 's.db'}", None)
    with pytest.raises(ConfigError, match="not a database URL"):
        open_storage("nosuchdb://x", None)
