"""SQL models as assets: every ``dbt_like_sql/**/*.sql`` file, and the generated staging and conformed model of
every dataset of the schema registry that no file replaces, becomes an asset, with its column tests as checks.

Dependencies come from the SQL (``warehouse.sql_models``); sources in ``lake.*`` / ``quarantine.*`` /
``findings.*`` point at the city-partitioned lake asset of that dataset, and ``history.uploads`` /
``findings.all_datasets`` at every lake asset, so the graph shows lineage from each city's upload to each mart.
Models are the only assets that open the DuckDB database, and they share one concurrency pool of size 1, so
parallel runs never fight for its lock. Adding a model is adding a ``.sql`` file, and adding a dataset's YAML adds
its two generated models: no Python changes.
"""

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Definitions,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from assets import scoreboard
from assets.resources import KouikiHome
from expectations.registry import Registry, default_registry, registry_inputs
from kouiki import file_cache
from kouiki.model import Dataset
from kouiki.settings import REPO_ROOT, Paths
from warehouse import sql_models
from warehouse.sql_models import (
    ALL_FINDINGS,
    REGISTRY_SOURCES,
    ColumnTest,
    Model,
    discover,
    materialize,
    refresh_registry_sources,
    relation_columns,
    run_test,
)

if TYPE_CHECKING:
    import duckdb  # imported by the steps that use it: the definitions load this module

MODELS_ROOT = REPO_ROOT / "dbt_like_sql"
WAREHOUSE_POOL = "duckdb_warehouse"
# Extra metadata (charts, reports) for particular models, computed after the model is built.
ModelReport = Callable[["duckdb.DuckDBPyConnection", Paths], dict[str, Any]]
MODEL_REPORTS: dict[str, ModelReport] = {scoreboard.SCOREBOARD_MODEL: scoreboard.report_metadata}


def model_key(name: str) -> AssetKey:
    return AssetKey(name.split("."))


def known_sources(dataset_ids: Iterable[str]) -> set[str]:
    """Every source table a model may read: the lake views of each dataset, upload history, reference data."""
    sources = {"history.uploads", "reference.local_governments", *REGISTRY_SOURCES}
    for d in dataset_ids:
        sources |= {f"lake.{d}", f"quarantine.{d}", f"findings.{d}"}
    return sources


def source_keys(ref: str, dataset_ids: list[str]) -> list[AssetKey]:
    """The assets that write a source table (none for reference data, which comes with kouiki or its config).

    ``history.uploads`` and ``findings.all_datasets`` are written by every dataset's lake asset."""
    schema, table = ref.split(".", 1)
    if schema == "history" or ref == ALL_FINDINGS:
        return [AssetKey(["lake", d]) for d in dataset_ids]
    if schema in ("lake", "quarantine", "findings"):
        return [AssetKey(["lake", table])]
    return []


def load_models(root: Path = MODELS_ROOT, datasets: Iterable[Dataset] | None = None) -> dict[str, Model]:
    """Every model of the project: the files under ``root`` and the generated models of ``datasets`` (default:
    every dataset of the schema registry). Raises ``ModelError`` on a broken project, at load time."""
    registry = default_registry()
    if datasets is None:   # the project's own models: parsed once per process (sqlglot, seconds)
        files = _model_files(root)
        cached = _PROJECT_MODELS.get(root)
        if cached is None or cached[0] is not registry or cached[1] != files:
            cached = _PROJECT_MODELS[root] = (registry, files, _discover_cached(root, registry))
        return dict(cached[2])
    return discover(root, sources=known_sources(registry.datasets), datasets=datasets)


# root → (the registry they were generated for, the files, the models): the definitions ask twice at load (the
# model assets, and the publish asset's dependencies), and every run's publish step asks again. A model file
# added, changed or removed (name, size, mtime) parses the folder again.
_PROJECT_MODELS: dict[Path, tuple[Registry, tuple[tuple[str, int, int], ...], dict[str, Model]]] = {}


def _discover_cached(root: Path, registry: Registry) -> dict[str, Model]:
    """The project's models, kept on disk between processes until a model file, a schema file or the code that
    parses them changes (parsing dozens of models with sqlglot takes most of a definitions load)."""
    code = Path(sql_models.__file__).parent   # warehouse/: the parser, the generated models, the quoting
    return file_cache.cached(
        "models", [root, *registry_inputs(), code],
        lambda: discover(root, sources=known_sources(registry.datasets), datasets=registry.datasets.values()))


def _model_files(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What the cache of parsed models depends on: every file under ``root`` with its size and mtime."""
    if not root.is_dir():
        return ()
    stats = ((path, path.stat()) for path in root.rglob("*") if path.is_file())
    return tuple(sorted((str(path), stat.st_size, stat.st_mtime_ns) for path, stat in stats))


def build_model_assets(root: Path = MODELS_ROOT, datasets: Iterable[Dataset] | None = None) -> list[AssetsDefinition]:
    """One asset per model (raises ``ModelError`` on a broken project, at load time)."""
    dataset_ids = sorted(default_registry().datasets)
    models = load_models(root, datasets)
    return [_model_asset(m, dataset_ids, sources_read(m, models)) for m in models.values()]


def definitions() -> Definitions:
    """The models stage: every SQL model (files and generated) as an asset, its column tests as checks."""
    return Definitions(assets=build_model_assets())


def sources_read(model: Model, models: Mapping[str, Model]) -> set[str]:
    """The source tables a model reads, itself or through the models it reads: only those are refreshed before
    it is built (refreshing every dataset's views for each of dozens of models would dominate a run)."""
    seen, todo, sources = {model.name}, [model], set()
    while todo:
        current = todo.pop()
        sources |= set(current.source_deps)
        for dep in current.model_deps:
            if dep not in seen and dep in models:
                seen.add(dep)
                todo.append(models[dep])
    return sources


def refresh_for(con: "duckdb.DuckDBPyConnection", sources: set[str], paths: Paths, registry: Registry,
                kouiki: KouikiHome) -> None:
    """(Re)create the source views and tables in ``sources`` (and the few every build needs)."""
    everything = any(s.startswith("history.") or s == ALL_FINDINGS for s in sources)
    lake_ids = {s.split(".", 1)[1] for s in sources if s.split(".", 1)[0] in ("lake", "quarantine", "findings")}
    datasets = [d for d in registry.datasets.values() if everything or d.id in lake_ids]
    from warehouse import duck  # polars: when a model is built, not when the definitions load

    duck.refresh_sources(con, paths.lake, datasets)
    if sources & set(REGISTRY_SOURCES):
        refresh_registry_sources(con, kouiki.members(), registry.datasets.values(),
                                 with_findings=everything or ALL_FINDINGS in sources)


def _code_version(model: Model) -> str:
    """Changes when the SQL (generated SQL changes with its schema) or the test file changes, so the UI marks
    downstream assets as outdated."""
    digest = hashlib.sha256(model.sql.encode("utf-8"))
    yml = model.path.with_suffix(".yml")
    if yml.exists():
        digest.update(yml.read_bytes())
    return digest.hexdigest()[:12]


def _sql_file(model: Model) -> str:
    """The model's file relative to the project, or where it comes from when generated."""
    relative = str(model.path.relative_to(model.path.parents[1]))
    if model.generated_from is None:
        return relative
    if model.is_file:
        return f"{relative} (extends the model generated from dataset {model.generated_from})"
    return f"generated from the schema of dataset {model.generated_from} ({relative} would replace it)"


def _model_asset(model: Model, dataset_ids: list[str], sources: set[str]) -> AssetsDefinition:
    key = model_key(model.name)
    deps = [model_key(d) for d in model.model_deps]
    deps += [k for s in model.source_deps for k in source_keys(s, dataset_ids) if k not in deps]
    checks = [AssetCheckSpec(name=t.name, asset=key, description=f"{t.kind}: {t.description}")
              for t in model.tests]

    @asset(
        key=key,
        deps=deps,
        group_name=model.schema,
        description=model.description or f"SQL model {model.name}",
        kinds={"duckdb", "sql"},
        check_specs=checks,
        pool=WAREHOUSE_POOL,
        code_version=_code_version(model),
        metadata={"sql_file": _sql_file(model), "materialized": model.materialized},
    )
    def _run(context: AssetExecutionContext, kouiki: KouikiHome) -> Iterator[MaterializeResult | AssetCheckResult]:
        from warehouse import duck

        paths = kouiki.paths()
        registry = kouiki.registry()
        with duck.connect(paths.warehouse_db) as con:
            refresh_for(con, sources, paths, registry, kouiki)
            rows = materialize(con, model)
            report = MODEL_REPORTS.get(model.name)
            metadata = report(con, paths) if report is not None else {}   # first: what the office looks at
            metadata.update(_metadata(con, model, rows))
            results = [_check(con, model, t) for t in model.tests]
        context.log.info(f"{model.name}: {model.materialized} with {rows} rows")
        yield MaterializeResult(metadata=metadata)
        yield from results

    return _run


def _metadata(con: "duckdb.DuckDBPyConnection", model: Model, rows: int) -> dict[str, Any]:
    columns = [TableColumn(name=c, type=t, description=model.column_descriptions.get(c))
               for c, t in relation_columns(con, model.relation)]
    return {
        "dagster/row_count": rows,
        "dagster/table_name": f"warehouse.duckdb:{model.name}",
        "dagster/column_schema": MetadataValue.table_schema(TableSchema(columns=columns)),
        "sql": MetadataValue.md(f"```sql\n{model.sql}\n```"),
    }


def _check(con: "duckdb.DuckDBPyConnection", model: Model, test: ColumnTest) -> AssetCheckResult:
    outcome = run_test(con, model, test)
    return AssetCheckResult(
        check_name=test.name,
        asset_key=model_key(model.name),
        passed=outcome.failing == 0,
        severity=AssetCheckSeverity.WARN if test.severity == "warn" else AssetCheckSeverity.ERROR,
        description=test.description,
        metadata={"failing_rows": outcome.failing, "examples": MetadataValue.json(outcome.examples),
                  "column": test.column, "query": MetadataValue.md(f"```sql\n{outcome.sql}\n```")},
    )
