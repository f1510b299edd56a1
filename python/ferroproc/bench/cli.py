"""``python -m ferroproc bench``: parse the options, plan the rows, run, report.

Exit status: 0 when every trial succeeded, 1 when a check failed or a trial errored or
timed out (the report still says which), 2 for a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path

from ferroproc.bench import harness, machine, report, workloads
from ferroproc.bench.harness import Role, Subject, VariantPlan
from ferroproc.bench.workloads._base import Peer, Sizing, Workload

#: Environment variable read when ``--impls`` is not given.
IMPLS_ENV = "FERROPROC_BENCH_IMPLS"
DEFAULT_IMPLS = "stdlib,ferroproc"
DEFAULT_REPEAT = 5
QUICK_REPEAT = 3
#: Seconds one trial may run before its process group is killed.
DEFAULT_TIMEOUT = 300.0

_DESCRIPTION = """\
Run ferroproc's benchmarks against the stdlib's multiprocessing (and, with --peers,
the installed peers): each workload alternates implementations, runs each trial in a
fresh Python process, checks its own result, and reports the median of the repeats.
"""


class UsageError(Exception):
    """A bad option value, reported as a usage error (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ferroproc bench``."""
    parser = argparse.ArgumentParser(prog="python -m ferroproc bench", description=_DESCRIPTION)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes and {QUICK_REPEAT} repeats (the checks still run)",
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        action="append",
        default=[],
        help="run only these workloads (NAME) or rows (NAME/VARIANT); repeatable",
    )
    parser.add_argument(
        "--peers", action="store_true", help="also measure each installed peer library"
    )
    parser.add_argument(
        "--repeat",
        metavar="N",
        type=int,
        help=f"trials per implementation and row (default {DEFAULT_REPEAT},"
        f" {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        action="append",
        default=[],
        type=Path,
        help="also write the report to FILE: .md for markdown, .json for the full data; repeatable",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"kill a trial (and what it started) after this long (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    # For developing the harness itself: compare any two implementations, e.g.
    # "stdlib,stdlib", or "LABEL=MODULE" for a module offering the stdlib's API.
    parser.add_argument("--impls", help=argparse.SUPPRESS)
    # Multiply every workload's size (tests use tiny sizes).
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    return parser


def parse_impls(text: str) -> tuple[Subject, Subject]:
    """Parse ``BASELINE,CANDIDATE``; each is a known name or ``LABEL=MODULE``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) != 2:
        raise UsageError(f"--impls takes BASELINE,CANDIDATE, not {text!r}")
    subjects: list[Subject] = []
    roles: tuple[Role, Role] = ("baseline", "candidate")
    for role, item in zip(roles, items):
        if "=" in item:
            name, _, module = item.partition("=")
            name, module = name.strip(), module.strip()
        elif item in harness.IMPLEMENTATIONS:
            name, module = item, harness.IMPLEMENTATIONS[item]
        else:
            known = ", ".join(sorted(harness.IMPLEMENTATIONS))
            raise UsageError(f"unknown implementation {item!r}: use one of {known} or LABEL=MODULE")
        if not name or not module:
            raise UsageError(f"bad implementation {item!r}: expected LABEL=MODULE")
        label = name if not subjects or subjects[0].label != name else f"{name}#2"
        subjects.append(Subject(label=label, kind="impl", role=role, name=name, module=module))
    return subjects[0], subjects[1]


def select(only: Sequence[str]) -> list[tuple[Workload, set[str] | None]]:
    """Resolve ``--only`` into workloads and, per workload, the variants asked for.

    ``None`` means every variant. Raises :class:`UsageError` for an unknown name.
    """
    available = workloads.all_workloads()
    if not only:
        return [(w, None) for w in available]
    by_name = {w.name: w for w in available}
    wanted: dict[str, set[str] | None] = {}
    for chunk in only:
        for item in (part.strip() for part in chunk.split(",")):
            if not item:
                continue
            name, _, variant = item.partition("/")
            if name not in by_name:
                known = ", ".join(by_name)
                raise UsageError(f"unknown workload {name!r}; known workloads: {known}")
            if not variant:
                wanted[name] = None
                continue
            names = {v.name for v in by_name[name].variants(Sizing())}
            if variant not in names:
                raise UsageError(
                    f"unknown variant {variant!r} of {name}; it has: {', '.join(sorted(names))}"
                )
            current = wanted.get(name, set())
            if current is not None:
                current.add(variant)
                wanted[name] = current
    return [(w, wanted[w.name]) for w in available if w.name in wanted]


def plan(
    selection: Sequence[tuple[Workload, set[str] | None]],
    baseline: Subject,
    candidate: Subject,
    sizing: Sizing,
    peers: bool,
) -> tuple[list[VariantPlan], list[tuple[str, str]], list[str]]:
    """Build the rows to run, the peers that are missing, and the workloads without peers."""
    plans: list[VariantPlan] = []
    missing: list[tuple[str, str]] = []
    no_peers: list[str] = []
    for workload, variants in selection:
        chosen = [v for v in workload.variants(sizing) if variants is None or v.name in variants]
        installed: list[Peer] = []
        if peers:
            if not workload.peers:
                no_peers.append(workload.name)
            for peer in workload.peers:
                if not any(peer.runs_in(v.name) for v in chosen):
                    continue
                if find_spec(peer.module) is None:
                    missing.append((workload.name, peer.name))
                else:
                    installed.append(peer)
        for variant in chosen:
            subjects = [baseline, candidate]
            subjects.extend(
                Subject(peer.name, "peer", "peer", peer.name, peer.module)
                for peer in installed
                if peer.runs_in(variant.name)
            )
            if variant.floor is not None:
                subjects.append(Subject("floor", "floor", "floor", "floor", variant.floor))
            for key in variant.other_floors:
                subjects.append(Subject(f"floor:{key}", "floor", "other_floor", key, key))
            plans.append(VariantPlan(workload, variant, subjects))
    return plans, missing, no_peers


def list_workloads() -> str:
    """The text of ``--list``: each workload, its unit, variants, floors and peers."""
    lines = []
    for workload in workloads.all_workloads():
        variants = workload.variants(Sizing())
        quick = {v.name: v for v in workload.variants(Sizing(quick=True))}
        also = f"; also in {workload.also.unit}" if workload.also is not None else ""
        lines.append(f"{workload.name}  ({workload.unit}, {workload.better} is better{also})")
        lines.append(f"    {workload.description}")
        for variant in variants:
            params = ", ".join(f"{k}={v}" for k, v in variant.params.items())
            quick_params = quick.get(variant.name)
            if quick_params is not None and quick_params.params != variant.params:
                changed = ", ".join(
                    f"{k}={v}" for k, v in quick_params.params.items() if variant.params.get(k) != v
                )
                params += f" (--quick: {changed})"
            floor = variant.floor
            extra = f"; floor: {workload.floors[floor].description}" if floor else ""
            for key in variant.other_floors:
                extra += f"; also floor {key}: {workload.floors[key].description}"
            target = f"; target: {variant.target.describe()}" if variant.target else ""
            lines.append(f"    {variant.name}: {params}{extra}{target}")
            lines.extend(f"        note: {note}" for note in variant.notes.values())
        peers = (
            ", ".join(
                f"{p.name} ({', '.join(p.only_variants)})" if p.only_variants else p.name
                for p in workload.peers
            )
            or "none"
        )
        lines.append(f"    peers: {peers}")
    return "\n".join(lines) + "\n"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    """Run ``python -m ferroproc bench`` with ``argv`` (the words after ``bench``)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.list:
        sys.stdout.write(list_workloads())
        return 0
    try:
        for path in args.output:
            if path.suffix not in (".md", ".json"):
                raise UsageError(f"--output {path}: the name must end in .md or .json")
        if args.repeat is not None and args.repeat < 1:
            raise UsageError("--repeat must be at least 1")
        if args.timeout <= 0 or args.scale <= 0:
            raise UsageError("--timeout and --scale must be positive")
        impls = args.impls or os.environ.get(IMPLS_ENV) or DEFAULT_IMPLS
        baseline, candidate = parse_impls(impls)
        selection = select(args.only)
    except UsageError as exc:
        parser.error(str(exc))
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    sizing = Sizing(quick=args.quick, scale=args.scale)
    plans, missing, no_peers = plan(selection, baseline, candidate, sizing, args.peers)
    for workload, peer in missing:
        _progress(f"peer {peer} ({workload}) is not installed: skipped")

    started = datetime.now(timezone.utc)
    try:
        results = harness.run_plan(plans, repeat, args.timeout, _progress)
    except KeyboardInterrupt:
        _progress("interrupted: the running trial was killed; no report written")
        return 130
    run = report.BenchRun(
        results=results,
        baseline=baseline.label,
        candidate=candidate.label,
        repeat=repeat,
        quick=args.quick,
        scale=args.scale,
        timeout=args.timeout,
        machine=machine.describe(),
        command=[Path(sys.executable).name, "-m", "ferroproc", "bench", *argv],
        started=started,
        finished=datetime.now(timezone.utc),
        peers_requested=args.peers,
        missing_peers=missing,
        no_peers=no_peers,
    )
    sys.stdout.write(report.render_text(run))
    report.write(run, args.output)
    for path in args.output:
        _progress(f"wrote {path}")
    return 0 if run.ok else 1
