"""The body below the header, parsed fast (pyarrow) or slowly (csv), described the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from intake.read.common import _BLANK_CHARS, NOTICE_LINE_LIMIT
from intake.read.records import _iter_records
from kouiki.problems import IntakeError

SLOW_PATH_CHUNK_ROWS = 50_000          # rows held as Python strings at once on the slow path
ARROW_BLOCK_BYTES = 1 << 20            # pyarrow's default; larger blocks measured slower here


class _LineBreaks(NamedTuple):
    crlf: int
    lf: int     # LF not after CR
    cr: int     # CR not before LF

    @property
    def total(self) -> int:
        return self.crlf + self.lf + self.cr


@dataclass
class _Body:
    table: pa.Table                        # one nullable string column per header cell, generic names
    source_lines: np.ndarray               # int64, where each record starts
    blank: np.ndarray                      # bool, decided on the whole record (extra cells included)
    last_line: int                         # physical line where the last record ends
    line_breaks: _LineBreaks | None = None  # the whole file's CRLF / LF / CR, when the parse counted them
    row_lengths: np.ndarray | None = None  # cells per record; None when every record has them all
    extra_with_content: list[tuple[int, list[str]]] = field(default_factory=list)  # (line, extra cells)
    extra_with_content_count: int = 0
    extra_empty_lines: list[int] = field(default_factory=list)   # rows whose extra cells are all empty
    extra_empty_count: int = 0


def _parse_body_fast(
    data: bytes,
    offset: int,
    first_line: int,
    widths: tuple[int, int],
    encoding: str,
    delimiter: str,
    *,
    tolerant: bool = False,
) -> _Body:
    """Parse data[offset:] with pyarrow; raises pyarrow/Unicode errors when it cannot.

    ``widths`` is (cells in the header, cells pyarrow expects per row). Strict mode (multi-threaded)
    raises at the first row with another cell count; tolerant mode (single-threaded, so pyarrow can
    number the rows) sets such rows aside, reads them with the csv module and puts them back in place.
    """
    header_width, width = widths
    names = [f"c{i}" for i in range(width)]
    if offset >= len(data):
        table = pa.table({name: pa.array([], pa.string()) for name in names[:header_width]})
        return _Body(table, np.zeros(0, np.int64), np.zeros(0, bool), first_line - 1)
    set_aside: list[tuple[int, str]] = []

    def set_row_aside(row: pa_csv.InvalidRow) -> str:
        set_aside.append((row.number, row.text))
        return "skip"

    table = pa_csv.read_csv(
        pa.py_buffer(memoryview(data)[offset:]),
        read_options=pa_csv.ReadOptions(
            column_names=names,
            encoding="cp932" if encoding == "cp932" else "utf8",
            block_size=ARROW_BLOCK_BYTES,
            use_threads=not tolerant,
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
            newlines_in_values=True, ignore_empty_lines=False,
            invalid_row_handler=set_row_aside if tolerant else None,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), null_values=[],
            strings_can_be_null=False, quoted_strings_can_be_null=False,
            check_utf8=encoding != "cp932",   # transcoded CP932 is valid UTF-8 by construction
        ),
    )
    return _arrow_body(table, [_aside_row(number, text, delimiter) for number, text in set_aside],
                       data, offset, first_line, header_width)


@dataclass
class _AsideRow:
    """A row pyarrow set aside (another cell count than expected), read with the csv module."""

    index: int           # 0-based record index below the header
    cells: list[str]
    breaks: int          # line breaks inside the record
    blank: bool


def _aside_row(number: int, text: str, delimiter: str) -> _AsideRow:
    try:
        records = list(_iter_records(text, 0, 1, delimiter))
    except IntakeError:   # e.g. an unclosed quote: the slow path reports it with its line
        raise pa.ArrowInvalid("set-aside row needs the csv module") from None
    if len(records) > 1 or number < 1:
        raise pa.ArrowInvalid("pyarrow and the csv module split rows differently")
    cells = records[0].cells if records else []
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return _AsideRow(number - 1, cells, breaks, all(not cell.strip(_BLANK_CHARS) for cell in cells))


def _arrow_body(
    table: pa.Table, aside: list[_AsideRow], data: bytes, offset: int, first_line: int, header_width: int
) -> _Body:
    """Rows in file order (pyarrow's and the set-aside ones), with start lines, blank rows and extra cells."""
    n_rows = table.num_rows + len(aside)
    aside_index = np.array([row.index for row in aside], dtype=np.int64)
    is_aside = np.zeros(n_rows, dtype=bool)
    if len(aside_index) and (aside_index.max() >= n_rows or len(set(aside_index.tolist())) != len(aside)):
        raise pa.ArrowInvalid("set-aside rows out of place")
    is_aside[aside_index] = True
    arrow_rows = np.flatnonzero(~is_aside)

    if aside:
        breaks = np.zeros(n_rows, dtype=np.int64)
        breaks[arrow_rows] = _breaks_in_cells(table, has_cr=b"\r" in data)
        breaks[aside_index] = [row.breaks for row in aside]
        line_breaks = _count_line_breaks(data)
    else:
        line_breaks, breaks = _line_breaks_fast(data, offset, first_line, table)
    source_lines = np.arange(first_line, first_line + n_rows, dtype=np.int64)
    if breaks.any():
        source_lines[1:] += np.cumsum(breaks)[:-1]
    last_line = int(source_lines[-1] + breaks[-1]) if n_rows else first_line - 1
    if line_breaks.total != _total_breaks(data, last_line):
        raise pa.ArrowInvalid("line breaks do not add up; using the csv module")

    blank = np.zeros(n_rows, dtype=bool)
    blank[arrow_rows] = _blank_mask(table)
    blank[aside_index] = [row.blank for row in aside]
    body = _Body(_cells_in_file_order(table, aside, arrow_rows, header_width), source_lines, blank,
                 last_line, line_breaks)
    if aside:
        lengths = np.full(n_rows, header_width, dtype=np.int64)
        lengths[aside_index] = [min(len(row.cells), header_width) for row in aside]
        body.row_lengths = lengths if (lengths != header_width).any() else None
    _note_extras(body, table, aside, arrow_rows, header_width)
    return body


def _cells_in_file_order(
    table: pa.Table, aside: list[_AsideRow], arrow_rows: np.ndarray, header_width: int
) -> pa.Table:
    cells = table.select(list(range(header_width)))
    if not aside:
        return cells
    padded = [row.cells[:header_width] + [None] * (header_width - len(row.cells)) for row in aside]
    combined = pa.concat_tables([cells, _rows_to_table(padded, header_width)])
    order = np.empty(len(arrow_rows) + len(aside), dtype=np.int64)
    order[arrow_rows] = np.arange(len(arrow_rows))
    order[[row.index for row in aside]] = np.arange(len(arrow_rows), len(arrow_rows) + len(aside))
    return combined.take(pa.array(order))


def _note_extras(
    body: _Body, table: pa.Table, aside: list[_AsideRow], arrow_rows: np.ndarray, header_width: int
) -> None:
    """Rows with more cells than the header: which have content there, which only empty cells."""
    kind = np.zeros(len(body.blank), dtype=np.int8)   # 0 none, 1 only empty extra cells, 2 content
    extra = table.select(list(range(header_width, table.num_columns)))
    if extra.num_columns:
        kind[arrow_rows] = np.where(_blank_mask_strict(extra), 1, 2)
    for row in aside:
        if len(row.cells) > header_width:
            kind[row.index] = 2 if any(row.cells[header_width:]) else 1
    kind[body.blank] = 0
    content_rows, empty_rows = np.flatnonzero(kind == 2), np.flatnonzero(kind == 1)
    arrow_position = np.full(len(kind), -1, dtype=np.int64)
    arrow_position[arrow_rows] = np.arange(len(arrow_rows))
    aside_cells = {row.index: row.cells[header_width:] for row in aside}
    for row_index in content_rows[:NOTICE_LINE_LIMIT]:
        cells = aside_cells.get(int(row_index))
        if cells is None:
            cells = list(extra.slice(int(arrow_position[row_index]), 1).to_pylist()[0].values())
        body.extra_with_content.append((int(body.source_lines[row_index]), cells))
    body.extra_with_content_count = len(content_rows)
    body.extra_empty_lines = [int(body.source_lines[row]) for row in empty_rows[:NOTICE_LINE_LIMIT]]
    body.extra_empty_count = len(empty_rows)


def _count_line_breaks(data: bytes, total: int | None = None) -> _LineBreaks:
    """CRLF / LF / CR counts; a total already known from the parse saves the slowest scan (CRLF)."""
    lf = data.count(b"\n")
    cr = data.count(b"\r") if b"\r" in data else 0
    crlf = 0
    if cr and lf:
        crlf = data.count(b"\r\n") if total is None else cr + lf - total
    return _LineBreaks(crlf, lf - crlf, cr - crlf)


def _total_breaks(data: bytes, last_line: int) -> int:
    return last_line - 1 + (1 if data.endswith((b"\n", b"\r")) else 0)


def _line_breaks_fast(
    data: bytes, offset: int, first_line: int, table: pa.Table
) -> tuple[_LineBreaks, np.ndarray]:
    """The file's line breaks, and the breaks inside each row's cells (scanned only when there are some)."""
    no_breaks_in_cells = np.zeros(table.num_rows, dtype=np.int64)
    one_line_per_record = _total_breaks(data, first_line - 1 + table.num_rows)
    if data.find(b'"', offset) < 0:   # without a quote no cell can hold a line break
        return _count_line_breaks(data, one_line_per_record), no_breaks_in_cells
    line_breaks = _count_line_breaks(data)
    if line_breaks.total == one_line_per_record:
        return line_breaks, no_breaks_in_cells
    return line_breaks, _breaks_in_cells(table, has_cr=bool(line_breaks.crlf or line_breaks.cr))


def _breaks_in_cells(table: pa.Table, has_cr: bool) -> np.ndarray:
    """Line breaks (CRLF, CR or LF, each one break) inside the cells of each row."""
    breaks = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        breaks += _occurrences(column, "\n")
        if has_cr:
            cr = _occurrences(column, "\r")
            if cr.any():
                breaks += cr - _occurrences(column, "\r\n")
    return breaks


def _occurrences(column: pa.ChunkedArray, needle: str) -> np.ndarray:
    counts = pc.count_substring(column, needle)
    return counts.to_numpy().astype(np.int64) if pc.max(counts).as_py() else np.zeros(len(column), np.int64)


def _blank_mask(table: pa.Table) -> np.ndarray:
    """True for rows whose every cell is empty or whitespace; stops at the first column that rules all out."""
    mask = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        trimmed = pc.utf8_trim(column, characters=_BLANK_CHARS)
        is_blank = pc.fill_null(pc.equal(trimmed, ""), True)
        mask &= is_blank.to_numpy(zero_copy_only=False)
        if not mask.any():
            break
    return mask


def _blank_mask_strict(table: pa.Table) -> np.ndarray:
    """True for rows whose every cell is exactly empty (or missing)."""
    mask = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        mask &= pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)
    return mask


def _parse_body_slow(text: str, start: int, first_line: int, header_width: int, delimiter: str) -> _Body:
    """Parse with Python's csv module; handles ragged rows. Same result as the fast path where both work.

    Rows go to Arrow in chunks, so a million-row file does not sit in memory as Python strings.
    """
    body = _Body(pa.table({}), np.zeros(0, np.int64), np.zeros(0, bool), first_line - 1)
    chunks: list[pa.Table] = []
    rows: list[list[str | None]] = []
    lines: list[int] = []
    lengths: list[int] = []
    blank: list[bool] = []
    for record in _iter_records(text, start, first_line, delimiter):
        cells: list[str | None] = list(record.cells[:header_width])
        is_blank = record.blank
        if len(record.cells) > header_width and not is_blank:
            _note_extra_cells(body, record.first_line, record.cells[header_width:])
        lengths.append(len(cells))
        cells += [None] * (header_width - len(cells))
        rows.append(cells)
        lines.append(record.first_line)
        blank.append(is_blank)
        body.last_line = record.last_line
        if len(rows) == SLOW_PATH_CHUNK_ROWS:
            chunks.append(_rows_to_table(rows, header_width))
            rows = []
    chunks.append(_rows_to_table(rows, header_width))
    body.table = pa.concat_tables(chunks)
    body.source_lines = np.array(lines, dtype=np.int64)
    body.blank = np.array(blank, dtype=bool)
    row_lengths = np.array(lengths, dtype=np.int64)
    body.row_lengths = None if (row_lengths == header_width).all() else row_lengths
    return body


def _rows_to_table(rows: list[list[str | None]], width: int) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    return pa.table({f"c{i}": pa.array(column, pa.string()) for i, column in enumerate(columns)})


def _note_extra_cells(body: _Body, line: int, extra: list[str]) -> None:
    if any(extra):
        body.extra_with_content_count += 1
        if len(body.extra_with_content) < NOTICE_LINE_LIMIT:
            body.extra_with_content.append((line, extra))
    else:
        body.extra_empty_count += 1
        if len(body.extra_empty_lines) < NOTICE_LINE_LIMIT:
            body.extra_empty_lines.append(line)

