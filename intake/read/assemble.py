"""From body to :class:`~intake.read.common.RawTable`: dropped columns, notes under the table, unique names."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa

from intake.read.body import _blank_mask_strict, _Body
from intake.read.common import _BLANK_CHARS, SOURCE_LINE, RawTable
from intake.read.header import _HeaderChoice
from intake.read.notices import (
    _blank_row_notices,
    _dropped_column_notices,
    _extra_cell_notices,
    _first_lines,
    _lines_text,
    _missing_cell_notices,
    _unnamed_column_notice,
)
from kouiki.problems import Notice


def _assemble(
    header_cells: list[str],
    body: _Body,
    choice: _HeaderChoice,
    notices: list[Notice],
    encoding: str,
    fmt: str,
    sheet: str | None,
) -> RawTable:
    keep = ~body.blank
    blank_lines = body.source_lines[body.blank]
    notices += _blank_row_notices(blank_lines)
    table = body.table.filter(pa.array(keep)) if body.blank.any() else body.table
    lines = body.source_lines[keep]
    lengths = body.row_lengths[keep] if body.row_lengths is not None else None
    notes = _trailing_notes(table)
    if notes:   # ※… lines under the table explain it; they are not rows
        notices.append(_note_rows_notice(table.slice(table.num_rows - notes), lines[-notes:]))
        table, lines = table.slice(0, table.num_rows - notes), lines[:-notes]
        lengths = lengths[:-notes] if lengths is not None else None

    kept, dropped_trailing, dropped_inner, named = _keep_columns(header_cells, table)
    notices += _dropped_column_notices(dropped_trailing, dropped_inner)
    notices += [_unnamed_column_notice(i, named[i]) for i in kept if not header_cells[i]]
    if lengths is not None and kept:
        notices += _missing_cell_notices(lines, lengths, max(kept) + 1, named)
    notices += _extra_cell_notices(body)

    unique_names, duplicate_notices = _unique_names([named[i] for i in kept])
    notices += duplicate_notices
    frame = _to_polars(lines, unique_names, [table.column(index) for index in kept])
    return RawTable(
        header=[header_cells[i] for i in kept],
        data=frame,
        encoding=encoding,
        format=fmt,
        sheet=sheet,
        preamble=[rec.raw for rec in choice.preamble],
        blank_rows_skipped=len(blank_lines),
        notices=notices,
        property_names=_per_column(choice.properties, kept),
        property_types=_per_column(choice.property_types, kept),
    )


def _per_column(values: list[str], kept: list[int]) -> list[str]:
    """LinkData's per-column metadata for the kept columns; [] when the file has none."""
    if not values:
        return []
    return [values[i] if i < len(values) else "" for i in kept]


# A note under a table: one cell starting with ※, ＊, (注), 注1:, 出典: … (not 注射…, which is a name).
_NOTE_START = re.compile(r"^(?:[※＊*]|[（(]注[0-9０-９]*[)）]|注[0-9０-９]*[:：)）]|(?:出典|資料|備考)[:：])")
MAX_NOTE_ROWS = 20


def _trailing_notes(table: pa.Table) -> int:
    """How many of the last rows are notes: one filled cell, starting like a note; never every row."""
    notes = 0
    for row in range(table.num_rows - 1, max(table.num_rows - 1 - MAX_NOTE_ROWS, 0), -1):
        cells = [v.strip(_BLANK_CHARS) for v in table.slice(row, 1).to_pylist()[0].values()
                 if v and v.strip(_BLANK_CHARS)]
        if len(cells) != 1 or not _NOTE_START.match(cells[0]):
            break
        notes += 1
    return notes


def _note_rows_notice(rows: pa.Table, lines: np.ndarray) -> Notice:
    texts = [next(v for v in row.values() if v and v.strip(_BLANK_CHARS)).strip(_BLANK_CHARS)
             for row in rows.to_pylist()]
    return Notice.of("note-row", lines=_lines_text(_first_lines(lines), len(lines)), notes=" / ".join(texts),
                     line=int(lines[0]), count=len(texts), details={"lines": _first_lines(lines), "notes": texts})


def _to_polars(lines: np.ndarray, names: list[str], columns: list[pa.ChunkedArray]) -> pl.DataFrame:
    """``_source_line`` first, then one pl.String column per kept header cell (from_arrow: fastest here)."""
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {SOURCE_LINE: pa.array(lines, pa.int64())}
    arrays.update(zip(names, columns, strict=True))
    frame = pl.from_arrow(pa.table(arrays))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _keep_columns(
    header_cells: list[str], table: pa.Table
) -> tuple[list[int], list[int], list[int], list[str]]:
    """Indices to keep; unnamed empty columns to drop (trailing / inner); display names ("列N" if unnamed)."""
    empty = [
        not header_cells[i] and bool(_blank_mask_strict(table.select([i])).all())
        for i in range(len(header_cells))
    ]
    last_named_or_data = max((i for i, is_empty in enumerate(empty) if not is_empty), default=-1)
    kept = [i for i, is_empty in enumerate(empty) if not is_empty]
    trailing = [i for i in range(last_named_or_data + 1, len(header_cells))]
    inner = [i for i, is_empty in enumerate(empty) if is_empty and i <= last_named_or_data]
    named = [cell or f"列{i + 1}" for i, cell in enumerate(header_cells)]
    return kept, trailing, inner, named


def _unique_names(names: list[str]) -> tuple[list[str], list[Notice]]:
    seen = {SOURCE_LINE}
    unique: list[str] = []
    notices: list[Notice] = []
    for name in names:
        candidate, k = name, 2
        while candidate in seen:
            candidate, k = f"{name}__{k}", k + 1
        if candidate != name:
            notices.append(Notice.of("duplicate-label", "renamed", label=name, column=candidate,
                                     details={"label": name}))
        seen.add(candidate)
        unique.append(candidate)
    return unique, notices

