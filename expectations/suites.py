"""From a dataset definition to the checks it implies, as a Great Expectations suite and as plain SQL.

:func:`build_checks` reads the canonical variant of a :class:`~kouiki.model.Dataset` and lists one
:class:`Check` per rule (required value present, format by anchored regex, value set, coordinate bounds, ID
unique, check digit of the 全国地方公共団体コード, end after start). Each check renders two ways from the same
fields, through its kind's entry of :data:`RULE_FORMS` (both forms side by side: a kind cannot have one only):

* :meth:`Check.expectation` — a GE expectation whose ``meta`` carries ``check_id``, ``error_code`` and
  ``column`` so results map back to the error catalogue (:mod:`kouiki.validation_errors`);
* :meth:`Check.failing_sql` — a DuckDB predicate true on the rows that fail, used to list *every* failing
  row (GE on SQL returns at most ``partial_unexpected_count`` of them) and to cross-check GE's counts.

The conditions GE has no built-in for are SQL texts here (``phone_ok_sql``, ``check_digit_ok_sql``,
``number_between_sql``, ``in_order_sql``), written once: the failing-row predicate is made of them, and the
custom expectations of :mod:`expectations.ge_custom` evaluate the very same text.

Three checks need custom expectations because GE has no built-in for them on a text column in DuckDB:
``ExpectColumnValuesToHaveValidLocalGovernmentCheckDigit`` (check digit computed in SQL),
``ExpectColumnValuesToBeJapanesePhoneNumbers`` (the digit count depends on the prefix, see kouiki.phone) and
``ExpectColumnValuesAsNumberToBeBetween`` (GE's ``expect_column_values_to_be_between`` compares the
VARCHAR column with a number, which DuckDB refuses: "Cannot compare values of type VARCHAR and type
INTEGER_LITERAL"; ours compares ``TRY_CAST(column AS DOUBLE)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from kouiki.localgov import CHECK_DIGIT_WEIGHTS, LOCAL_GOVERNMENT_CODE_COLUMNS, check_digit_of
from kouiki.model import Column, Dataset
from kouiki.phone import PHONE_DIGITS, PHONE_SHAPE, phone_digits_sql
from kouiki.sql import literal, quote  # a leaf: imports nothing
from kouiki.validation_errors import JAPAN_LATITUDE, JAPAN_LONGITUDE

if TYPE_CHECKING:
    import great_expectations as gx

# Great Expectations (seconds to import) is imported by the functions that build a GE suite; the checks and their
# SQL (``kouiki inspect``, the gap-closing queries) do without it. Its custom expectations: expectations.ge_custom.

# --- the 全国地方公共団体コード check digit (the formula and the code columns live in kouiki.localgov) --------


def local_government_check_digit(first_five: str) -> int:
    """The check digit of a 5-digit JIS local government code, e.g. '13219' → 5."""
    return int(check_digit_of([int(d) for d in first_five]))


# --- formats: anchored (^…$) because DuckDB 2.0's ~ matches partially -----------------------------
DIGITS6 = r"^[0-9]{6}$"
REGEX_BY_RULE: dict[str, str] = {
    "integer": r"^-?[0-9]+$",
    "number": r"^-?[0-9]+(\.[0-9]+)?$",
    "date": r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    "time": r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",     # 24:00 closes a round-the-clock day
    # the shape only: the kind "phone" also counts the digits for the prefix (kouiki.phone)
    "phone": PHONE_SHAPE,
    "postal_code": r"^[0-9]{7}$",
    "url": r"^https?://[^\s/?#]+[^\s]*$",
    "email": r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$",
    "local-government-code": DIGITS6,
    "corporate-number": r"^[0-9]{13}$",
    "town-id": r"^[0-9]{7}$",
    "code": r"^[0-9A-Za-z-]+$",
    # full-width katakana (ァ…ヺ), ・ー ヽヾ, spaces, and brackets (a nickname's reading: …(ヒダマリ))
    "kana": r"^[ァ-ヺ・-ヾ　 ()（）]+$",
}
# a regex rule's error code when it is not "format-error"
ERROR_CODE_BY_RULE = {"integer": "type-error", "number": "type-error", "kana": "format-warning"}
CODE_RULE_BY_COLUMN = {"法人番号": "corporate-number", "町字ID": "town-id"}
# (start, end, rule): the end must come after the start. Only pairs that are the same kind of value.
ORDERED_PAIRS = (
    ("開始時間", "終了時間", "time-order"),
    ("開始日", "終了日", "date-order"),
    ("許可開始日", "許可満了日", "date-order"),
)

CheckKind = Literal["exists", "not_null", "regex", "phone", "in_set", "between", "unique", "check_digit",
                    "after"]


@dataclass(frozen=True)
class Check:
    """One rule on a staged table; renders as a GE expectation and as a SQL predicate."""

    kind: CheckKind
    error_code: str
    rule: str
    column: str
    other_column: str = ""                 # "after": the column this one must come after
    regex: str = ""                        # "after": both cells must match it to be compared
    value_set: tuple[str, ...] = ()
    min_value: float = 0.0                 # "between"
    max_value: float = 0.0
    or_equal: bool = False                 # "after": equal counts as after (dates)
    group_column: str = ""                 # "unique": unique within each value of this column (one upload)

    @property
    def id(self) -> str:
        return f"{self.error_code}:{self.column}"

    @property
    def meta(self) -> dict[str, Any]:
        return {"check_id": self.id, "error_code": self.error_code, "rule": self.rule,
                "column": self.column, "other_column": self.other_column}

    def expectation(self) -> Any:
        """The GE expectation of this check (meta maps its result back here)."""
        import great_expectations as gx

        from expectations import ge_custom

        name, arguments = RULE_FORMS[self.kind].expectation(self)
        expectation_class = getattr(ge_custom, name, None) or getattr(gx.expectations, name)
        return expectation_class(**arguments, meta=self.meta)

    def failing_sql(self, table: str) -> str | None:
        """A DuckDB predicate over ``table``'s rows, true where this check fails (None for 'exists': a column
        check, no row fails it)."""
        return RULE_FORMS[self.kind].failing_sql(self, table)


# --- the conditions a value must meet, as SQL: one text each, used by the failing-row predicates below *and* by
# the custom GE expectations (expectations.ge_custom evaluates these very texts), so GE and SQL cannot differ

def check_digit_ok_sql(col: str) -> str:
    """True where a value is not 6 digits (format-error's business) or ends in its check digit."""
    # TRY_CAST: DuckDB may evaluate the sum on rows the regex guard excludes
    weighted = " + ".join(f"{w} * TRY_CAST(substr({col}, {i + 1}, 1) AS INTEGER)"
                          for i, w in enumerate(CHECK_DIGIT_WEIGHTS))
    return (f"NOT regexp_full_match({col}, '{DIGITS6}') OR "
            f"TRY_CAST(substr({col}, 6, 1) AS INTEGER) = (11 - ({weighted}) % 11) % 10")


def phone_ok_sql(col: str) -> str:
    """True where a value is a Japanese phone number as intake writes it: its shape, and its digits for the
    prefix (kouiki.phone)."""
    return (f"regexp_full_match({col}, {literal(PHONE_SHAPE)}) AND "
            f"regexp_full_match({phone_digits_sql(col)}, {literal(PHONE_DIGITS)})")


def number_between_sql(col: str, min_value: float, max_value: float) -> str:
    """True where a text value read as a number lies in [min, max]; text that is no number is type-error's."""
    number = f"TRY_CAST({col} AS DOUBLE)"
    return f"{number} IS NULL OR {number} BETWEEN {min_value} AND {max_value}"


def in_order_sql(col_a: str, col_b: str, *, or_equal: bool, pattern: str) -> str:
    """True where A comes after B (or equals it), or where either is not written in ``pattern``: a cell intake
    could not read (「令和5年13月1日」) is its format check's finding, never also an order finding."""
    readable = f"regexp_full_match({col_a}, {literal(pattern)}) AND regexp_full_match({col_b}, {literal(pattern)})"
    return f"NOT ({readable}) OR {col_a} {'>=' if or_equal else '>'} {col_b}"


# --- each kind of check in its two forms, side by side: the GE expectation (class, arguments) and the SQL
# predicate of its failing rows. A kind exists only as an entry here, so it cannot have one form only.

@dataclass(frozen=True)
class RuleForms:
    expectation: Callable[[Check], tuple[str, dict[str, Any]]]   # GE class name (built-in or ge_custom), arguments
    failing_sql: Callable[[Check, str], str | None]              # (check, table) → predicate on the failing rows


def _fails_where_not(ok: Callable[[Check, str], str]) -> Callable[[Check, str], str]:
    """A column-map check fails on the written cells that do not meet its condition (empty cells pass, as GE's
    map expectations skip NULL)."""
    return lambda c, table: f"{quote(c.column)} IS NOT NULL AND NOT ({ok(c, quote(c.column))})"


def _unique_sql(c: Check, table: str) -> str:
    col = quote(c.column)
    if c.group_column:   # several uploads validated in one batch: unique within each upload
        group = quote(c.group_column)
        return (f"{col} IS NOT NULL AND ({group}, {col}) IN (SELECT ({group}, {col}) FROM {quote(table)} "
                f"WHERE {col} IS NOT NULL GROUP BY {group}, {col} HAVING count(*) > 1)")
    return (f"{col} IN (SELECT {col} FROM {quote(table)} WHERE {col} IS NOT NULL "
            f"GROUP BY {col} HAVING count(*) > 1)")


def _unique_expectation(c: Check) -> tuple[str, dict[str, Any]]:
    if c.group_column:   # rows without an ID are not compared (ID is optional in most datasets)
        return "ExpectCompoundColumnsToBeUnique", {"column_list": [c.group_column, c.column],
                                                   "ignore_row_if": "any_value_is_missing"}
    return "ExpectColumnValuesToBeUnique", {"column": c.column}


def _after_expectation(c: Check) -> tuple[str, dict[str, Any]]:
    pair = {"column_A": c.column, "column_B": c.other_column, "or_equal": c.or_equal,
            "ignore_row_if": "either_value_is_missing"}
    if c.regex:
        return "ExpectColumnPairValuesToBeInOrderWhereReadable", {**pair, "pattern": c.regex}
    return "ExpectColumnPairValuesAToBeGreaterThanB", pair


def _after_sql(c: Check, table: str) -> str:
    col, other = quote(c.column), quote(c.other_column)
    ok = (in_order_sql(col, other, or_equal=c.or_equal, pattern=c.regex) if c.regex
          else f"{col} {'>=' if c.or_equal else '>'} {other}")
    return f"{col} IS NOT NULL AND {other} IS NOT NULL AND NOT ({ok})"


RULE_FORMS: dict[CheckKind, RuleForms] = {
    "exists": RuleForms(lambda c: ("ExpectColumnToExist", {"column": c.column}), lambda c, table: None),
    "not_null": RuleForms(lambda c: ("ExpectColumnValuesToNotBeNull", {"column": c.column}),
                          lambda c, table: f"{quote(c.column)} IS NULL"),
    "regex": RuleForms(lambda c: ("ExpectColumnValuesToMatchRegex", {"column": c.column, "regex": c.regex}),
                       _fails_where_not(lambda c, col: f"regexp_full_match({col}, {literal(c.regex)})")),
    "phone": RuleForms(lambda c: ("ExpectColumnValuesToBeJapanesePhoneNumbers", {"column": c.column}),
                       _fails_where_not(lambda c, col: phone_ok_sql(col))),
    "in_set": RuleForms(lambda c: ("ExpectColumnValuesToBeInSet", {"column": c.column, "value_set": list(c.value_set)}),
                        _fails_where_not(lambda c, col: f"{col} IN ({', '.join(literal(v) for v in c.value_set)})")),
    "between": RuleForms(lambda c: ("ExpectColumnValuesAsNumberToBeBetween",
                                    {"column": c.column, "min_value": c.min_value, "max_value": c.max_value}),
                         _fails_where_not(lambda c, col: number_between_sql(col, c.min_value, c.max_value))),
    "unique": RuleForms(_unique_expectation, _unique_sql),
    "check_digit": RuleForms(lambda c: ("ExpectColumnValuesToHaveValidLocalGovernmentCheckDigit", {"column": c.column}),
                             _fails_where_not(lambda c, col: check_digit_ok_sql(col))),
    "after": RuleForms(_after_expectation, _after_sql),
}


# --- from a dataset to its checks ------------------------------------------------------------------

def build_checks(dataset: Dataset, *, batch_column: str = "") -> list[Check]:
    """Every check the canonical variant of ``dataset`` implies, in column order.

    ``batch_column`` names the column that tells the uploads of a batch apart (IDs are unique per upload)."""
    columns = dataset.canonical.columns
    names = {c.name for c in columns}
    checks: list[Check] = []
    for column in columns:
        checks.extend(_column_checks(column, dataset))
    for name, rule, bounds in (
        (dataset.lat_column or "緯度", "latitude", JAPAN_LATITUDE),
        (dataset.lon_column or "経度", "longitude", JAPAN_LONGITUDE),
    ):
        if name in names:
            checks.append(Check("between", "coordinate-error", rule, name,
                                min_value=bounds[0], max_value=bounds[1]))
    if dataset.id_column in names:
        checks.append(Check("unique", "unique-error", "id", dataset.id_column, group_column=batch_column))
    types = {c.name: c.type for c in columns}
    for start, end, rule in ORDERED_PAIRS:
        if start in names and end in names:
            # compared only where both are written as their type (a date check's failure is not an order too)
            readable = REGEX_BY_RULE.get(types[end], "") if types[end] == types[start] else ""
            checks.append(Check("after", "cross-column-error", rule, end, other_column=start,
                                or_equal=rule == "date-order", regex=readable))
    ids = [c.id for c in checks]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"dataset {dataset.id!r}: two checks share an id: {sorted(duplicated)}")
    return checks


def _column_checks(column: Column, dataset: Dataset) -> list[Check]:
    name, checks = column.name, []
    if column.required:
        checks.append(Check("exists", "missing-required-label", "label", name))
    if name in dataset.key_columns:
        checks.append(Check("not_null", "key-error", "required", name))
    # A required flag column must be present, but empty is one of its values: the definitions say
    # 「対応あり：1、対応なし：空文字」, so an empty flag cell means "no", not "missing".
    elif column.required and column.type != "flag" and "" not in (column.enum or ()):
        checks.append(Check("not_null", "missing-cell", "required", name))
    rule = _format_rule(column, dataset)
    if rule == "phone":
        checks.append(Check("phone", "format-error", rule, name, regex=REGEX_BY_RULE[rule]))
    elif rule is not None:
        checks.append(Check("regex", ERROR_CODE_BY_RULE.get(rule, "format-error"), rule, name,
                            regex=REGEX_BY_RULE[rule]))
    allowed = tuple(v for v in (column.enum or ()) if v != "")   # '' = may be empty: NULL passes anyway
    if allowed:
        checks.append(Check("in_set", "constraint-error", "enum", name, value_set=allowed))
    elif column.type == "flag":
        checks.append(Check("in_set", "constraint-error", "flag", name, value_set=("1",)))
    if _is_local_government_code(column, dataset):
        checks.append(Check("check_digit", "check-digit-error", "local-government-code", name))
    return checks


def _format_rule(column: Column, dataset: Dataset) -> str | None:
    if column.type == "code":
        if _is_local_government_code(column, dataset):
            return "local-government-code"
        return CODE_RULE_BY_COLUMN.get(column.name, "code")
    return column.type if column.type in REGEX_BY_RULE else None


def _is_local_government_code(column: Column, dataset: Dataset) -> bool:
    return column.type == "code" and (
        column.name in LOCAL_GOVERNMENT_CODE_COLUMNS or column.name == dataset.code_column)


def build_suite(dataset: Dataset, checks: Sequence[Check] | None = None) -> gx.ExpectationSuite:
    """The GE suite of ``dataset`` (one expectation per check; meta carries check_id and error_code)."""
    import great_expectations as gx

    expectations = [c.expectation() for c in (checks if checks is not None else build_checks(dataset))]
    # passed to the constructor: add_expectation() would need an active data context
    return gx.ExpectationSuite(name=f"kouiki.{dataset.id}.{dataset.version}", expectations=expectations)


def count_failing_sql(table: str, checks: Sequence[Check]) -> str:
    """One DuckDB query counting the failing rows of every check (the plain-SQL twin of the GE run)."""
    parts = [f"count(*) FILTER (WHERE {pred}) AS {quote(c.id)}"
             for c in checks if (pred := c.failing_sql(table)) is not None]
    return f"SELECT {', '.join(parts) or '0 AS none'} FROM {quote(table)}"


def count_failing(con: duckdb.DuckDBPyConnection, table: str, checks: Sequence[Check]) -> dict[str, int]:
    """check id → number of failing rows, computed directly in DuckDB (no GE)."""
    with_sql = [c for c in checks if c.failing_sql(table) is not None]
    if not with_sql:
        return {}
    row = con.execute(count_failing_sql(table, with_sql)).fetchone()
    assert row is not None
    return {c.id: int(n) for c, n in zip(with_sql, row, strict=True)}
