"""What every stage of reading shares: the :class:`RawTable` it produces and the limits it reads within."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from kouiki.problems import Notice

HeaderScorer = Callable[[list[str]], float]

SOURCE_LINE = "_source_line"
DEFAULT_MAX_UNZIPPED_BYTES = 500_000_000
HEADER_SEARCH_LINES = 15               # a header_scorer looks for the header among these first lines
NOTICE_LINE_LIMIT = 20                 # line numbers (or rows) listed in one notice
PROBE_BYTES = 1 << 20                  # bytes decoded to choose the encoding and find the header

# Characters that make a cell "blank". Full-width space and NBSP are common in Japanese spreadsheets.
_BLANK_CHARS = " \t\r\n\v\f\u3000\u00a0\ufeff"
_HEADER_STRIP_CHARS = string.whitespace + "\u3000\u00a0\ufeff"

_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class RawTable:
    """One uploaded table: header and cells exactly as written, plus what was noticed on the way."""

    header: list[str]
    data: pl.DataFrame
    encoding: str
    format: str
    sheet: str | None
    preamble: list[str]
    blank_rows_skipped: int
    notices: list[Notice] = field(default_factory=list)
    # LinkData files: each column's '#property' name (English: name, address, startDate …) and
    # '#object_type_xsd' type, in the order of ``header`` ("" where the file gives none); empty otherwise.
    property_names: list[str] = field(default_factory=list)
    property_types: list[str] = field(default_factory=list)

