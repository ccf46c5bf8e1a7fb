"""Loading the Dagster definitions stays fast (issue 14 item 6): the schema registry and the parsed SQL models are
kept on disk between processes (``kouiki.file_cache``) and used only while no input changed; the warm load imports
none of the libraries only a run needs (sqlglot, DuckDB, Great Expectations, pandas, polars, pyarrow, scipy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kouiki import file_cache

REPO = Path(__file__).resolve().parent.parent
RUN_ONLY = ("sqlglot", "duckdb", "jinja2", "great_expectations", "pandas", "polars", "pyarrow", "scipy", "numpy")


class Builder:
    """A build function that counts its calls and returns what the input files say."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return sorted(f"{p.name}={p.read_text()}" for p in self.folder.iterdir())


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.yaml").write_text("1")
    return folder


def test_a_result_is_built_once_and_again_after_any_input_changes(inputs: Path, tmp_path: Path) -> None:
    cache_dir, build = tmp_path / "cache", Builder(inputs)
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["a.yaml=1"]
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["a.yaml=1"]
    assert build.calls == 1
    (inputs / "a.yaml").write_text("22")                     # edited (size changes)
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["a.yaml=22"]
    (inputs / "b.yaml").write_text("3")                      # added
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["a.yaml=22", "b.yaml=3"]
    os.utime(inputs / "b.yaml", ns=(1, 1))                   # same size, other mtime (an editor's save)
    file_cache.cached("things", [inputs], build, cache_dir)
    (inputs / "a.yaml").unlink()                             # removed
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["b.yaml=3"]
    assert build.calls == 5
    assert len(list(cache_dir.glob("things-*.pickle"))) == 1   # older entries are removed


def test_a_broken_entry_is_built_again_and_an_unwritable_cache_only_costs_time(inputs: Path, tmp_path: Path) -> None:
    cache_dir, build = tmp_path / "cache", Builder(inputs)
    file_cache.cached("things", [inputs], build, cache_dir)
    for entry in cache_dir.glob("things-*.pickle"):
        entry.write_bytes(b"\x80\x05truncated")
    assert file_cache.cached("things", [inputs], build, cache_dir) == ["a.yaml=1"]
    assert build.calls == 2
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    assert file_cache.cached("things", [inputs], build, blocked / "cache") == ["a.yaml=1"]
    assert build.calls == 3


def test_a_killed_writer_s_temporary_file_is_removed_later(inputs: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    stale, fresh = cache_dir / ".things-dead.tmp", cache_dir / ".things-writing.tmp"
    stale.write_bytes(b"half an entry")
    fresh.write_bytes(b"another process is writing this one")
    os.utime(stale, (1, 1))
    file_cache.cached("things", [inputs], Builder(inputs), cache_dir)
    assert not stale.exists() and fresh.exists()


def test_the_cache_can_be_turned_off(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOUIKI_FILE_CACHE", "0")
    build = Builder(inputs)
    file_cache.cached("things", [inputs], build, tmp_path / "cache")
    file_cache.cached("things", [inputs], build, tmp_path / "cache")
    assert build.calls == 2 and not (tmp_path / "cache").exists()


def _load_definitions(home: Path) -> dict[str, object]:
    code = ("import json, sys; from pipelines.definitions import defs; "
            "graph = defs.resolve_asset_graph(); "
            f"print(json.dumps({{'assets': len(list(graph.get_all_asset_keys())), "
            f"'run_only': sorted(m for m in {RUN_ONLY!r} if m in sys.modules)}}))")
    env = {**os.environ, "KOUIKI_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("KOUIKI_FILE_CACHE", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          check=True, timeout=300)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_warm_definitions_import_nothing_a_run_needs(tmp_path: Path) -> None:
    cold = _load_definitions(tmp_path)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.pickle")) == ["models", "registry"]
    warm = _load_definitions(tmp_path)
    assert warm["assets"] == cold["assets"] and int(str(warm["assets"])) > 50
    assert warm["run_only"] == []


def test_a_changed_model_file_is_seen_by_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assets import models

    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path / "home"))
    root = tmp_path / "dbt_like_sql"
    shutil.copytree(REPO / "dbt_like_sql", root)
    first = models.load_models(root)
    marts = sorted(name for name in first if name.startswith("marts."))
    models._PROJECT_MODELS.clear()   # a new process: only the disk cache is left
    (root / "marts" / "aed_count.sql").write_text(
        "-- description: AEDの数 / number of AEDs\nSELECT count(*) AS n FROM conformed.aed\n", encoding="utf-8")
    second = models.load_models(root)
    assert sorted(n for n in second if n.startswith("marts.")) == sorted([*marts, "marts.aed_count"])
    assert second["marts.aed_count"].model_deps == ("conformed.aed",)
    models._PROJECT_MODELS.clear()
    (root / "marts" / "aed_count.sql").write_text(
        "SELECT count(*) AS n FROM conformed.evacuation_space\n", encoding="utf-8")
    third = models.load_models(root)
    assert third["marts.aed_count"].model_deps == ("conformed.evacuation_space",)


def test_a_new_schema_file_is_seen_by_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expectations import registry

    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path / "home"))
    extra = tmp_path / "schemas"
    extra.mkdir()
    monkeypatch.setenv("KOUIKI_SCHEMAS", str(extra))
    registry.default_registry.cache_clear()
    try:
        before = set(registry.default_registry().datasets)
        source = registry.SCHEMAS_DIR / "aed.yaml"
        text = source.read_text(encoding="utf-8").replace("id: aed", "id: aed_office", 1)
        (extra / "aed_office.yaml").write_text(text, encoding="utf-8")
        registry.default_registry.cache_clear()   # a new process: only the disk cache is left
        assert set(registry.default_registry().datasets) == before | {"aed_office"}
    finally:
        registry.default_registry.cache_clear()
