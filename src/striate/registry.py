"""Named things in one shape: a Registry maps names to objects, with a summary line each, so
listings and help text are generated from it and an unknown name gets a did-you-mean hint.

    SCHEDULES = Registry("schedule")
    @SCHEDULES.register("cosine", summary="half a cosine from lr to 0")
    def cosine(...): ...
    SCHEDULES.get("cosine"); SCHEDULES.names(); "cosine" in SCHEDULES

Used by models, schedules, optimisers, losses, augmentations, doctor checks and tasks. A
registry made with `normalize` looks every name up in its normal spelling (the models read a
hyphen as an underscore: "convnet-small" is "convnet_small").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from striate.checks import did_you_mean
from striate.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    summary: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, T], Generic[T]):
    """Names → objects of one kind (`kind` names them in messages: "unknown schedule …").

    A read-only mapping too (``reg[name]``, ``reg.items()``, ``reg.values()``), so a dict of
    named things becomes a registry without changing its readers; ``reg[name]`` raises KeyError,
    `get` the ConfigError with the list of names.
    """

    def __init__(self, kind: str, *, normalize: Callable[[str], str] | None = None) -> None:
        self.kind = kind
        self.normalize = normalize
        self._entries: dict[str, Entry[T]] = {}

    def _key(self, name: Any) -> Any:
        return self.normalize(name) if self.normalize and isinstance(name, str) else name

    def add(self, name: str, obj: T, summary: str = "", **meta: Any) -> T:
        name = self._key(name)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, obj, summary or _first_line(obj), meta)
        return obj

    def register(self, name: str, summary: str = "", **meta: Any) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, summary, **meta)

        return decorate

    def get(self, name: str, default: Any = _MISSING) -> T:  # type: ignore[override]
        """The object of `name`; unknown: `default` if given, else a ConfigError that suggests."""
        if default is not _MISSING and name not in self:
            return default
        return self.entry(name).obj

    __eq__ = object.__eq__  # a registry is itself, not its items (and stays hashable)
    __hash__ = object.__hash__

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        return self._entries[self._key(name)].obj

    def entry(self, name: str) -> Entry[T]:
        key = self._key(name)
        if not isinstance(name, str) or key not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; the {_plural(self.kind)} are "
                f"{', '.join(self._entries)}{did_you_mean(key, self._entries)}"
            )
        return self._entries[key]

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def help(self) -> str:
        """One line per name ('name: summary'), for --help and listings."""
        return "; ".join(f"{e.name}: {e.summary}" if e.summary else e.name for e in self.entries())

    def copy(self) -> Registry[T]:
        """A registry with the same entries, to add to without touching this one (tests)."""
        new: Registry[T] = Registry(self.kind, normalize=self.normalize)
        new._entries = dict(self._entries)
        return new

    def __contains__(self, name: object) -> bool:
        return self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


def _plural(kind: str) -> str:
    return kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")
