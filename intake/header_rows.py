"""Headers written on two or three rows: a group label over its sub-columns, joined into one name per column.

A clinic list often heads its bed counts so::

    番号,医療機関名,所在地,病床数,,
    ,,,一般,療養,計

and the columns are read as 番号, 医療機関名, 所在地, 病床数_一般, 病床数_療養, 病床数_計. A third row splits
the sub-columns once more (病床数_一般_男 …). In an Excel sheet the group label is usually a merged cell
(B1:D1) and single columns are merged down (A1:A2): the merged ranges, when given, decide the header rows.
Without them (CSV, or a sheet without merges) a row below the header is a sub-header only when

* a label of the row above is followed by blank cells, and the row has labels under both (a group), and
* each of its labels stands under a group (or under a blank, or repeats the label above), never under a
  single column (a data row with a few blanks does not pass), and
* its labels read as labels, not values (no number, date, time, phone, URL or e-mail), and
* the row above has more than one label (a title over the header is not a group).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

MAX_HEADER_ROWS = 3
MAX_LABEL_CHARS = 40
_STRIP = " \t\r\n\v\f\u3000\u00a0\ufeff"
_VALUE = re.compile(
    r"[-+▲△]?[0-9][0-9,]*(?:\.[0-9]+)?%?"          # 12, 1,200, 3.5, 10%
    r"|[0-9]{1,4}[/.\-][0-9]{1,2}(?:[/.\-][0-9]{1,4})?.*"   # 2023/4/1, 4-1
    r"|[0-9]{1,2}:[0-9]{2}.*"                           # 8:30
    r"|\(?0[0-9]{1,4}\)?-?[0-9]{1,4}-[0-9]{3,4}"        # 097-111-1111
    r"|https?://.*|[^@\s]+@[^@\s]+"
)


@dataclass(frozen=True)
class Merge:
    """A merged range of a sheet, 0-based and inclusive, in the rows and columns of the header block."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int

    def covers(self, row: int, col: int) -> bool:
        return self.first_row <= row <= self.last_row and self.first_col <= col <= self.last_col


def _clean(cell: str) -> str:
    return cell.strip(_STRIP)


def is_label(cell: str) -> bool:
    """A header label, not a value: no number, date, time, phone, URL or e-mail, and short."""
    text = unicodedata.normalize("NFKC", cell)
    return len(text) <= MAX_LABEL_CHARS and _VALUE.fullmatch(text) is None


def _padded(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    width = max((len(row) for row in rows), default=0)
    return [[_clean(cell) for cell in row] + [""] * (width - len(row)) for row in rows]


def count_header_rows(rows: Sequence[Sequence[str]], merges: Sequence[Merge] = ()) -> int:
    """How many of ``rows`` (the header row, then the rows right below it) form the header: 1, 2 or 3.

    ``merges`` are the sheet's merged ranges, in the coordinates of ``rows`` (row 0 is the header row).
    """
    grid = _padded(rows[:MAX_HEADER_ROWS + 1])   # one row more: the first data row shows the spans too
    if len(grid) < 2:
        return 1
    if merges:
        by_merges = _rows_by_merges(grid, merges)
        if by_merges > 1:
            return by_merges
    depth = 1
    while depth < min(len(grid), MAX_HEADER_ROWS) and _is_sub_header(grid[:depth], grid[depth:]):
        depth += 1
    return depth


def _rows_by_merges(grid: list[list[str]], merges: Sequence[Merge]) -> int:
    """Rows the header's merged cells span: a cell merged down, or a group merged across with labels below."""
    depth = 1
    for merge in merges:
        if merge.first_row == 0 and merge.last_row > 0 and merge.first_col == merge.last_col:
            depth = max(depth, merge.last_row + 1)                      # a single column merged down
    for row in range(min(len(grid) - 1, MAX_HEADER_ROWS - 1)):
        if row >= depth:
            break
        for merge in merges:
            across = merge.first_row == merge.last_row == row and merge.last_col > merge.first_col
            if across and any(grid[row + 1][col] for col in range(merge.first_col, merge.last_col + 1)):
                depth = max(depth, row + 2)                              # a group with its sub-labels
    return min(depth, MAX_HEADER_ROWS, len(grid))


def _is_sub_header(above: list[list[str]], lower: list[list[str]]) -> bool:
    """Whether ``lower[0]`` continues the header rows ``above`` (``lower``: it and the rows below it)."""
    row = lower[0]
    if sum(1 for cell in above[-1] if cell) < 2 and len(above) == 1:
        return False                                                     # a title, not a group row
    labels = [col for col, cell in enumerate(row) if cell]
    if len(labels) < 2 or not all(is_label(row[col]) for col in labels):
        return False
    keys = _column_keys(above, lower)
    groups = _groups(keys, above[-1])
    in_group = {col for span in groups for col in span}
    if not any(sum(1 for col in span if row[col]) >= 2 for span in groups):
        return False
    top = above[-1]
    return all(col in in_group or not keys[col][-1] or row[col] == top[col] for col in labels)


def _column_keys(rows: list[list[str]], below: list[list[str]]) -> list[tuple[str, ...]]:
    """Each column's labels so far, a group's label carried right over the blank cells of its span."""
    width = len(rows[0])
    keys: list[tuple[str, ...]] = [() for _ in range(width)]
    for depth, row in enumerate(rows):
        lower = [*rows[depth + 1:], *below]
        for col in range(width):
            label = row[col]
            carried = (not label and col > 0 and keys[col - 1][:depth] == keys[col][:depth]
                       and keys[col - 1][depth] != "" and any(r[col] for r in lower))
            keys[col] = (*keys[col], keys[col - 1][depth] if carried else label)
    return keys


def _groups(keys: list[tuple[str, ...]], top: list[str]) -> list[range]:
    """Runs of two or more columns under one label of the last header row (a label and its carried copies)."""
    spans: list[range] = []
    start = 0
    for col in range(1, len(keys) + 1):
        if col == len(keys) or top[col] or keys[col] != keys[start] or not keys[start][-1]:
            if col - start >= 2 and keys[start][-1]:
                spans.append(range(start, col))
            start = col
    return spans


def join_header_rows(rows: Sequence[Sequence[str]], merges: Sequence[Merge] = ()) -> list[str]:
    """One name per column: the labels of the header rows joined with '_' (病床数_一般), blanks left out."""
    grid = _padded(rows)
    if len(grid) == 1:
        return grid[0]
    if merges:
        grid = _filled_by_merges(grid, merges)
        keys = [tuple(row[col] for row in grid) for col in range(len(grid[0]))]
    else:
        keys = _column_keys(grid[:-1], grid[-1:])
        keys = [(*key, grid[-1][col]) for col, key in enumerate(keys)]
    return ["_".join(_distinct(key)) for key in keys]


def _filled_by_merges(grid: list[list[str]], merges: Sequence[Merge]) -> list[list[str]]:
    """Each merged range's label copied across the columns it spans (not down: one label per column)."""
    filled = [list(row) for row in grid]
    for merge in merges:
        label = grid[merge.first_row][merge.first_col] if merge.first_row < len(grid) else ""
        for col in range(merge.first_col, min(merge.last_col, len(grid[0]) - 1) + 1):
            if merge.first_row < len(grid) and not filled[merge.first_row][col]:
                filled[merge.first_row][col] = label
    return filled


def _distinct(labels: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for label in labels:
        if label and (not out or out[-1] != label):
            out.append(label)
    return out
