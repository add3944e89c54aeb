"""The doctor's checks, registered once: the list, the `--checks` help and the selection are
generated from `DOCTOR_CHECKS`.

    @check("overfit", "20 examples fitted with regularisation off", order=30)
    def check_overfit(ctx: Ctx) -> Check: ...

A check is a function of the `Ctx` returning one `Check` of its name. `order` is its place in the
report; checks of one `group` (the three activation checks) can be selected by the group's name
and run together, sharing one measurement; `aliases` are other spellings `--checks` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from striate.registry import Entry, Registry
from striate.train.doctor.checks.context import Ctx
from striate.train.doctor.report import Check

CheckFn = Callable[[Ctx], Check]

DOCTOR_CHECKS: Registry[CheckFn] = Registry("doctor check")


def check(
    name: str,
    summary: str,
    *,
    order: int,
    group: str | None = None,
    aliases: Sequence[str] = (),
) -> Callable[[CheckFn], CheckFn]:
    """Register a check under `name` (decorator)."""
    return DOCTOR_CHECKS.register(name, summary, order=order, group=group, aliases=tuple(aliases))


def ordered() -> list[Entry[CheckFn]]:
    """The registered checks in report order."""
    return sorted(DOCTOR_CHECKS.entries(), key=lambda e: e.meta["order"])


def groups() -> dict[str, list[str]]:
    """Group name → its checks, in report order."""
    out: dict[str, list[str]] = {}
    for e in ordered():
        if e.meta["group"] is not None:
            out.setdefault(e.meta["group"], []).append(e.name)
    return out


def aliases() -> dict[str, str]:
    """Other spelling → check name."""
    return {a: e.name for e in DOCTOR_CHECKS.entries() for a in e.meta["aliases"]}
