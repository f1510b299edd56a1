"""The benchmark harness end to end: ``python -m ferroproc bench`` on tiny sizes.

The harness is driven with the hidden ``--impls`` option so these tests do not depend on
ferroproc's own Process: ``stdlib,stdlib`` for a run that must succeed, and small
stand-in modules (written to ``tmp_path``) whose processes exit badly, hang, or that have
no ``get_context`` at all, for the failure reports. No figure is asserted: only that the
harness ran, checked, and reported.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from _bench_support import run_ferroproc as bench
from ferroproc.bench import workloads
from ferroproc.bench.cli import parse_impls, plan
from ferroproc.bench.harness import (
    Subject,
    SubjectResult,
    Trial,
    TrialStatus,
    VariantPlan,
    VariantResult,
    rotated,
)
from ferroproc.bench.report import BenchRun, render_text, to_data
from ferroproc.bench.workloads._base import AlsoIn, Peer, Sizing, Variant, Workload

pytestmark = pytest.mark.timeout(300)

# The stand-ins wrap the stdlib by name, as the harness's own trial does.
BROKEN_EXIT = """
import importlib
import os

_mp = importlib.import_module("multiprocessing")


def _exit_3():
    os._exit(3)


class _Context:
    def __init__(self, method):
        self._ctx = _mp.get_context(method)

    def Process(self, target=None, **kwargs):
        return self._ctx.Process(target=_exit_3, **kwargs)


def get_context(method=None):
    return _Context(method)
"""

HANGING = """
import importlib
import os
import time
from pathlib import Path

_mp = importlib.import_module("multiprocessing")


def _hang():
    Path(os.environ["HANG_PID_DIR"], str(os.getpid())).touch()
    while True:
        time.sleep(1)


class _Context:
    def __init__(self, method):
        self._ctx = _mp.get_context(method)

    def Process(self, target=None, **kwargs):
        return self._ctx.Process(target=_hang, **kwargs)


def get_context(method=None):
    return _Context(method)
"""

# Children that exit with 1 when the ferroproc package was imported into them.
PROBE = """
import importlib
import os
import sys

_mp = importlib.import_module("multiprocessing")


def _probe():
    os._exit(1 if "ferroproc" in sys.modules else 0)


class _Context:
    def __init__(self, method):
        self._ctx = _mp.get_context(method)

    def Process(self, target=None, **kwargs):
        return self._ctx.Process(target=_probe, **kwargs)


def get_context(method=None):
    return _Context(method)
"""


def table_row(stdout: str, variant: str) -> list[str]:
    """The cells of the plain-text table's ``process_start`` row for ``variant``."""
    for line in stdout.splitlines():
        cells = line.split()
        if cells[:2] == ["process_start", variant]:
            return cells
    raise AssertionError(f"no process_start/{variant} row in:\n{stdout}")


def test_stdlib_against_itself_end_to_end(tmp_path: Path) -> None:
    md, js = tmp_path / "out" / "report.md", tmp_path / "out" / "report.json"
    done = bench(
        tmp_path,
        "bench",
        "--quick",
        "--repeat",
        "2",
        "--scale",
        "0.1",
        "--impls",
        "stdlib,stdlib",
        "--output",
        str(md),
        "--output",
        str(js),
    )
    assert done.returncode == 0, done
    assert "median of 2 runs, alternating implementations, fresh process each" in done.stdout
    assert "speedup = stdlib/stdlib#2" in done.stdout
    for variant in ("fork", "spawn", "forkserver"):
        cells = table_row(done.stdout, variant)
        assert not {"FAILED", "ERROR", "TIMEOUT"} & set(cells), done.stdout

    text = md.read_text()
    assert "| workload | variant | unit | stdlib | stdlib#2 | speedup | floor |" in text
    for variant in ("fork", "spawn", "forkserver"):
        assert f"| process_start | {variant} | ms/proc |" in text

    data: dict[str, Any] = json.loads(js.read_text())
    assert data["ok"] is True
    assert data["command"][-4:] == ["--output", str(md), "--output", str(js)]
    assert {"cpu_count", "python_version", "platform"} <= set(data["machine"])
    assert data["date"]
    assert data["settings"]["repeat"] == 2
    # Every workload ran; process_start stands for them here (each has its own tests).
    rows = {row["variant"]: row for row in data["results"] if row["workload"] == "process_start"}
    assert set(rows) == {"fork", "spawn", "forkserver"}
    assert rows["fork"]["params"] == {"method": "fork", "count": 10}
    for row in rows.values():
        assert row["status"] == "ok"
        assert row["speedup"] > 0
        assert row["floor_ratio"] > 0
        roles = [subject["role"] for subject in row["subjects"]]
        assert roles == ["baseline", "candidate", "floor"]
        for subject in row["subjects"]:
            assert subject["status"] == "ok"
            assert len(subject["samples"]) == 2
            assert len(subject["trials"]) == 2
            assert subject["median"] > 0


def test_failed_check_marks_the_row_failed(tmp_path: Path) -> None:
    (tmp_path / "broken_mp.py").write_text(BROKEN_EXIT)
    js = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "process_start/fork",
        "--repeat",
        "2",
        "--scale",
        "0.05",
        "--impls",
        "stdlib,broken=broken_mp",
        "--output",
        str(js),
    )
    assert done.returncode == 1, done
    cells = table_row(done.stdout, "fork")
    assert cells[4] == "FAILED"
    assert cells[5] == "-"  # no speedup from a failed row
    assert "check failed" in done.stdout
    assert "did not exit with 0 (exit codes: 3" in done.stdout
    assert "Traceback" not in done.stdout

    data: dict[str, Any] = json.loads(js.read_text())
    assert data["ok"] is False
    [row] = data["results"]
    assert row["status"] == "failed"
    assert row["speedup"] is None
    broken = row["subjects"][1]
    assert broken["label"] == "broken"
    assert broken["status"] == "failed"
    assert broken["median"] is None
    assert len(broken["trials"]) == 1  # a failed subject is not run again


def test_missing_get_context_is_a_clear_error(tmp_path: Path) -> None:
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "process_start/fork",
        "--repeat",
        "1",
        "--scale",
        "0.05",
        "--impls",
        "stdlib,empty=json",
    )
    assert done.returncode == 1, done
    assert table_row(done.stdout, "fork")[4] == "ERROR"
    assert "has no attribute 'get_context'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_spawned_stdlib_children_do_not_import_ferroproc(tmp_path: Path) -> None:
    # Otherwise the stdlib would be charged for ferroproc's import in every child.
    (tmp_path / "probe_mp.py").write_text(PROBE)
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "process_start/spawn,process_start/forkserver",
        "--repeat",
        "1",
        "--scale",
        "0.1",
        "--impls",
        "stdlib,probe=probe_mp",
    )
    assert done.returncode == 0, done


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_overrunning_trial_is_killed_and_reported(tmp_path: Path) -> None:
    (tmp_path / "hanging_mp.py").write_text(HANGING)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "process_start/fork",
        "--repeat",
        "1",
        "--scale",
        "0.05",
        "--timeout",
        "5",
        "--impls",
        "stdlib,hang=hanging_mp",
        extra_env={"HANG_PID_DIR": str(pid_dir)},
    )
    assert done.returncode == 1, done
    assert table_row(done.stdout, "fork")[4] == "TIMEOUT"
    assert "no result within 5 s" in done.stdout
    children = [int(p.name) for p in pid_dir.iterdir()]
    assert children, "the hanging child never started"
    assert not [pid for pid in children if _alive(pid)]


def test_dispatcher_usage_and_scripts(tmp_path: Path) -> None:
    usage = bench(tmp_path)
    assert usage.returncode == 0
    assert "bench" in usage.stdout
    assert bench(tmp_path, "--help").stdout == usage.stdout

    script = bench(tmp_path, "script.py")
    assert script.returncode == 2
    assert "not available yet" in script.stderr

    listing = bench(tmp_path, "bench", "--list")
    assert listing.returncode == 0
    assert "process_start" in listing.stdout
    assert "forkserver" in listing.stdout

    unknown = bench(tmp_path, "bench", "--only", "no_such_workload")
    assert unknown.returncode == 2
    assert "unknown workload 'no_such_workload'" in unknown.stderr

    bad_output = bench(tmp_path, "bench", "--output", "report.txt")
    assert bad_output.returncode == 2
    assert ".md or .json" in bad_output.stderr


def test_parse_impls_labels_and_modules() -> None:
    base, cand = parse_impls("stdlib,stdlib")
    assert (base.label, base.module, base.role) == ("stdlib", "multiprocessing", "baseline")
    assert (cand.label, cand.name, cand.role) == ("stdlib#2", "stdlib", "candidate")
    _, custom = parse_impls("stdlib, mine=my.module")
    assert (custom.label, custom.module) == ("mine", "my.module")


def test_rotation_alternates_who_goes_first() -> None:
    subjects = [Subject(n, "impl", "peer", n, n) for n in "abc"]
    firsts = [rotated(subjects, run)[0].label for run in range(4)]
    assert firsts == ["a", "b", "c", "a"]


def test_workload_modules_do_not_shadow_other_modules() -> None:
    # Trials import workload modules top-level: their names must be free.
    for name in workloads.names():
        assert name not in sys.builtin_module_names
        assert importlib.util.find_spec(name) is None, name


def test_peers_run_only_in_their_rows_and_missing_ones_are_named() -> None:
    def fail(impl: str, module: object, params: object) -> float:
        raise AssertionError("planning runs nothing")

    workload = Workload(
        name="fake",
        description="",
        unit="s",
        better="lower",
        variants=lambda sizing: [Variant("a", {}), Variant("b", {})],
        run=fail,
        peers=(
            Peer("everywhere", "json"),
            Peer("only-a", "json", only_variants=("a",)),
            Peer("absent-in-b", "no_such_module_for_ferroproc_tests", only_variants=("b",)),
        ),
    )
    baseline, candidate = parse_impls("stdlib,stdlib")

    def peers_by_row(only: set[str] | None) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
        plans, missing, no_peers = plan([(workload, only)], baseline, candidate, Sizing(), True)
        assert no_peers == []
        rows = {p.variant.name: [s.label for s in p.subjects if s.role == "peer"] for p in plans}
        return rows, missing

    assert peers_by_row(None) == (
        {"a": ["everywhere", "only-a"], "b": ["everywhere"]},
        [("fake", "absent-in-b")],
    )
    # A peer of rows that were not selected is neither run nor reported missing.
    assert peers_by_row({"a"}) == ({"a": ["everywhere", "only-a"]}, [])
    plans, missing, _ = plan([(workload, None)], baseline, candidate, Sizing(), False)
    assert [s.role for p in plans for s in p.subjects] == ["baseline", "candidate"] * 2
    assert missing == []


def _one_trial(
    subject: Subject, status: TrialStatus, value: float | None, detail: str = ""
) -> SubjectResult:
    return SubjectResult(subject, [Trial(0, status, value, detail, wall_s=0.1)])


def test_report_skips_peers_notes_and_other_units() -> None:
    workload = Workload(
        name="fake",
        description="",
        unit="s",
        better="lower",
        variants=lambda sizing: [],
        run=lambda impl, module, params: 1.0,
        also=AlsoIn("GB/s", "higher", lambda seconds, params: 2.0 / seconds),
    )
    baseline, candidate = parse_impls("stdlib,ferroproc")
    peer = Subject("fast-peer", "peer", "peer", "fast-peer", "json")
    absent = Subject("absent-peer", "peer", "peer", "absent-peer", "json")
    notes = {"": "always said", "fast-peer": "said when fast-peer ran", "nobody": "never said"}
    row_a = VariantResult(
        VariantPlan(workload, Variant("a", {}, notes=notes), [baseline, candidate, peer]),
        [
            _one_trial(baseline, "ok", 2.0),
            _one_trial(candidate, "skipped", None, "ferroproc.Thing not available"),
            _one_trial(peer, "ok", 1.0),
        ],
    )
    row_b = VariantResult(
        VariantPlan(workload, Variant("b", {}), [baseline, candidate, absent]),
        [
            _one_trial(baseline, "ok", 4.0),
            _one_trial(candidate, "skipped", None, "ferroproc.Thing not available"),
            _one_trial(absent, "skipped", None, "ferroproc.Thing not available"),
        ],
    )
    now = datetime.now(timezone.utc)
    run = BenchRun(
        results=[row_a, row_b],
        baseline="stdlib",
        candidate="ferroproc",
        repeat=1,
        quick=True,
        scale=1.0,
        timeout=10.0,
        machine={},
        command=["python"],
        started=now,
        finished=now,
    )
    assert run.ok  # a skip is not a failure
    assert [row.status for row in run.results] == ["skipped", "skipped"]
    text = render_text(run)
    lines = text.splitlines()
    assert any(line.split()[:5] == ["fake", "a", "s", "2.00", "SKIPPED"] for line in lines), text
    # The peer against the baseline: half the seconds, twice as good.
    assert any(line.split()[3:6] == ["fast-peer", "1.00", "2.00x"] for line in lines), text
    assert any(
        line.split()[:6] == ["fake", "a", "GB/s", "fast-peer", "2.00", "2.00x"] for line in lines
    )
    assert (
        "note: SKIPPED in fake/a, fake/b (ferroproc, absent-peer): ferroproc.Thing not available"
        in lines
    )
    assert "note: fake/a: always said" in lines
    assert "note: fake/a: said when fast-peer ran" in lines
    assert "never said" not in text
    data = to_data(run)
    results: Any = data["results"]
    assert results[0]["peers_vs_baseline"] == {"fast-peer": 2.0}
    assert results[0]["also"]["medians"] == {"stdlib": 1.0, "ferroproc": None, "fast-peer": 2.0}
