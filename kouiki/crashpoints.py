"""Named crash points for the crash harness (``bench/crash_harness.py``); no effect unless the test-only
environment variables are set.

``KOUIKI_CRASH_AT=<name>[:<n>]`` ends the process with ``os._exit`` (no clean-up, like SIGKILL) the n-th time
(default: first) the point ``<name>`` is reached. ``KOUIKI_CRASH_TRACE=<file>`` appends every point reached, one
name a line, so the harness can list the step boundaries of a real run.
"""

from __future__ import annotations

import os

CRASH_AT_ENV = "KOUIKI_CRASH_AT"
CRASH_TRACE_ENV = "KOUIKI_CRASH_TRACE"
CRASH_EXIT_CODE = 137   # what a shell reports for SIGKILL: the harness treats both alike

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Mark a step boundary; crash here when the harness asks for it."""
    trace = os.environ.get(CRASH_TRACE_ENV)
    wanted = os.environ.get(CRASH_AT_ENV)
    if not trace and not wanted:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{name}\n")
    if wanted:
        point, _, nth = wanted.partition(":")
        if point == name and _hits[name] == int(nth or 1):
            os._exit(CRASH_EXIT_CODE)
