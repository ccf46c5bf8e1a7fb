"""Publication asset: each region-wide (conformed) table becomes a numbered release when its data changed.

Every dataset of the schema registry has a conformed model (generated from its YAML unless a file replaces it),
so every dataset with accepted rows is released; datasets nobody has sent rows for are listed, not released.
"""

from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, AssetKey, Definitions, MaterializeResult, MetadataValue, asset

from assets.models import WAREHOUSE_POOL, load_models, model_key
from assets.resources import KouikiHome

if TYPE_CHECKING:
    import duckdb  # imported by the step that uses it: the definitions load this module


def conformed_models() -> list[str]:
    return sorted(name for name in load_models() if name.startswith("conformed."))

@asset(
    key=AssetKey(["publish", "releases"]),
    deps=[model_key(n) for n in conformed_models()],
    group_name="publish",
    description="公開: 地域全体の各データセットを版番号付きで公開 (CSV UTF-8, CSV BOM, Parquet, metadata)",
    kinds={"parquet", "csv"},
    pool=WAREHOUSE_POOL,
)
def releases(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
    from publish.release import publish_dataset  # polars, pyarrow: when the step runs
    from warehouse import duck

    paths = kouiki.paths()
    registry = kouiki.registry()
    summary = {}
    waiting = []
    with duck.connect(paths.warehouse_db) as con:
        # the findings views of the lake as it is now: the releases' conformance figures read them
        duck.refresh_sources(con, paths.lake, registry.datasets.values())
        for name in conformed_models():
            dataset_id = name.split(".", 1)[1]
            if dataset_id not in registry.datasets:
                continue
            dataset = registry.get(dataset_id)
            if _row_count(con, dataset_id) == 0:
                context.log.info(f"{dataset_id}: no member has accepted rows yet; nothing to publish")
                waiting.append(dataset_id)
                continue
            result = publish_dataset(con, dataset, f'conformed."{dataset_id}"', paths.releases,
                                     paths.catalog_url, licence=dataset.licence, remote_root=paths.remote_releases)
            summary[dataset_id] = {"release": result.number, "rows": result.rows,
                                   "new": result.published, "path": str(result.path)}
            context.log.info(f"{dataset_id}: release {result.number} "
                             f"({'new' if result.published else 'unchanged'}), {result.rows} rows")
    return MaterializeResult(metadata={
        "releases": MetadataValue.json(summary),
        "datasets_released": len(summary),
        "new_releases": sum(1 for r in summary.values() if r["new"]),
        "datasets_without_rows": MetadataValue.json(waiting),
    })


def _row_count(con: "duckdb.DuckDBPyConnection", dataset_id: str) -> int:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'conformed' "
                         "AND table_name = ?", [dataset_id]).fetchone()
    if not exists or not exists[0]:
        return 0          # its model has not been built yet (e.g. a dataset added since the last model run)
    row = con.execute(f'SELECT count(*) FROM conformed."{dataset_id}"').fetchone()
    return int(row[0]) if row else 0


def definitions() -> Definitions:
    """The publish stage: numbered releases of every conformed table whose data changed."""
    return Definitions(assets=[releases])
