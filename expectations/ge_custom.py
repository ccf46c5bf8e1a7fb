"""Custom Great Expectations for the checks of :mod:`expectations.suites` that GE has no built-in for on a text
column in DuckDB (see that module's docstring). Importing this module registers them with GE; it is imported
with GE itself, by :meth:`expectations.suites.Check.expectation` and by the Data Docs renderer, so that loading
the checks (``kouiki inspect``, the Dagster definitions) does not import Great Expectations.

Each metric's condition is the SQL text of :mod:`expectations.suites` (``phone_ok_sql`` …) that the check's
failing-row predicate is made of, so a rule is written once and GE and the SQL count the same rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)

from expectations.suites import check_digit_ok_sql, in_order_sql, number_between_sql, phone_ok_sql
from kouiki.sql import quote


def _condition(sql: str) -> Any:
    """A SQL condition text as a SQLAlchemy boolean (parenthesised: GE negates it)."""
    return sa.literal_column(f"({sql})", sa.Boolean)


# --- custom expectations ----------------------------------------------------------------------------

class ColumnValuesJapanesePhone(ColumnMapMetricProvider):
    """True where a value is a normalised Japanese phone number: its shape, and its digits for the prefix."""

    condition_metric_name = "column_values.kouiki_japanese_phone"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        return _condition(phone_ok_sql(quote(column.name)))


class ExpectColumnValuesToBeJapanesePhoneNumbers(ColumnMapExpectation):
    """Expect each value to be a Japanese phone number as intake normalises it (see kouiki.phone)."""

    map_metric = "column_values.kouiki_japanese_phone"
    success_keys = ("mostly",)


class ColumnValuesLocalGovernmentCheckDigit(ColumnMapMetricProvider):
    """True where a 6-digit value's last digit is the check digit of the first five (others: not ours)."""

    condition_metric_name = "column_values.kouiki_local_government_check_digit"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        # a value that is not 6 digits is format-error's business, so it passes here
        return _condition(check_digit_ok_sql(quote(column.name)))


class ExpectColumnValuesToHaveValidLocalGovernmentCheckDigit(ColumnMapExpectation):
    """Expect each 6-digit 全国地方公共団体コード to end in its check digit (JIS X 0401/0402 + 1 digit)."""

    map_metric = "column_values.kouiki_local_government_check_digit"
    success_keys = ("mostly",)


class ColumnValuesAsNumberBetween(ColumnMapMetricProvider):
    """True where a text value read as a number lies in [min_value, max_value]; non-numbers pass."""

    condition_metric_name = "column_values.kouiki_as_number_between"
    condition_value_keys = ("min_value", "max_value")

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, min_value: float, max_value: float, **kwargs: Any) -> Any:
        # text that is not a number is type-error's business, so it passes here
        return _condition(number_between_sql(quote(column.name), float(min_value), float(max_value)))


class ExpectColumnValuesAsNumberToBeBetween(ColumnMapExpectation):
    """Expect text values that read as numbers to lie between min_value and max_value (inclusive)."""

    min_value: float
    max_value: float
    map_metric = "column_values.kouiki_as_number_between"
    success_keys = ("min_value", "max_value", "mostly")


class ColumnPairValuesInOrderWhereReadable(ColumnPairMapMetricProvider):
    """True where A comes after B (or equals it, with ``or_equal``), or where either value is not written in
    ``pattern`` (a date intake could not read, 「令和5年13月1日」, is the date check's finding, not an order)."""

    condition_metric_name = "column_pair_values.kouiki_in_order_where_readable"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition", "condition_parser",
                             "ignore_row_if")
    condition_value_keys = ("or_equal", "pattern")

    @column_pair_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_A: Any, column_B: Any, or_equal: bool, pattern: str,
                    **kwargs: Any) -> Any:
        return _condition(in_order_sql(quote(column_A.name), quote(column_B.name), or_equal=or_equal,
                                       pattern=pattern))


class ExpectColumnPairValuesToBeInOrderWhereReadable(ColumnPairMapExpectation):
    """Expect column_A to come after column_B (終了日 after 開始日) in every row where both are written in
    ``pattern``; a cell that is not (its format check's finding) takes no part in the comparison."""

    or_equal: bool = False
    pattern: str
    ignore_row_if: str = "either_value_is_missing"
    map_metric = "column_pair_values.kouiki_in_order_where_readable"
    success_keys = ("column_A", "column_B", "ignore_row_if", "or_equal", "pattern", "mostly")
    args_keys = ("column_A", "column_B", "or_equal", "pattern")
