"""Large arguments: NumPy arrays travel to pool workers through shared memory.

A payload of 256 KiB or more is written once into a sealed memfd that the worker maps
copy-on-write, and a large result comes back the same way; a list of small arrays travels
as their raw items. Each must give what pickling would: equal, writable arrays whose
changes stay on their side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _payload_targets import (
    checksum_and_scribble,
    die_once_then_sum,
    make_array,
    make_array_of,
    make_arrays,
    sum_of_chunk,
    sums,
)
from _support import DEADLINE, mp

numpy = pytest.importorskip("numpy")

pytestmark = pytest.mark.timeout(120)


def test_large_arrays_arrive_equal_and_writable(ctx: Any) -> None:
    arrays = [numpy.random.rand(300_000) for _ in range(4)]
    expected = [float(a.sum()) for a in arrays]
    with ctx.Pool(2) as pool:
        results = pool.map(checksum_and_scribble, arrays, chunksize=1)
        # Sent again: the worker's scribbles did not reach the parent's arrays.
        again = pool.map(checksum_and_scribble, arrays, chunksize=1)
    assert [total for total, _ in results] == pytest.approx(expected)
    assert all(writable for _, writable in results)
    assert [total for total, _ in again] == pytest.approx(expected)
    assert all((a >= 0).all() for a in arrays)


def test_a_chunk_of_large_arrays_travels_together(ctx: Any) -> None:
    arrays = [numpy.full(200_000, float(i)) for i in range(6)]
    with ctx.Pool(2) as pool:
        got = pool.apply(sums, (arrays,))
    assert got == [200_000.0 * i for i in range(6)]


def test_split_arrays_round_trip_through_a_map(ctx: Any) -> None:
    data = numpy.random.rand(100_000)
    chunks = numpy.array_split(data, 10_000)
    with ctx.Pool(2) as pool:
        total = sum(pool.map(sum_of_chunk, chunks))
    assert total == pytest.approx(float(data.sum()))


@pytest.mark.ferroproc_only
def test_a_large_payload_is_sent_again_when_its_worker_dies(tmp_path: Path) -> None:
    array = numpy.arange(400_000, dtype=numpy.float64)
    marker = tmp_path / "died-once"
    with mp.Pool(2, retries=1) as pool:
        result = pool.apply_async(die_once_then_sum, (array, str(marker)))
        assert result.get(timeout=DEADLINE) == float(array.sum())
    assert marker.exists()


@pytest.mark.parametrize("size", [1_000, 200_000, 1_000_000])
def test_large_results_come_back_equal_and_writable(ctx: Any, size: int) -> None:
    with ctx.Pool(2) as pool:
        results = pool.starmap(make_array, [(size, float(i)) for i in range(4)], chunksize=1)
        arrays = pool.apply(make_arrays, (size,))
        streamed = list(pool.imap(make_array_of, [size] * 3))
    for i, array in enumerate(results):
        assert array.shape == (size,)
        assert (array == float(i)).all()
        assert array.flags.writeable
        array[0] = -1.0
    assert [float(a[0]) for a in arrays] == [0.0, 1.0, 2.0]
    assert all(a.shape == (size,) for a in streamed)
