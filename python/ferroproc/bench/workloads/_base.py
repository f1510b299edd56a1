"""The vocabulary every workload module is written in.

A workload module (one file in this package) defines its target functions at module
level and a ``workload()`` function returning a :class:`Workload`. The harness asks the
workload for its :class:`Variant` list (sized by :class:`Sizing`), runs each variant in a
fresh process per implementation, and compares medians. ``run`` and each
:class:`Floor` measure once and return the figure in the workload's unit, or raise
:class:`CheckFailed` when the work they timed did not produce the right result, or
:class:`Skipped` when this subject cannot be measured here at all (a library or an API
it needs is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Literal, Union

#: JSON-safe parameter values passed from the harness to a trial.
ParamValue = Union[str, int, float, bool]
Params = Mapping[str, ParamValue]

#: Which direction of a unit is better.
Better = Literal["lower", "higher"]


class CheckFailed(Exception):
    """Raised by a workload when its own result check fails; the row becomes FAILED."""


class Skipped(Exception):
    """Raised by a workload when a subject cannot be measured here: its cell reads SKIPPED.

    The message says what is missing (``"ferroproc.Pool not available"``, ``"numpy is not
    installed"``); the report shows it as a note, and a skip does not fail the run.
    """


@dataclass(frozen=True)
class Sizing:
    """How big a run is: ``quick`` picks the smaller size, ``scale`` multiplies it."""

    quick: bool = False
    scale: float = 1.0

    def count(self, full: int, quick: int) -> int:
        """Return the iteration count for this run: never below 1."""
        base = quick if self.quick else full
        return max(1, round(base * self.scale))


@dataclass(frozen=True)
class Target:
    """A goal for the candidate implementation, shown beside its figures.

    ``against`` is ``"floor"`` (the candidate's cost over the floor's must be at most
    ``bound``) or ``"baseline"`` (the speedup over the baseline must be at least ``bound``).
    """

    against: Literal["floor", "baseline"]
    bound: float

    def describe(self) -> str:
        """Return the target in the table's words, e.g. ``<=1.30x floor``."""
        if self.against == "floor":
            return f"<={self.bound:.2f}x floor"
        return f">={self.bound:.2f}x speedup"

    def met(self, speedup: float | None, floor_ratio: float | None) -> bool | None:
        """Say whether the target is met; ``None`` when the figure it needs is missing."""
        if self.against == "floor":
            return None if floor_ratio is None else floor_ratio <= self.bound
        return None if speedup is None else speedup >= self.bound


@dataclass(frozen=True)
class Floor:
    """What CPython and the kernel allow: measured in the same run, beside the figures."""

    name: str
    description: str
    run: Callable[[Params], float]


@dataclass(frozen=True)
class Peer:
    """A library compared with ``--peers``; ``module`` is its import name.

    ``name`` is what the workload's ``run`` receives, so one module can be several peers
    (the stdlib's ``SimpleQueue`` and ``Pipe``, say). ``only_variants`` names the rows the
    peer makes sense in; empty means every row.
    """

    name: str
    module: str
    only_variants: tuple[str, ...] = ()

    def runs_in(self, variant: str) -> bool:
        """Whether this peer is measured in the row ``variant``."""
        return not self.only_variants or variant in self.only_variants


@dataclass(frozen=True)
class Variant:
    """One row of the table: a name, the trial's parameters, its floor and target.

    ``floor`` is the floor of the main table (and of a ``"floor"`` target);
    ``other_floors`` names further floors of the workload, measured in the same run
    and reported in a table of their own beside the candidate's figure.
    """

    name: str
    params: Params
    floor: str | None = None
    target: Target | None = None
    other_floors: tuple[str, ...] = ()
    #: Sentences the report prints under its tables for this row, by the label of the
    #: subject they are about (a peer measured on a smaller size, say): each is printed
    #: when that subject is in the row; one under ``""`` always is.
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlsoIn:
    """A second unit a workload's figures are reported in, computed from the first.

    ``convert(figure, params)`` turns a median in the workload's unit into this unit
    (seconds into GB/s moved, say); the report shows every subject's converted median
    in a table of its own.
    """

    unit: str
    better: Better
    convert: Callable[[float, Params], float]


@dataclass(frozen=True)
class Workload:
    """A benchmark: how to size it, run it, check it, and what to compare it with.

    ``run(impl, module, params)`` is called in a fresh process with ``impl`` the
    implementation's name (``"ferroproc"``, ``"stdlib"`` or a peer's name) and ``module``
    the module it was imported from; it returns one figure in ``unit``.
    """

    name: str
    description: str
    unit: str
    better: Better
    variants: Callable[[Sizing], list[Variant]]
    run: Callable[[str, ModuleType, Params], float]
    floors: Mapping[str, Floor] = field(default_factory=dict)
    peers: tuple[Peer, ...] = ()
    #: Position in listings and reports (the order of BENCHMARKS.md).
    order: int = 100
    #: A second unit the figures are also shown in, if any.
    also: AlsoIn | None = None
