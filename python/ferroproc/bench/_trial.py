"""One measurement in a fresh process: ``python path/to/ferroproc/bench/_trial.py SPEC``.

``SPEC`` is a JSON object::

    {"workload": "process_start",
     "subject": {"kind": "impl" | "peer" | "floor", "name": "stdlib", "module": "multiprocessing"},
     "params": {"method": "fork", "count": 200}}

For ``impl`` and ``peer`` the module is imported by name (``importlib``) and handed to the
workload's ``run``; for ``floor``, ``module`` names one of the workload's floors. The
result is printed as one line, ``RESULT_MARKER`` followed by a JSON object with ``status``
(``"ok"``, ``"failed"`` when the workload's check failed, ``"skipped"`` when the workload
cannot measure this subject here, ``"error"`` otherwise), ``value`` and ``detail``; the exit
code is 0 when the line was printed.

The harness runs this file by path, not with ``-m ferroproc.bench._trial`` (which works
too): spawned and fork-server children re-import the main module, and by path that is
this light script, while by module name it would import the ``ferroproc`` package into
every stdlib child and charge its import to the stdlib. For the same reason the script
imports nothing at module level, and the workload modules are imported top-level (see
``workloads/__init__.py``).
"""

from __future__ import annotations

import sys

RESULT_MARKER = "@@ferroproc-bench-result@@ "


def _where(exc: BaseException) -> str:
    """Return ``file:line`` of the innermost frame that raised ``exc``."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


def measure(spec: dict[str, object]) -> dict[str, object]:
    """Run the measurement ``spec`` describes and return the result object."""
    import importlib
    import math
    import time
    import traceback

    from ferroproc.bench.workloads import DIRECTORY, load
    from ferroproc.bench.workloads._base import CheckFailed, Skipped

    if DIRECTORY not in sys.path:
        sys.path.insert(0, DIRECTORY)

    subject = spec["subject"]
    params = spec["params"]
    if not isinstance(subject, dict) or not isinstance(params, dict):
        return {"status": "error", "value": None, "detail": "malformed trial spec"}
    kind, name, target = str(subject["kind"]), str(subject["name"]), str(subject["module"])
    stage = "loading workload"
    import_s: float | None = None
    try:
        workload = load(str(spec["workload"]), toplevel=True)
        if kind == "floor":
            stage = f"measuring floor {target!r}"
            value = workload.floors[target].run(params)
        else:
            stage = f"importing {target!r}"
            started = time.perf_counter()
            module = importlib.import_module(target)
            import_s = time.perf_counter() - started
            stage = f"running {name} ({target})"
            value = workload.run(name, module, params)
    except CheckFailed as exc:
        return {"status": "failed", "value": None, "detail": f"check failed: {exc}"}
    except Skipped as exc:
        return {"status": "skipped", "value": None, "detail": str(exc)}
    except Exception as exc:
        return {
            "status": "error",
            "value": None,
            "detail": f"{stage}: {type(exc).__name__}: {exc} (at {_where(exc)})",
            "traceback": traceback.format_exc(),
        }
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return {"status": "error", "value": None, "detail": f"bad figure {value!r}"}
    return {"status": "ok", "value": float(value), "detail": "", "import_s": import_s}


def main(argv: list[str]) -> int:
    """Entry point: measure the spec in ``argv[0]`` and print the result line."""
    import json
    import os

    if len(argv) != 1:
        print("usage: python path/to/ferroproc/bench/_trial.py SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    # Run by path, this script's folder heads sys.path: it would make the bench's own
    # modules importable under top-level names, so take it off.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == here:
        del sys.path[0]
    me = os.getpid()
    result = measure(spec)
    if os.getpid() != me:
        # A child of a broken implementation came back into this code: never let it
        # print a second result.
        os._exit(70)
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
