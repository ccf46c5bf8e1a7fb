"""Starting Dagster for the office: the daemon (sensors, declarative automation, run queue) with or without the
UI. Both first write kouiki's dagster.yaml (run queue, retries) and give every member city its partition, then
replace this process with Dagster's own command, started in the repository (workspace.yaml's code location)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kouiki.members import load_members
from kouiki.settings import REPO_ROOT, get_paths
from pipelines.automation import load_settings
from pipelines.main_run import dagster_instance, sync_partitions
from pipelines.run_queue import dagster_environment

WORKSPACE = REPO_ROOT / "workspace.yaml"


def prepare() -> Path:
    """dagster.yaml under DAGSTER_HOME and the member partitions; returns DAGSTER_HOME."""
    instance = dagster_instance(get_paths())
    sync_partitions(instance, load_members())
    return Path(os.environ["DAGSTER_HOME"])   # Dagster's own variable, set by dagster_instance unless given


def command(ui: bool, host: str = "127.0.0.1", port: int = 3000) -> list[str]:
    """``dagster dev`` (UI + daemon) or ``dagster-daemon run`` (daemon only), from this environment."""
    bin_dir = Path(sys.executable).parent
    if ui:
        return [str(bin_dir / "dagster"), "dev", "-w", str(WORKSPACE), "-h", host, "-p", str(port)]
    return [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE)]


def exec_dagster(ui: bool, host: str = "127.0.0.1", port: int = 3000) -> None:
    prepare()
    argv = command(ui, host, port)
    # Dagster's own variables, for the Dagster processes that replace this one (not kouiki settings)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    for name, value in dagster_environment(load_settings()).items():
        os.environ.setdefault(name, value)
    os.chdir(REPO_ROOT)   # the code location is the module pipelines.definitions of this repository
    os.execv(argv[0], argv)
