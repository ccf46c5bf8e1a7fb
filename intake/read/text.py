"""Text files (CSV/TSV): encoding, delimiter, header and body, put together."""

from __future__ import annotations

import re

import pyarrow as pa

from intake.header_rows import MAX_HEADER_ROWS
from intake.read.assemble import _assemble
from intake.read.body import _Body, _count_line_breaks, _parse_body_fast, _parse_body_slow, _total_breaks
from intake.read.common import HEADER_SEARCH_LINES, PROBE_BYTES, HeaderScorer, RawTable
from intake.read.encoding import _probe_encoding, decode_text
from intake.read.header import _choice_header_cells, _choose_header, _HeaderChoice, _with_header_rows
from intake.read.notices import (
    _encoding_notice,
    _extension_notices,
    _header_notices,
    _header_rows_notices,
    _line_ending_notices,
)
from intake.read.records import _detect_delimiter, _iter_records, _Record
from kouiki.problems import IntakeError, Problem

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def _read_text(data: bytes, name: str, scorer: HeaderScorer | None) -> RawTable:
    encoding = _probe_encoding(data)
    full_text: str | None = None
    if encoding is None:   # the prefix did not settle it: decode everything (raises on a bad byte)
        full_text, encoding = decode_text(data)
    size = PROBE_BYTES
    while True:
        head_text, complete = _head_text(data, encoding, full_text, size)
        delimiter = _detect_delimiter(head_text, name)
        records = _head_records(head_text, delimiter)
        choice = _choose_header(records, scorer)
        if choice is not None:
            choice = _with_header_rows(records, choice)
        # the last record of a cut prefix may be cut too: trust only records before it
        if complete or (choice is not None and choice.data_index + 1 < len(records)):
            break
        size *= 4
    if choice is None:
        raise IntakeError(Problem.of("empty-file", "no-header", name=name))
    first_line = records[choice.data_index - 1].last_line + 1
    body = _parse_text_body(data, full_text, encoding, delimiter, first_line, records, choice)
    fmt = "tsv" if delimiter == "\t" else "csv"
    line_breaks = body.line_breaks or _count_line_breaks(data, _total_breaks(data, body.last_line))
    notices = [_encoding_notice(encoding), *_line_ending_notices(line_breaks)]
    notices += _header_notices(choice, scorer is not None)
    notices += _extension_notices(name, fmt)
    header_cells = _choice_header_cells(choice)
    notices += _header_rows_notices(choice, header_cells)
    return _assemble(header_cells, body, choice, notices, encoding, fmt, None)


def _head_text(data: bytes, encoding: str, full_text: str | None, size: int) -> tuple[str, bool]:
    """About ``size`` bytes (or characters) from the start, cut after a line break; and whether it is all."""
    if full_text is not None:
        if len(full_text) <= size:
            return full_text, True
        cut = max(full_text.rfind("\n", 0, size), full_text.rfind("\r", 0, size)) + 1
        return (full_text[:cut], False) if cut > 0 else (full_text, True)
    cut = max(data.rfind(b"\n", 0, size), data.rfind(b"\r", 0, size)) + 1 if len(data) > size else 0
    complete = cut <= 0
    try:
        return (data if complete else data[:cut]).decode(encoding), complete
    except UnicodeDecodeError:
        decode_text(data)   # raises the error a clerk can act on (line, byte offset, fix)
        raise


def _head_records(text: str, delimiter: str) -> list[_Record]:
    """Records from the top of the file, up to a little past the first possible header line."""
    records: list[_Record] = []
    default_index: int | None = None
    for record in _iter_records(text, 0, 1, delimiter):
        records.append(record)
        if default_index is None and not record.blank and not record.comment:
            default_index = len(records) - 1
        # stop a few records past both the default header and the scorer's search window
        if (default_index is not None and len(records) - default_index > MAX_HEADER_ROWS + 1
                and records[-2].first_line > HEADER_SEARCH_LINES + MAX_HEADER_ROWS):
            break
    return records


def _parse_text_body(
    data: bytes,
    full_text: str | None,
    encoding: str,
    delimiter: str,
    first_line: int,
    records: list[_Record],
    choice: _HeaderChoice,
) -> _Body:
    """Fast path first; the csv module when pyarrow rejects the file (ragged rows and the like)."""
    header_width = choice.width
    # rows that all end with extra delimiters (more cells than the header) stay on the fast path
    first_row = next((rec for rec in records[choice.data_index :] if not rec.blank), None)
    width = max(header_width, len(first_row.cells) if first_row else 0)
    byte_offset = _byte_offset_of_line(data, first_line)
    # one column hides an unclosed quote from pyarrow (no cell count goes wrong): the csv module judges
    if width > 1 or data.count(b'"', byte_offset) % 2 == 0:
        body = _try_pyarrow(data, byte_offset, first_line, (header_width, width), encoding, delimiter)
        if body is not None:
            return body
    text, used_encoding = decode_text(data) if full_text is None else (full_text, encoding)
    if used_encoding != encoding:   # cannot happen: _probe_encoding mirrors decode_text
        raise RuntimeError(f"encoding changed from {encoding} to {used_encoding}")
    start = _char_offset_of_line(text, first_line)
    return _parse_body_slow(text, start, first_line, header_width, delimiter)


def _try_pyarrow(
    data: bytes, offset: int, first_line: int, widths: tuple[int, int], encoding: str, delimiter: str
) -> _Body | None:
    """Strict pyarrow, then tolerant pyarrow for ragged rows; None when the csv module must decide."""
    for tolerant in (False, True):
        try:
            return _parse_body_fast(data, offset, first_line, widths, encoding, delimiter, tolerant=tolerant)
        except UnicodeDecodeError:
            return None   # a damaged byte: decode_text reports it
        except pa.ArrowInvalid as err:
            if "UTF8" in str(err):
                return None
    return None


def _byte_offset_of_line(data: bytes, line: int) -> int:
    """Byte offset where physical ``line`` starts (CR and LF never occur inside CP932/UTF-8 characters)."""
    if line <= 1:
        return 0
    for count, match in enumerate(_LINE_BREAK.finditer(data), start=2):
        if count == line:
            return match.end()
    return len(data)


def _char_offset_of_line(text: str, line: int) -> int:
    if line <= 1:
        return 0
    for count, match in enumerate(re.finditer(r"\r\n|\r|\n", text), start=2):
        if count == line:
            return match.end()
    return len(text)

