"""Named crash points for the crash harness (``bench/crash_harness.py``); no effect unless the test-only
environment variables are set.

``KOUIKI_CRASH_AT=<name>[:<n>]`` ends the process with ``os._exit`` (no clean-up, like SIGKILL) the n-th time
(default: first) the point ``<name>`` is reached. ``KOUIKI_CRASH_TRACE=<file>`` appends every point reached, one
name a line, so the harness can list the step boundaries of a real run.

With a trace file the n-th time is counted over every process that shares it (under an exclusive lock): a
step that runs in a process of its own (the daemon's executors, a run started by a sensor) still meets the
n-th occurrence the harness saw in the traced baseline. Without one, each process counts its own.
"""

from __future__ import annotations

import fcntl
import os

from kouiki.settings import harness_values

CRASH_EXIT_CODE = 137   # what a shell reports for SIGKILL: the harness treats both alike

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Mark a step boundary; crash here when the harness asks for it."""
    harness = harness_values()          # KOUIKI_CRASH_TRACE, KOUIKI_CRASH_AT (kouiki/settings.py)
    trace = str(harness.crash_trace) if harness.crash_trace else None
    wanted = harness.crash_at
    if not trace and not wanted:
        return
    hits = _traced_hits(trace, name) if trace else _counted_hits(name)
    if wanted:
        point, _, nth = wanted.partition(":")
        if point == name and hits == int(nth or 1):
            os._exit(CRASH_EXIT_CODE)


def _counted_hits(name: str) -> int:
    _hits[name] = _hits.get(name, 0) + 1
    return _hits[name]


def _traced_hits(trace: str, name: str) -> int:
    """Append ``name`` to the trace and return how often it is there now (one lock: no two processes count
    the same occurrence)."""
    with open(trace, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(f"{name}\n")
        fh.flush()
        fh.seek(0)
        return sum(1 for line in fh if line.rstrip("\n") == name)
