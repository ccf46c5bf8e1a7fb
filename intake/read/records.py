"""Records: cells plus the physical lines they came from (Python's csv module, for the head of a file)."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from intake.read.common import _BLANK_CHARS, _HEADER_STRIP_CHARS
from kouiki.problems import IntakeError, Problem, Where


@dataclass
class _Record:
    cells: list[str]
    first_line: int        # 1-based physical line (or sheet row) where the record starts
    last_line: int
    raw: str               # the record as written, without its final line break

    @property
    def blank(self) -> bool:
        return all(not cell.strip(_BLANK_CHARS) for cell in self.cells)

    @property
    def comment(self) -> bool:
        """A '#…' preamble line; a bare '#' is a header cell ("number"), not a comment."""
        first = self.cells[0].strip(_HEADER_STRIP_CHARS) if self.cells else ""
        return first.startswith("#") and len(first) > 1

    @property
    def property_line(self) -> bool:
        """LinkData's '#property' line, which names the columns of the data below it."""
        return self.marker == "#property"

    @property
    def marker(self) -> str:
        """The first cell, stripped and lower-cased: '#property', '#label', '#object_type_xsd' …"""
        return self.cells[0].strip(_HEADER_STRIP_CHARS).lower() if self.cells else ""


class _LineFeeder:
    """Hands physical lines (ended by CR, LF or CRLF) to csv.reader and counts lines and characters."""

    def __init__(self, text: str, start: int, first_line: int) -> None:
        self._lines = io.StringIO(text, newline="")
        self._lines.seek(start)
        self.offset = start
        self.line_no = first_line - 1
        self.lines_in_record = 0
        self.ran_out_inside_record = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            # csv.reader asks for more only when a quoted cell is still open
            self.ran_out_inside_record = self.lines_in_record > 0
            raise StopIteration
        self.offset += len(line)
        self.line_no += 1
        self.lines_in_record += 1
        return line


def _iter_records(text: str, start: int, first_line: int, delimiter: str) -> Iterator[_Record]:
    """Records of ``text`` from char offset ``start`` (which begins physical line ``first_line``)."""
    if csv.field_size_limit() < sys.maxsize // 2:
        csv.field_size_limit(sys.maxsize // 2)   # a long cell is data, not an attack: pyarrow has no limit
    feeder = _LineFeeder(text, start, first_line)
    reader = csv.reader(feeder, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    while True:
        record_start, record_line = feeder.offset, feeder.line_no + 1
        feeder.lines_in_record = 0
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise IntakeError(Problem.of("parse-error", line=record_line, detail=err,
                                         where=Where(line=record_line))) from None
        if feeder.ran_out_inside_record:
            raise _unclosed_quote(record_line)
        raw = text[record_start : feeder.offset].rstrip("\r\n")
        yield _Record(cells, record_line, feeder.line_no, raw)


def _unclosed_quote(line: int) -> IntakeError:
    return IntakeError(Problem.of("unclosed-quote", line=line, where=Where(line=line)))


def _detect_delimiter(text_head: str, name: str) -> str:
    """Tab when the first line with separators has tabs and no commas (or a .tsv/.txt name); else comma."""
    tab_by_name = name.lower().endswith((".tsv", ".txt"))
    for line in re.split(r"\r\n|\r|\n", text_head, maxsplit=200)[:200]:
        if _is_comment_line(line) or not ("\t" in line or "," in line):
            continue   # preamble, blank or title lines say nothing about the separator
        return "\t" if "\t" in line and (tab_by_name or "," not in line) else ","
    return ","


def _is_comment_line(line: str) -> bool:
    first = re.split(r"[,\t]", line, maxsplit=1)[0].strip(_HEADER_STRIP_CHARS)
    return first.startswith("#") and len(first) > 1

