"""Dagster's SQLite storage under the kouiki home survives a crash while it is being created: a process killed
part-way leaves nothing that stops the next one (bench/crash_harness.py saw a kill 10 s into a first run leave
an event-log index without its tables, and every later `kouiki run` failed asking for `dagster instance
migrate`)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kouiki.errors import ConfigError
from kouiki.settings import Paths
from pipelines.dagster_storage import READY_MARKER, ensure_sqlite_storage, missing_tables
from pipelines.main_run import dagster_instance, write_dagster_yaml

REPO = Path(__file__).resolve().parents[1]
CREATE = """
import sys
from pathlib import Path
from kouiki.settings import Paths
from pipelines.main_run import dagster_instance
print("imported", flush=True)
dagster_instance(Paths(Path(sys.argv[1])))
print("created", flush=True)
"""


def assert_usable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new process's view: the instance opens and takes a city partition (the call that failed)."""
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    instance = dagster_instance(Paths(home))
    try:
        instance.add_dynamic_partitions("member_cities", ["132195"])
        assert instance.get_dynamic_partitions("member_cities") == ["132195"]
    finally:
        instance.dispose()
    assert missing_tables(home / "dagster") == []


def test_a_creation_cut_short_is_set_aside_and_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a kill mid-creation leaves: the index file exists but has no tables (Dagster makes the index only
    when the file is missing, so it never would again)."""
    dagster_home = tmp_path / "dagster"
    (dagster_home / "history" / "runs").mkdir(parents=True)
    sqlite3.connect(dagster_home / "history" / "runs" / "index.db").close()
    assert "history/runs/index.db:dynamic_partitions" in missing_tables(dagster_home)

    assert_usable(tmp_path, monkeypatch)
    assert (dagster_home / READY_MARKER).exists()
    aside = list(dagster_home.glob(".incomplete-storage-*"))
    assert len(aside) == 1 and (aside[0] / "history" / "runs" / "index.db").exists()   # kept, not deleted


@pytest.mark.parametrize("share", [0.15, 0.5, 0.85])
def test_a_process_killed_while_creating_the_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     share: float) -> None:
    """SIGKILL at a share of the time a creation takes (measured here first); the next process gets a
    complete storage either way."""
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster"), "KOUIKI_HOME": str(home)}
    duration = _creation_seconds(tmp_path / "measure", env)
    process = subprocess.Popen([sys.executable, "-c", CREATE, str(home)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "imported"
    time.sleep(duration * share)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)

    assert_usable(home, monkeypatch)


def _creation_seconds(home: Path, env: dict[str, str]) -> float:
    env = {**env, "DAGSTER_HOME": str(home / "dagster"), "KOUIKI_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-c", CREATE, str(home)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "imported"
    started = time.monotonic()
    assert process.stdout.readline().strip() == "created"
    process.wait(timeout=60)
    return time.monotonic() - started


def test_an_incomplete_storage_with_runs_is_one_line_and_left_alone(tmp_path: Path) -> None:
    """Runs recorded in it: kouiki does not set it aside (that would hide them) but says what to do."""
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    write_dagster_yaml(dagster_home / "dagster.yaml")
    ensure_sqlite_storage(dagster_home)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        from dagster import job, op

        @op
        def one() -> int:
            return 1

        @job
        def tiny() -> None:
            one()

        assert tiny.execute_in_process(instance=instance).success
    (dagster_home / READY_MARKER).unlink()
    with sqlite3.connect(dagster_home / "history" / "runs" / "index.db") as db:
        db.execute("DROP TABLE dynamic_partitions")

    with pytest.raises(ConfigError, match=r"move history/ and schedules/") as raised:
        ensure_sqlite_storage(dagster_home)
    assert "\n" not in str(raised.value) and "dynamic_partitions" in str(raised.value)
    assert not list(dagster_home.glob(".incomplete-storage-*"))
