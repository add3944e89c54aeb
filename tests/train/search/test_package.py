"""The package's names, and its old name `striate.train.hpsearch`, importable for one release
with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import striate.train
from striate.train.search import __all__ as names


def test_the_old_name_warns_and_forwards(monkeypatch):
    package = importlib.import_module("striate.train.search")
    monkeypatch.delitem(sys.modules, "striate.train.hpsearch", raising=False)
    with pytest.deprecated_call(match="moved to striate.train.search"):
        old = importlib.import_module("striate.train.hpsearch")
    assert sorted(old.__all__) == sorted(names)
    for name in names:
        assert getattr(old, name) is getattr(package, name)


def test_striate_train_exports_the_search():
    package = importlib.import_module("striate.train.search")
    for name in ("SearchResult", "Stage", "coarse_fine", "parse_space"):
        assert getattr(striate.train, name) is getattr(package, name)
    # the package, not the function (a package is not named after a function beside it);
    # calling the package as the function was called still works for one release
    assert striate.train.search is package
    with (
        pytest.deprecated_call(match=r"call striate.train.search.search\(\.\.\.\)"),
        pytest.raises(TypeError),
    ):
        striate.train.search()
