"""Runs the trials: alternating subjects, one fresh process each, with a timeout.

::

    plan (VariantPlan: workload, variant, subjects)
      │  for each repeat r: subjects rotated by r (baseline, candidate, peers, floor)
      ▼
    run_trial ── sys.executable .../bench/_trial.py SPEC ──► one JSON result line
      │  own session/process group; on timeout or Ctrl-C the whole group is SIGKILLed
      ▼
    VariantResult (every Trial kept) ──► report.py

A subject whose trial fails (check failed, error, timeout) or is skipped (the workload
cannot measure it here) is not run again for that variant: its cell is a failure, or
SKIPPED, whatever the other repeats would say.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import site
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Callable, Literal

from ferroproc.bench import _trial
from ferroproc.bench._trial import RESULT_MARKER
from ferroproc.bench.workloads import DIRECTORY as WORKLOADS_DIRECTORY
from ferroproc.bench.workloads._base import Variant, Workload

SubjectKind = Literal["impl", "peer", "floor"]
Role = Literal["baseline", "candidate", "peer", "floor", "other_floor"]
TrialStatus = Literal["ok", "failed", "error", "timeout", "skipped"]

#: Import names of the implementations ``--impls`` knows by name.
IMPLEMENTATIONS: Mapping[str, str] = {
    "ferroproc": "ferroproc",
    "stdlib": "multiprocessing",
}

#: How long to wait for a killed trial's pipes to close before giving up on them.
_DRAIN_S = 5.0
#: Lines kept from each end of a trial's stderr.
_STDERR_LINES = 15


@dataclass(frozen=True)
class Subject:
    """One column of a row: an implementation, a peer, the floor or another floor.

    ``label`` is what the report shows, ``name`` what the workload's ``run`` receives,
    ``module`` the import name (for a floor: the floor's key in the workload). The
    variant's ``floor`` plays the role ``"floor"``, its ``other_floors`` ``"other_floor"``.
    """

    label: str
    kind: SubjectKind
    role: Role
    name: str
    module: str


@dataclass(frozen=True)
class Trial:
    """The outcome of one fresh-process measurement."""

    run: int
    status: TrialStatus
    value: float | None
    detail: str
    wall_s: float
    returncode: int | None = None
    import_s: float | None = None
    stderr_tail: str = ""
    traceback: str = ""


@dataclass
class SubjectResult:
    """Every trial of one subject in one variant, and their median."""

    subject: Subject
    trials: list[Trial] = field(default_factory=list)

    @property
    def samples(self) -> list[float]:
        """The figures of the successful trials, in run order."""
        return [t.value for t in self.trials if t.status == "ok" and t.value is not None]

    @property
    def failure(self) -> Trial | None:
        """The first trial that did not succeed (or was skipped), if any."""
        return next((t for t in self.trials if t.status != "ok"), None)

    @property
    def status(self) -> str:
        """``"ok"``, ``"not run"``, or the failed trial's status."""
        failure = self.failure
        if failure is not None:
            return failure.status
        return "ok" if self.trials else "not run"

    @property
    def median(self) -> float | None:
        """The median figure, or ``None`` when any trial failed or none ran."""
        if self.status != "ok":
            return None
        return float(median(self.samples))


@dataclass
class VariantPlan:
    """What to run for one row: the workload, the variant and its subjects in order."""

    workload: Workload
    variant: Variant
    subjects: list[Subject]


@dataclass
class VariantResult:
    """One row of the report: the plan and every subject's trials."""

    plan: VariantPlan
    results: list[SubjectResult]

    def by_role(self, role: Role) -> list[SubjectResult]:
        """Return the subjects playing ``role``, in plan order."""
        return [r for r in self.results if r.subject.role == role]

    def one(self, role: Role) -> SubjectResult | None:
        """Return the single subject playing ``role`` (baseline, candidate, floor)."""
        found = self.by_role(role)
        return found[0] if found else None

    @property
    def status(self) -> str:
        """``"failed"`` when any subject failed, else ``"skipped"`` when any was, else ``"ok"``."""
        statuses = {r.status for r in self.results}
        if statuses <= {"ok"}:
            return "ok"
        return "skipped" if statuses <= {"ok", "skipped"} else "failed"

    def _better_by(self, ours: float | None, theirs: float | None) -> float | None:
        """How many times better ``ours`` is than ``theirs`` in this workload's unit."""
        if ours is None or theirs is None:
            return None
        if self.plan.workload.better == "lower":
            return theirs / ours
        return ours / theirs

    def speedup(self, other: SubjectResult | None = None) -> float | None:
        """The candidate against the baseline (or ``other``): >1 means the candidate wins."""
        candidate = self.one("candidate")
        against = other if other is not None else self.one("baseline")
        if candidate is None or against is None:
            return None
        return self._better_by(candidate.median, against.median)

    def versus_baseline(self, other: SubjectResult) -> float | None:
        """``other`` (a peer, say) against the baseline: >1 means ``other`` wins."""
        baseline = self.one("baseline")
        if baseline is None:
            return None
        return self._better_by(other.median, baseline.median)

    def floor_ratio(self, other: SubjectResult | None = None) -> float | None:
        """The candidate's cost over the floor's (or ``other``'s): 1.0 is at the floor."""
        candidate = self.one("candidate")
        floor = other if other is not None else self.one("floor")
        if candidate is None or floor is None:
            return None
        better_by = self._better_by(floor.median, candidate.median)
        return better_by

    def target_met(self) -> bool | None:
        """Whether the variant's target is met; ``None`` without a target or a figure."""
        target = self.plan.variant.target
        if target is None:
            return None
        return target.met(self.speedup(), self.floor_ratio())


def trial_environment() -> dict[str, str]:
    """The environment for trial processes: ours, with ferroproc and the workloads importable.

    The workloads folder goes first on ``PYTHONPATH``, so trials and every process they
    start import workload modules top-level (``workloads/__init__.py`` says why). When
    ferroproc runs from a source tree rather than site-packages, the folder holding the
    package follows, so the trial imports the same ferroproc as this process.
    """
    env = dict(os.environ)
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    source_root = str(Path(__file__).resolve().parents[2])
    site_dirs = {str(Path(p).resolve()) for p in site.getsitepackages()}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        site_dirs.add(str(Path(user_site).resolve()))
    front = [WORKLOADS_DIRECTORY]
    if source_root not in site_dirs and source_root not in existing:
        front.append(source_root)
    env["PYTHONPATH"] = os.pathsep.join([*front, *(p for p in existing if p not in front)])
    return env


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a trial's process group (the trial leads its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(text: str, lines: int = _STDERR_LINES) -> str:
    """The first and last ``lines`` lines of ``text`` (a panic says why at the top)."""
    kept = text.strip().splitlines()
    if len(kept) <= 2 * lines:
        return "\n".join(kept)
    cut = f"[... {len(kept) - 2 * lines} lines ...]"
    return "\n".join([*kept[:lines], cut, *kept[-lines:]])


def _parse(stdout: str) -> dict[str, object] | None:
    """Return the last result object a trial printed, if any."""
    found: dict[str, object] | None = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            try:
                loaded = json.loads(line[len(RESULT_MARKER) :])
            except ValueError:
                continue
            if isinstance(loaded, dict):
                found = loaded
    return found


def run_trial(
    workload: Workload,
    variant: Variant,
    subject: Subject,
    *,
    run: int,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> Trial:
    """Measure ``subject`` once in a fresh process; never raises for a bad trial.

    The trial leads its own process group; when it overruns ``timeout`` seconds (or this
    process is interrupted) the whole group is killed, so nothing it started survives.
    """
    spec = {
        "workload": workload.name,
        "subject": {"kind": subject.kind, "name": subject.name, "module": subject.module},
        "params": dict(variant.params),
    }
    # By path, not -m: see _trial.py's docstring.
    cmd = [sys.executable, _trial.__file__, json.dumps(spec)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else trial_environment(),
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            exited = proc.poll()
            _kill_group(proc.pid)
            detail = (
                f"no result within {timeout:g} s; the trial's process group was killed"
                if exited is None
                else f"the trial exited (code {exited}) but processes it started kept its"
                f" output open past {timeout:g} s; its process group was killed"
            )
            try:
                stdout, stderr = proc.communicate(timeout=_DRAIN_S)
            except subprocess.TimeoutExpired:
                # Something outside the group still holds the pipes: stop reading.
                proc.kill()
                stdout, stderr = "", ""
            return Trial(
                run=run,
                status="timeout",
                value=None,
                detail=detail,
                wall_s=time.perf_counter() - started,
                returncode=proc.wait(),
                stderr_tail=_tail(stderr),
            )
    except BaseException:
        _kill_group(proc.pid)
        proc.kill()
        proc.wait()
        raise
    finally:
        # Leftovers of a finished trial (a server, an orphaned worker) must not run
        # into the next trial's measurement.
        _kill_group(proc.pid)
    wall_s = time.perf_counter() - started
    result = _parse(stdout)
    stderr_tail = _tail(stderr)
    if result is None:
        how = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with code {proc.returncode}"
        )
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output on stderr"
        return Trial(
            run=run,
            status="error",
            value=None,
            detail=f"the trial process {how} without a result ({last})",
            wall_s=wall_s,
            returncode=proc.returncode,
            stderr_tail=stderr_tail,
        )
    status = str(result.get("status", "error"))
    value = result.get("value")
    detail = str(result.get("detail", ""))
    import_s = result.get("import_s")
    if status == "ok" and proc.returncode != 0:
        status, detail = "error", f"printed a result but exited with code {proc.returncode}"
    statuses: dict[str, TrialStatus] = {
        "ok": "ok",
        "failed": "failed",
        "error": "error",
        "skipped": "skipped",
    }
    if status not in statuses:
        status, detail = "error", f"unknown trial status {status!r}: {detail}"
    return Trial(
        run=run,
        status=statuses[status],
        value=float(value) if status == "ok" and isinstance(value, (int, float)) else None,
        detail=detail,
        wall_s=wall_s,
        returncode=proc.returncode,
        import_s=float(import_s) if isinstance(import_s, (int, float)) else None,
        stderr_tail=stderr_tail,
        traceback=str(result.get("traceback", "")),
    )


def rotated(subjects: Sequence[Subject], run: int) -> list[Subject]:
    """Return ``subjects`` rotated left by ``run``, so no subject always goes first."""
    if not subjects:
        return []
    shift = run % len(subjects)
    return [*subjects[shift:], *subjects[:shift]]


def run_variant(
    plan: VariantPlan,
    repeat: int,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> VariantResult:
    """Run ``repeat`` rounds of every subject of ``plan``, alternating, and collect them."""
    env = trial_environment()
    results = {s.label: SubjectResult(s) for s in plan.subjects}
    row = f"{plan.workload.name}/{plan.variant.name}"
    for run in range(repeat):
        line: list[str] = []
        for subject in rotated(plan.subjects, run):
            result = results[subject.label]
            if result.failure is not None:
                continue
            trial = run_trial(
                plan.workload, plan.variant, subject, run=run, timeout=timeout, env=env
            )
            result.trials.append(trial)
            shown = f"{trial.value:.4g}" if trial.value is not None else trial.status.upper()
            line.append(f"{subject.label} {shown}")
        if progress is not None and line:
            progress(f"{row} run {run + 1}/{repeat}: " + ", ".join(line))
    return VariantResult(plan, [results[s.label] for s in plan.subjects])


def run_plan(
    plans: Sequence[VariantPlan],
    repeat: int,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> list[VariantResult]:
    """Run every row of the plan in order; see :func:`run_variant`."""
    return [run_variant(plan, repeat, timeout, progress) for plan in plans]
