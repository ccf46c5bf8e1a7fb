"""A small dbt-like model runner: every ``*.sql`` under ``dbt_like_sql/`` is a model.

A model's name is ``<folder>.<file stem>`` (e.g. ``conformed.aed``) and it is built in DuckDB as a view or a
table of that schema. Dependencies are read from the SQL itself with sqlglot: a reference to another model's
``schema.name`` is a model dependency; a reference to a source (``lake.*``, ``quarantine.*``, ``findings.*``,
``history.uploads``, ``reference.*``) is a dependency on the Python asset that writes it. A short header sets the rest:

    -- materialized: table          (or view; default view)
    -- description: 地域全体のAED一覧 / region-wide AED list

and an optional ``<stem>.yml`` beside the file declares column tests (not_null, unique, accepted_values,
relationships) that run as Dagster asset checks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
import yaml
from sqlglot import exp

MODEL_SCHEMAS = ("staging", "conformed", "marts")
# source schema → what writes it (the lake asset of the same dataset, or nothing for shipped reference data)
SOURCE_SCHEMAS = ("lake", "quarantine", "findings", "history", "reference")
_HEADER = re.compile(r"^--\s*(materialized|description|group)\s*:\s*(.+?)\s*$")


class ModelError(ValueError):
    """A model project that cannot be loaded: cycle, unknown reference, bad header or test file."""


@dataclass(frozen=True)
class ColumnTest:
    column: str
    kind: str                       # not_null, unique, accepted_values, relationships
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """An ASCII name (Dagster names allow [A-Za-z0-9_] only); Japanese column names get a stable hash."""
        slug = self.column if re.fullmatch(r"[A-Za-z0-9_]+", self.column) else \
            "c" + hashlib.sha1(self.column.encode("utf-8")).hexdigest()[:8]
        return f"{self.kind}__{slug}"


@dataclass(frozen=True)
class Model:
    name: str                       # schema.stem
    path: Path
    sql: str
    materialized: str
    description: str
    model_deps: tuple[str, ...]
    source_deps: tuple[str, ...]    # e.g. ("lake.aed", "reference.local_governments")
    tests: tuple[ColumnTest, ...]

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def stem(self) -> str:
        return self.name.split(".", 1)[1]


def discover(root: Path) -> dict[str, Model]:
    """Load every model under ``root``; raise ModelError on an unknown reference or a cycle."""
    paths = sorted(p for p in root.rglob("*.sql") if p.parent.name in MODEL_SCHEMAS)
    names = {f"{p.parent.name}.{p.stem}" for p in paths}
    models = {m.name: m for m in (_load_model(p, names) for p in paths)}
    build_order(models)   # raises on cycles
    return models


def _load_model(path: Path, known: set[str]) -> Model:
    name = f"{path.parent.name}.{path.stem}"
    sql = path.read_text(encoding="utf-8")
    header = _parse_header(sql)
    materialized = header.get("materialized", "view")
    if materialized not in ("view", "table"):
        raise ModelError(f"{path}: materialized must be 'view' or 'table', not {materialized!r}")
    refs = table_references(sql, path)
    model_deps, source_deps = [], []
    for ref in sorted(refs):
        schema = ref.split(".", 1)[0]
        if schema in MODEL_SCHEMAS:
            if ref not in known:
                raise ModelError(f"{path}: references unknown model {ref!r} (known: {', '.join(sorted(known))})")
            if ref == name:
                raise ModelError(f"{path}: model {name} references itself")
            model_deps.append(ref)
        elif schema in SOURCE_SCHEMAS:
            source_deps.append(ref)
        else:
            raise ModelError(
                f"{path}: table {ref!r} is neither a model ({', '.join(MODEL_SCHEMAS)}) nor a source "
                f"({', '.join(SOURCE_SCHEMAS)}); write schema.name"
            )
    return Model(name=name, path=path, sql=sql, materialized=materialized,
                 description=header.get("description", ""), model_deps=tuple(model_deps),
                 source_deps=tuple(source_deps), tests=_load_tests(path))


def _parse_header(sql: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for line in sql.splitlines():
        if not line.startswith("--"):
            if line.strip():
                break
            continue
        m = _HEADER.match(line)
        if m:
            header[m.group(1)] = m.group(2)
    return header


def table_references(sql: str, path: Path | None = None) -> set[str]:
    """``schema.table`` names a query reads (CTE names excluded)."""
    try:
        tree = sqlglot.parse_one(sql, dialect="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{path}: SQL does not parse: {exc}") from exc
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    refs: set[str] = set()
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        if not table.db:
            if isinstance(table.this, exp.Anonymous) or table.find(exp.Func):
                continue  # table function such as read_parquet(...)
            raise ModelError(f"{path}: table {table.name!r} needs a schema (e.g. conformed.{table.name})")
        refs.add(f"{table.db}.{table.name}")
    return refs


def _load_tests(sql_path: Path) -> tuple[ColumnTest, ...]:
    yml = sql_path.with_suffix(".yml")
    if not yml.exists():
        return ()
    doc = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
    tests: list[ColumnTest] = []
    for column, specs in (doc.get("columns") or {}).items():
        for spec in specs or []:
            params: dict[str, Any]
            if isinstance(spec, str):
                kind, params = spec, {}
            elif isinstance(spec, dict) and len(spec) == 1:
                kind, value = next(iter(spec.items()))
                params = value if isinstance(value, dict) else {"values": value}
            else:
                raise ModelError(f"{yml}: column {column}: a test is a name or a one-key mapping, not {spec!r}")
            if kind not in ("not_null", "unique", "accepted_values", "relationships"):
                raise ModelError(f"{yml}: column {column}: unknown test {kind!r}")
            tests.append(ColumnTest(column=str(column), kind=kind, params=params))
    return tuple(tests)


def build_order(models: dict[str, Model]) -> list[str]:
    graph = {name: set(m.model_deps) for name, m in models.items()}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " → ".join(exc.args[1])
        raise ModelError(f"models form a cycle: {cycle}") from exc


def materialize(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    """Build one model in DuckDB; returns its row count."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
    body = model.sql.strip().rstrip(";")
    target = f'{model.schema}."{model.stem}"'
    existing = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [model.schema, model.stem],
    ).fetchone()
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    if existing and (existing[0] == "VIEW") != (kind == "VIEW"):
        # switching between view and table: drop the old object first (DuckDB will not replace across kinds)
        con.execute(f"DROP {'VIEW' if existing[0] == 'VIEW' else 'TABLE'} {target}")
    con.execute(f"CREATE OR REPLACE {kind} {target} AS {body}")
    row = con.execute(f"SELECT count(*) FROM {target}").fetchone()
    return int(row[0]) if row else 0


def run_test(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest) -> tuple[int, list[Any]]:
    """Run a column test; returns (number of failing rows/values, a few examples)."""
    target = f'{model.schema}."{model.stem}"'
    col = '"' + test.column.replace('"', '""') + '"'
    if test.kind == "not_null":
        sql = f"SELECT {col} FROM {target} WHERE {col} IS NULL"
    elif test.kind == "unique":
        sql = f"SELECT {col} FROM {target} WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1"
    elif test.kind == "accepted_values":
        values = ", ".join("'" + str(v).replace("'", "''") + "'" for v in test.params.get("values", []))
        sql = f"SELECT DISTINCT {col} FROM {target} WHERE {col} IS NOT NULL AND {col} NOT IN ({values})"
    else:  # relationships
        to = test.params["to"]
        field_ = '"' + str(test.params.get("field", test.column)).replace('"', '""') + '"'
        sql = (f"SELECT DISTINCT t.{col} FROM {target} t WHERE t.{col} IS NOT NULL AND NOT EXISTS "
               f"(SELECT 1 FROM {to} r WHERE r.{field_} = t.{col})")
    failing = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    examples = [r[0] for r in con.execute(f"{sql} LIMIT 5").fetchall()]
    return (int(failing[0]) if failing else 0), examples
