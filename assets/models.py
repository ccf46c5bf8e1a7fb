"""SQL models as assets: every ``dbt_like_sql/**/*.sql`` file becomes an asset, with its column tests as checks.

Dependencies come from the SQL (``warehouse.sql_models``); sources in ``lake.*`` / ``quarantine.*`` /
``findings.*`` point at the city-partitioned lake asset of that dataset, so the graph shows lineage from each
city's upload to each mart. Models are the only assets that open the DuckDB database, and they share one
concurrency pool of size 1, so parallel runs never fight for its lock.
"""

from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from expectations.registry import default_registry
from kouiki.settings import REPO_ROOT
from pipelines.resources import KouikiHome
from warehouse import duck
from warehouse.sql_models import ColumnTest, Model, discover, materialize, run_test

MODELS_ROOT = REPO_ROOT / "dbt_like_sql"
WAREHOUSE_POOL = "duckdb_warehouse"

def model_key(name: str) -> AssetKey:
    return AssetKey(name.split("."))

def source_keys(ref: str, dataset_ids: list[str]) -> list[AssetKey]:
    """The assets that write a source table (none for reference data shipped with kouiki).

    ``history.uploads`` is written by every dataset's lake asset."""
    schema, table = ref.split(".", 1)
    if schema in ("lake", "quarantine", "findings"):
        return [AssetKey(["lake", table])]
    if schema == "history":
        return [AssetKey(["lake", d]) for d in dataset_ids]
    return []


def build_model_assets(root: Path = MODELS_ROOT) -> list[AssetsDefinition]:
    models = discover(root)
    dataset_ids = sorted(default_registry().datasets)
    return [_model_asset(m, dataset_ids) for m in models.values()]

def _model_asset(model: Model, dataset_ids: list[str]) -> AssetsDefinition:
    deps = [model_key(d) for d in model.model_deps]
    deps += [k for s in model.source_deps for k in source_keys(s, dataset_ids)]
    checks = [AssetCheckSpec(name=t.name, asset=model_key(model.name), description=f"{t.kind} on {t.column}")
              for t in model.tests]

    @asset(
        key=model_key(model.name),
        deps=deps,
        group_name=model.schema,
        description=model.description or f"SQL model {model.name}",
        kinds={"duckdb", "sql"},
        check_specs=checks,
        pool=WAREHOUSE_POOL,
        metadata={"sql_file": str(model.path.relative_to(model.path.parents[1])),
                  "materialized": model.materialized},
    )
    def _run(context: AssetExecutionContext, kouiki: KouikiHome) -> Iterator[MaterializeResult | AssetCheckResult]:
        paths = kouiki.paths()
        with duck.connect(paths.warehouse_db) as con:
            duck.refresh_sources(con, paths.lake, kouiki.registry().datasets.values())
            rows = materialize(con, model)
            results = [_check(con, model, t) for t in model.tests]
        yield MaterializeResult(metadata={"rows": rows, "sql": MetadataValue.md(f"```sql\n{model.sql}\n```")})
        yield from results

    return _run

def _check(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest) -> AssetCheckResult:
    failing, examples = run_test(con, model, test)
    return AssetCheckResult(
        check_name=test.name,
        asset_key=model_key(model.name),
        passed=failing == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"failing": failing, "examples": MetadataValue.json([str(e) for e in examples])},
    )
