"""Reports of a bench run: a plain-text table, markdown, and JSON with every sample.

Every figure is a median over the run's repeats. The ratio columns always read the same
way whatever the unit: ``speedup`` > 1 means the candidate (ferroproc) beat the baseline
(the stdlib), and ``<candidate>/floor`` is how far the candidate sits above the floor's
cost (1.00x is at the floor). The header spells out, unit by unit, which way that is.
A row's other floors (``Variant.other_floors``) get a table of their own, read the same way.
The peers' table also gives each peer against the baseline, and a workload with a second
unit (``Workload.also``) gets every figure again in that unit. A subject the workload could
not measure here (a missing library or API) reads SKIPPED, with the reason in the notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import pstdev

from ferroproc.bench.harness import SubjectResult, VariantResult
from ferroproc.bench.machine import summary

#: What a failed subject's cell shows instead of a number.
_STATUS_CELL = {
    "failed": "FAILED",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "skipped": "SKIPPED",
    "not run": "-",
}


@dataclass
class BenchRun:
    """Everything a report needs: the results and how they were obtained."""

    results: list[VariantResult]
    baseline: str
    candidate: str
    repeat: int
    quick: bool
    scale: float
    timeout: float
    machine: dict[str, object]
    command: list[str]
    started: datetime
    finished: datetime
    peers_requested: bool = False
    #: ``(workload, peer)`` pairs asked for with ``--peers`` but not installed.
    missing_peers: list[tuple[str, str]] = field(default_factory=list)
    #: Workloads in this run that have no peers to compare (only with ``--peers``).
    no_peers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every trial of every row succeeded or was skipped."""
        return all(r.status in ("ok", "skipped") for row in self.results for r in row.results)


def fmt(value: float | None) -> str:
    """Format a figure with about three significant digits."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _cell(result: SubjectResult | None) -> str:
    if result is None:
        return "-"
    if result.status == "ok":
        return fmt(result.median)
    return _STATUS_CELL.get(result.status, result.status.upper())


def _target_cell(row: VariantResult) -> str:
    target = row.plan.variant.target
    if target is None:
        return "-"
    met = row.target_met()
    verdict = "?" if met is None else "met" if met else "MISSED"
    return f"{target.describe()} {verdict}"


def _row_name(row: VariantResult) -> str:
    return f"{row.plan.workload.name}/{row.plan.variant.name}"


def _header_lines(run: BenchRun) -> list[str]:
    """The lines above the table: when, what, on what, and how to read the ratios."""
    base, cand = run.baseline, run.candidate
    size = "--quick sizes" if run.quick else "full sizes"
    if run.scale != 1.0:
        size += f" scaled by {run.scale:g}"
    lines = [
        f"ferroproc bench, {run.started:%Y-%m-%d %H:%M:%S %Z}".rstrip(),
        f"command: {' '.join(run.command)}",
        f"machine: {summary(run.machine)}",
        f"rule: median of {run.repeat} runs, alternating implementations, "
        f"fresh process each ({size}); every run checks its own result",
    ]
    units: dict[str, str] = {}
    converted: dict[str, tuple[str, str]] = {}
    for row in run.results:
        units.setdefault(row.plan.workload.unit, row.plan.workload.better)
        also = row.plan.workload.also
        if also is not None:
            converted.setdefault(also.unit, (row.plan.workload.unit, also.better))
    for unit, better in units.items():
        if better == "lower":
            lines.append(
                f"{unit}: lower is better; speedup = {base}/{cand}, >1 means {cand} is faster;"
                f" {cand}/floor = {cand} / floor, 1.00x = at the floor"
            )
        else:
            lines.append(
                f"{unit}: higher is better; speedup = {cand}/{base}, >1 means {cand} is faster;"
                f" {cand}/floor = floor / {cand}, 1.00x = at the floor"
            )
    for unit, (source, better) in converted.items():
        if unit not in units:
            lines.append(
                f"{unit}: {better} is better; the medians in {source} converted, in the table"
                f" 'in other units'; vs {base} > 1 means better than {base}"
            )
    return lines


def _main_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    cand = run.candidate
    headers = [
        "workload",
        "variant",
        "unit",
        run.baseline,
        cand,
        "speedup",
        "floor",
        f"{cand}/floor",
        "target",
    ]
    rows = [
        [
            row.plan.workload.name,
            row.plan.variant.name,
            row.plan.workload.unit,
            _cell(row.one("baseline")),
            _cell(row.one("candidate")),
            _ratio(row.speedup()),
            _cell(row.one("floor")),
            _ratio(row.floor_ratio()),
            _target_cell(row),
        ]
        for row in run.results
    ]
    return headers, rows


def _peer_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    cand = run.candidate
    headers = [
        "workload",
        "variant",
        "unit",
        "peer",
        "peer figure",
        f"peer vs {run.baseline}",
        cand,
        f"{cand} vs peer",
    ]
    rows = [
        [
            row.plan.workload.name,
            row.plan.variant.name,
            row.plan.workload.unit,
            peer.subject.label,
            _cell(peer),
            _ratio(row.versus_baseline(peer)),
            _cell(row.one("candidate")),
            _ratio(row.speedup(peer)),
        ]
        for row in run.results
        for peer in row.by_role("peer")
    ]
    return headers, rows


def _other_floor_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    cand = run.candidate
    headers = ["workload", "variant", "unit", "floor", "floor figure", cand, f"{cand}/floor"]
    rows = [
        [
            row.plan.workload.name,
            row.plan.variant.name,
            row.plan.workload.unit,
            floor.subject.label,
            _cell(floor),
            _cell(row.one("candidate")),
            _ratio(row.floor_ratio(floor)),
        ]
        for row in run.results
        for floor in row.by_role("other_floor")
    ]
    return headers, rows


def _converted(row: VariantResult, result: SubjectResult) -> float | None:
    """``result``'s median in the workload's second unit (``Workload.also``), if any."""
    also = row.plan.workload.also
    median = result.median
    if also is None or median is None:
        return None
    return also.convert(median, row.plan.variant.params)


def _also_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    """Every subject's median again in its workload's second unit, one line each."""
    headers = ["workload", "variant", "unit", "subject", "figure", f"vs {run.baseline}"]
    rows = []
    for row in run.results:
        also = row.plan.workload.also
        if also is None:
            continue
        baseline = row.one("baseline")
        base = None if baseline is None else _converted(row, baseline)
        for result in row.results:
            figure = _converted(row, result)
            ratio = None
            if figure is not None and base is not None and result.subject.role != "baseline":
                ratio = figure / base if also.better == "higher" else base / figure
            rows.append(
                [
                    row.plan.workload.name,
                    row.plan.variant.name,
                    also.unit,
                    result.subject.label,
                    fmt(figure) if result.status == "ok" else _cell(result),
                    _ratio(ratio),
                ]
            )
    return headers, rows


def _skip_notes(run: BenchRun) -> list[str]:
    """One note per reason for skipping, naming the rows and subjects it hit."""
    skipped: dict[str, tuple[list[str], list[str]]] = {}
    for row in run.results:
        for result in row.results:
            failure = result.failure
            if failure is None or failure.status != "skipped":
                continue
            rows, labels = skipped.setdefault(failure.detail, ([], []))
            if _row_name(row) not in rows:
                rows.append(_row_name(row))
            if result.subject.label not in labels:
                labels.append(result.subject.label)
    return [
        f"SKIPPED in {', '.join(rows)} ({', '.join(labels)}): {detail}"
        for detail, (rows, labels) in skipped.items()
    ]


def _notes(run: BenchRun) -> list[str]:
    """Floors, failures, skips, the rows' own notes and missing peers, one line each."""
    notes: list[str] = []
    floors: dict[str, list[str]] = {}
    for row in run.results:
        floor = row.plan.variant.floor
        if floor is not None:
            description = row.plan.workload.floors[floor].description
            floors.setdefault(description, []).append(_row_name(row))
    for description, names in floors.items():
        notes.append(f"floor for {', '.join(names)}: {description}")
    others: dict[tuple[str, str], list[str]] = {}
    for row in run.results:
        for floor_key in row.plan.variant.other_floors:
            description = row.plan.workload.floors[floor_key].description
            others.setdefault((floor_key, description), []).append(_row_name(row))
    for (floor_key, description), names in others.items():
        notes.append(f"floor:{floor_key} for {', '.join(names)}: {description}")
    # The same failure in several rows (ferroproc missing, say) is one note.
    failures: dict[tuple[str, str, int, str], list[str]] = {}
    for row in run.results:
        for result in row.results:
            failure = result.failure
            if failure is not None and failure.status != "skipped":
                key = (result.subject.label, failure.status, failure.run, failure.detail)
                failures.setdefault(key, []).append(_row_name(row))
    for (label, status, failed_run, detail), names in failures.items():
        skipped = "; its remaining runs were skipped" if failed_run + 1 < run.repeat else ""
        notes.append(
            f"{label} {_STATUS_CELL[status]} in {', '.join(names)} (run {failed_run + 1}"
            f" of {run.repeat}{skipped}): {detail}"
        )
    notes.extend(_skip_notes(run))
    for row in run.results:
        labels = {"", *(result.subject.label for result in row.results)}
        notes.extend(
            f"{_row_name(row)}: {note}"
            for about, note in row.plan.variant.notes.items()
            if about in labels
        )
    for workload, peer in run.missing_peers:
        notes.append(f"peer {peer} ({workload}) is not installed: not measured")
    if run.no_peers:
        notes.append(f"no peers to compare for: {', '.join(run.no_peers)}")
    return notes


def _plain(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for cells in [headers, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    return lines


def _markdown(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(cells) + " |" for cells in rows)
    return lines


def render_text(run: BenchRun) -> str:
    """The plain-text report printed to stdout."""
    lines = _header_lines(run)
    lines.append("")
    lines.extend(_plain(*_main_table(run)))
    peer_headers, peer_rows = _peer_table(run)
    if peer_rows:
        lines.extend(["", "peers:"])
        lines.extend(_plain(peer_headers, peer_rows))
    floor_headers, floor_rows = _other_floor_table(run)
    if floor_rows:
        lines.extend(["", "other floors:"])
        lines.extend(_plain(floor_headers, floor_rows))
    also_headers, also_rows = _also_table(run)
    if also_rows:
        lines.extend(["", "in other units:"])
        lines.extend(_plain(also_headers, also_rows))
    notes = _notes(run)
    if notes:
        lines.append("")
        lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines) + "\n"


def render_markdown(run: BenchRun) -> str:
    """The report as markdown: the header as a list, the tables as pipe tables."""
    lines = ["# ferroproc bench", "", f"- date: {run.started.isoformat(timespec='seconds')}"]
    lines.extend(f"- {line}" for line in _header_lines(run)[1:])
    lines.append("")
    lines.extend(_markdown(*_main_table(run)))
    peer_headers, peer_rows = _peer_table(run)
    if peer_rows:
        lines.extend(["", "## Peers", ""])
        lines.extend(_markdown(peer_headers, peer_rows))
    floor_headers, floor_rows = _other_floor_table(run)
    if floor_rows:
        lines.extend(["", "## Other floors", ""])
        lines.extend(_markdown(floor_headers, floor_rows))
    also_headers, also_rows = _also_table(run)
    if also_rows:
        lines.extend(["", "## In other units", ""])
        lines.extend(_markdown(also_headers, also_rows))
    notes = _notes(run)
    if notes:
        lines.extend(["", "## Notes", ""])
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def _subject_data(result: SubjectResult) -> dict[str, object]:
    samples = result.samples
    return {
        **asdict(result.subject),
        "status": result.status,
        "median": result.median,
        "min": min(samples) if samples else None,
        "max": max(samples) if samples else None,
        "stdev": pstdev(samples) if len(samples) > 1 else None,
        "samples": samples,
        "trials": [asdict(trial) for trial in result.trials],
    }


def _row_data(row: VariantResult) -> dict[str, object]:
    workload, variant = row.plan.workload, row.plan.variant
    floor = workload.floors[variant.floor] if variant.floor is not None else None
    target = variant.target
    return {
        "workload": workload.name,
        "description": workload.description,
        "variant": variant.name,
        "unit": workload.unit,
        "better": workload.better,
        "params": dict(variant.params),
        "status": row.status,
        "speedup": row.speedup(),
        "floor_ratio": row.floor_ratio(),
        "floor": None if floor is None else {"name": floor.name, "description": floor.description},
        "target": None
        if target is None
        else {
            "against": target.against,
            "bound": target.bound,
            "description": target.describe(),
            "met": row.target_met(),
        },
        "subjects": [_subject_data(result) for result in row.results],
        "peers": {peer.subject.label: row.speedup(peer) for peer in row.by_role("peer")},
        "peers_vs_baseline": {
            peer.subject.label: row.versus_baseline(peer) for peer in row.by_role("peer")
        },
        "notes": dict(variant.notes),
        "also": None
        if workload.also is None
        else {
            "unit": workload.also.unit,
            "better": workload.also.better,
            "medians": {result.subject.label: _converted(row, result) for result in row.results},
        },
        "other_floors": {
            floor.subject.module: {
                "description": workload.floors[floor.subject.module].description,
                "floor_ratio": row.floor_ratio(floor),
            }
            for floor in row.by_role("other_floor")
        },
    }


def to_data(run: BenchRun) -> dict[str, object]:
    """The full run as JSON-ready data: settings, machine, every trial of every row."""
    return {
        "schema": 1,
        "command": run.command,
        "date": run.started.isoformat(timespec="seconds"),
        "finished": run.finished.isoformat(timespec="seconds"),
        "machine": run.machine,
        "settings": {
            "baseline": run.baseline,
            "candidate": run.candidate,
            "repeat": run.repeat,
            "quick": run.quick,
            "scale": run.scale,
            "timeout_s": run.timeout,
            "peers": run.peers_requested,
        },
        "legend": {
            "figure": "median of the runs' figures per (workload, variant, subject)",
            "speedup": f"how many times better {run.candidate} is than {run.baseline}"
            " in the row's unit: >1 means faster",
            "floor_ratio": f"{run.candidate}'s cost over the floor's: 1.0 is at the floor",
        },
        "ok": run.ok,
        "results": [_row_data(row) for row in run.results],
        "missing_peers": [{"workload": w, "peer": p} for w, p in run.missing_peers],
        "notes": _notes(run),
    }


def write(run: BenchRun, paths: Sequence[Path]) -> None:
    """Write the reports named by ``paths``: ``.md`` as markdown, ``.json`` as data."""
    for path in paths:
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".md":
            path.write_text(render_markdown(run), encoding="utf-8")
        elif path.suffix == ".json":
            text = json.dumps(to_data(run), indent=2)
            path.write_text(text + "\n", encoding="utf-8")
        else:
            raise ValueError(f"unknown report format {path.suffix!r} for {path}")
