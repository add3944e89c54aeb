"""Old names kept working for one release, each with a DeprecationWarning saying the new one."""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable
from typing import Any


def callable_package(name: str, function: Callable[..., Any], new: str) -> None:
    """Let the package `name` be called as its `function` was when the package's parent
    exported the function under the package's name (`striate.train.doctor(model, data)`):
    the call warns and forwards to `new`."""

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"calling {name}(...) is deprecated: {name} is a package; call {new}(...) "
                f"(the old call goes in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            return function(*args, **kwargs)

    sys.modules[name].__class__ = _CallablePackage
