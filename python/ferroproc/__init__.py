"""ferroproc: Python's ``multiprocessing``, rebuilt on a Rust engine.

``import ferroproc as multiprocessing`` gives the stdlib's API: the public methods of the
default context become the package's names, as in the stdlib.
"""

from __future__ import annotations

import sys

from . import context
from ._core import __version__ as __version__

__all__ = [name for name in dir(context._default_context) if not name.startswith("_")]
globals().update((name, getattr(context._default_context, name)) for name in __all__)

SUBDEBUG = 5
SUBWARNING = 25

# In the parent, `__mp_main__` is the main module, so objects pickled from either name
# resolve in spawned children (which import the main module as `__mp_main__`).
sys.modules["__mp_main__"] = sys.modules["__main__"]
