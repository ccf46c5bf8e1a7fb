"""The staging and conformed models of a dataset, generated from its schema YAML (no SQL file needed).

Every dataset of the schema registry gets, at load time:

* ``staging.<id>`` (view): ``lake.<id>`` with the standard's numbers typed — ``number`` → DOUBLE,
  ``integer`` → BIGINT, ``date`` → DATE (intake already wrote dates as YYYY-MM-DD, which is also how a DATE
  prints) — each with ``TRY_CAST``, so a value that is not a number becomes NULL instead of failing the build
  (its finding is counted in the release's conformance). Codes, phones, times, postal codes and flags stay text
  because the standard publishes them as text (leading zeros, ``09:00``).
* ``conformed.<id>`` (table): every staged row of every member city, in the standard layout, with the columns
  that name the local government filled from the row's city when the city left them empty (the code columns,
  地方公共団体名, legacy 都道府県名 / 市区町村名) from ``reference.local_governments``, ordered by city, upload
  and source line so the same data always gives the same release.

Both are ``SELECT * REPLACE (…)``: columns a city sent that the standard does not have pass through unchanged.
A hand-written ``dbt_like_sql/<schema>/<id>.sql`` replaces the generated model, or builds on it with the header
``-- extends: generated`` (the generated query is then the CTE ``generated``): see docs/models.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kouiki.model import Column, Dataset
from kouiki.sql import quote

GENERATED_SCHEMAS = ("staging", "conformed")
# The SQL type a column of the standard is published as; types not listed stay text (VARCHAR).
SQL_TYPES = {"number": "DOUBLE", "integer": "BIGINT", "date": "DATE"}
# Columns holding the code of the row's local government: filled with the row's city when empty.
CODE_COLUMNS = ("全国地方公共団体コード", "所在地_全国地方公共団体コード")
# Columns naming the row's local government, and how to fill them from reference.local_governments (alias g).
NAME_COLUMNS = {
    "地方公共団体名": "g.prefecture || coalesce(g.city, '')",
    "都道府県名": "g.prefecture",
    "市区町村名": "g.city",
}


@dataclass(frozen=True)
class GeneratedTest:
    """A column test of a generated model (same vocabulary as a model's ``.yml``)."""

    column: str
    kind: str                       # not_null or relationships
    params: tuple[tuple[str, str], ...] = ()
    severity: str = "error"


@dataclass(frozen=True)
class GeneratedModel:
    """What the model runner needs to know about a generated model."""

    name: str                       # schema.dataset_id
    dataset_id: str
    sql: str
    materialized: str
    description: str
    tests: tuple[GeneratedTest, ...]
    column_descriptions: dict[str, str]


def generated_models(datasets: Iterable[Dataset]) -> dict[str, GeneratedModel]:
    """``staging.<id>`` and ``conformed.<id>`` of every dataset, by model name."""
    models: dict[str, GeneratedModel] = {}
    for dataset in datasets:
        for model in (staging_model(dataset), conformed_model(dataset)):
            models[model.name] = model
    return models


def _header(dataset: Dataset, materialized: str) -> str:
    """Comment lines at the top of the SQL: why it exists and how to replace it (shown in the Dagster UI)."""
    return (f"-- generated from the schema registry (dataset {dataset.id}, version {dataset.version}).\n"
            f"-- To change it, write dbt_like_sql/<staging|conformed>/{dataset.id}.sql (a {materialized}); "
            "with '-- extends: generated' it can build on this query.\n")


def staging_model(dataset: Dataset) -> GeneratedModel:
    casts = [f"    TRY_CAST({quote(c.name)} AS {SQL_TYPES[c.type]}) AS {quote(c.name)}"
             for c in dataset.canonical.columns if c.type in SQL_TYPES]
    select = "SELECT *" if not casts else "SELECT * REPLACE (\n" + ",\n".join(casts) + "\n)"
    sql = f"{_header(dataset, 'view')}{select}\nFROM lake.{quote(dataset.id)}\n"
    description = (f"{dataset.name_ja} (全構成市・型付き・スキーマから生成) / {dataset.name_en} of every member city, "
                   "typed (lake → staging; generated from the schema)")
    return GeneratedModel(name=f"staging.{dataset.id}", dataset_id=dataset.id, sql=sql, materialized="view",
                          description=description, tests=(), column_descriptions={})


def conformed_model(dataset: Dataset) -> GeneratedModel:
    # only text columns are filled (a YAML typing a code column as a number keeps its value as it is)
    columns = {c.name for c in dataset.canonical.columns if c.type not in SQL_TYPES}
    code_columns = [c for c in (dataset.code_column, *CODE_COLUMNS) if c in columns]
    fills = [f"        coalesce(nullif(s.{quote(c)}, ''), s._city_code) AS {quote(c)}"
             for c in dict.fromkeys(code_columns)]
    fills += [f"        coalesce(nullif(s.{quote(c)}, ''), {expr}) AS {quote(c)}"
              for c, expr in NAME_COLUMNS.items() if c in columns]
    replace = "" if not fills else " REPLACE (\n" + ",\n".join(fills) + "\n    )"
    sql = (f"{_header(dataset, 'table')}SELECT\n    s.* EXCLUDE (_row){replace}\n"
           f"FROM staging.{quote(dataset.id)} AS s\n"
           "LEFT JOIN reference.local_governments AS g ON g.code = s._city_code\n"
           "ORDER BY s._city_code, s._upload_id, s._source_line\n")
    description = (f"地域全体の{dataset.name_ja} (スキーマから生成・公開対象) / region-wide {dataset.name_en}, "
                   "published (generated from the schema)")
    return GeneratedModel(name=f"conformed.{dataset.id}", dataset_id=dataset.id, sql=sql, materialized="table",
                          description=description, tests=_conformed_tests(dataset),
                          column_descriptions=_descriptions(dataset.canonical.columns))


def _conformed_tests(dataset: Dataset) -> tuple[GeneratedTest, ...]:
    """The code column names a real local government (it is never empty: the row's city fills it); every row
    has its city, a member (warn: a member removed from config/members.yaml keeps its data until the office
    deletes it). Empty required values are not tests here: such rows are published, and the release's
    conformance counts them per column (publish/conformance.py)."""
    return (GeneratedTest(dataset.code_column, "relationships",
                          (("to", "reference.local_governments"), ("field", "code"))),
            GeneratedTest("_city_code", "not_null"),
            GeneratedTest("_city_code", "relationships", (("to", "reference.members"), ("field", "code")),
                          severity="warn"))


def _descriptions(columns: Iterable[Column]) -> dict[str, str]:
    descriptions = {}
    for c in columns:
        kind = SQL_TYPES.get(c.type, "VARCHAR")
        need = "必須 / required" if c.required else c.level
        descriptions[c.name] = f"{c.description} ({c.type} → {kind}; {need})".strip()
    descriptions["_city_code"] = "提出した構成市 / member city that sent the file"
    return descriptions
