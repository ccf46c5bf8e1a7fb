"""A small dbt-like model runner: every ``*.sql`` under ``dbt_like_sql/`` is a model.

A model's name is ``<folder>.<file stem>`` (e.g. ``conformed.aed``); the folder is one of ``staging``,
``conformed``, ``marts`` and is the DuckDB schema the model is built in, as a view or a table. Dependencies are
read from the SQL itself with sqlglot: a reference to another model's ``schema.name`` is a model dependency; a
reference to a source (``lake.*``, ``quarantine.*``, ``findings.*``, ``history.*``, ``reference.*``) is a
dependency on whatever writes that source. A short header at the top of the file sets the rest:

    -- materialized: table          (or view; default view)
    -- description: 地域全体のAED一覧 / region-wide AED list

and an optional ``<stem>.yml`` beside the file may set the same two keys and declares column descriptions and
column tests (not_null, unique, accepted_values, relationships), which the Dagster assets run as asset checks:

    description: ...
    columns:
      名称: [not_null]
      全国地方公共団体コード:
        description: 管理団体のコード / code of the managing local government
        tests: [not_null, {relationships: {to: reference.local_governments, field: code}}]
      status: [{accepted_values: [accept, quarantine, reject]}]

Besides the files, every dataset of the schema registry gets a generated ``staging.<id>`` and ``conformed.<id>``
(``warehouse.generated_models``): a file of the same name replaces the generated model, and a file whose header
says ``-- extends: generated`` builds on it (the generated query is the CTE ``generated`` in its SQL).

Every mistake in a project (a cycle, an unknown model or source, an unknown header key, test or parameter, a test
on a column the model does not have) is a ``ModelError`` naming the file, at load time where the SQL shows it and
otherwise when the model is built (before the previous version of the model is replaced).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kouiki.members import Member
from kouiki.model import Dataset
from kouiki.sql import literal, quote
from warehouse.generated_models import GeneratedModel, generated_models

if TYPE_CHECKING:
    import duckdb
    from sqlglot import exp

MODEL_SCHEMAS = ("staging", "conformed", "marts")
SOURCE_SCHEMAS = ("lake", "quarantine", "findings", "history", "reference")
MATERIALIZATIONS = ("view", "table")
HEADER_KEYS = ("materialized", "description", "extends")
EXTENDS = ("generated",)      # what ``-- extends:`` may name
YAML_KEYS = ("materialized", "description", "columns")
COLUMN_KEYS = ("description", "tests")
# test kind → the parameters it accepts (every test also accepts ``severity: error|warn``)
TEST_PARAMS: dict[str, tuple[str, ...]] = {
    "not_null": (),
    "unique": (),
    "accepted_values": ("values",),
    "relationships": ("to", "field"),
}
SEVERITIES = ("error", "warn")
# A header line is "-- key: value"; other comment lines in the header block are free text.
_HEADER_LINE = re.compile(r"^--\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")
_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_LEADING_WITH = re.compile(r"\s*WITH\s+(RECURSIVE\s+)?", re.IGNORECASE)
# Findings of every dataset in one view (built by ``refresh_registry_sources``), for region-wide quality marts.
ALL_FINDINGS = "findings.all_datasets"
FINDINGS_COLUMNS = {
    "_city_code": "VARCHAR", "upload_id": "VARCHAR", "source_line": "BIGINT", "row": "BIGINT",
    "column": "VARCHAR", "raw_value": "VARCHAR", "value": "VARCHAR", "error_code": "VARCHAR",
    "severity": "VARCHAR", "message_ja": "VARCHAR", "message_en": "VARCHAR", "hint_ja": "VARCHAR",
    "hint_en": "VARCHAR",
}
REGISTRY_SOURCES = ("reference.members", "reference.datasets", ALL_FINDINGS)


class ModelError(ValueError):
    """A model project that cannot be loaded or built; the message names the file and what to change."""


@dataclass(frozen=True)
class ColumnTest:
    column: str
    kind: str                       # not_null, unique, accepted_values, relationships
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = "error"         # error or warn

    @property
    def name(self) -> str:
        """An ASCII name (Dagster names allow [A-Za-z0-9_] only); other column names get a stable hash."""
        slug = self.column if re.fullmatch(r"[A-Za-z0-9_]+", self.column) else \
            "c" + hashlib.sha1(self.column.encode("utf-8")).hexdigest()[:8]
        return f"{self.kind}__{slug}"

    @property
    def description(self) -> str:
        """What the test checks, in words (the check's name hides Japanese column names)."""
        if self.kind == "accepted_values":
            return f"{self.column}: one of {', '.join(map(str, self.params['values']))}"
        if self.kind == "relationships":
            return f"{self.column}: every value exists in {self.params['to']}.{self.target_field}"
        return f"{self.column}: {self.kind.replace('_', ' ')}"

    @property
    def target_field(self) -> str:
        return str(self.params.get("field", self.column))


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
    column_descriptions: dict[str, str] = field(default_factory=dict)
    # the output columns when the SQL names them all (no ``*``); None when only running the SQL tells
    declared_columns: tuple[str, ...] | None = None
    # the dataset whose schema generated this model (alone, or extended by the file at ``path``); None otherwise
    generated_from: str | None = None

    @property
    def is_file(self) -> bool:
        """The model has a SQL file (hand-written, possibly extending the generated one)."""
        return self.path.exists()

    @property
    def origin(self) -> str:
        """Where the model comes from, for messages: its file, or the schema that generated it."""
        if self.is_file:
            return str(self.path)
        return (f"{self.name} (generated from the schema of dataset {self.generated_from}; "
                f"write {self.path} to replace it)")

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def stem(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def relation(self) -> str:
        """The quoted DuckDB name of the model's view or table."""
        return f"{self.schema}.{quote(self.stem)}"


@dataclass(frozen=True)
class CheckOutcome:
    failing: int                    # rows that break the test
    examples: list[str]             # a few offending values (or row locations for not_null)
    sql: str                        # the query that lists the failing rows


# --- loading ------------------------------------------------------------------------------------------------


def discover(root: Path, sources: Collection[str] | None = None,
             datasets: Iterable[Dataset] = ()) -> dict[str, Model]:
    """Load every model under ``root``, plus the generated staging and conformed models of ``datasets`` that no
    file replaces.

    ``sources``: the source tables that exist (``lake.aed``, ``history.uploads`` …); a reference to any other
    source is an error. Without it, any ``<source schema>.<table>`` is accepted. Raises ModelError on an unknown
    reference, a cycle, a bad header or test file, or a ``.sql``/``.yml`` file outside the model folders.
    """
    if not root.is_dir():
        raise ModelError(f"{root}: the model folder does not exist")
    paths = sorted(root.rglob("*.sql"))
    _check_layout(root, paths)
    generated = generated_models(datasets)
    files = {f"{p.parent.name}.{p.stem}": p for p in paths}
    names = set(files) | set(generated)
    models = {name: load_model(path, names, sources, generated.get(name)) for name, path in files.items()}
    for name, spec in generated.items():
        if name not in models:
            models[name] = generated_model(spec, root, names, sources)
    build_order(models)   # raises on cycles
    return dict(sorted(models.items()))


def _check_layout(root: Path, paths: list[Path]) -> None:
    for p in paths:
        if p.parent.parent != root or p.parent.name not in MODEL_SCHEMAS:
            raise ModelError(f"{p}: a model must be <{'|'.join(MODEL_SCHEMAS)}>/<name>.sql directly under {root}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p.stem):
            raise ModelError(f"{p}: a model's file name must be a plain identifier (letters, digits, _)")
    for yml in sorted(root.rglob("*.yml")):
        if not yml.with_suffix(".sql").exists():
            raise ModelError(f"{yml}: test file without a model (expected {yml.with_suffix('.sql').name} beside it)")


def load_model(path: Path, known_models: Collection[str], sources: Collection[str] | None = None,
               generated: GeneratedModel | None = None) -> Model:
    """Read one model file (and its ``.yml``); ``known_models`` are the names of every model of the project;
    ``generated`` is the generated model of the same name, if any (which this file replaces or extends)."""
    name = f"{path.parent.name}.{path.stem}"
    sql = path.read_text(encoding="utf-8")
    header = parse_header(sql, path)
    doc = _read_yaml(path.with_suffix(".yml"))
    settings = _merge_settings(path, header, doc)
    tests, column_descriptions = _load_columns(path.with_suffix(".yml"), doc.get("columns"))
    extends = settings.pop("extends", None)
    if extends is None:
        return _model(name, path, sql, settings, tests, column_descriptions, known_models, sources)
    if extends not in EXTENDS:
        raise ModelError(f"{path}: 'extends' can only be {', '.join(EXTENDS)}, not {extends!r}")
    if generated is None:
        raise ModelError(f"{path}: extends the generated model, but {name} is not generated (only staging.<id> and "
                         "conformed.<id> of a dataset of the schema registry are)")
    settings.setdefault("materialized", generated.materialized)
    settings.setdefault("description", generated.description)
    inherited = {t.name: t for t in _generated_tests(generated)}
    inherited.update({t.name: t for t in tests})        # the file's test of the same kind and column wins
    return _model(name, path, with_generated(sql, generated.sql), settings, tuple(inherited.values()),
                  generated.column_descriptions | column_descriptions, known_models, sources,
                  generated_from=generated.dataset_id)


def generated_model(spec: GeneratedModel, root: Path, known_models: Collection[str],
                    sources: Collection[str] | None = None) -> Model:
    """The model of a generated query; its ``path`` is where a file replacing it would go."""
    schema, stem = spec.name.split(".", 1)
    settings = {"materialized": spec.materialized, "description": spec.description}
    return _model(spec.name, root / schema / f"{stem}.sql", spec.sql, settings, _generated_tests(spec),
                  spec.column_descriptions, known_models, sources, generated_from=spec.dataset_id)


def _generated_tests(spec: GeneratedModel) -> tuple[ColumnTest, ...]:
    return tuple(ColumnTest(column=t.column, kind=t.kind, params=dict(t.params), severity=t.severity)
                 for t in spec.tests)


def with_generated(sql: str, generated_sql: str) -> str:
    """``sql`` with the generated query as its first CTE, ``generated`` (after the header comments)."""
    lines = sql.splitlines(keepends=True)
    n = 0
    while n < len(lines) and (not lines[n].strip() or lines[n].lstrip().startswith("--")):
        n += 1
    head, body = "".join(lines[:n]), "".join(lines[n:])
    generated_body = "".join(line for line in generated_sql.splitlines(keepends=True)
                             if not line.lstrip().startswith("--")).strip()
    cte = f"generated AS (\n{generated_body}\n)"
    leading_with = _LEADING_WITH.match(body)
    if leading_with:
        return f"{head}{body[:leading_with.end()]}{cte},\n{body[leading_with.end():]}"
    return f"{head}WITH {cte}\n{body}"


def _model(name: str, path: Path, sql: str, settings: dict[str, str], tests: tuple[ColumnTest, ...],
           column_descriptions: dict[str, str], known_models: Collection[str], sources: Collection[str] | None,
           generated_from: str | None = None) -> Model:
    where = path if generated_from is None else f"{path} ({name}, generated from dataset {generated_from})"
    materialized = settings.get("materialized", "view")
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{where}: materialized must be 'view' or 'table', not {materialized!r}")
    tree = _parse_query(sql, where)
    refs = _references(tree, where)
    if name in refs:
        raise ModelError(f"{where}: model {name} reads itself")
    # a relationships test reads its target table: that is a dependency too (unless it is the model itself)
    refs |= {str(t.params["to"]) for t in tests if t.kind == "relationships"} - {name}
    model_deps, source_deps = _classify(where, refs, known_models, sources)
    names = tuple(tree.named_selects)
    declared = None if tree.is_star or "" in names else names
    model = Model(name=name, path=path, sql=sql, materialized=materialized,
                  description=settings.get("description", ""), model_deps=model_deps, source_deps=source_deps,
                  tests=tests, column_descriptions=column_descriptions, declared_columns=declared,
                  generated_from=generated_from)
    if declared is not None:
        check_columns(model, declared)
    return model


def parse_header(sql: str, path: Path | None = None) -> dict[str, str]:
    """The ``-- key: value`` lines of the comment block at the top of a model; unknown keys are errors."""
    header: dict[str, str] = {}
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        m = _HEADER_LINE.match(stripped)
        if not m:
            continue            # a free comment
        key, value = m.group(1), m.group(2)
        if key not in HEADER_KEYS:
            raise ModelError(f"{path}: unknown header key {key!r} (known: {', '.join(HEADER_KEYS)}); "
                             "write free comments without 'word:' at the start")
        if key in header:
            raise ModelError(f"{path}: header key {key!r} is given twice")
        header[key] = value
    return header


def _read_yaml(yml: Path) -> dict[str, Any]:
    if not yml.exists():
        return {}
    try:
        doc = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ModelError(f"{yml}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{yml}: expected a mapping with keys {', '.join(YAML_KEYS)}")
    unknown = sorted(set(map(str, doc)) - set(YAML_KEYS))
    if unknown:
        raise ModelError(f"{yml}: unknown key(s) {', '.join(unknown)} (known: {', '.join(YAML_KEYS)})")
    return doc


def _merge_settings(path: Path, header: dict[str, str], doc: dict[str, Any]) -> dict[str, str]:
    settings = dict(header)
    for key in ("materialized", "description"):
        if key in doc:
            if key in header:
                raise ModelError(f"{path}: {key!r} is set both in the header and in {path.with_suffix('.yml').name}")
            settings[key] = str(doc[key]).strip()
    return settings


def _parse_query(sql: str, path: Path | str | None) -> exp.Query:
    import sqlglot  # only when models are parsed (kouiki.file_cache keeps the result): a third of a second
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, dialect="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{path}: SQL does not parse: {exc}") from exc
    if not isinstance(tree, exp.Query):
        raise ModelError(f"{path}: a model is one SELECT query (no other statements, no ';' between queries)")
    return tree


def _references(tree: exp.Query, path: Path | str | None) -> set[str]:
    """``schema.table`` names a query reads (CTE names and table functions excluded)."""
    from sqlglot import exp

    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    refs: set[str] = set()
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        if table.catalog:
            raise ModelError(f"{path}: write schema.table, not {table.catalog}.{table.db}.{table.name}")
        if not table.db:
            if isinstance(table.this, exp.Anonymous) or table.find(exp.Func):
                continue  # table function such as read_parquet(...)
            raise ModelError(f"{path}: table {table.name!r} needs a schema (e.g. conformed.{table.name})")
        refs.add(f"{table.db}.{table.name}")
    return refs


def _classify(path: Path | str, refs: set[str], known_models: Collection[str],
              sources: Collection[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    model_deps, source_deps = [], []
    for ref in sorted(refs):
        schema = ref.split(".", 1)[0]
        if schema in MODEL_SCHEMAS:
            if ref not in known_models:
                raise ModelError(f"{path}: references unknown model {ref!r} "
                                 f"(known: {', '.join(sorted(known_models))})")
            model_deps.append(ref)
        elif schema in SOURCE_SCHEMAS:
            if sources is not None and ref not in sources:
                same_schema = sorted(s for s in sources if s.startswith(schema + "."))
                raise ModelError(f"{path}: references unknown source {ref!r}; {schema}.* has: {', '.join(same_schema)}")
            source_deps.append(ref)
        else:
            raise ModelError(
                f"{path}: table {ref!r} is neither a model ({', '.join(MODEL_SCHEMAS)}) nor a source "
                f"({', '.join(SOURCE_SCHEMAS)}); write schema.name"
            )
    return tuple(model_deps), tuple(source_deps)


def _load_columns(yml: Path, columns: Any) -> tuple[tuple[ColumnTest, ...], dict[str, str]]:
    if columns is None:
        return (), {}
    if not isinstance(columns, dict):
        raise ModelError(f"{yml}: 'columns' must map column names to tests")
    tests: list[ColumnTest] = []
    descriptions: dict[str, str] = {}
    for column, spec in columns.items():
        column = str(column)
        specs = spec
        if isinstance(spec, dict):
            unknown = sorted(set(map(str, spec)) - set(COLUMN_KEYS))
            if unknown:
                raise ModelError(f"{yml}: column {column}: unknown key(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(COLUMN_KEYS)})")
            if spec.get("description"):
                descriptions[column] = str(spec["description"]).strip()
            specs = spec.get("tests")
        if specs is not None and not isinstance(specs, list):
            raise ModelError(f"{yml}: column {column}: tests are a list, e.g. [not_null, unique]")
        tests.extend(_parse_test(yml, column, s) for s in specs or [])
    _check_unique_names(yml, tests)
    return tuple(tests), descriptions


def _parse_test(yml: Path, column: str, spec: Any) -> ColumnTest:
    where = f"{yml}: column {column}"
    if isinstance(spec, str):
        kind, value = spec, None
    elif isinstance(spec, dict) and len(spec) == 1:
        kind, value = next(iter(spec.items()))
    else:
        raise ModelError(f"{where}: a test is a name or a one-key mapping, not {spec!r}")
    if kind not in TEST_PARAMS:
        raise ModelError(f"{where}: unknown test {kind!r} (known: {', '.join(TEST_PARAMS)})")
    if value is None:
        params: dict[str, Any] = {}
    elif isinstance(value, dict):
        params = {str(k): v for k, v in value.items()}
    elif isinstance(value, list) and kind == "accepted_values":
        params = {"values": value}
    else:
        raise ModelError(f"{where}: {kind} takes a mapping of parameters, not {value!r}")
    severity = str(params.pop("severity", "error"))
    if severity not in SEVERITIES:
        raise ModelError(f"{where}: severity must be 'error' or 'warn', not {severity!r}")
    unknown = sorted(set(params) - set(TEST_PARAMS[kind]))
    if unknown:
        raise ModelError(f"{where}: {kind} has no parameter(s) {', '.join(unknown)} "
                         f"(it takes: {', '.join(TEST_PARAMS[kind]) or 'none'}, severity)")
    _check_params(where, kind, params)
    return ColumnTest(column=column, kind=kind, params=params, severity=severity)


def _check_params(where: str, kind: str, params: dict[str, Any]) -> None:
    if kind == "accepted_values":
        values = params.get("values")
        if not isinstance(values, list) or not values:
            raise ModelError(f"{where}: accepted_values needs a non-empty list of values")
    if kind == "relationships":
        to = params.get("to")
        if not isinstance(to, str) or not _QUALIFIED.match(to):
            raise ModelError(f"{where}: relationships needs 'to: schema.table' (e.g. reference.local_governments)")
        if "field" in params and not isinstance(params["field"], str):
            raise ModelError(f"{where}: relationships 'field' is a column name")


def _check_unique_names(yml: Path, tests: list[ColumnTest]) -> None:
    seen: dict[str, ColumnTest] = {}
    for t in tests:
        if t.name in seen:
            raise ModelError(f"{yml}: column {t.column}: a second {t.kind} test (merge them into one)")
        seen[t.name] = t


def check_columns(model: Model, columns: Iterable[str]) -> None:
    """Raise ModelError when the tests or column descriptions name a column the model does not have."""
    have = set(columns)
    named = [t.column for t in model.tests] + list(model.column_descriptions)
    missing = sorted({c for c in named if c not in have})
    if missing:
        raise ModelError(
            f"{_tests_where(model)}: column(s) {', '.join(missing)} are not columns of {model.name} "
            f"(it has: {', '.join(sorted(have))})"
        )


def _tests_where(model: Model) -> str:
    """Where a model's tests are declared: its ``.yml``, or the schema that generated them."""
    yml = model.path.with_suffix(".yml")
    return str(yml) if yml.exists() or model.generated_from is None else model.origin


def build_order(models: Mapping[str, Model]) -> list[str]:
    """Model names in an order where every model comes after the models it reads."""
    graph = {name: set(m.model_deps) for name, m in models.items()}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " → ".join(exc.args[1])
        raise ModelError(f"models form a cycle: {cycle}") from exc


# --- building -----------------------------------------------------------------------------------------------


def relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """(name, type) of a table or view's columns."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {relation}").fetchall()]


def materialize(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    """Build one model in DuckDB; returns its row count.

    Runs in one transaction: a model whose tests name missing columns, or whose SQL fails, raises and leaves
    the previous version of the model in place."""
    import duckdb  # imported where used: the definitions load this module

    con.execute("BEGIN TRANSACTION")
    try:
        _create(con, model)
        check_columns(model, [c for c, _ in relation_columns(con, model.relation)])
        for test in model.tests:
            if test.kind == "relationships":
                _check_target(con, model, test)
        row = con.execute(f"SELECT count(*) FROM {model.relation}").fetchone()
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise ModelError(f"{model.origin}: {model.name} failed in DuckDB: {exc}") from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(row[0]) if row else 0


def _create(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
    body = model.sql.strip().rstrip(";")
    existing = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [model.schema, model.stem],
    ).fetchone()
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    if existing and (existing[0] == "VIEW") != (kind == "VIEW"):
        # switching between view and table: drop the old object first (DuckDB will not replace across kinds)
        con.execute(f"DROP {'VIEW' if existing[0] == 'VIEW' else 'TABLE'} {model.relation}")
    con.execute(f"CREATE OR REPLACE {kind} {model.relation} AS {body}")


def _check_target(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest) -> None:
    import duckdb

    to = str(test.params["to"])
    try:
        columns = [c for c, _ in relation_columns(con, to)]
    except duckdb.Error as exc:
        raise ModelError(f"{_tests_where(model)}: relationships target {to} does not exist") from exc
    if test.target_field not in columns:
        raise ModelError(f"{_tests_where(model)}: relationships target {to} has no column "
                         f"{test.target_field!r} (it has: {', '.join(columns)})")


def run_test(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest) -> CheckOutcome:
    """Run a column test on the built model: how many rows break it, and a few examples."""
    col = quote(test.column)
    target = model.relation
    if test.kind == "not_null":
        failing_rows = f"SELECT * FROM {target} WHERE {col} IS NULL"
    elif test.kind == "unique":
        failing_rows = (f"SELECT * FROM {target} WHERE {col} IN "
                        f"(SELECT {col} FROM {target} WHERE {col} IS NOT NULL GROUP BY ALL HAVING count(*) > 1)")
    elif test.kind == "accepted_values":
        values = ", ".join(literal(str(v)) for v in test.params["values"])
        failing_rows = f"SELECT * FROM {target} WHERE {col} IS NOT NULL AND CAST({col} AS VARCHAR) NOT IN ({values})"
    else:  # relationships
        to = ".".join(quote(p) for p in str(test.params["to"]).split("."))
        failing_rows = (f"SELECT * FROM {target} AS t WHERE t.{col} IS NOT NULL AND NOT EXISTS "
                        f"(SELECT 1 FROM {to} AS r WHERE r.{quote(test.target_field)} = t.{col})")
    counted = con.execute(f"SELECT count(*) FROM ({failing_rows})").fetchone()
    failing = int(counted[0]) if counted else 0
    return CheckOutcome(failing=failing, examples=_examples(con, model, test, failing_rows) if failing else [],
                       sql=failing_rows)


def _examples(con: duckdb.DuckDBPyConnection, model: Model, test: ColumnTest, failing_rows: str) -> list[str]:
    if test.kind != "not_null":
        sql = f"SELECT DISTINCT CAST({quote(test.column)} AS VARCHAR) AS v FROM ({failing_rows}) ORDER BY v LIMIT 5"
        return [str(r[0]) for r in con.execute(sql).fetchall()]
    # a NULL says nothing: point at the rows instead when the model carries provenance
    columns = {c for c, _ in relation_columns(con, model.relation)}
    if not {"_city_code", "_source_line"} <= columns:
        return []
    sql = (f"SELECT _city_code, _source_line FROM ({failing_rows}) "
           "ORDER BY _city_code, _source_line LIMIT 5")
    return [f"{city} line {line}" for city, line in con.execute(sql).fetchall()]


# --- sources that come from kouiki's configuration rather than the lake -----------------------------------------


def refresh_registry_sources(con: duckdb.DuckDBPyConnection, members: Iterable[Member],
                             datasets: Iterable[Dataset], *, with_findings: bool = True) -> None:
    """(Re)create the sources models read besides the lake views of ``warehouse.duck.refresh_sources``:

    ``reference.members`` (code, name, datasets): the member registry, so every member city appears in the
    office's marts even when it has sent nothing; ``reference.datasets`` (id, name_ja, name_en, version): the
    schema registry; ``findings.all_datasets``: every dataset's findings with a ``dataset_id`` column.
    Call it after ``refresh_sources`` (it reads the ``findings.<dataset>`` views); ``with_findings=False`` leaves
    ``findings.all_datasets`` as it is (for a model that does not read it)."""
    datasets = list(datasets)
    for schema in ("reference", "findings"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute("CREATE OR REPLACE TABLE reference.members (code VARCHAR, name VARCHAR, datasets VARCHAR[])")
    rows = [(m.code, m.name, list(m.datasets)) for m in members]
    if rows:
        con.executemany("INSERT INTO reference.members VALUES (?, ?, ?)", rows)
    con.execute("CREATE OR REPLACE TABLE reference.datasets "
                "(id VARCHAR, name_ja VARCHAR, name_en VARCHAR, version VARCHAR)")
    if datasets:
        con.executemany("INSERT INTO reference.datasets VALUES (?, ?, ?, ?)",
                        [(d.id, d.name_ja, d.name_en, d.version) for d in datasets])
    if with_findings:
        _all_findings_view(con, [d.id for d in datasets])


def _all_findings_view(con: duckdb.DuckDBPyConnection, dataset_ids: list[str]) -> None:
    """One fixed set of columns whatever each dataset's findings view has (an empty one has fewer)."""
    parts = []
    for dataset_id in dataset_ids:
        view = f"findings.{quote(dataset_id)}"
        have = {c for c, _ in relation_columns(con, view)}
        cols = [quote(c) if c in have else f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in FINDINGS_COLUMNS.items()]
        parts.append(f"SELECT {literal(dataset_id)} AS dataset_id, {', '.join(cols)} FROM {view}")
    if not parts:
        cols = [f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in FINDINGS_COLUMNS.items()]
        parts.append(f"SELECT CAST(NULL AS VARCHAR) AS dataset_id, {', '.join(cols)} WHERE false")
    con.execute(f"CREATE OR REPLACE VIEW {ALL_FINDINGS} AS {' UNION ALL '.join(parts)}")
