"""The workload registry: one module per workload, found by name.

To add a workload, add a module here that defines its target functions at module level
and a ``workload()`` function returning a :class:`~ferroproc.bench.workloads._base.Workload`
(see ``process_start.py``). Modules whose names start with ``_`` are not workloads.

Where the code runs, and why workload modules are written the way they are::

    harness (python -m ferroproc bench)   imports ferroproc.bench.workloads.<name>: plans rows
    trial   (python .../bench/_trial.py)  imports <name> as a top-level module (this folder
                                          is on its sys.path and PYTHONPATH), measures once
    children of the trial                 import <name> (top-level) to find their targets

Children must not pay for importing ferroproc: a stdlib child that imported the
``ferroproc`` package to find its target would be charged for ferroproc's import (measured
at +15 ms per spawned or fork-server process on a 2-core machine). So in a trial, workload
modules are top-level modules outside the ``ferroproc`` package, and they import nothing
heavy at module level: they reach ``_base`` (and anything else they need in the trial
process only) with absolute imports inside functions. Their names must not clash with a
module of the stdlib or an installed package.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._base import Workload

#: Folder holding the workload modules: put on a trial's path to import them top-level.
DIRECTORY: str = __path__[0]


def names() -> list[str]:
    """Return the module names of every workload in this package, unsorted."""
    import pkgutil

    return [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]


def load(name: str, *, toplevel: bool = False) -> Workload:
    """Import workload ``name`` and return its description.

    With ``toplevel`` the module is imported as the top-level module ``name`` (in trial
    processes, where :data:`DIRECTORY` is on ``sys.path``); otherwise as a submodule of
    this package. Raises ``KeyError`` when there is no such workload.
    """
    import importlib

    if name.startswith("_") or name not in names():
        raise KeyError(name)
    module = importlib.import_module(name if toplevel else f"{__name__}.{name}")
    workload: Workload = module.workload()
    return workload


def all_workloads() -> list[Workload]:
    """Return every registered workload, in report order (then by name)."""
    found = [load(name) for name in names()]
    return sorted(found, key=lambda w: (w.order, w.name))
