"""Several processes opening a new catalog at the same moment (two Celery workers, the daemon and the upload
service): every one of them gets the tables, none fails with "table uploads already exists" (seen in
`make test-distributed` on a fresh clone)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect

from kouiki import catalog

REPO = Path(__file__).resolve().parents[1]
OPEN_AT = """
import sys, time
from kouiki import catalog
start = float(sys.argv[2])
while time.time() < start:   # every process past its imports, then all at once
    time.sleep(0.001)
catalog.engine_for(sys.argv[1])
print("ok")
"""
PROCESSES = 6


@pytest.mark.parametrize("round_", range(3))
def test_processes_creating_one_catalog_at_once_all_succeed(tmp_path: Path, round_: int) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    start = time.time() + 4.0   # beyond the imports of every process, even on a busy machine
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, str(start)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(PROCESSES)]
    results = [p.communicate(timeout=120) for p in processes]
    failed = [err[-2000:] for (out, err), p in zip(results, processes, strict=True) if p.returncode != 0]
    assert not failed, failed[0]
    assert {"uploads", "releases"} <= set(inspect(catalog.engine_for(url)).get_table_names())
    catalog.forget_engines()
