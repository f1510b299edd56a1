"""ferroproc's benchmark harness: ``python -m ferroproc bench``.

Each workload runs for ferroproc and the stdlib (and with ``--peers`` the installed
peers) in the same run, alternating implementations, each trial in a fresh Python
process; the figure is the median of the repeats. See ``BENCHMARKS.md`` for the
workloads and ``cli.py`` for the options.

Layout::

    cli.py          argument parsing, the plan, writing the reports
    harness.py      runs trials (subprocesses), alternates, collects samples
    _trial.py       the fresh process: imports one implementation, runs one measurement
    report.py       plain-text table, markdown, JSON
    machine.py      what the run was measured on
    workloads/      one module per workload, plus the registry and shared vocabulary

Nothing here imports the stdlib ``multiprocessing`` except the trial process, by name,
when the stdlib is the implementation being measured.
"""
