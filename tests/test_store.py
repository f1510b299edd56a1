"""The shared containers under the manager's dict, list, Namespace and Value, used directly.

Each container is checked against the builtin it stands for, operation by operation,
including random sequences of operations; then across real processes, including one
SIGKILLed while it writes.
"""

from __future__ import annotations

import enum
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.ferroproc_only

_store = pytest.importorskip("ferroproc._store")
SharedDict = _store.SharedDict
SharedList = _store.SharedList
SharedNamespace = _store.SharedNamespace
SharedValue = _store.SharedValue


class Color(enum.IntEnum):
    RED = 5


def test_equal_keys_are_one_key_and_the_first_spelling_is_kept():
    shared, plain = SharedDict(), {}
    for target in (shared, plain):
        target[1.0] = "float"
        target[1] = "int"
        target[True] = "bool"
        target[Color.RED] = "enum"
        target[5] = "five"
        target[(1, "x")] = "tuple"
        target[(True, "x")] = "tuple again"
        target[None] = 0
        target[b"raw"] = 1
        target[-0.0] = "zero"
        target[0] = "zero again"
        target[2**70] = "big"
        target[0.5] = "half"
    assert shared.items() == list(plain.items())
    assert [type(key) for key in shared] == [type(key) for key in plain]


def test_str_keys_do_not_depend_on_the_hash_seed():
    shared = SharedDict()
    shared["été"] = 1
    fd, ident = shared._store.fd, shared._store.id
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(os.path.dirname(_store.__file__))!r})
        from ferroproc import _store
        store = _store._attach(({os.getpid()}, {fd}, {ident}))
        shared = _store.SharedDict._over(store)
        assert shared["été"] == 1, shared.items()
        shared["from child"] = 2
        """
    )
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    assert shared["from child"] == 2


def test_unhashable_keys_fail_as_in_a_dict():
    shared = SharedDict()
    with pytest.raises(TypeError):
        shared[[1, 2]] = 3
    with pytest.raises(TypeError):
        _ = [1] in shared


def test_dict_methods_match_the_builtin():
    shared, plain = SharedDict(a=1, b=2), {"a": 1, "b": 2}
    assert shared.setdefault("c", 3) == plain.setdefault("c", 3)
    assert shared.setdefault("a", 9) == plain.setdefault("a", 9)
    assert shared.pop("b") == plain.pop("b")
    assert shared.pop("zz", "d") == plain.pop("zz", "d")
    with pytest.raises(KeyError):
        shared.pop("zz")
    with pytest.raises(KeyError):
        del shared["zz"]
    with pytest.raises(KeyError, match="'missing'"):
        shared["missing"]
    shared.update([("x", 1)], y=2)
    plain.update([("x", 1)], y=2)
    assert shared.copy() == plain
    assert shared.popitem() == plain.popitem()
    assert list(shared) == list(plain)
    assert shared.values() == list(plain.values())
    assert len(shared) == len(plain)
    assert str(shared) == str(plain)
    shared.clear()
    assert len(shared) == 0
    with pytest.raises(KeyError, match="dictionary is empty"):
        shared.popitem()


def test_values_of_every_kind_round_trip():
    values = [None, True, -(2**63), 2**64, 1.5, "s", b"b", [1, 2], {"n": (1, 2)}, Color.RED]
    shared = SharedDict()
    for index, value in enumerate(values):
        shared[index] = value
    assert shared.values() == values
    numpy = pytest.importorskip("numpy")
    shared["array"] = numpy.arange(10_000.0)
    assert (shared["array"] == numpy.arange(10_000.0)).all()


def test_random_dict_operations_match_the_builtin():
    rng = random.Random(7)
    shared, plain = SharedDict(), {}
    for _ in range(4000):
        key = rng.choice([rng.randrange(60), f"k{rng.randrange(60)}", float(rng.randrange(5))])
        action = rng.randrange(6)
        if action < 3:
            value = rng.choice([rng.random(), "x" * rng.randrange(300), [key]])
            shared[key] = value
            plain[key] = value
        elif action == 3:
            assert shared.pop(key, None) == plain.pop(key, None)
        elif action == 4:
            assert shared.get(key) == plain.get(key)
        elif rng.randrange(40) == 0:
            shared.clear()
            plain.clear()
    assert shared.items() == list(plain.items())


def test_random_list_operations_match_the_builtin():
    rng = random.Random(11)
    shared, plain = SharedList(range(5)), list(range(5))
    for _ in range(1500):
        action = rng.randrange(12)
        value = rng.randrange(100)
        index = rng.randrange(-len(plain) - 2, len(plain) + 2)
        sl = slice(rng.randrange(-8, 8), rng.randrange(-8, 8), rng.choice([None, 1, 2, -1]))
        for target in (shared, plain):
            try:
                if action == 0:
                    target.append(value)
                elif action == 1:
                    target.insert(index, value)
                elif action == 2:
                    result = target.pop(index) if plain else None
                elif action == 3:
                    target[index] = value
                elif action == 4:
                    del target[index]
                elif action == 5:
                    target[sl] = [value] * len(range(*sl.indices(len(plain))))
                elif action == 6:
                    target[slice(sl.start, sl.stop)] = [value, value]
                elif action == 7:
                    del target[sl]
                elif action == 8:
                    target.extend([value, -value])
                elif action == 9:
                    target.remove(value)
                elif action == 10:
                    target.sort(reverse=bool(value % 2))
                else:
                    target.reverse()
                outcome = ("ok", result if action == 2 else None)
            except (IndexError, ValueError) as error:
                outcome = (type(error).__name__, str(error))
            if target is shared:
                shared_outcome = outcome
            else:
                assert shared_outcome == outcome, (action, index, sl)
        assert shared.copy() == plain
        assert shared[sl] == plain[sl]
    assert shared.count(3) == plain.count(3)
    assert shared + [1] == plain + [1]  # noqa: RUF005 - the operator is what is tested
    assert shared * 2 == plain * 2


def test_list_in_place_operators_return_the_list():
    shared = SharedList([1])
    result = shared.__iadd__([2])
    assert result is shared
    assert shared.__imul__(2) is shared
    assert shared.copy() == [1, 2, 1, 2]
    assert list(reversed(shared)) == [2, 1, 2, 1]
    assert 2 in shared
    assert shared.index(2, 2) == 3


def test_namespace_and_value():
    namespace = SharedNamespace(x=1)
    namespace.y = "two"
    assert (namespace.x, namespace.y) == (1, "two")
    del namespace.x
    with pytest.raises(AttributeError):
        namespace.x  # noqa: B018
    assert repr(namespace) == "Namespace(y='two')"
    value = SharedValue("i", 3)
    value.value += 1
    assert value.get() == 4
    assert repr(value) == "Value('i', 4)"


def _hammer(fd: int, ident: int, parent: int, name: str) -> None:
    store = _store._attach((parent, fd, ident))
    shared = _store.SharedDict._over(store)
    number = 0
    while True:
        number += 1
        shared[f"{name}-{number % 100}"] = (number, "x" * (number % 500))


@pytest.mark.timeout(60)
def test_a_writer_killed_mid_update_leaves_the_dict_whole_and_unlocked():
    shared = SharedDict()
    fd, ident = shared._store.fd, shared._store.id
    for round_number in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                _hammer(fd, ident, os.getppid(), f"w{round_number}")
            finally:
                os._exit(1)
        time.sleep(0.02 + 0.01 * round_number)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        items = shared.items()
        assert len(shared) == len(items)
        for key, (number, text) in items:
            assert key.endswith(f"-{number % 100}")
            assert text == "x" * (number % 500)
    shared["after"] = 1
    assert shared["after"] == 1


def test_a_store_no_one_uses_is_unmapped():
    shared = SharedDict(a=1)
    ident = shared._store.id
    assert ident in _store._open
    del shared
    import gc

    gc.collect()
    assert ident not in _store._open
