"""Fixtures shared by the robustness tests."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from _support import raise_interrupted


@pytest.fixture
def sigusr1_raises() -> Iterator[None]:
    """SIGUSR1 raises ``Interrupted`` in the main thread while the test runs."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)
