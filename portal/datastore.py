"""``datastore_search`` answered from a release's Parquet file with DuckDB (in memory, files read-only).

Every request parameter is hostile until checked: column names (in ``fields``, ``sort``, ``filters``, ``q``)
must be columns of the file and are always quoted; values only ever travel as bound parameters. As a second
wall, the DuckDB instance may read files under the releases folder only (``allowed_directories`` with external
access switched off and the configuration locked), so even a mistake here could not reach landing/, private/
or the warehouse database.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from kouiki.sql import literal, quote
from portal.errors import ValidationError

DEFAULT_LIMIT = 100
MAX_LIMIT = 32000            # CKAN's ckan.datastore.search.rows_max default
MAX_NATURAL = 2**53        # offsets and limits beyond this are mistakes (and overflow the engines)
ROW_ID = "_id"               # CKAN's row id: here the 1-based row number in the Parquet file
RECORDS_FORMATS = ("objects", "lists", "csv", "tsv")
_SORT_CLAUSE = re.compile(r'^\s*(?:"(?P<quoted>(?:[^"]|"")+)"|(?P<bare>.+?))(?:\s+(?P<dir>asc|desc))?\s*$',
                          re.IGNORECASE | re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SOURCE = "read_parquet(?, file_row_number = true)"   # the file is always the first bound parameter
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}

CKAN_TYPES = {
    "VARCHAR": "text", "BIGINT": "int8", "INTEGER": "int4", "SMALLINT": "int2", "TINYINT": "int2",
    "UBIGINT": "numeric", "UINTEGER": "int8", "USMALLINT": "int4", "UTINYINT": "int2", "HUGEINT": "numeric",
    "DOUBLE": "float8", "FLOAT": "float4", "BOOLEAN": "bool", "DATE": "date", "TIME": "time",
    "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


def ckan_type(duckdb_type: str) -> str:
    """The CKAN DataStore (PostgreSQL) type name for a DuckDB column type."""
    if duckdb_type.startswith("DECIMAL"):
        return "numeric"
    return CKAN_TYPES.get(duckdb_type, "text")


@dataclass(frozen=True)
class SearchRequest:
    """The checked parameters of one datastore_search call (columns are checked against the file later)."""

    resource_id: str
    filters: dict[str, list[Any]] = field(default_factory=dict)
    q: str | dict[str, str] | None = None
    fields: list[str] | None = None
    sort: list[tuple[str, str]] = field(default_factory=list)   # (column, "ASC" | "DESC")
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include_total: bool = True
    distinct: bool = False
    records_format: str = "objects"


@dataclass(frozen=True)
class SearchResult:
    fields: list[tuple[str, str]]          # (name, DuckDB type) of the returned columns, in order
    rows: list[tuple[Any, ...]]
    total: int | None


def parse_search_request(params: Mapping[str, Any]) -> SearchRequest:
    """Check the parameters of a datastore_search call (from a query string or a JSON body)."""
    resource_id = params.get("resource_id") or params.get("id")
    if not isinstance(resource_id, str) or not resource_id:
        raise ValidationError({"resource_id": ["Missing value"]})
    records_format = str(params.get("records_format") or "objects")
    if records_format not in RECORDS_FORMATS:
        raise ValidationError({"records_format": [f"must be one of {', '.join(RECORDS_FORMATS)}"]})
    return SearchRequest(
        resource_id=resource_id,
        filters=_parse_filters(params.get("filters")),
        q=_parse_q(params.get("q")),
        fields=_parse_fields(params.get("fields")),
        sort=_parse_sort(params.get("sort")),
        limit=min(_natural(params, "limit", DEFAULT_LIMIT), MAX_LIMIT),
        offset=_natural(params, "offset", 0),
        include_total=_boolean(params, "include_total", True),
        distinct=_boolean(params, "distinct", False),
        records_format=records_format,
    )


def _json_or_value(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValidationError({key: [f"not valid JSON: {exc}"]}) from exc
    return value


def _parse_filters(raw: Any) -> dict[str, list[Any]]:
    if raw in (None, ""):
        return {}
    value = _json_or_value(raw, "filters") if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise ValidationError({"filters": ["Not a json object"]})
    filters: dict[str, list[Any]] = {}
    for column, wanted in value.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or any(isinstance(v, dict | list) for v in values):
            raise ValidationError({"filters": [f"the value of {column!r} must be a value or a list"]})
        filters[str(column)] = values
    return filters


def _parse_q(raw: Any) -> str | dict[str, str] | None:
    if raw in (None, ""):
        return None
    value = _json_or_value(raw, "q") if isinstance(raw, str) and raw.lstrip().startswith("{") else raw
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v not in (None, "")}
    if isinstance(value, str | int | float):
        return str(value)
    raise ValidationError({"q": ["must be text or an object of column: text"]})


def _parse_fields(raw: Any) -> list[str] | None:
    if raw in (None, "", []):
        return None
    if isinstance(raw, str):
        value = _json_or_value(raw, "fields") if raw.lstrip().startswith("[") else raw.split(",")
    else:
        value = raw
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError({"fields": ["must be a list of column names or a comma-separated text"]})
    names = [v.strip() for v in value if v.strip()]
    return names or None


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _parse_sort(raw: Any) -> list[tuple[str, str]]:
    if raw in (None, "", []):
        return []
    clauses = raw if isinstance(raw, list) else _split_outside_quotes(str(raw))
    parsed = []
    for clause in clauses:
        match = _SORT_CLAUSE.match(str(clause))
        if not match:
            raise ValidationError({"sort": ["not valid syntax for sort clause"]})
        name = match["quoted"].replace('""', '"') if match["quoted"] else match["bare"].strip()
        parsed.append((name, (match["dir"] or "asc").upper()))
    return parsed


def _natural(params: Mapping[str, Any], key: str, default: int) -> int:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip()) if not isinstance(raw, bool) else -1
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationError({key: ["Must be a natural number"]})
    if value > MAX_NATURAL:
        raise ValidationError({key: [f"Must be at most {MAX_NATURAL}"]})
    return value


def _boolean(params: Mapping[str, Any], key: str, default: bool) -> bool:
    raw = params.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError({key: ["Must be true or false"]})


# ---------------------------------------------------------------------------------------------- the engine


class Datastore:
    """Searches over release Parquet files: one in-memory DuckDB, one cursor per call (thread-safe)."""

    def __init__(self, releases_root: Path) -> None:
        self.root = releases_root.resolve()
        self._con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                           "autoload_known_extensions": False})
        self._con.execute(f"SET allowed_directories = [{literal(str(self.root) + '/')}]")
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        # DuckDB imports pandas on the first bound parameter (seconds without bytecode): pay it at start-up,
        # not on the first visitor's request.
        self._con.execute("SELECT ?", [0]).fetchall()
        self._schemas: dict[Path, tuple[tuple[int, int], list[tuple[str, str]]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._con.close()

    def schema(self, parquet: Path) -> list[tuple[str, str]]:
        """(name, DuckDB type) of every column of the file, cached until the file changes."""
        stat = parquet.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._schemas.get(parquet)
        if cached and cached[0] == stamp:
            return cached[1]
        rows = self._run("DESCRIBE SELECT * FROM read_parquet(?)", [str(parquet)])
        columns = [(str(r[0]), str(r[1])) for r in rows]
        with self._lock:
            self._schemas[parquet] = (stamp, columns)
        return columns

    def count(self, parquet: Path, scope: tuple[str, str] | None = None) -> int:
        where, params = _scope_where(scope)
        row = self._run(f"SELECT count(*) FROM read_parquet(?) {_where_sql(where)}", [str(parquet), *params])
        return int(row[0][0])

    def count_by(self, parquet: Path, column: str) -> dict[str, int]:
        """Rows per value of ``column`` (one scan of that column only)."""
        rows = self._run(f"SELECT {quote(column)}::VARCHAR, count(*) FROM read_parquet(?) GROUP BY 1",
                         [str(parquet)])
        return {str(value): int(n) for value, n in rows}

    def search(self, parquet: Path, request: SearchRequest,
               scope: tuple[str, str] | None = None) -> SearchResult:
        """The page of rows ``request`` asks for; ``scope`` (column, value) limits it to one city's part.

        Two steps, because decoding every column of a large file is what costs: first the row numbers of the
        page (reading only the columns filtered or sorted on), then just those rows, in that order."""
        types = dict(self.schema(parquet))
        types_with_id = {ROW_ID: "BIGINT", **types}
        selected = _selected_fields(request, types_with_id)
        where, params = _scope_where(scope)
        for sql, values in (_filter_clauses(request.filters, types_with_id) + _q_clauses(request.q, types)):
            where.append(sql)
            params.extend(values)
        order = _order_sql(request, selected, types_with_id)
        if request.distinct:
            rows = self._distinct_page(parquet, selected, where, params, order, request)
        else:
            numbers = self._page_row_numbers(parquet, where, params, order, request)
            rows = self._rows_numbered(parquet, selected, numbers)
        total = None
        if request.include_total:
            total = self._total(parquet, selected, where, params, request.distinct)
        return SearchResult(fields=[(n, types_with_id[n]) for n in selected], rows=rows, total=total)

    def _page_row_numbers(self, parquet: Path, where: list[str], params: list[Any], order: str,
                          request: SearchRequest) -> list[int]:
        """File row numbers of the page. Without an ORDER BY the scan keeps the file's order (DuckDB's
        preserve_insertion_order), which is the order of the row ids."""
        if not where and not order:
            rows = self.count(parquet)   # from the Parquet footer: no data read
            return list(range(min(request.offset, rows), min(request.offset + request.limit, rows)))
        sql = f"SELECT file_row_number FROM {SOURCE} {_where_sql(where)} {order} LIMIT ? OFFSET ?"
        return [int(r[0]) for r in self._run(sql, [str(parquet), *params, request.limit, request.offset])]

    def _rows_numbered(self, parquet: Path, selected: list[str], numbers: list[int]) -> list[tuple[Any, ...]]:
        if not numbers:
            return []
        select = ", ".join(_column_sql(name) for name in selected)
        # BETWEEN lets DuckDB skip whole row groups; the list then picks the rows.
        sql = (f"SELECT file_row_number, {select} FROM {SOURCE} WHERE file_row_number BETWEEN ? AND ? "
               "AND file_row_number IN (SELECT unnest(?::BIGINT[]))")
        found = {r[0]: r[1:] for r in self._run(sql, [str(parquet), min(numbers), max(numbers), numbers])}
        return [found[n] for n in numbers]

    def _distinct_page(self, parquet: Path, selected: list[str], where: list[str], params: list[Any],
                       order: str, request: SearchRequest) -> list[tuple[Any, ...]]:
        select = ", ".join(_column_sql(name) for name in selected)
        sql = f"SELECT DISTINCT {select} FROM {SOURCE} {_where_sql(where)} {order} LIMIT ? OFFSET ?"
        return self._run(sql, [str(parquet), *params, request.limit, request.offset])

    def _total(self, parquet: Path, selected: list[str], where: list[str], params: list[Any],
               distinct: bool) -> int:
        if distinct:
            select = ", ".join(_column_sql(name) for name in selected)
            counted = f"SELECT DISTINCT {select} FROM {SOURCE} {_where_sql(where)}"
            return int(self._run(f"SELECT count(*) FROM ({counted})", [str(parquet), *params])[0][0])
        if not where:
            return self.count(parquet)
        sql = f"SELECT count(*) FROM {SOURCE} {_where_sql(where)}"
        return int(self._run(sql, [str(parquet), *params])[0][0])

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._con.cursor()
        try:
            return cursor.execute(sql, list(params)).fetchall()
        except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.BinderException,
                duckdb.OutOfRangeException) as exc:
            # a value that does not fit its column ("abc" for a number): the caller's mistake, said safely
            raise ValidationError({"query": [_safe_message(exc, self.root)]}) from exc
        finally:
            cursor.close()


def _safe_message(exc: Exception, root: Path) -> str:
    """DuckDB's first line, with no file-system path in it."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first.replace(str(root), "releases")


def _column_sql(name: str) -> str:
    return "(file_row_number + 1)" if name == ROW_ID else quote(name)


def _where_sql(clauses: list[str]) -> str:
    return "WHERE " + " AND ".join(f"({c})" for c in clauses) if clauses else ""


def _scope_where(scope: tuple[str, str] | None) -> tuple[list[str], list[Any]]:
    if scope is None:
        return [], []
    return [f"{quote(scope[0])} = ?"], [scope[1]]


def _unknown(key: str, name: str) -> ValidationError:
    return ValidationError({key: [f'field "{name}" not in table']})


def _selected_fields(request: SearchRequest, types: Mapping[str, str]) -> list[str]:
    if request.fields is None:
        return [n for n in types if not (request.distinct and n == ROW_ID)]
    for name in request.fields:
        if name not in types:
            raise _unknown("fields", name)
    return list(dict.fromkeys(request.fields))


def _filter_clauses(filters: Mapping[str, list[Any]],
                    types: Mapping[str, str]) -> list[tuple[str, list[Any]]]:
    clauses = []
    for name, values in filters.items():
        if name not in types:
            raise _unknown("filters", name)
        column = _column_sql(name)
        present = [_filter_value(v, types[name]) for v in values if v is not None]
        parts = []
        if present:
            parts.append(f"{column} IN ({', '.join('?' for _ in present)})")
        if len(present) < len(values):
            parts.append(f"{column} IS NULL")
        clauses.append((" OR ".join(parts), present))
    return clauses


def _filter_value(value: Any, duckdb_type: str) -> Any:
    if duckdb_type == "VARCHAR":
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _search_term(text: str) -> str:
    return _CONTROL.sub("", unicodedata.normalize("NFKC", text)).lower()


def _q_clauses(q: str | dict[str, str] | None, types: Mapping[str, str]) -> list[tuple[str, list[Any]]]:
    """Each word must occur (case-insensitively) in one of the text columns, or in the named column."""
    if q is None:
        return []
    if isinstance(q, dict):
        clauses = []
        for name, text in q.items():
            if name not in types:
                raise _unknown("q", name)
            term = _search_term(text)
            clauses.append((f"contains({_cased(f'CAST({quote(name)} AS VARCHAR)', term)}, ?)", [term]))
        return clauses
    text_columns = [n for n, t in types.items() if t == "VARCHAR"]
    terms = [t for t in _search_term(q).split() if t]
    if not text_columns or not terms:
        return [("false", [])] if terms else []
    return [(" OR ".join(f"contains({_cased(quote(n), term)}, ?)" for n in text_columns),
             [term] * len(text_columns)) for term in terms]


def _cased(expression: str, term: str) -> str:
    """The text compared with ``term``: lower-cased only when the term has letters with a case (Latin);
    Japanese text has none, and skipping lower() makes the scan several times faster."""
    return f"lower({expression})" if term.upper() != term.lower() else expression


def _order_sql(request: SearchRequest, selected: list[str], types: Mapping[str, str]) -> str:
    parts = []
    for name, direction in request.sort:
        if name not in types:
            raise _unknown("sort", name)
        if request.distinct and name not in selected:
            raise ValidationError({"sort": [f'field "{name}" must be one of the fields with distinct']})
        parts.append(f"{_column_sql(name)} {direction}")
    if request.distinct:
        # no row id after DISTINCT: order by every returned column so that pages are stable
        already = {name for name, _ in request.sort}
        parts += [f"{quote(n)} ASC" for n in selected if n not in already]
    elif parts:
        parts.append("file_row_number ASC")   # stable paging: ties keep the file's order
    return "ORDER BY " + ", ".join(parts) if parts else ""


# ---------------------------------------------------------------------------------------------- output


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON can carry it (dates as ISO 8601, no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def format_records(result: SearchResult, records_format: str) -> list[Any] | str:
    """Records as CKAN returns them: objects, lists, or CSV / TSV text without a header."""
    names = [name for name, _ in result.fields]
    if records_format == "objects":
        return [{n: json_value(v) for n, v in zip(names, row, strict=True)} for row in result.rows]
    if records_format == "lists":
        return [[json_value(v) for v in row] for row in result.rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t" if records_format == "tsv" else ",", lineterminator="\n")
    writer.writerows([["" if v is None else json_value(v) for v in row] for row in result.rows])
    return buffer.getvalue()
