"""Task functions for the pool's large-payload tests (importable by spawned workers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def checksum_and_scribble(array: Any) -> tuple[float, bool]:
    """The array's sum, and whether it is writable (it is then scribbled on)."""
    total = float(array.sum())
    writable = bool(array.flags.writeable)
    if writable:
        array[:] = -1.0
    return total, writable


def sums(arrays: list[Any]) -> list[float]:
    return [float(a.sum()) for a in arrays]


def die_once_then_sum(array: Any, marker: str) -> float:
    """Kills its own worker the first time (the marker file does not exist yet)."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died")
        os._exit(7)
    return float(array.sum())


def sum_of_chunk(chunk: Any) -> float:
    return float(chunk.sum())


def make_array(size: int, value: float) -> Any:
    import numpy

    return numpy.full(size, value)


def make_arrays(size: int) -> list[Any]:
    import numpy

    return [numpy.full(size, float(i)) for i in range(3)]


def make_array_of(size: int) -> Any:
    return make_array(size, 7.0)
