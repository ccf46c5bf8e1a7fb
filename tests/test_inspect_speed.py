"""``kouiki inspect`` of a small file answers in under 2 s (issue 17): the command imports what it needs and nothing
else. Asserted on the modules a real ``kouiki inspect`` process ends up with, not on a wall clock (the machine is
shared): no Great Expectations, pandas, SQLAlchemy, Dagster, nor openpyxl for a CSV, nor the office's commands.
The figures before/after are measured in the report of the change (bench: /usr/bin/time kouiki inspect)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KOMAE = REPO / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
# each costs from 0.15 s (openpyxl) to seconds (great_expectations) at start-up, and inspect needs none of them
# (pydantic: typer 0.29 converts parameters with it; commands.cli converts text, paths and flags itself)
HEAVY = {"great_expectations", "pandas", "sqlalchemy", "dagster", "scipy", "openpyxl", "pydantic"}
OFFICE = {"commands.office_cli", "commands.mappings_cli", "kouiki.catalog", "kouiki.publication", "intake.mapping"}

# The CLI in a fresh interpreter, as `kouiki inspect FILE --json` runs it; then what it imported, on stderr.
RUN_CLI = """
import json, sys
from commands.cli import app
try:
    app(sys.argv[1:])
except SystemExit as done:
    status = done.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} or m in {office!r})
print(json.dumps({{"status": status, "loaded": loaded}}), file=sys.stderr)
"""


def run_cli(*args: str) -> tuple[int, str, list[str]]:
    """(exit status, what it printed, the heavy or office modules loaded) of ``kouiki ARGS`` in a new process."""
    code = RUN_CLI.format(heavy=sorted(HEAVY), office=sorted(OFFICE))
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    tail = json.loads(done.stderr.strip().splitlines()[-1])
    return tail["status"], done.stdout, tail["loaded"]


@pytest.fixture(scope="module", autouse=True)
def registry_cache_built() -> None:
    """The schema registry's cache entry exists, as after any earlier command: building it (a cache miss, once
    per edit of a schema file) checks the YAML with pydantic (issue 18); every inspect after reads the cache."""
    subprocess.run([sys.executable, "-c", "from expectations.registry import default_registry; default_registry()"],
                   cwd=REPO, check=True, timeout=120)


@pytest.fixture(scope="module")
def two_lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inspect-speed") / "aed_two_lines.csv"
    path.write_bytes(b"".join(KOMAE.read_bytes().splitlines(keepends=True)[:2]))
    return path


def test_inspecting_a_small_csv_imports_no_heavy_module(two_lines: Path) -> None:
    status, out, loaded = run_cli("inspect", str(two_lines), "--json")
    report = json.loads(out)
    assert status in (0, None)
    assert report["dataset"] == "aed" and report["rows"] == 1                      # it did the whole job
    assert report["validation"]["decision"] == "accept"                           # ... validation included
    assert loaded == [], loaded


def test_a_refused_file_and_a_named_dataset_import_no_heavy_module(two_lines: Path, tmp_path: Path) -> None:
    status, out, loaded = run_cli("inspect", str(two_lines), "--dataset", "aed", "--json")
    assert status in (0, None) and json.loads(out)["dataset"] == "aed"
    assert loaded == [], loaded
    stranger = tmp_path / "stranger.csv"
    stranger.write_text("品目,数量\nりんご,3\n", encoding="utf-8")
    status, out, loaded = run_cli("inspect", str(stranger), "--json")
    report = json.loads(out)
    assert status == 2 and report["error"]["code"] == "no-dataset-match" and report["rows"] == 1
    # the mapping proposals need intake.mapping (issue 15); still nothing heavy
    assert not set(loaded) & HEAVY, loaded


def test_office_commands_are_loaded_when_used() -> None:
    """The lazy list in commands/cli_start.py names exactly the office modules' commands; each one runs."""
    from typer.main import get_command, get_group

    from commands.cli import app
    from commands.cli_start import LAZY_COMMANDS
    from commands.mappings_cli import mappings_app
    from commands.office_cli import office_app

    defined = {*get_group(office_app).commands, "mappings"}
    assert set(LAZY_COMMANDS) == defined
    group = get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert "inspect" in commands and "members" in commands
    assert set(commands) >= defined | {"inspect", "run", "doctor"}
    assert sorted(commands["mappings"].commands) == sorted(get_group(mappings_app).commands)
    assert commands["members"].name == "members" and commands["mappings"].name == "mappings"


def test_members_list_still_runs() -> None:
    status, out, loaded = run_cli("members", "list")
    assert status in (0, None) and "狛江市" in out
    assert "commands.office_cli" in loaded and "commands.mappings_cli" not in loaded


def test_pandas_still_works_after_inspect_told_pyarrow_it_is_absent() -> None:
    """The inspect process tells pyarrow pandas is absent; a later pandas user in that process is not broken."""
    code = ("import sys; from commands.cli_start import pyarrow_without_pandas; pyarrow_without_pandas(); "
            "import pyarrow as pa; a = pa.array(['x', None]).to_numpy(zero_copy_only=False); "
            "assert 'pandas' not in sys.modules; "
            "import pandas as pd; t = pa.Table.from_pandas(pd.DataFrame({'a': [1, 2]})); "
            "print(t.to_pandas()['a'].sum(), pa.array(pd.Series([3, 4])).to_pylist())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[3,", "4]"]
