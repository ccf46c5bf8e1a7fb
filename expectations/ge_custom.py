"""Custom Great Expectations for the checks of :mod:`expectations.suites` that GE has no built-in for on a text
column in DuckDB (see that module's docstring). Importing this module registers them with GE; it is imported
with GE itself, by :meth:`expectations.suites.Check.expectation` and by the Data Docs renderer, so that loading
the checks (``kouiki inspect``, the Dagster definitions) does not import Great Expectations.
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

from expectations.suites import DIGITS6
from intake.localgov import check_digit_of
from intake.phone import PHONE_DIGITS, PHONE_SHAPE

# --- custom expectations ----------------------------------------------------------------------------

class ColumnValuesJapanesePhone(ColumnMapMetricProvider):
    """True where a value is a normalised Japanese phone number: its shape, and its digits for the prefix."""

    condition_metric_name = "column_values.kouiki_japanese_phone"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        without_extension = sa.func.regexp_replace(column, r" 内線[0-9]+$", "")
        digits = sa.func.regexp_replace(without_extension, "[^0-9]", "", "g")
        return sa.and_(sa.func.regexp_full_match(column, PHONE_SHAPE),
                       sa.func.regexp_full_match(digits, PHONE_DIGITS))


class ExpectColumnValuesToBeJapanesePhoneNumbers(ColumnMapExpectation):
    """Expect each value to be a Japanese phone number as intake normalises it (see intake.phone)."""

    map_metric = "column_values.kouiki_japanese_phone"
    success_keys = ("mostly",)


class ColumnValuesLocalGovernmentCheckDigit(ColumnMapMetricProvider):
    """True where a 6-digit value's last digit is the check digit of the first five (others: not ours)."""

    condition_metric_name = "column_values.kouiki_local_government_check_digit"

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        def digit(position: int) -> Any:
            return sa.try_cast(sa.func.substr(column, position, 1), sa.Integer)

        six_digits = sa.func.regexp_full_match(column, DIGITS6)
        # a value that is not 6 digits is format-error's business, so it passes here
        return sa.or_(sa.not_(six_digits), digit(6) == check_digit_of([digit(i) for i in range(1, 6)]))


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
        number = sa.try_cast(column, sa.Double)
        # text that is not a number is type-error's business, so it passes here
        return sa.or_(number.is_(None), number.between(min_value, max_value))


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
        readable = sa.and_(sa.func.regexp_full_match(column_A, pattern),
                           sa.func.regexp_full_match(column_B, pattern))
        return sa.or_(sa.not_(readable), column_A >= column_B if or_equal else column_A > column_B)


class ExpectColumnPairValuesToBeInOrderWhereReadable(ColumnPairMapExpectation):
    """Expect column_A to come after column_B (終了日 after 開始日) in every row where both are written in
    ``pattern``; a cell that is not (its format check's finding) takes no part in the comparison."""

    or_equal: bool = False
    pattern: str
    ignore_row_if: str = "either_value_is_missing"
    map_metric = "column_pair_values.kouiki_in_order_where_readable"
    success_keys = ("column_A", "column_B", "ignore_row_if", "or_equal", "pattern", "mostly")
    args_keys = ("column_A", "column_B", "or_equal", "pattern")
