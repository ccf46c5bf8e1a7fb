"""Quoting for the SQL kouiki writes as text (DuckDB, SQLite): one home for every package.

Values from users travel as bound parameters wherever the driver allows; these two are for what cannot be bound
(a column or table name, a file path inside ``read_parquet(…)`` or ``COPY … TO``, a regex in generated SQL).
Both follow the SQL standard, which DuckDB and SQLite share: the quote character is doubled inside the quotes.
This module imports nothing, so any package may use it without pulling in DuckDB or the warehouse.
"""

from __future__ import annotations


def quote(identifier: str) -> str:
    '''A quoted identifier: ``my "col"`` → ``"my ""col"""``.'''
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string literal: ``it's`` → ``'it''s'``."""
    return "'" + text.replace("'", "''") + "'"
