"""kouiki's catalog and Dagster's run/event storage on a real PostgreSQL server.

These tests need a server: ``make test-postgres`` starts a throwaway one (scripts/postgres.sh) and sets
``KOUIKI_TEST_PG_URL``; without it every test here is skipped, so ``make test`` stays green on any machine.
Each test gets a database of its own (random name, dropped at the end of the module).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DynamicPartitionsDefinition,
    JobDefinition,
    MaterializeResult,
    asset,
    build_reconstructable_job,
    define_asset_job,
    execute_job,
    materialize,
)

from kouiki import catalog, tokens
from kouiki.members import Member
from kouiki.settings import REPO_ROOT, Paths

PG_URL = os.environ.get("KOUIKI_TEST_PG_URL", "")
DEMO = REPO_ROOT / "demo" / "uploads"

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="KOUIKI_TEST_PG_URL is not set: `make test-postgres` starts a throwaway PostgreSQL server and sets it",
)

NewDatabase = Callable[[], str]


@pytest.fixture(scope="module")
def new_database() -> Iterator[NewDatabase]:
    """A factory of fresh, empty databases on the test server; all of them are dropped afterwards."""
    server_url = sa.make_url(catalog.sqlalchemy_url(PG_URL))
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"kouiki_test_{secrets.token_hex(6)}"
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return server_url.set(database=name).render_as_string(hide_password=False)

    yield create
    with server.connect() as conn:
        for name in created:
            # FORCE: cached engines (catalog, Dagster) may still hold idle connections to it.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture()
def pg_url(new_database: NewDatabase) -> str:
    return new_database()


def _plain(url: str) -> str:
    """The URL as an operator would write it (no driver): kouiki must still pick psycopg2."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _rows(url: str, sql: str, **params: object) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


# --- kouiki's catalog -----------------------------------------------------------------------------------------


def _paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_url: str) -> Paths:
    monkeypatch.setenv("KOUIKI_CATALOG_URL", catalog_url)
    return Paths(tmp_path / "home").ensure()


def _pick_up(paths: Paths, code: str, name: str) -> dict[str, str]:
    from expectations.registry import default_registry
    from intake.inbox import pick_up

    return pick_up(paths, Member(code=code, name=name, inbox=DEMO / code), default_registry()).detected


def test_catalog_tables_are_created_with_postgres_types(pg_url: str) -> None:
    catalog.engine_for(_plain(pg_url))
    tokens.list_tokens(_plain(pg_url))
    columns = {(r.table_name, r.column_name): r.data_type for r in _rows(
        pg_url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'")}
    assert {"uploads", "releases", "audit_log", "api_tokens"} <= {t for t, _ in columns}
    assert columns["uploads", "detail"] == "jsonb"
    assert columns["audit_log", "detail"] == "jsonb"
    assert columns["uploads", "size"] == "bigint"
    assert columns["uploads", "received_at"] == "timestamp with time zone"


def test_real_uploads_land_and_are_recognised_in_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    paths = _paths(tmp_path, monkeypatch, _plain(pg_url))
    detected = _pick_up(paths, "222127", "焼津市")
    ups = catalog.list_uploads(paths.catalog_url, city_code="222127")
    names = sorted(p.name for p in (DEMO / "222127").iterdir())
    assert sorted(u.original_name for u in ups) == names
    assert {u.original_name: u.dataset_id for u in ups} == {
        "yaizu_222127_aed.csv": "aed", "yaizu_222127_evacuation_space.csv": "evacuation_space"}
    assert set(detected.values()) == {"aed", "evacuation_space"}
    for up in ups:
        assert up.size == (DEMO / "222127" / up.original_name).stat().st_size
        assert up.received_at.utcoffset() == timedelta(0)   # timestamptz comes back as UTC-aware
        assert up.detail is not None and up.detail["detection"]["encoding"]
    # Same bytes again: nothing new, nothing duplicated.
    assert _pick_up(paths, "222127", "焼津市") == {}
    assert len(catalog.list_uploads(paths.catalog_url)) == len(names)


def test_status_detail_is_jsonb_and_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    paths = _paths(tmp_path, monkeypatch, pg_url)
    _pick_up(paths, "222127", "焼津市")
    aed = next(u for u in catalog.list_uploads(pg_url) if u.dataset_id == "aed")
    decision = {"decision": "quarantine", "rows": {"accepted": 80, "quarantined": 2},
                "message": "電話番号の形式が正しくない行があります / Some phone numbers are malformed"}
    catalog.set_upload_status(pg_url, aed.upload_id, "quarantined", detail=decision)
    after = catalog.get_upload(pg_url, aed.upload_id)
    assert after is not None and after.status == "quarantined" and after.detail is not None
    assert after.detail["detection"] == (aed.detail or {})["detection"]    # merged, not replaced
    assert after.detail["message"] == decision["message"]
    # The server itself can query inside the document (JSONB operators).
    found = _rows(pg_url, "SELECT upload_id FROM uploads WHERE (detail -> 'rows' ->> 'quarantined')::int = :n",
                  n=2)
    assert [r.upload_id for r in found] == [aed.upload_id]


def test_releases_and_audit_log(pg_url: str) -> None:
    catalog.record_release(pg_url, "aed", 1, "a" * 64, 139, "releases/aed/1")
    catalog.record_release(pg_url, "aed", 2, "b" * 64, 3_000_000_000, "releases/aed/2")  # beyond int32
    # a release number is never reused: recording it again (crash recovery and a publication may both try)
    # changes nothing and says so
    assert catalog.record_release(pg_url, "aed", 2, "c" * 64, 1, "releases/aed/2") is False
    rows = _rows(pg_url, "SELECT number, rows, content_hash FROM releases ORDER BY number")
    assert [(r.number, r.rows, r.content_hash[0]) for r in rows] == [(1, 139, "a"), (2, 3_000_000_000, "b")]
    audit = _rows(pg_url, "SELECT action, subject, detail FROM audit_log ORDER BY id")
    assert [(a.action, a.subject, a.detail) for a in audit] == [
        ("release.published", "aed/1", {"rows": 139}), ("release.published", "aed/2", {"rows": 3_000_000_000})]


def test_tokens_issue_verify_revoke(pg_url: str) -> None:
    issued = tokens.issue_token(pg_url, "132195", label="狛江市 防災課")
    other = tokens.issue_token(pg_url, "222127")
    assert tokens.verify_token(pg_url, issued.token) == issued.info
    tampered = issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")
    assert tokens.verify_token(pg_url, tampered) is None
    revoked = tokens.revoke_token(pg_url, issued.info.token_id)
    assert revoked is not None and not revoked.active
    assert tokens.verify_token(pg_url, issued.token) is None
    assert tokens.verify_token(pg_url, other.token) is not None
    assert [t.token_id for t in tokens.list_tokens(pg_url, "132195")] == [issued.info.token_id]
    stored = _rows(pg_url, "SELECT secret_sha256 FROM api_tokens")
    assert all(issued.token.split("_")[-1] not in r.secret_sha256 for r in stored)   # only the digest is kept
    audit = _rows(pg_url, "SELECT action, subject FROM audit_log ORDER BY id")
    assert [(a.action, a.subject) for a in audit] == [
        ("token.issued", issued.info.token_id), ("token.issued", other.info.token_id),
        ("token.revoked", issued.info.token_id)]


def test_racing_landing_of_the_same_bytes_records_one_upload(pg_url: str) -> None:
    """Two processes land the same file at once (a parallel run on a shared catalog): the loser gets False."""
    row = {"upload_id": "222127-0123456789abcdef", "city_code": "222127", "sha256": "0123456789abcdef" * 4,
           "original_name": "yaizu_222127_aed.csv", "size": 19633, "stored_path": "landing/222127/x.csv",
           "received_at": catalog.now(), "source": "inbox", "status": "landed"}
    catalog.engine_for(pg_url)
    rival = sa.create_engine(pg_url)
    results: list[bool] = []
    try:
        with rival.connect() as conn:
            conn.execute(sa.insert(catalog.uploads).values(**row))   # uncommitted: invisible to add_upload's check
            racer = threading.Thread(target=lambda: results.append(catalog.add_upload(pg_url, row)))
            racer.start()
            _wait_for_lock_wait(pg_url)   # add_upload's INSERT now waits on the rival's primary key
            conn.commit()
            racer.join(timeout=30)
    finally:
        rival.dispose()
    assert results == [False]
    assert len(catalog.list_uploads(pg_url)) == 1
    assert _rows(pg_url, "SELECT count(*) AS n FROM audit_log")[0].n == 0   # the loser's audit row rolled back


def _wait_for_lock_wait(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = _rows(url, "SELECT count(*) AS n FROM pg_stat_activity "
                             "WHERE datname = current_database() AND wait_event_type = 'Lock'")
        if waiting[0].n:
            return
        time.sleep(0.05)
    raise AssertionError("add_upload never waited on the rival's insert")


# --- Dagster's instance ---------------------------------------------------------------------------------------

CITIES = DynamicPartitionsDefinition(name="pg_test_cities")


@asset(partitions_def=CITIES)
def city_rows(context) -> MaterializeResult:  # dagster reads the annotation at runtime: leave it bare
    """Counts the data rows of the city's demo files (one partition per city)."""
    files = sorted((DEMO / context.partition_key).glob("*.csv"))
    rows = sum(len(f.read_bytes().splitlines()) - 1 for f in files)
    return MaterializeResult(metadata={"rows": rows, "files": len(files)})


@asset(pool="duckdb_warehouse")
def warehouse_a() -> MaterializeResult:
    time.sleep(1.0)
    return MaterializeResult()


@asset(pool="duckdb_warehouse")
def warehouse_b() -> MaterializeResult:
    time.sleep(1.0)
    return MaterializeResult()


def pool_job() -> JobDefinition:
    """Two independent assets in kouiki's DuckDB pool, for the multiprocess executor (rebuilt in each process)."""
    from dagster import Definitions, multiprocess_executor

    job = define_asset_job("pool_job", selection=[warehouse_a, warehouse_b], executor_def=multiprocess_executor)
    return Definitions(assets=[warehouse_a, warehouse_b], jobs=[job]).resolve_job_def("pool_job")


@pytest.fixture()
def pg_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Iterator[DagsterInstance]:
    """kouiki's own dagster.yaml, with the PostgreSQL storage, in a temporary DAGSTER_HOME."""
    from pipelines.main_run import write_dagster_yaml

    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    write_dagster_yaml(home / "dagster.yaml", _plain(pg_url))
    instance = DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


def test_dagster_yaml_switches_storage_and_respects_hand_written_files(tmp_path: Path) -> None:
    from pipelines.main_run import write_dagster_yaml

    config = tmp_path / "dagster.yaml"
    write_dagster_yaml(config, "postgresql://kouiki:s3cret@db.example:5432/dagster")
    storage = yaml.safe_load(config.read_text(encoding="utf-8"))["storage"]
    assert storage == {"postgres": {"postgres_url": "postgresql+psycopg2://kouiki:s3cret@db.example:5432/dagster"}}
    assert config.stat().st_mode & 0o077 == 0   # the password is for the owner only
    write_dagster_yaml(config, None)            # back to the embedded default
    assert "storage" not in yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    write_dagster_yaml(config, "postgresql://kouiki@db.example/dagster")
    assert config.read_text(encoding="utf-8") == "telemetry:\n  enabled: false\n"


def test_dagster_partitions_runs_and_events_live_in_postgres(pg_instance: DagsterInstance, pg_url: str) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    codes = sorted(p.name for p in DEMO.iterdir())
    pg_instance.add_dynamic_partitions(CITIES.name or "", codes)
    for code in codes:
        assert materialize([city_rows], partition_key=code, instance=pg_instance).success

    assert pg_instance.get_materialized_partitions(city_rows.key) == set(codes)
    rows = {}
    for record in pg_instance.fetch_materializations(city_rows.key, limit=100).records:
        mat = record.asset_materialization
        assert mat is not None and mat.partition is not None
        rows[mat.partition] = mat.metadata["rows"].value
    expected = {code: sum(len(f.read_bytes().splitlines()) - 1 for f in (DEMO / code).glob("*.csv"))
                for code in codes}
    assert rows == expected
    # Read back from the server, not through Dagster's cache: partitions, runs, events.
    stored = _rows(pg_url, "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = :n",
                   n=CITIES.name)
    assert sorted(r.partition for r in stored) == codes
    runs = _rows(pg_url, "SELECT status FROM runs")
    assert [r.status for r in runs] == ["SUCCESS"] * len(codes)
    events = _rows(pg_url, "SELECT count(*) AS n FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert events[0].n == len(codes)


def test_duckdb_pool_serialises_steps_under_the_multiprocess_executor(pg_instance: DagsterInstance) -> None:
    """kouiki's dagster.yaml gives every pool one slot: two warehouse steps in separate processes never overlap."""
    assert pg_instance.event_log_storage.supports_global_concurrency_limits
    # Each step process re-imports this module by name: tell it where the module lives.
    job = build_reconstructable_job(__name__, pool_job.__name__,
                                    reconstructor_working_directory=str(Path(__file__).parent))
    with execute_job(job, instance=pg_instance) as result:
        assert result.success
        run_id = result.run_id
    windows: dict[str, dict[DagsterEventType, float]] = {}
    for entry in pg_instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        assert entry.dagster_event is not None and entry.step_key is not None
        windows.setdefault(entry.step_key, {})[entry.dagster_event.event_type] = entry.timestamp
    assert sorted(windows) == ["warehouse_a", "warehouse_b"]
    (a_start, a_end), (b_start, b_end) = (
        (w[DagsterEventType.STEP_START], w[DagsterEventType.STEP_SUCCESS]) for _, w in sorted(windows.items()))
    assert a_end <= b_start or b_end <= a_start, windows   # one slot: one step at a time


# --- the real pipeline ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_main_run_keeps_catalog_and_dagster_in_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database: NewDatabase
) -> None:
    from pipelines.main_run import run_main

    catalog_url, dagster_url = new_database(), new_database()
    home = tmp_path / "home"
    members = tmp_path / "members.yaml"
    cities = {"122033": "市川市", "222127": "焼津市"}
    members.write_text(yaml.safe_dump({"members": [
        {"code": code, "name": name, "inbox": str(DEMO / code)} for code, name in cities.items()]},
        allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("KOUIKI_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("KOUIKI_MEMBERS", str(members))
    monkeypatch.setenv("KOUIKI_CATALOG_URL", _plain(catalog_url))
    monkeypatch.setenv("KOUIKI_DAGSTER_PG_URL", _plain(dagster_url))

    outcome = run_main(log_level="WARNING")

    assert outcome.region_ok and all(c.run_ok for c in outcome.cities)
    uploads = _rows(catalog_url, "SELECT city_code, original_name, status FROM uploads")
    assert sorted((u.city_code, u.original_name) for u in uploads) == sorted(
        (code, f.name) for code in cities for f in (DEMO / code).iterdir())
    assert all(u.status != "landed" for u in uploads), uploads   # every file went on past landing
    releases = {r.dataset_id: r for r in _rows(catalog_url, "SELECT dataset_id, number, content_hash FROM releases")}
    assert outcome.releases and set(releases) == set(outcome.releases)
    for dataset, latest in outcome.releases.items():
        assert releases[dataset].number == latest["number"]
    # Nothing fell back to the embedded SQLite stores.
    assert not (home / "catalog.sqlite").exists()
    assert not list((home / "dagster").rglob("*.db"))
    partitions = _rows(dagster_url, "SELECT partition FROM dynamic_partitions")
    assert sorted(p.partition for p in partitions) == sorted(cities)
    runs = _rows(dagster_url, "SELECT pipeline_name, status FROM runs")
    assert "publish_region" in {r.pipeline_name for r in runs}
    assert {r.status for r in runs} == {"SUCCESS"}
    landed = _rows(dagster_url, "SELECT DISTINCT partition FROM event_logs "
                                "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = :key",
                   key=AssetKey(["intake", "uploads"]).to_string())
    assert sorted(r.partition for r in landed) == sorted(cities)   # one materialisation per city partition
